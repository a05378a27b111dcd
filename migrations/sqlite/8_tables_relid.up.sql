-- Stored shapes are looked up by source table (relid) at each listing of
-- the publication, once per published table: without an index each look-up
-- read the whole table, a listing growing with the square of the tables.
CREATE INDEX _walmirror_tables_relid ON _walmirror_tables (relid);
