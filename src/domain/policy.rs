//! The policy: deadlines per obligation kind (and per region), the working-
//! day calendar, the feedback period, escalation, and validation leniency.
//! Loaded from TOML (`policy.toml` here is the built-in default); an invalid
//! file is refused with the line at fault.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};
use time::{Date, Duration, OffsetDateTime, Time, Weekday};

use super::{Period, RegionCode, SHANGHAI, today};

/// The built-in policy, as a TOML file.
pub const DEFAULT_POLICY: &str = include_str!("policy.toml");

/// How long the debtor has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// Calendar days, ending at midnight (Asia/Shanghai) after the last.
    Days(u32),
    /// Working days by the calendar, ending at midnight after the last.
    WorkingDays(u32),
    /// A plain duration, for tests and drills.
    Exact(Duration),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a deadline: use \"30d\", \"15 working days\", or a duration like \"90s\", \"10m\", \"2h\""
)]
pub struct DeadlineError(String);

impl FromStr for Deadline {
    type Err = DeadlineError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let err = || DeadlineError(raw.to_string());
        let s = raw.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        let n: u32 = s[..split].parse().map_err(|_| err())?;
        let unit = s[split..].trim().to_ascii_lowercase();
        if n == 0 {
            return Err(err());
        }
        let deadline = match unit.as_str() {
            "d" | "day" | "days" => Deadline::Days(n),
            "wd" | "working day" | "working days" => Deadline::WorkingDays(n),
            "s" => Deadline::Exact(Duration::seconds(n.into())),
            "m" | "min" => Deadline::Exact(Duration::minutes(n.into())),
            "h" => Deadline::Exact(Duration::hours(n.into())),
            _ => return Err(err()),
        };
        // At most about ten years: beyond that is a typo, and date
        // arithmetic must never overflow.
        let too_long = match deadline {
            Deadline::Days(d) => d > 3660,
            Deadline::WorkingDays(d) => d > 2600,
            Deadline::Exact(d) => d > Duration::days(3660),
        };
        if too_long { Err(err()) } else { Ok(deadline) }
    }
}

impl fmt::Display for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Deadline::Days(n) => write!(f, "{n}d"),
            Deadline::WorkingDays(n) => write!(f, "{n} working days"),
            Deadline::Exact(d) => write!(f, "{}s", d.whole_seconds()),
        }
    }
}

impl Deadline {
    /// When an obligation opened at `from` falls due.
    pub fn due(self, from: OffsetDateTime, calendar: &Calendar) -> OffsetDateTime {
        match self {
            Deadline::Exact(d) => from + d,
            Deadline::Days(n) => midnight_after(today(from) + Duration::days(n.into())),
            Deadline::WorkingDays(n) => {
                let mut day = today(from);
                let mut left = n;
                while left > 0 {
                    day = day.next_day().expect("dates within range");
                    if calendar.is_working_day(day) {
                        left -= 1;
                    }
                }
                midnight_after(day)
            }
        }
    }
}

/// The first instant after `day` ends in Shanghai.
pub fn midnight_after(day: Date) -> OffsetDateTime {
    day.next_day()
        .expect("dates within range")
        .with_time(Time::MIDNIGHT)
        .assume_offset(SHANGHAI)
}

/// Public holidays and make-up working days (调休), per year.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calendar {
    pub holidays: BTreeSet<Date>,
    pub workdays: BTreeSet<Date>,
}

impl Calendar {
    pub fn is_working_day(&self, day: Date) -> bool {
        if self.holidays.contains(&day) {
            return false;
        }
        self.workdays.contains(&day)
            || !matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday)
    }
}

/// What an obligation's deadline is looked up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeadlineKind {
    ConfirmRegistration,
    VerifyCertificate,
    AnswerUrgent,
    AnswerNormal,
    AnswerCertificateMismatch,
    Receipt,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadlines {
    pub confirm_registration: Deadline,
    pub verify_certificate: Deadline,
    pub answer_urgent: Deadline,
    pub answer_normal: Deadline,
    pub answer_certificate_mismatch: Deadline,
    pub receipt: Deadline,
}

impl Deadlines {
    /// Each default deadline with its name in the policy file.
    pub fn named(&self) -> [(&'static str, Deadline); 6] {
        [
            ("confirm_registration", self.confirm_registration),
            ("verify_certificate", self.verify_certificate),
            ("answer_urgent", self.answer_urgent),
            ("answer_normal", self.answer_normal),
            (
                "answer_certificate_mismatch",
                self.answer_certificate_mismatch,
            ),
            ("receipt", self.receipt),
        ]
    }

    fn get(&self, kind: DeadlineKind) -> Deadline {
        match kind {
            DeadlineKind::ConfirmRegistration => self.confirm_registration,
            DeadlineKind::VerifyCertificate => self.verify_certificate,
            DeadlineKind::AnswerUrgent => self.answer_urgent,
            DeadlineKind::AnswerNormal => self.answer_normal,
            DeadlineKind::AnswerCertificateMismatch => self.answer_certificate_mismatch,
            DeadlineKind::Receipt => self.receipt,
        }
    }
}

/// Deadlines replaced for debtors in one region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionOverride {
    pub region: String,
    pub deadlines: BTreeMap<&'static str, Deadline>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeriodLength {
    Month,
    Quarter,
    Half,
}

impl PeriodLength {
    pub fn containing(self, day: Date) -> Period {
        let (year, month) = (day.year(), day.month() as u8);
        match self {
            PeriodLength::Month => Period::Month { year, month },
            PeriodLength::Quarter => Period::Quarter {
                year,
                quarter: (month - 1) / 3 + 1,
            },
            PeriodLength::Half => Period::Half {
                year,
                half: (month - 1) / 6 + 1,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Accept resident IDs whose check character does not hold.
    pub accept_bad_check_digits: bool,
    /// Accept region codes that are not in GB/T 2260.
    pub accept_unknown_regions: bool,
    pub period: PeriodLength,
    pub feedback_due_day: u8,
    pub escalation_factor: f64,
    pub deadlines: Deadlines,
    pub overrides: Vec<RegionOverride>,
    pub calendar: Calendar,
    /// The TOML this policy was read from.
    pub source: String,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::from_toml(DEFAULT_POLICY).expect("the built-in policy is valid")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid policy: {0}")]
pub struct PolicyError(String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    accept_bad_check_digits: bool,
    accept_unknown_regions: bool,
    period: PeriodLength,
    feedback_due_day: u8,
    escalation_factor: f64,
    deadlines: RawDeadlines,
    #[serde(default)]
    overrides: Vec<RawOverride>,
    #[serde(default)]
    calendar: BTreeMap<String, RawYear>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeadlines {
    #[serde(deserialize_with = "deadline")]
    confirm_registration: Deadline,
    #[serde(deserialize_with = "deadline")]
    verify_certificate: Deadline,
    #[serde(deserialize_with = "deadline")]
    answer_urgent: Deadline,
    #[serde(deserialize_with = "deadline")]
    answer_normal: Deadline,
    #[serde(deserialize_with = "deadline")]
    answer_certificate_mismatch: Deadline,
    #[serde(deserialize_with = "deadline")]
    receipt: Deadline,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverride {
    #[serde(deserialize_with = "region_prefix")]
    region: String,
    #[serde(default, deserialize_with = "optional_deadline")]
    confirm_registration: Option<Deadline>,
    #[serde(default, deserialize_with = "optional_deadline")]
    verify_certificate: Option<Deadline>,
    #[serde(default, deserialize_with = "optional_deadline")]
    answer_urgent: Option<Deadline>,
    #[serde(default, deserialize_with = "optional_deadline")]
    answer_normal: Option<Deadline>,
    #[serde(default, deserialize_with = "optional_deadline")]
    answer_certificate_mismatch: Option<Deadline>,
    #[serde(default, deserialize_with = "optional_deadline")]
    receipt: Option<Deadline>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawYear {
    #[serde(default, deserialize_with = "dates")]
    holidays: Vec<Date>,
    #[serde(default, deserialize_with = "dates")]
    workdays: Vec<Date>,
}

fn deadline<'de, D: Deserializer<'de>>(d: D) -> Result<Deadline, D::Error> {
    String::deserialize(d)?
        .parse()
        .map_err(serde::de::Error::custom)
}

fn optional_deadline<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Deadline>, D::Error> {
    deadline(d).map(Some)
}

fn region_prefix<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let raw = String::deserialize(d)?;
    super::RegionPrefix::parse(&raw)
        .map(|p| p.as_str().to_string())
        .map_err(|e| serde::de::Error::custom(format!("region {raw:?} {e}")))
}

fn dates<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Date>, D::Error> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| {
            Date::parse(s, &format).map_err(|_| {
                serde::de::Error::custom(format!("{s:?} is not a date like 2024-10-01"))
            })
        })
        .collect()
}

impl Policy {
    /// Reads a policy file's text. Errors name the line and column.
    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| PolicyError(e.to_string()))?;
        if !(1..=28).contains(&raw.feedback_due_day) {
            return Err(PolicyError(
                "feedback_due_day must be a day from 1 to 28".into(),
            ));
        }
        if !(raw.escalation_factor > 1.0 && raw.escalation_factor <= 100.0) {
            return Err(PolicyError(
                "escalation_factor must be more than 1 (2 escalates at twice the window)".into(),
            ));
        }
        let mut calendar = Calendar::default();
        for (year, days) in &raw.calendar {
            let year: i32 = year
                .parse()
                .map_err(|_| PolicyError(format!("calendar.{year}: not a year")))?;
            for (list, set) in [
                (&days.holidays, &mut calendar.holidays),
                (&days.workdays, &mut calendar.workdays),
            ] {
                for d in list {
                    if d.year() != year {
                        return Err(PolicyError(format!(
                            "calendar.{year}: {d} is in another year"
                        )));
                    }
                    set.insert(*d);
                }
            }
        }
        let overrides = raw
            .overrides
            .into_iter()
            .map(|o| RegionOverride {
                region: o.region,
                deadlines: [
                    ("confirm_registration", o.confirm_registration),
                    ("verify_certificate", o.verify_certificate),
                    ("answer_urgent", o.answer_urgent),
                    ("answer_normal", o.answer_normal),
                    ("answer_certificate_mismatch", o.answer_certificate_mismatch),
                    ("receipt", o.receipt),
                ]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect(),
            })
            .collect();
        let d = raw.deadlines;
        Ok(Policy {
            accept_bad_check_digits: raw.accept_bad_check_digits,
            accept_unknown_regions: raw.accept_unknown_regions,
            period: raw.period,
            feedback_due_day: raw.feedback_due_day,
            escalation_factor: raw.escalation_factor,
            deadlines: Deadlines {
                confirm_registration: d.confirm_registration,
                verify_certificate: d.verify_certificate,
                answer_urgent: d.answer_urgent,
                answer_normal: d.answer_normal,
                answer_certificate_mismatch: d.answer_certificate_mismatch,
                receipt: d.receipt,
            },
            overrides,
            calendar,
            source: text.to_string(),
        })
    }

    /// The deadline of a kind for a debtor: the longest matching regional
    /// override, else the default.
    pub fn deadline(&self, kind: DeadlineKind, debtor: &RegionCode) -> Deadline {
        let name = match kind {
            DeadlineKind::ConfirmRegistration => "confirm_registration",
            DeadlineKind::VerifyCertificate => "verify_certificate",
            DeadlineKind::AnswerUrgent => "answer_urgent",
            DeadlineKind::AnswerNormal => "answer_normal",
            DeadlineKind::AnswerCertificateMismatch => "answer_certificate_mismatch",
            DeadlineKind::Receipt => "receipt",
        };
        self.overrides
            .iter()
            .filter(|o| debtor.as_str().starts_with(&o.region))
            .filter_map(|o| o.deadlines.get(name).map(|d| (o.region.len(), *d)))
            .max_by_key(|(len, _)| *len)
            .map(|(_, d)| d)
            .unwrap_or_else(|| self.deadlines.get(kind))
    }

    /// When an obligation of `kind` owed by `debtor` and opened at `from`
    /// falls due.
    pub fn due(
        &self,
        kind: DeadlineKind,
        debtor: &RegionCode,
        from: OffsetDateTime,
    ) -> OffsetDateTime {
        self.deadline(kind, debtor).due(from, &self.calendar)
    }

    /// Feedback for a period is due at the end of `feedback_due_day` of the
    /// month after the period.
    pub fn feedback_due(&self, period: Period) -> OffsetDateTime {
        let next = period.end();
        let day = Date::from_calendar_date(next.year(), next.month(), self.feedback_due_day)
            .expect("due day is 1..=28");
        midnight_after(day)
    }

    /// When an obligation opened at `opened` and due at `due` escalates.
    pub fn escalates_at(&self, opened: OffsetDateTime, due: OffsetDateTime) -> OffsetDateTime {
        let window = (due - opened).as_seconds_f64().max(0.0);
        opened + Duration::seconds_f64(window * self.escalation_factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    fn code(c: &str) -> RegionCode {
        RegionCode::parse(c).unwrap()
    }

    #[test]
    fn the_built_in_policy_has_the_documented_defaults() {
        let p = Policy::default();
        assert_eq!(p.deadlines.answer_urgent, Deadline::Days(15));
        assert_eq!(p.deadlines.answer_normal, Deadline::Days(30));
        assert_eq!(p.deadlines.answer_certificate_mismatch, Deadline::Days(7));
        assert_eq!(p.deadlines.verify_certificate, Deadline::Days(30));
        assert_eq!(p.deadlines.receipt, Deadline::Days(3));
        assert_eq!(p.period, PeriodLength::Quarter);
        assert_eq!(p.feedback_due_day, 20);
        assert!(!p.accept_bad_check_digits);
    }

    #[test]
    fn deadlines_parse() {
        assert_eq!("30d".parse(), Ok(Deadline::Days(30)));
        assert_eq!("30 days".parse(), Ok(Deadline::Days(30)));
        assert_eq!("15 working days".parse(), Ok(Deadline::WorkingDays(15)));
        assert_eq!("7wd".parse(), Ok(Deadline::WorkingDays(7)));
        assert_eq!("5s".parse(), Ok(Deadline::Exact(Duration::seconds(5))));
        assert_eq!("2h".parse(), Ok(Deadline::Exact(Duration::hours(2))));
        for bad in [
            "",
            "d",
            "0d",
            "30",
            "30 weeks",
            "-1d",
            "1.5d",
            "99999999d",
            "4000000 working days",
        ] {
            assert!(bad.parse::<Deadline>().is_err(), "{bad}");
        }
    }

    #[test]
    fn calendar_days_end_at_midnight_in_shanghai() {
        // Opened 2024-03-01 23:30 Shanghai (15:30 UTC): day 1 is 03-02.
        let opened = datetime!(2024-03-01 15:30 UTC);
        let due = Deadline::Days(1).due(opened, &Calendar::default());
        assert_eq!(due, datetime!(2024-03-03 00:00 +8));
    }

    #[test]
    fn working_days_skip_holidays_and_count_make_up_days() {
        // National Day 2024: 10-01..10-07 off, with 09-29 (Sun) and 10-12
        // (Sat) made working days.
        let p = Policy::from_toml(&DEFAULT_POLICY.replace(
            "# [calendar.2024]\n# holidays = [\"2024-10-01\", \"2024-10-02\", \"2024-10-03\", \"2024-10-04\", \"2024-10-07\"]\n# workdays = [\"2024-09-29\", \"2024-10-12\"]",
            "[calendar.2024]\nholidays = [\"2024-10-01\", \"2024-10-02\", \"2024-10-03\", \"2024-10-04\", \"2024-10-07\"]\nworkdays = [\"2024-09-29\", \"2024-10-12\"]",
        ))
        .unwrap();
        assert!(p.calendar.is_working_day(date!(2024 - 09 - 29)));
        assert!(!p.calendar.is_working_day(date!(2024 - 10 - 07)));
        // From Fri 09-27: 09-29 (make-up Sunday), 09-30, then 10-08, 10-09,
        // 10-10, 10-11, 10-12 (make-up Saturday) = 7 working days.
        let opened = datetime!(2024-09-27 10:00 +8);
        let due = Deadline::WorkingDays(7).due(opened, &p.calendar);
        assert_eq!(due, datetime!(2024-10-13 00:00 +8));
        // Without the calendar, weekends only.
        let due = Deadline::WorkingDays(7).due(opened, &Calendar::default());
        assert_eq!(due, datetime!(2024-10-09 00:00 +8));
    }

    #[test]
    fn regional_overrides_match_the_longest_prefix() {
        let text = format!(
            "{DEFAULT_POLICY}\n[[overrides]]\nregion = \"31\"\nanswer_urgent = \"10d\"\n\n[[overrides]]\nregion = \"3101\"\nanswer_urgent = \"7 working days\"\n"
        );
        let p = Policy::from_toml(&text).unwrap();
        assert_eq!(
            p.deadline(DeadlineKind::AnswerUrgent, &code("310112")),
            Deadline::WorkingDays(7)
        );
        assert_eq!(
            p.deadline(DeadlineKind::AnswerUrgent, &code("320583")),
            Deadline::Days(15)
        );
        // Only the deadlines named are replaced.
        assert_eq!(
            p.deadline(DeadlineKind::AnswerNormal, &code("310112")),
            Deadline::Days(30)
        );
    }

    #[test]
    fn feedback_is_due_on_the_20th_after_the_period() {
        let p = Policy::default();
        let due = p.feedback_due(Period::parse("2024Q4").unwrap());
        assert_eq!(due, datetime!(2025-01-21 00:00 +8));
    }

    #[test]
    fn escalation_is_at_twice_the_window() {
        let p = Policy::default();
        let opened = datetime!(2024-01-01 00:00 UTC);
        let due = opened + Duration::days(15);
        assert_eq!(p.escalates_at(opened, due), opened + Duration::days(30));
    }

    #[test]
    fn invalid_policies_name_the_line() {
        let bad =
            DEFAULT_POLICY.replace("answer_urgent = \"15d\"", "answer_urgent = \"fortnight\"");
        let err = Policy::from_toml(&bad).unwrap_err().to_string();
        let line = DEFAULT_POLICY
            .lines()
            .position(|l| l.starts_with("answer_urgent"))
            .unwrap()
            + 1;
        assert!(err.contains(&format!("line {line}")), "{err}");
        assert!(err.contains("fortnight"), "{err}");

        let unknown = format!("{DEFAULT_POLICY}\nanswer_sometime = \"1d\"\n");
        assert!(Policy::from_toml(&unknown).is_err());
        let bad_region = format!("{DEFAULT_POLICY}\n[[overrides]]\nregion = \"99\"\n");
        assert!(
            Policy::from_toml(&bad_region)
                .unwrap_err()
                .to_string()
                .contains("99")
        );
        let factor = DEFAULT_POLICY.replace("escalation_factor = 2", "escalation_factor = 1");
        assert!(Policy::from_toml(&factor).is_err());
    }
}
