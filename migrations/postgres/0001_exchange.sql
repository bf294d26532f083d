-- The exchange core. Times are UTC microseconds since the Unix epoch.

-- One row per case: a person (resident_id) under one origin office.
-- `state` is the domain's CaseState as JSON; the other columns are what the
-- queries filter on.
CREATE TABLE cases (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    resident_id TEXT NOT NULL,
    origin TEXT NOT NULL,
    destination TEXT,
    status TEXT NOT NULL,
    state TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    updated_us BIGINT NOT NULL,
    UNIQUE (resident_id, origin)
);
CREATE INDEX cases_by_origin ON cases (origin, id);
CREATE INDEX cases_by_destination ON cases (destination, id);

-- Every accepted message, once. (sender, message_id) is the idempotency key.
CREATE TABLE messages (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sender TEXT NOT NULL,
    message_id TEXT NOT NULL,
    content_hash BYTEA NOT NULL,
    kind TEXT NOT NULL,
    case_id BIGINT NOT NULL REFERENCES cases (id),
    recipient TEXT NOT NULL,
    envelope BYTEA NOT NULL,
    standing TEXT NOT NULL,
    accepted_us BIGINT NOT NULL,
    UNIQUE (sender, message_id)
);
CREATE INDEX messages_by_case ON messages (case_id, id);

-- Each office's feed: seq is the cursor, handed out in commit order.
CREATE TABLE deliveries (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recipient TEXT NOT NULL,
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
