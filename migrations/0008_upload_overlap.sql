-- A job whose upload is still arriving: its map tasks are offered as each input file is stored, and
-- its reduces wait for the upload's end (maps_total grows until then). A master that stops while a
-- job is uploading removes it at its next start, as it removes a job whose submit never finished.
ALTER TABLE job ADD COLUMN uploading INTEGER NOT NULL DEFAULT 0 CHECK (uploading IN (0, 1));
