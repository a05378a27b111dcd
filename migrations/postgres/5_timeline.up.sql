-- The source's timeline at the last commit (schema.State.Timeline): a run
-- that finds the source on a later one checks that the copy's position is
-- in its history (a promoted standby may not have had it).
ALTER TABLE _walmirror.state ADD COLUMN timeline bigint;
