-- Job data moves out of SQLite into the blob store (server/blobs/): rows say where it is.

-- 0 while a submit is still inserting the job's tasks (in batches); such a job is not shown, and a
-- master that restarts deletes it with its blobs.
ALTER TABLE job ADD COLUMN ready INTEGER NOT NULL DEFAULT 1;
-- Bytes of the job's data in the blob store and here: inputs until the maps are done, map outputs
-- until the job ends, output partitions until the job is deleted.
ALTER TABLE job ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE job SET stored_bytes = input_bytes WHERE state IN ('queued', 'mapping');

-- A map task's input: bytes [input_start, input_end) of the blob input_blob. (Tasks of jobs
-- submitted before this keep their bytes in `input`.)
ALTER TABLE task ADD COLUMN input_blob TEXT;
ALTER TABLE task ADD COLUMN input_start INTEGER;
ALTER TABLE task ADD COLUMN input_end INTEGER;

-- A map task's committed output as records (shared/records.ts): in the blob store when large, here
-- when small, with where each partition starts (n_reduce + 1 little-endian float64 offsets).
CREATE TABLE map_data (
  job_id TEXT NOT NULL REFERENCES job (id) ON DELETE CASCADE,
  map_idx INTEGER NOT NULL,
  blob TEXT,
  data BLOB,
  bytes INTEGER NOT NULL,
  offsets BLOB NOT NULL,
  PRIMARY KEY (job_id, map_idx),
  CHECK ((blob IS NULL) <> (data IS NULL))
) STRICT;

-- A reduce task's committed output partition (`key<TAB>value\n` records), in the blob store or here.
CREATE TABLE output_data (
  job_id TEXT NOT NULL REFERENCES job (id) ON DELETE CASCADE,
  part INTEGER NOT NULL,
  blob TEXT,
  data BLOB,
  bytes INTEGER NOT NULL,
  PRIMARY KEY (job_id, part),
  CHECK ((blob IS NULL) <> (data IS NULL))
) STRICT;

INSERT INTO output_data (job_id, part, data, bytes)
SELECT job_id, part, CAST(data AS BLOB), length(CAST(data AS BLOB)) FROM output;
DROP TABLE output;
UPDATE job SET stored_bytes = stored_bytes + coalesce((SELECT sum(bytes) FROM output_data o WHERE o.job_id = job.id), 0);
-- map_result rows of unfinished jobs are rewritten as map_data by the master at start
-- (server/blobs/legacy.ts): JSONB partitions to records needs code.
