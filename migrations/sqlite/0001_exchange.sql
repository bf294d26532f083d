-- The exchange core. Times are UTC microseconds since the Unix epoch.

-- One row per case: a person (resident_id) under one origin office.
-- `state` is the domain's CaseState as JSON; the other columns are what the
-- queries filter on.
CREATE TABLE cases (
    id INTEGER PRIMARY KEY,
    resident_id TEXT NOT NULL,
    origin TEXT NOT NULL,
    destination TEXT,
    status TEXT NOT NULL,
    state TEXT NOT NULL,
    -- Discrepancies and orphans as JSON, with their counts for reports.
    findings TEXT NOT NULL DEFAULT '{}',
    open_discrepancies INTEGER NOT NULL DEFAULT 0,
    orphans INTEGER NOT NULL DEFAULT 0,
    -- When the passing of time alone changes the case (a feedback period
    -- starts): the sweeper reconciles it again then.
    next_change_us INTEGER,
    created_us INTEGER NOT NULL,
    updated_us INTEGER NOT NULL,
    UNIQUE (resident_id, origin)
);
CREATE INDEX cases_by_origin ON cases (origin, id);
CREATE INDEX cases_by_destination ON cases (destination, id);
CREATE INDEX cases_by_next_change ON cases (next_change_us) WHERE next_change_us IS NOT NULL;

-- Every accepted message, once. (sender, message_id) is the idempotency key.
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    sender TEXT NOT NULL,
    message_id TEXT NOT NULL,
    content_hash BLOB NOT NULL,
    kind TEXT NOT NULL,
    case_id INTEGER NOT NULL REFERENCES cases (id),
    recipient TEXT NOT NULL,
    envelope BLOB NOT NULL,
    -- The domain's body as JSON: what reconciliation folds.
    body TEXT NOT NULL,
    standing TEXT NOT NULL,
    accepted_us INTEGER NOT NULL,
    UNIQUE (sender, message_id)
);
CREATE INDEX messages_by_case ON messages (case_id, id);

-- Each office's feed: seq is the cursor, handed out in commit order.
CREATE TABLE deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient TEXT NOT NULL,
    message INTEGER NOT NULL REFERENCES messages (id),
    received_us INTEGER
);
CREATE INDEX deliveries_by_recipient ON deliveries (recipient, seq);
CREATE INDEX deliveries_by_message ON deliveries (message);

-- The audit of case reads: who, when, which case, on what grounds.
CREATE TABLE case_reads (
    id INTEGER PRIMARY KEY,
    reader TEXT NOT NULL,
    case_id INTEGER NOT NULL REFERENCES cases (id),
    purpose TEXT NOT NULL,
    access TEXT NOT NULL,
    read_us INTEGER NOT NULL
);
CREATE INDEX case_reads_by_case ON case_reads (case_id, read_us);

-- What one office owes another. Reconciliation derives all but RECEIPT
-- (one per delivery, kept here directly); rows are never deleted: an
-- obligation no longer owed is CANCELLED.
CREATE TABLE obligations (
    id INTEGER PRIMARY KEY,
    case_id INTEGER NOT NULL REFERENCES cases (id),
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    debtor TEXT NOT NULL,
    creditor TEXT NOT NULL,
    state TEXT NOT NULL,
    opened_us INTEGER NOT NULL,
    due_us INTEGER NOT NULL,
    escalates_us INTEGER NOT NULL,
    closed_us INTEGER,
    closed_by TEXT,
    detail TEXT NOT NULL,
    delivery INTEGER REFERENCES deliveries (seq),
    reminded_overdue_us INTEGER,
    reminded_escalated_us INTEGER,
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
