-- walmirror's own tables live in their own schema, apart from replicated ones.
CREATE SCHEMA IF NOT EXISTS _walmirror;

-- The single row that says how far the target is: written in the same
-- transaction as the data it covers.
CREATE TABLE _walmirror.state (
    id         integer PRIMARY KEY CHECK (id = 1),
    slot       text NOT NULL,
    system_id  text NOT NULL,
    phase      text NOT NULL CHECK (phase IN ('snapshot', 'streaming')),
    lsn        pg_lsn NOT NULL, -- end of the last applied source transaction
    updated_at timestamptz NOT NULL
);
