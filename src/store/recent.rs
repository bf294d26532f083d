//! Cases as this server's last publish of each left them, so that the
//! next publish of a case need not read its messages and obligations back
//! (most of a case's messages come one after another, and reading them back
//! was most of a publish's reads). An entry is used only when the case's
//! row still has the version it was kept with, read under the case's lock:
//! every write to what a case's rows hold adds one to the version (a
//! publish's or the sweeper's update of the case, the sweeper's reminder
//! flags), so whatever another server or the sweeper wrote since makes it a
//! miss, never a stale read. Debug builds read the rows anyway and check
//! them against what was kept (`load_cases`).

use std::collections::HashMap;
use std::sync::Mutex;

use super::sql::CaseRows;

/// Cases kept at most; all are forgotten when full (a miss only costs the
/// read it would have saved).
const KEPT_MAX: usize = 4_096;

#[derive(Default)]
pub(crate) struct RecentCases {
    /// By case id: (the row's version, its rows).
    kept: Mutex<HashMap<i64, (i64, CaseRows)>>,
}

impl RecentCases {
    /// The case's rows if kept at `version`. Taken out either way: the
    /// publish that loads it writes a new version (kept again once
    /// committed) or none.
    pub fn take(&self, id: i64, version: i64) -> Option<CaseRows> {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        match kept.remove(&id) {
            Some((v, rows)) if v == version => Some(rows),
            _ => None,
        }
    }

    /// Keeps a case's rows as committed at `version`.
    pub fn keep(&self, id: i64, version: i64, rows: CaseRows) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() >= KEPT_MAX {
            kept.clear();
        }
        kept.insert(id, (version, rows));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_is_given_back_once_and_only_at_its_version() {
        let recent = RecentCases::default();
        let rows = CaseRows {
            counted: (Some("341502".into()), 1, 2),
            ..CaseRows::default()
        };
        recent.keep(7, 3, rows.clone());
        assert_eq!(recent.take(7, 3), Some(rows.clone()));
        assert_eq!(recent.take(7, 3), None, "taken out");
        recent.keep(7, 3, rows);
        assert_eq!(recent.take(7, 4), None, "written since");
        assert_eq!(recent.take(7, 3), None, "a miss forgets it");
    }

    #[test]
    fn rows_that_differ_are_named_by_part() {
        let a = CaseRows::default();
        let mut b = a.clone();
        assert!(a.differences(&b).is_empty());
        b.counted.1 = 1;
        b.flags.insert("CONFIRM:341502".into(), (true, false));
        assert_eq!(a.differences(&b), ["flags", "counted"]);
    }

    #[test]
    fn keeping_more_than_it_holds_forgets_the_rest() {
        let recent = RecentCases::default();
        for id in 0..=KEPT_MAX as i64 {
            recent.keep(id, 0, CaseRows::default());
        }
        assert_eq!(recent.take(0, 0), None);
        assert!(recent.take(KEPT_MAX as i64, 0).is_some());
    }
}
