DROP INDEX _walmirror.tables_relid;
