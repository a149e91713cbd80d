-- A map task's committed output becomes one row (JSONB [partition, ...]) instead of one row per
-- non-empty partition. A tiny task used to insert up to n_reduce rows, each into another part of
-- the (job, part, map) key and so onto another page; now a commit appends one row, and a reduce
-- reads its partition out of each row with `data -> '$[r]'` without parsing the rest.
CREATE TABLE map_result (
  job_id TEXT NOT NULL REFERENCES job (id) ON DELETE CASCADE,
  map_idx INTEGER NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY (job_id, map_idx)
) STRICT, WITHOUT ROWID;

-- Outputs of unfinished jobs move over, with '[]' for the partitions that were not stored.
INSERT INTO map_result (job_id, map_idx, data)
WITH RECURSIVE
  done (job_id, map_idx, n_reduce) AS (
    SELECT DISTINCT m.job_id, m.map_idx, j.n_reduce FROM map_output m JOIN job j ON j.id = m.job_id
  ),
  slot (job_id, map_idx, n_reduce, part) AS (
    SELECT job_id, map_idx, n_reduce, 0 FROM done
    UNION ALL
    SELECT job_id, map_idx, n_reduce, part + 1 FROM slot WHERE part + 1 < n_reduce
  )
SELECT s.job_id, s.map_idx, jsonb_group_array(json(coalesce(m.data, '[]')) ORDER BY s.part)
FROM slot s LEFT JOIN map_output m ON m.job_id = s.job_id AND m.part = s.part AND m.map_idx = s.map_idx
GROUP BY s.job_id, s.map_idx;

DROP TABLE map_output;
