ALTER TABLE _walmirror_tables DROP COLUMN shape;
ALTER TABLE _walmirror_tables DROP COLUMN relid;
