ALTER TABLE _walmirror.tables DROP COLUMN shape, DROP COLUMN relid;
