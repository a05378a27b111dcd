-- The publication the copy is made from (schema.State.Publication): verify
-- and resync use it when not told, and run refuses another without --resync
-- (a copy of one publication's tables caught up through another's changes
-- other tables and drops rows).
ALTER TABLE _walmirror_state ADD COLUMN publication TEXT;
