-- Mirrors sqlite/0001_initial.sql. Client-supplied and backend-opaque JSON (metadata,
-- concat_parts, storage, digests) is kept as TEXT written by chunkd.catalog.codec, exactly as in
-- SQLite, not as jsonb: jsonb rejects the escape \u0000 that tus metadata may legally carry, and
-- the codec's canonical form (sorted keys) already makes equal values equal text.
-- Ids compare bytewise (COLLATE "C"), as in SQLite and Python, whatever the database's locale:
-- paging by id (list_uploads) must order them the same everywhere.
CREATE TABLE uploads (
    "id" TEXT COLLATE "C" PRIMARY KEY,
    "length" BIGINT,
    "offset" BIGINT NOT NULL DEFAULT 0,
    "owner" TEXT,
    "state" TEXT NOT NULL,
    "metadata" TEXT NOT NULL,
    "part_size" BIGINT,
    "partial" BOOLEAN NOT NULL DEFAULT FALSE,
    "concat_parts" TEXT,
    "storage" TEXT NOT NULL,
    "digests" TEXT NOT NULL,
    "expected_digests" TEXT NOT NULL,
    "error" TEXT,
    "created_at" DOUBLE PRECISION NOT NULL,
    "updated_at" DOUBLE PRECISION NOT NULL,
    "expires_at" DOUBLE PRECISION
);
CREATE INDEX uploads_expires_at ON uploads ("expires_at");
CREATE INDEX uploads_state ON uploads ("state", "created_at");
