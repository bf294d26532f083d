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
    created_us INTEGER NOT NULL,
    updated_us INTEGER NOT NULL,
    UNIQUE (resident_id, origin)
);
CREATE INDEX cases_by_origin ON cases (origin, id);
CREATE INDEX cases_by_destination ON cases (destination, id);

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
