-- Results are verified (README "Verification"): a job says how, a task how its committed output was
-- confirmed, an attempt the hash of the output it returned, and each identity what its record is.

ALTER TABLE job ADD COLUMN verify TEXT NOT NULL DEFAULT 'off' CHECK (verify IN ('off', 'adaptive', 'all'));
-- The job's committed tasks by how their output was confirmed, and its attempts that lost a vote.
ALTER TABLE job ADD COLUMN verified INTEGER NOT NULL DEFAULT 0;
ALTER TABLE job ADD COLUMN spot_checked INTEGER NOT NULL DEFAULT 0;
ALTER TABLE job ADD COLUMN trusted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE job ADD COLUMN unconfirmed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE job ADD COLUMN rejected INTEGER NOT NULL DEFAULT 0;

-- How a committed task's output was confirmed (null with verify off): two independent votes, a
-- trusted volunteer's result that a spot check agreed with, a trusted volunteer's result alone, or
-- one result for want of a second volunteer. `recheck`: its output once came from a volunteer that
-- later lost a vote, so it needs two votes whatever the trust of who runs it.
ALTER TABLE task ADD COLUMN confirm TEXT CHECK (confirm IN ('verified', 'spot', 'trusted', 'unconfirmed'));
ALTER TABLE task ADD COLUMN recheck INTEGER NOT NULL DEFAULT 0;

-- Two new attempt outcomes, which the CHECK must name, so the table is rebuilt: `voted` (its result
-- waits for another that matches it) and `rejected` (its result lost a vote). `hash`: SHA-256 of the
-- output it returned, as checked.
CREATE TABLE attempt_new (
  id INTEGER PRIMARY KEY,
  task_id INTEGER NOT NULL REFERENCES task (id) ON DELETE CASCADE,
  job_id TEXT NOT NULL,
  volunteer_id TEXT NOT NULL,
  lease TEXT NOT NULL UNIQUE,
  backup INTEGER NOT NULL DEFAULT 0,
  started_at INTEGER NOT NULL,
  ended_at INTEGER,
  outcome TEXT NOT NULL
    CHECK (outcome IN ('running', 'succeeded', 'failed', 'lost', 'superseded', 'voted', 'rejected')),
  error TEXT,
  ms REAL,
  records_in INTEGER,
  records_out INTEGER,
  address TEXT NOT NULL DEFAULT '',
  hash TEXT
) STRICT;
INSERT INTO attempt_new (id, task_id, job_id, volunteer_id, lease, backup, started_at, ended_at, outcome, error,
  ms, records_in, records_out, address)
SELECT id, task_id, job_id, volunteer_id, lease, backup, started_at, ended_at, outcome, error, ms, records_in,
  records_out, address FROM attempt;
DROP TABLE attempt;
ALTER TABLE attempt_new RENAME TO attempt;
CREATE INDEX attempt_task ON attempt (task_id);
CREATE INDEX attempt_job ON attempt (job_id);
CREATE INDEX attempt_running ON attempt (task_id) WHERE outcome = 'running';
-- Votes waiting for a match, read back at start: few at any time.
CREATE INDEX attempt_voted ON attempt (task_id) WHERE outcome = 'voted';

-- Each identity's record, kept apart from `volunteer` (whose rows are forgotten when idle): results
-- that agreed with another volunteer's, and results that lost a vote. Trust is earned by `agreed`
-- and lost for good by one rejection. `credit_ms`: the time, as the master measured it from
-- assignment to result, of its results that were committed or agreed with a committed one, less
-- those taken back.
CREATE TABLE trust (
  volunteer_id TEXT PRIMARY KEY,
  agreed INTEGER NOT NULL DEFAULT 0,
  rejected INTEGER NOT NULL DEFAULT 0,
  credit_ms REAL NOT NULL DEFAULT 0,
  changed_at INTEGER NOT NULL
) STRICT;
