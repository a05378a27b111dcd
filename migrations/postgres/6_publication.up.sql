-- The publication the copy is made from (schema.State.Publication): verify
-- and resync use it when not told, and run refuses another (a copy of one
-- publication's tables caught up through another's takes in other tables
-- and misses changes to its own).
ALTER TABLE _walmirror.state ADD COLUMN publication TEXT;
