-- The single row that says how far the target is: written in the same
-- transaction as the data it covers.
CREATE TABLE _walmirror_state (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    slot       VARCHAR NOT NULL,
    system_id  VARCHAR NOT NULL,
    phase      VARCHAR NOT NULL CHECK (phase IN ('snapshot', 'streaming')),
    lsn        UBIGINT NOT NULL, -- end of the last applied source transaction
    lsn_text   VARCHAR NOT NULL, -- the same, as PostgreSQL prints it
    updated_at TIMESTAMPTZ NOT NULL
);
