-- Running attempts indexed by task, not by volunteer: new attempts then append to the index
-- instead of landing on a random page of it (volunteer ids are random), and the same index serves
-- both "all running attempts" (restart recovery) and "running attempts of this task" (commit).
DROP INDEX attempt_running;
CREATE INDEX attempt_running ON attempt (task_id) WHERE outcome = 'running';
