-- Received parts of session uploads, one row each, so recording a part never rewrites a list.
CREATE TABLE parts (
    "upload_id" TEXT COLLATE "C" NOT NULL REFERENCES uploads ("id") ON DELETE CASCADE,
    "index" BIGINT NOT NULL,
    "size" BIGINT NOT NULL,
    "sha256" TEXT NOT NULL,
    PRIMARY KEY ("upload_id", "index")
);
