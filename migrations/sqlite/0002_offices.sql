-- The office directory: how offices name themselves and who to call.
-- Reports fall back to the GB/T 2260 name for offices not listed.
CREATE TABLE offices (
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    contact TEXT NOT NULL,
    active INTEGER NOT NULL,
    updated_us INTEGER NOT NULL
);
