-- Each writing transaction's changes to the tallies, as one row (the
-- encoding of src/domain/tally.rs, Tallies::to_bytes), instead of an
-- upsert of the tallies' rows: every publish changes its province's rows,
-- so publishers queued for them, in the feed's turn. The server's tally
-- folder adds these rows to tallies_now and tallies_daily and deletes them
-- (every 100 ms); readers of the tallies add those not yet folded.
-- No key: rows are only ever read all at once.
CREATE TABLE tally_changes (
    changes BYTEA NOT NULL
);
