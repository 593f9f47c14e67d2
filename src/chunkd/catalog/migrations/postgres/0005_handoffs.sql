-- Mirrors sqlite/0005_handoffs.sql. The hand-off of finished uploads to processing: one row per
-- upload, written by the same statement that marks the upload complete (a trigger), so it can
-- neither be lost nor doubled.
CREATE TABLE handoffs (
    "upload_id" TEXT COLLATE "C" PRIMARY KEY REFERENCES uploads ("id") ON DELETE CASCADE,
    "state" TEXT NOT NULL DEFAULT 'pending',
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "next_at" DOUBLE PRECISION NOT NULL DEFAULT 0,
    "claimed_until" DOUBLE PRECISION NOT NULL DEFAULT 0,
    "last_error" TEXT,
    "delivered_at" DOUBLE PRECISION
);
CREATE INDEX handoffs_due ON handoffs ("state", "next_at");
CREATE FUNCTION chunkd_upload_handoff() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO handoffs ("upload_id", "next_at") VALUES (NEW."id", NEW."updated_at")
    ON CONFLICT ("upload_id") DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER uploads_handoff AFTER UPDATE OF "state" ON uploads
FOR EACH ROW
WHEN (NEW."state" = 'complete' AND OLD."state" <> 'complete' AND NOT NEW."partial")
EXECUTE FUNCTION chunkd_upload_handoff();
CREATE INDEX uploads_updated ON uploads ("updated_at");
