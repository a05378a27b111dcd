ALTER TABLE _walmirror.state DROP COLUMN copies;
