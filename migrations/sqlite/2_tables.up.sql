-- The tables walmirror created (or was told to adopt): it changes no other.
-- A target that already followed a source before this table existed owns
-- every table it holds.
CREATE TABLE _walmirror_tables (
    name TEXT PRIMARY KEY -- the SQLite table name
);
INSERT INTO _walmirror_tables (name)
    SELECT name FROM sqlite_schema
    WHERE type = 'table' AND name NOT LIKE '\_walmirror\_%' ESCAPE '\' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'
      AND EXISTS (SELECT 1 FROM _walmirror_state);
