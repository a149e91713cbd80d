-- Job counters (`ctx.count`) and bad-record skipping (`submit --skip-bad-records N`).
-- A job's counters and skipped lines are those of its committed attempts: each attempt keeps its
-- own, and the job keeps their sum, added at a commit and taken away when a commit is taken back.

-- How many lines whose `map` throws the job may skip (0: none).
ALTER TABLE job ADD COLUMN skip_bad_records INTEGER NOT NULL DEFAULT 0;
-- JSON {name: sum}, names ascending.
ALTER TABLE job ADD COLUMN counters TEXT NOT NULL DEFAULT '{}';
-- Lines skipped by its committed map attempts.
ALTER TABLE job ADD COLUMN skipped INTEGER NOT NULL DEFAULT 0;

-- A map task's first line number in its input file, for a job that skips bad records; else NULL.
ALTER TABLE task ADD COLUMN first_line INTEGER;

-- JSON {name: sum} of the attempt's `ctx.count`s; NULL when it counted nothing.
ALTER TABLE attempt ADD COLUMN counters TEXT;
-- JSON [{line, text, error}] of the lines it skipped; NULL when none.
ALTER TABLE attempt ADD COLUMN skipped TEXT;
