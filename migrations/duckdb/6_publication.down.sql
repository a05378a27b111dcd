ALTER TABLE _walmirror_state DROP COLUMN publication;
