-- A case's version: every write to what reconciling the case reads (its
-- row's reconciled columns, its derived obligations and their reminder
-- flags, its messages' standings) adds one, so that a server that kept
-- the case as it last wrote it knows, under the case's lock, whether that
-- is still what is stored (src/store/recent.rs).
ALTER TABLE cases ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
