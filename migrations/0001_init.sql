-- Jobs, their tasks, every attempt at a task, the data between phases, and volunteers seen.
-- Times are epoch milliseconds.

CREATE TABLE job (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('queued', 'mapping', 'reducing', 'succeeded', 'failed', 'cancelled')),
  created_at INTEGER NOT NULL,
  finished_at INTEGER,
  module_name TEXT NOT NULL,
  module TEXT NOT NULL,
  n_reduce INTEGER NOT NULL CHECK (n_reduce >= 1),
  split_size INTEGER NOT NULL,
  task_timeout_ms INTEGER NOT NULL,
  max_attempts INTEGER NOT NULL,
  maps_total INTEGER NOT NULL,
  maps_done INTEGER NOT NULL DEFAULT 0,
  reduces_done INTEGER NOT NULL DEFAULT 0,
  input_bytes INTEGER NOT NULL,
  records_in INTEGER NOT NULL DEFAULT 0,
  records_out INTEGER NOT NULL DEFAULT 0,
  error TEXT
) STRICT;

CREATE INDEX job_created ON job (created_at);

CREATE TABLE task (
  id INTEGER PRIMARY KEY,
  job_id TEXT NOT NULL REFERENCES job (id) ON DELETE CASCADE,
  phase TEXT NOT NULL CHECK (phase IN ('map', 'reduce')),
  idx INTEGER NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
  -- map: the input file's base name and the bytes of one split of it (UTF-8 text)
  input_key TEXT,
  input BLOB,
  failures INTEGER NOT NULL DEFAULT 0,
  UNIQUE (job_id, phase, idx)
) STRICT;

CREATE INDEX task_pending ON task (job_id, phase, idx) WHERE state = 'pending';

CREATE TABLE attempt (
  id INTEGER PRIMARY KEY,
  task_id INTEGER NOT NULL REFERENCES task (id) ON DELETE CASCADE,
  job_id TEXT NOT NULL,
  volunteer_id TEXT NOT NULL,
  lease TEXT NOT NULL UNIQUE,
  backup INTEGER NOT NULL DEFAULT 0,
  started_at INTEGER NOT NULL,
  ended_at INTEGER,
  outcome TEXT NOT NULL CHECK (outcome IN ('running', 'succeeded', 'failed', 'lost', 'superseded')),
  -- JSON {name, message, stack} when the attempt failed, was lost or was superseded
  error TEXT,
  ms REAL,
  records_in INTEGER,
  records_out INTEGER
) STRICT;

CREATE INDEX attempt_task ON attempt (task_id);
CREATE INDEX attempt_job ON attempt (job_id);
CREATE INDEX attempt_running ON attempt (volunteer_id) WHERE outcome = 'running';

-- A map task's committed output, one row per reduce partition (JSON [[key, [values]], ...]).
CREATE TABLE map_output (
  job_id TEXT NOT NULL REFERENCES job (id) ON DELETE CASCADE,
  part INTEGER NOT NULL,
  map_idx INTEGER NOT NULL,
  data TEXT NOT NULL,
  PRIMARY KEY (job_id, part, map_idx)
) STRICT, WITHOUT ROWID;

-- A reduce task's committed output: key<TAB>value\n records, keys ascending.
CREATE TABLE output (
  job_id TEXT NOT NULL REFERENCES job (id) ON DELETE CASCADE,
  part INTEGER NOT NULL,
  data TEXT NOT NULL,
  PRIMARY KEY (job_id, part)
) STRICT, WITHOUT ROWID;

CREATE TABLE volunteer (
  id TEXT PRIMARY KEY,
  secret TEXT NOT NULL,
  agent TEXT NOT NULL,
  connected_at INTEGER NOT NULL,
  last_seen_at INTEGER NOT NULL,
  threads INTEGER NOT NULL,
  done INTEGER NOT NULL DEFAULT 0
) STRICT;
