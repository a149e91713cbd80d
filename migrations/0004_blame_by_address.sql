-- The address each attempt ran from. A task fails only when its code failed for several distinct
-- volunteers, and identities are free to make while addresses are not, so failures and losses are
-- told apart by address as well as by identity.
ALTER TABLE attempt ADD COLUMN address TEXT NOT NULL DEFAULT '';
-- Lost attempts that counted toward the task's cap, as `failures` counts failed ones.
ALTER TABLE task ADD COLUMN losses INTEGER NOT NULL DEFAULT 0;
