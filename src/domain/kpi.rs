//! Backlog KPIs: what the counts and answer times of a region's
//! obligations add up to. Pure: the store counts, this computes.

/// What was counted for one side (debtor or creditor) of one region.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SideStats {
    pub open: i64,
    pub overdue: i64,
    pub escalated: i64,
    pub orphans: i64,
    pub open_discrepancies: i64,
    /// Receipts due in the window, and those acknowledged on time.
    pub receipts_due: i64,
    pub receipts_on_time: i64,
    /// Periodic feedback due in the window, and that given.
    pub feedback_due: i64,
    pub feedback_given: i64,
    /// Answers due in the window that were given or are overdue, and those
    /// given on time.
    pub answers_due: i64,
    pub answers_on_time: i64,
    /// Seconds from opening to answer, of answers due in the window.
    pub reply_seconds: Vec<i64>,
}

/// The KPIs of one side.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Kpis {
    pub open: i64,
    pub overdue: i64,
    pub escalated: i64,
    pub orphans: i64,
    pub open_discrepancies: i64,
    pub receipt_rate: Option<f64>,
    pub feedback_rate: Option<f64>,
    pub on_time_rate: Option<f64>,
    pub median_reply_seconds: Option<f64>,
    pub p90_reply_seconds: Option<f64>,
}

impl SideStats {
    pub fn merge(&mut self, other: &SideStats) {
        self.open += other.open;
        self.overdue += other.overdue;
        self.escalated += other.escalated;
        self.orphans += other.orphans;
        self.open_discrepancies += other.open_discrepancies;
        self.receipts_due += other.receipts_due;
        self.receipts_on_time += other.receipts_on_time;
        self.feedback_due += other.feedback_due;
        self.feedback_given += other.feedback_given;
        self.answers_due += other.answers_due;
        self.answers_on_time += other.answers_on_time;
        self.reply_seconds.extend_from_slice(&other.reply_seconds);
    }

    pub fn kpis(&self) -> Kpis {
        let mut replies = self.reply_seconds.clone();
        replies.sort_unstable();
        Kpis {
            open: self.open,
            overdue: self.overdue,
            escalated: self.escalated,
            orphans: self.orphans,
            open_discrepancies: self.open_discrepancies,
            receipt_rate: rate(self.receipts_on_time, self.receipts_due),
            feedback_rate: rate(self.feedback_given, self.feedback_due),
            on_time_rate: rate(self.answers_on_time, self.answers_due),
            median_reply_seconds: percentile(&replies, 0.5),
            p90_reply_seconds: percentile(&replies, 0.9),
        }
    }
}

/// One obligation as a trend sees it: times in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub receipt: bool,
    pub periodic: bool,
    pub opened_us: i64,
    pub due_us: i64,
    pub escalates_us: i64,
    /// When it was answered or cancelled; None while open.
    pub closed_us: Option<i64>,
    pub on_time: bool,
    /// Answered (not cancelled).
    pub given: bool,
}

/// The KPIs of each bucket `[start, end)`: what was open, overdue and
/// escalated at its end, and the rates of what fell due within it.
pub fn trend(spans: &[Span], buckets: &[(i64, i64)]) -> Vec<SideStats> {
    buckets
        .iter()
        .map(|&(start, end)| {
            let mut s = SideStats::default();
            for o in spans {
                // At the instant `end`: opened before it, not closed by it.
                let open_at_end = o.opened_us < end && o.closed_us.is_none_or(|c| c >= end);
                if open_at_end {
                    s.open += 1;
                    s.overdue += i64::from(o.due_us < end);
                    s.escalated += i64::from(o.escalates_us < end);
                }
                if o.due_us < start || o.due_us >= end {
                    continue;
                }
                if o.receipt {
                    s.receipts_due += 1;
                    s.receipts_on_time += i64::from(o.on_time);
                    continue;
                }
                if o.periodic {
                    s.feedback_due += 1;
                    s.feedback_given += i64::from(o.given && o.closed_us.is_some_and(|c| c < end));
                }
                let answered_by_end = o.given && o.closed_us.is_some_and(|c| c < end);
                if answered_by_end || o.closed_us.is_none_or(|c| c >= end) {
                    s.answers_due += 1;
                    s.answers_on_time += i64::from(answered_by_end && o.on_time);
                }
                if let (true, Some(c)) = (answered_by_end, o.closed_us) {
                    s.reply_seconds.push(((c - o.opened_us) / 1_000_000).max(0));
                }
            }
            s
        })
        .collect()
}

fn rate(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[i64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1] as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_percentiles() {
        let s = SideStats {
            receipts_due: 4,
            receipts_on_time: 3,
            feedback_due: 2,
            feedback_given: 1,
            answers_due: 5,
            answers_on_time: 4,
            reply_seconds: vec![50, 10, 40, 20, 30, 60, 70, 80, 90, 100],
            ..SideStats::default()
        };
        let k = s.kpis();
        assert_eq!(k.receipt_rate, Some(0.75));
        assert_eq!(k.feedback_rate, Some(0.5));
        assert_eq!(k.on_time_rate, Some(0.8));
        assert_eq!(k.median_reply_seconds, Some(50.0));
        assert_eq!(k.p90_reply_seconds, Some(90.0));
        let empty = SideStats::default().kpis();
        assert_eq!(
            (empty.receipt_rate, empty.median_reply_seconds),
            (None, None)
        );
    }

    #[test]
    fn a_trend_follows_the_buckets() {
        const DAY: i64 = 86_400_000_000;
        const NOON: i64 = DAY / 2;
        // Opened on day 0, due day 2, answered late on day 3.
        let late = Span {
            receipt: false,
            periodic: false,
            opened_us: NOON,
            due_us: 2 * DAY + NOON,
            escalates_us: 4 * DAY + NOON,
            closed_us: Some(3 * DAY + NOON),
            on_time: false,
            given: true,
        };
        // Opened on day 1, due day 2, never answered.
        let never = Span {
            opened_us: DAY + NOON,
            closed_us: None,
            given: false,
            ..late
        };
        let days: Vec<(i64, i64)> = (0..5).map(|d| (d * DAY, (d + 1) * DAY)).collect();
        let t = trend(&[late, never], &days);
        let open: Vec<i64> = t.iter().map(|s| s.open).collect();
        let overdue: Vec<i64> = t.iter().map(|s| s.overdue).collect();
        let escalated: Vec<i64> = t.iter().map(|s| s.escalated).collect();
        assert_eq!(open, [1, 2, 2, 1, 1]);
        assert_eq!(overdue, [0, 0, 2, 1, 1]);
        assert_eq!(escalated, [0, 0, 0, 0, 1]);
        // Both fell due on day 2; by its end neither was answered.
        assert_eq!((t[2].answers_due, t[2].answers_on_time), (2, 0));
        assert_eq!(t[3].answers_due, 0, "nothing fell due on day 3");
    }

    #[test]
    fn merging_adds_up() {
        let mut a = SideStats {
            open: 1,
            answers_due: 1,
            reply_seconds: vec![5],
            ..SideStats::default()
        };
        a.merge(&SideStats {
            open: 2,
            answers_due: 1,
            answers_on_time: 1,
            reply_seconds: vec![7],
            ..SideStats::default()
        });
        assert_eq!((a.open, a.answers_due, a.answers_on_time), (3, 2, 1));
        assert_eq!(a.kpis().on_time_rate, Some(0.5));
        assert_eq!(a.reply_seconds, [5, 7]);
    }
}
