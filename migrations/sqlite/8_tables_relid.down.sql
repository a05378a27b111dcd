DROP INDEX _walmirror_tables_relid;
