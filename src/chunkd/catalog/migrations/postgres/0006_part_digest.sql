-- A part's identity digest names its algorithm ("blake3:<hex>"): new parts use BLAKE3, four
-- times cheaper than SHA-256; parts stored before keep their SHA-256, now spelled out.
ALTER TABLE parts RENAME COLUMN "sha256" TO "digest";
UPDATE parts SET "digest" = 'sha256:' || "digest";
