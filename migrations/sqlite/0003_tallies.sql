-- Running counts for the backlog (src/domain/tally.rs), so that a
-- province's backlog reads a few thousand rows, not millions of
-- obligations. Kept per region prefix (province, city, county) and side,
-- written in the same transaction as the rows they count. The server fills
-- them from the existing rows when tallies_built is empty.

-- What holds now: open obligations, those the sweeper flagged overdue or
-- escalated, and the orphans and open discrepancies of cases.
CREATE TABLE tallies_now (
    prefix TEXT NOT NULL,
    side TEXT NOT NULL,
    open INTEGER NOT NULL,
    flagged_overdue INTEGER NOT NULL,
    flagged_escalated INTEGER NOT NULL,
    orphans INTEGER NOT NULL,
    discrepancies INTEGER NOT NULL,
    PRIMARY KEY (prefix, side)
) WITHOUT ROWID;

-- What fell due on each day (Shanghai time): answered, on time, flagged
-- overdue while open, and a histogram of reply times (JSON, bucket → count).
-- Keyed by the parent region first, so a region's children over a window
-- of days are one contiguous range.
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
    replies TEXT NOT NULL,
    PRIMARY KEY (parent, day, prefix, side)
) WITHOUT ROWID;

-- One row once the tallies have been filled from the existing rows.
CREATE TABLE tallies_built (
    built_us INTEGER NOT NULL
);
