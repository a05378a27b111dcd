ALTER TABLE _walmirror_state DROP COLUMN slot_guard;
