-- Per-owner quotas add up an owner's uploads; single-use signed URLs remember their nonce.
CREATE INDEX uploads_owner_state ON uploads ("owner", "state");
CREATE TABLE nonces (
    "nonce" TEXT PRIMARY KEY,
    "expires_at" DOUBLE PRECISION NOT NULL
);
CREATE INDEX nonces_expires_at ON nonces ("expires_at");
