CREATE TABLE uploads (
    "id" TEXT PRIMARY KEY,
    "length" INTEGER,
    "offset" INTEGER NOT NULL DEFAULT 0,
    "owner" TEXT,
    "state" TEXT NOT NULL,
    "metadata" TEXT NOT NULL,
    "part_size" INTEGER,
    "partial" INTEGER NOT NULL DEFAULT 0,
    "concat_parts" TEXT,
    "storage" TEXT NOT NULL,
    "digests" TEXT NOT NULL,
    "expected_digests" TEXT NOT NULL,
    "error" TEXT,
    "created_at" REAL NOT NULL,
    "updated_at" REAL NOT NULL,
    "expires_at" REAL
);
CREATE INDEX uploads_expires_at ON uploads ("expires_at");
CREATE INDEX uploads_state ON uploads ("state", "created_at");
