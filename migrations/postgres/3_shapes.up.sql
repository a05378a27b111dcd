-- Which source table (pg_class OID) each table mirrors, and the source shape
-- it was last written with (schema.Stored as JSON): renames and re-added
-- columns are told apart by it.
ALTER TABLE _walmirror.tables ADD COLUMN relid bigint, ADD COLUMN shape text;
