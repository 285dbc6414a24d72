-- Findings of an analysis: over-temperature, derating, interruptions, abnormal voltage.
-- charge-ops:up
CREATE TABLE findings (
  id               bigserial PRIMARY KEY,
  analysis_id      uuid NOT NULL REFERENCES analyses (id) ON DELETE CASCADE,
  kind             text NOT NULL CHECK (kind IN ('over_temperature', 'derating', 'interruption', 'abnormal_voltage')),
  severity         text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
  started_at       timestamptz NOT NULL,
  ended_at         timestamptz NOT NULL,
  duration_seconds double precision NOT NULL,
  samples          integer NOT NULL,
  peak_value       double precision,
  detail           text NOT NULL
);
CREATE INDEX findings_analysis_id_idx ON findings (analysis_id);
-- charge-ops:down
DROP TABLE findings;
