-- Tables being copied online (schema.EncodeCopies): written with the
-- position, so a restart resumes after the last chunk committed.
ALTER TABLE _walmirror_state ADD COLUMN copies TEXT;
