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
    parent TEXT COLLATE "C" NOT NULL,
    prefix TEXT COLLATE "C" NOT NULL,
    side TEXT NOT NULL,
    day BIGINT NOT NULL,
    receipts_answered BIGINT NOT NULL,
    receipts_on_time BIGINT NOT NULL,
    receipts_flagged BIGINT NOT NULL,
    feedback_answered BIGINT NOT NULL,
    feedback_flagged BIGINT NOT NULL,
    answers_answered BIGINT NOT NULL,
    answers_on_time BIGINT NOT NULL,
    answers_flagged BIGINT NOT NULL,
    open_in BIGINT NOT NULL,
    open_out BIGINT NOT NULL,
    overdue_in BIGINT NOT NULL,
    overdue_out BIGINT NOT NULL,
    escalated_in BIGINT NOT NULL,
    escalated_out BIGINT NOT NULL,
    -- NULL: no replies yet.
    replies BYTEA,
    PRIMARY KEY (parent, day, prefix, side)
);
