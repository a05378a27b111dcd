ALTER TABLE _walmirror.state DROP COLUMN publication;
