-- The sessions list pages by upload time; built concurrently so that a live service keeps writing.
-- charge-ops:no-transaction
-- charge-ops:up
CREATE INDEX CONCURRENTLY IF NOT EXISTS uploads_uploaded_at_idx ON uploads (uploaded_at DESC);
-- charge-ops:down
DROP INDEX CONCURRENTLY IF EXISTS uploads_uploaded_at_idx;
