-- Daily tallies gain the moves of each day (src/domain/tally.rs, Moves):
-- how many obligations became open, overdue and escalated, and left those
-- states, so a trend reads a region's days instead of its obligations.
-- Reply histograms become binary (a varint per bucket and count) instead
-- of JSON: a province's backlog merges thousands of them.
-- Tallies are derived from obligations and cases, so they are dropped and
-- the server counts them again when it starts (tallies_built is empty).
DROP TABLE tallies_daily;
DELETE FROM tallies_now;
DELETE FROM tallies_built;

CREATE TABLE tallies_daily (
    parent TEXT NOT NULL,
    prefix TEXT NOT NULL,
    side TEXT NOT NULL,
    day INTEGER NOT NULL,
    receipts_answered INTEGER NOT NULL,
    receipts_on_time INTEGER NOT NULL,
    receipts_flagged INTEGER NOT NULL,
    feedback_answered INTEGER NOT NULL,
    feedback_flagged INTEGER NOT NULL,
    answers_answered INTEGER NOT NULL,
    answers_on_time INTEGER NOT NULL,
    answers_flagged INTEGER NOT NULL,
    open_in INTEGER NOT NULL,
    open_out INTEGER NOT NULL,
    overdue_in INTEGER NOT NULL,
    overdue_out INTEGER NOT NULL,
    escalated_in INTEGER NOT NULL,
    escalated_out INTEGER NOT NULL,
    -- NULL: no replies yet.
    replies BLOB,
    PRIMARY KEY (parent, day, prefix, side)
) WITHOUT ROWID;
