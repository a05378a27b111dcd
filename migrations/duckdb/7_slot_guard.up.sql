-- schema.State.SlotGuard: true once every position this copy confirmed to
-- the source was committed here first, so a slot confirmed past the stored
-- position is not this copy's (dropped and made again, or advanced by
-- someone else) and the changes between are not in the copy. NULL for a
-- copy an older walmirror confirmed idle positions for without storing them.
ALTER TABLE _walmirror_state ADD COLUMN slot_guard BOOLEAN;
