-- The exchange core. Times are UTC microseconds since the Unix epoch.
-- Office codes use the C collation: a region prefix is then an index range.

-- One row per case: a person (resident_id) under one origin office.
-- `state` is the domain's CaseState as JSON; the other columns are what the
-- queries filter on.
CREATE TABLE cases (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    resident_id TEXT NOT NULL,
    origin TEXT COLLATE "C" NOT NULL,
    destination TEXT COLLATE "C",
    status TEXT NOT NULL,
    state TEXT NOT NULL,
    -- Discrepancies and orphans as JSON, with their counts for reports.
    findings TEXT NOT NULL DEFAULT '{}',
    open_discrepancies BIGINT NOT NULL DEFAULT 0,
    orphans BIGINT NOT NULL DEFAULT 0,
    -- When the passing of time alone changes the case (a feedback period
    -- starts): the sweeper reconciles it again then.
    next_change_us BIGINT,
    created_us BIGINT NOT NULL,
    updated_us BIGINT NOT NULL,
    UNIQUE (resident_id, origin)
);
CREATE INDEX cases_by_origin ON cases (origin, id);
CREATE INDEX cases_by_destination ON cases (destination, id);
CREATE INDEX cases_by_next_change ON cases (next_change_us) WHERE next_change_us IS NOT NULL;

-- Every accepted message, once. (sender, message_id) is the idempotency key.
CREATE TABLE messages (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sender TEXT COLLATE "C" NOT NULL,
    message_id TEXT NOT NULL,
    content_hash BYTEA NOT NULL,
    kind TEXT NOT NULL,
    case_id BIGINT NOT NULL REFERENCES cases (id),
    recipient TEXT COLLATE "C" NOT NULL,
    envelope BYTEA NOT NULL,
    -- The domain's body as JSON: what reconciliation folds.
    body TEXT NOT NULL,
    standing TEXT NOT NULL,
    accepted_us BIGINT NOT NULL,
    UNIQUE (sender, message_id)
);
CREATE INDEX messages_by_case ON messages (case_id, id);

-- Each office's feed: seq is the cursor, handed out in commit order.
CREATE TABLE deliveries (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recipient TEXT COLLATE "C" NOT NULL,
    message BIGINT NOT NULL REFERENCES messages (id),
    received_us BIGINT
);
CREATE INDEX deliveries_by_recipient ON deliveries (recipient, seq);
CREATE INDEX deliveries_by_message ON deliveries (message);

-- The audit of case reads: who, when, which case, on what grounds.
CREATE TABLE case_reads (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reader TEXT NOT NULL,
    case_id BIGINT NOT NULL REFERENCES cases (id),
    purpose TEXT NOT NULL,
    access TEXT NOT NULL,
    read_us BIGINT NOT NULL
);
CREATE INDEX case_reads_by_case ON case_reads (case_id, read_us);

-- What one office owes another. Reconciliation derives all but RECEIPT
-- (one per delivery, kept here directly); rows are never deleted: an
-- obligation no longer owed is CANCELLED.
CREATE TABLE obligations (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id BIGINT NOT NULL REFERENCES cases (id),
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    debtor TEXT COLLATE "C" NOT NULL,
    creditor TEXT COLLATE "C" NOT NULL,
    state TEXT NOT NULL,
    opened_us BIGINT NOT NULL,
    due_us BIGINT NOT NULL,
    escalates_us BIGINT NOT NULL,
    closed_us BIGINT,
    closed_by TEXT,
    detail TEXT NOT NULL,
    delivery BIGINT REFERENCES deliveries (seq),
    reminded_overdue_us BIGINT,
    reminded_escalated_us BIGINT,
    UNIQUE (case_id, key)
);
-- Listing as debtor or creditor, oldest due first; a region's open ones.
CREATE INDEX obligations_by_debtor ON obligations (debtor, due_us, id);
CREATE INDEX obligations_by_creditor ON obligations (creditor, due_us, id);
CREATE INDEX obligations_open_by_debtor ON obligations (debtor, due_us) WHERE state = 'OPEN';
-- The sweeper's work: open and not yet reminded.
CREATE INDEX obligations_to_remind ON obligations (due_us) WHERE state = 'OPEN' AND reminded_overdue_us IS NULL;
CREATE INDEX obligations_to_escalate ON obligations (escalates_us) WHERE state = 'OPEN' AND reminded_escalated_us IS NULL;
CREATE INDEX obligations_by_delivery ON obligations (delivery) WHERE delivery IS NOT NULL;
