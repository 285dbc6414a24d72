-- A human summary per analysis (template or LLM) and the fields the sessions list sorts on.
-- charge-ops:up
ALTER TABLE analyses ADD COLUMN summary text;
ALTER TABLE analyses ADD COLUMN findings_count integer NOT NULL DEFAULT 0;
ALTER TABLE uploads ADD COLUMN content_type text;
-- charge-ops:down
ALTER TABLE uploads DROP COLUMN content_type;
ALTER TABLE analyses DROP COLUMN findings_count;
ALTER TABLE analyses DROP COLUMN summary;
