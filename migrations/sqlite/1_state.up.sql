-- The single row that says how far the target is: written in the same
-- transaction as the data it covers.
CREATE TABLE _walmirror_state (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    slot       TEXT NOT NULL,
    system_id  TEXT NOT NULL,
    phase      TEXT NOT NULL CHECK (phase IN ('snapshot', 'streaming')),
    lsn        INTEGER NOT NULL, -- end of the last applied source transaction
    lsn_text   TEXT NOT NULL,    -- the same, as PostgreSQL prints it
    updated_at TEXT NOT NULL
);
