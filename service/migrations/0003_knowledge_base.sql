-- The knowledge base: documents split into passages, each embedded in Chroma (collection
-- charging_knowledge, id = chroma_id). Backups compare Chroma's count with knowledge_passages.
-- charge-ops:up
CREATE TABLE knowledge_documents (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  title      text NOT NULL,
  source     text,
  sha256     char(64) NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE knowledge_passages (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  document_id     uuid NOT NULL REFERENCES knowledge_documents (id) ON DELETE CASCADE,
  ordinal         integer NOT NULL,
  content         text NOT NULL,
  embedding_model text NOT NULL,
  embedding_dim   integer NOT NULL,
  chroma_id       text NOT NULL UNIQUE,
  created_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (document_id, ordinal)
);

CREATE TABLE finding_passages (
  finding_id bigint NOT NULL REFERENCES findings (id) ON DELETE CASCADE,
  passage_id uuid NOT NULL REFERENCES knowledge_passages (id) ON DELETE CASCADE,
  rank       integer NOT NULL,
  distance   double precision,
  PRIMARY KEY (finding_id, passage_id)
);
CREATE INDEX finding_passages_passage_id_idx ON finding_passages (passage_id);
-- charge-ops:down
DROP TABLE finding_passages;
DROP TABLE knowledge_passages;
DROP TABLE knowledge_documents;
