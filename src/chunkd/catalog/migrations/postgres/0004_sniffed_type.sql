-- The type recognised from an upload's first bytes, recorded as soon as they arrive.
ALTER TABLE uploads ADD COLUMN "sniffed_type" TEXT;
