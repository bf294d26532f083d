//! Backlog KPIs: what the counts and answer times of a region's
//! obligations add up to. Pure: the store counts, this computes.

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
/// counties' kept day by day. Buckets are kept sorted, so adding two is one
/// pass over both (a backlog adds thousands).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replies(Vec<(u16, i64)>);

const GROWTH: f64 = 1.02;

/// A stored histogram that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("reply histogram: {0}")]
pub struct MalformedReplies(&'static str);

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
        match self.0.binary_search_by_key(&b, |&(k, _)| k) {
            Ok(i) => {
                self.0[i].1 += count;
                if self.0[i].1 == 0 {
                    self.0.remove(i);
                }
            }
            Err(i) if count != 0 => self.0.insert(i, (b, count)),
            Err(_) => {}
        }
    }

    pub fn merge(&mut self, other: &Replies) {
        if other.0.is_empty() {
            return;
        }
        if self.0.is_empty() {
            self.0.clone_from(&other.0);
            return;
        }
        let (a, b) = (&self.0, &other.0);
        let mut merged = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let next = if j == b.len() || (i < a.len() && a[i].0 < b[j].0) {
                i += 1;
                a[i - 1]
            } else if i == a.len() || b[j].0 < a[i].0 {
                j += 1;
                b[j - 1]
            } else {
                i += 1;
                j += 1;
                (a[i - 1].0, a[i - 1].1 + b[j - 1].1)
            };
            if next.1 != 0 {
                merged.push(next);
            }
        }
        self.0 = merged;
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn count(&self) -> i64 {
        self.0.iter().map(|&(_, n)| n).sum()
    }

    /// The nearest-rank percentile.
    pub fn percentile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total <= 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as i64).clamp(1, total);
        let mut seen = 0;
        for &(b, n) in &self.0 {
            seen += n;
            if seen >= rank {
                return Some(Self::value(b));
            }
        }
        None
    }

    /// The stored form: for each bucket, the gap from the one before and
    /// its count, as LEB128 varints (the count zig-zagged). A day's
    /// histogram of a few hundred buckets takes about two bytes a bucket.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() * 3);
        let mut last = 0u16;
        for &(b, n) in &self.0 {
            put_varint(&mut out, u64::from(b - last));
            put_varint(&mut out, ((n << 1) ^ (n >> 63)) as u64);
            last = b;
        }
        out
    }

    pub fn from_bytes(mut bytes: &[u8]) -> Result<Replies, MalformedReplies> {
        let mut buckets = Vec::with_capacity(bytes.len() / 2);
        let mut last: Option<u16> = None;
        while !bytes.is_empty() {
            let gap = take_varint(&mut bytes)?;
            let zigzag = take_varint(&mut bytes)?;
            let n = (zigzag >> 1) as i64 ^ -((zigzag & 1) as i64);
            let b = u64::from(last.unwrap_or(0)) + gap;
            let b = u16::try_from(b).map_err(|_| MalformedReplies("bucket out of range"))?;
            if last.is_some_and(|l| b <= l) {
                return Err(MalformedReplies("buckets out of order"));
            }
            if n == 0 {
                return Err(MalformedReplies("empty bucket"));
            }
            buckets.push((b, n));
            last = Some(b);
        }
        Ok(Replies(buckets))
    }
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) fn take_varint(bytes: &mut &[u8]) -> Result<u64, MalformedReplies> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first().ok_or(MalformedReplies("truncated"))?;
        *bytes = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(MalformedReplies("varint too long"))
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

        /// Merging histograms is adding their reply times one by one, and
        /// the stored form gives back the same histogram.
        #[test]
        fn histograms_merge_and_store_faithfully(
            a in proptest::collection::vec((0i64..400_000_000, -3i64..4), 0..60),
            b in proptest::collection::vec((0i64..400_000_000, -3i64..4), 0..60),
        ) {
            let (mut left, mut right, mut all) =
                (Replies::default(), Replies::default(), Replies::default());
            for &(t, n) in &a {
                left.add(t, n);
                all.add(t, n);
            }
            for &(t, n) in &b {
                right.add(t, n);
                all.add(t, n);
            }
            left.merge(&right);
            proptest::prop_assert_eq!(&left, &all);
            proptest::prop_assert!(left.0.iter().all(|&(_, n)| n != 0));
            proptest::prop_assert!(left.0.windows(2).all(|w| w[0].0 < w[1].0));
            proptest::prop_assert_eq!(Replies::from_bytes(&left.to_bytes()).unwrap(), left);
        }

        /// Whatever bytes a database hands back, decoding answers without
        /// panicking, and only well-formed histograms are accepted.
        #[test]
        fn junk_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            if let Ok(r) = Replies::from_bytes(&bytes) {
                proptest::prop_assert!(r.0.windows(2).all(|w| w[0].0 < w[1].0));
                proptest::prop_assert!(r.0.iter().all(|&(_, n)| n != 0));
            }
        }
    }
}
