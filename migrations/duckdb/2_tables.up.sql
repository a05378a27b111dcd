-- The tables walmirror created (or was told to adopt): it changes no other.
-- A target that already followed a source before this table existed owns
-- every table it holds.
CREATE TABLE _walmirror_tables (
    schema_name VARCHAR NOT NULL,
    table_name  VARCHAR NOT NULL,
    PRIMARY KEY (schema_name, table_name)
);
INSERT INTO _walmirror_tables (schema_name, table_name)
    SELECT schema_name, table_name FROM duckdb_tables()
    WHERE database_name = current_database() AND NOT (schema_name = 'main' AND table_name LIKE '\_walmirror%' ESCAPE '\')
      AND EXISTS (SELECT 1 FROM _walmirror_state);
