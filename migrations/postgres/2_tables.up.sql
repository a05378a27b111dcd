-- The tables walmirror created (or was told to adopt): it changes no other.
-- A target that already followed a source before this table existed owns
-- every table it holds.
CREATE TABLE _walmirror.tables (
    schema_name text NOT NULL,
    table_name  text NOT NULL,
    PRIMARY KEY (schema_name, table_name)
);
INSERT INTO _walmirror.tables (schema_name, table_name)
    SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('_walmirror', 'pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\_%'
      AND EXISTS (SELECT 1 FROM _walmirror.state);
