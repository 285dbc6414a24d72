-- The Charge Analysis service's first schema: uploaded session logs and their analyses.
-- charge-ops:up
CREATE TABLE service_meta (
  key        text PRIMARY KEY,
  value      text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE uploads (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  filename     text NOT NULL,
  -- relative to UPLOADS_DIR (the doctor compares these with the files on disk)
  path         text NOT NULL UNIQUE,
  sha256       char(64) NOT NULL,
  bytes        bigint NOT NULL CHECK (bytes >= 0),
  uploaded_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE analyses (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  upload_id   uuid NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
  status      text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
  attempts    integer NOT NULL DEFAULT 0,
  worker      text,
  lease_until timestamptz,
  error       text,
  metrics     jsonb,
  queued_at   timestamptz NOT NULL DEFAULT now(),
  started_at  timestamptz,
  finished_at timestamptz
);
CREATE INDEX analyses_upload_id_idx ON analyses (upload_id);
CREATE INDEX analyses_pending_idx ON analyses (status, queued_at) WHERE status IN ('queued', 'running');
-- charge-ops:down
DROP TABLE analyses;
DROP TABLE uploads;
DROP TABLE service_meta;
