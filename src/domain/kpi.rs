//! Backlog KPIs: what the counts and answer times of a region's
//! obligations add up to. Pure: the store counts, this computes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Which side of obligations a region is counted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    Debtor,
    Creditor,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Debtor => "debtor",
            Side::Creditor => "creditor",
        }
    }

    pub fn parse(raw: &str) -> Option<Side> {
        match raw {
            "debtor" => Some(Side::Debtor),
            "creditor" => Some(Side::Creditor),
            _ => None,
        }
    }
}

/// Reply times as a histogram with logarithmic buckets (each 2 % wider than
/// the one before): percentiles within 1 % of the exact value, in constant
/// space, and histograms add up — so a province's is the sum of its
/// counties' kept day by day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Replies(BTreeMap<u16, i64>);

const GROWTH: f64 = 1.02;

impl Replies {
    /// The bucket of a reply time: 0 for none at all, then by logarithm.
    fn bucket(seconds: i64) -> u16 {
        if seconds <= 0 {
            return 0;
        }
        let b = 1.0 + ((seconds as f64).ln() / GROWTH.ln()).floor();
        b.clamp(1.0, f64::from(u16::MAX)) as u16
    }

    /// What a bucket stands for: the value with the least relative error
    /// to anything in it.
    fn value(bucket: u16) -> f64 {
        if bucket == 0 {
            return 0.0;
        }
        let lower = GROWTH.powi(i32::from(bucket) - 1);
        let upper = lower * GROWTH;
        2.0 * lower * upper / (lower + upper)
    }

    pub fn add(&mut self, seconds: i64, count: i64) {
        let b = Self::bucket(seconds);
        let n = self.0.entry(b).or_default();
        *n += count;
        if *n == 0 {
            self.0.remove(&b);
        }
    }

    pub fn merge(&mut self, other: &Replies) {
        for (&b, &n) in &other.0 {
            let mine = self.0.entry(b).or_default();
            *mine += n;
            if *mine == 0 {
                self.0.remove(&b);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn count(&self) -> i64 {
        self.0.values().sum()
    }

    /// The nearest-rank percentile.
    pub fn percentile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total <= 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as i64).clamp(1, total);
        let mut seen = 0;
        for (&b, &n) in &self.0 {
            seen += n;
            if seen >= rank {
                return Some(Self::value(b));
            }
        }
        None
    }
}

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
    pub replies: Replies,
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
        self.replies.merge(&other.replies);
    }

    pub fn kpis(&self) -> Kpis {
        Kpis {
            open: self.open,
            overdue: self.overdue,
            escalated: self.escalated,
            orphans: self.orphans,
            open_discrepancies: self.open_discrepancies,
            receipt_rate: rate(self.receipts_on_time, self.receipts_due),
            feedback_rate: rate(self.feedback_given, self.feedback_due),
            on_time_rate: rate(self.answers_on_time, self.answers_due),
            median_reply_seconds: self.replies.percentile(0.5),
            p90_reply_seconds: self.replies.percentile(0.9),
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
                    s.replies.add(((c - o.opened_us) / 1_000_000).max(0), 1);
                }
            }
            s
        })
        .collect()
}

fn rate(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
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
            ..SideStats::default()
        };
        let mut s = s;
        for seconds in [50, 10, 40, 20, 30, 60, 70, 80, 90, 100] {
            s.replies.add(seconds, 1);
        }
        let k = s.kpis();
        assert_eq!(k.receipt_rate, Some(0.75));
        assert_eq!(k.feedback_rate, Some(0.5));
        assert_eq!(k.on_time_rate, Some(0.8));
        assert_close(k.median_reply_seconds, 50.0);
        assert_close(k.p90_reply_seconds, 90.0);
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
            ..SideStats::default()
        };
        a.replies.add(5, 1);
        let mut b = SideStats {
            open: 2,
            answers_due: 1,
            answers_on_time: 1,
            ..SideStats::default()
        };
        b.replies.add(7, 1);
        a.merge(&b);
        assert_eq!((a.open, a.answers_due, a.answers_on_time), (3, 2, 1));
        assert_eq!(a.kpis().on_time_rate, Some(0.5));
        assert_eq!(a.replies.count(), 2);
        assert_close(a.kpis().p90_reply_seconds, 7.0);
    }

    fn assert_close(actual: Option<f64>, expected: f64) {
        let actual = actual.expect("a value");
        assert!(
            (actual - expected).abs() <= 0.01 * expected,
            "{actual} is not within 1% of {expected}"
        );
    }

    proptest::proptest! {
        #![proptest_config(crate::proptest_config())]

        /// Any percentile of any reply times is within 1 % of the exact
        /// nearest-rank value.
        #[test]
        fn percentiles_are_within_one_percent(
            mut times in proptest::collection::vec(0i64..400_000_000, 1..200),
            q in 0.01f64..1.0,
        ) {
            let mut replies = Replies::default();
            for &t in &times {
                replies.add(t, 1);
            }
            times.sort_unstable();
            let rank = ((q * times.len() as f64).ceil() as usize).clamp(1, times.len());
            let exact = times[rank - 1] as f64;
            let estimate = replies.percentile(q).unwrap();
            proptest::prop_assert!((estimate - exact).abs() <= 0.01 * exact, "{} vs {}", estimate, exact);
        }
    }
}
