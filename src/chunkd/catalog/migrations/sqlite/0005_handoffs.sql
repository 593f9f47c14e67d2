-- The hand-off of finished uploads to processing: one row per upload, written by the same
-- statement that marks the upload complete (a trigger), so it can neither be lost nor doubled.
CREATE TABLE handoffs (
    "upload_id" TEXT PRIMARY KEY REFERENCES uploads ("id") ON DELETE CASCADE,
    "state" TEXT NOT NULL DEFAULT 'pending',
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "next_at" REAL NOT NULL DEFAULT 0,
    "claimed_until" REAL NOT NULL DEFAULT 0,
    "last_error" TEXT,
    "delivered_at" REAL
) WITHOUT ROWID;
CREATE INDEX handoffs_due ON handoffs ("state", "next_at");
CREATE TRIGGER uploads_handoff AFTER UPDATE OF "state" ON uploads
WHEN NEW."state" = 'complete' AND OLD."state" != 'complete' AND NEW."partial" = 0
BEGIN
    INSERT OR IGNORE INTO handoffs ("upload_id", "next_at") VALUES (NEW."id", NEW."updated_at");
END;
CREATE INDEX uploads_updated ON uploads ("updated_at");
