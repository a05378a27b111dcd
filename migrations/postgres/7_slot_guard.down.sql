ALTER TABLE _walmirror.state DROP COLUMN slot_guard;
