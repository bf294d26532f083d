-- Running counts for the backlog (src/domain/tally.rs), so that a
-- province's backlog reads a few thousand rows, not millions of
-- obligations. Kept per region prefix (province, city, county) and side,
-- written in the same transaction as the rows they count. The server fills
-- them from the existing rows when tallies_built is empty.

-- What holds now: open obligations, those the sweeper flagged overdue or
-- escalated, and the orphans and open discrepancies of cases.
CREATE TABLE tallies_now (
    prefix TEXT COLLATE "C" NOT NULL,
    side TEXT NOT NULL,
    open BIGINT NOT NULL,
    flagged_overdue BIGINT NOT NULL,
    flagged_escalated BIGINT NOT NULL,
    orphans BIGINT NOT NULL,
    discrepancies BIGINT NOT NULL,
    PRIMARY KEY (prefix, side)
);

-- What fell due on each day (Shanghai time): answered, on time, flagged
-- overdue while open, and a histogram of reply times (JSON, bucket → count).
-- Keyed by the parent region first, so a region's children over a window
-- of days are one contiguous range.
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
    replies TEXT NOT NULL,
    PRIMARY KEY (parent, day, prefix, side)
);

-- One row once the tallies have been filled from the existing rows.
CREATE TABLE tallies_built (
    built_us BIGINT NOT NULL
);
