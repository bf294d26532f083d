//! Reporting periods for periodic feedback: a quarter (`2008Q1`), a month
//! (`2008-03`) or a half-year (`2008H1`).

use std::fmt;

use time::{Date, Month};

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Period {
    Month { year: i32, month: u8 },
    Quarter { year: i32, quarter: u8 },
    Half { year: i32, half: u8 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be a period like 2008Q1, 2008-03 or 2008H1")]
pub struct PeriodError;

impl Period {
    pub fn parse(raw: &str) -> Result<Self, PeriodError> {
        let raw = raw.trim();
        if !raw.is_ascii() || raw.len() < 6 {
            return Err(PeriodError);
        }
        let year: i32 = raw[..4]
            .parse()
            .ok()
            // Years whose periods and due dates stay within the calendar.
            .filter(|y| (1900..=2999).contains(y))
            .ok_or(PeriodError)?;
        let rest = &raw[4..];
        let number = |s: &str, max: u8| -> Result<u8, PeriodError> {
            s.parse::<u8>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or(PeriodError)
        };
        match rest.as_bytes() {
            [b'Q' | b'q', _] => Ok(Self::Quarter {
                year,
                quarter: number(&rest[1..], 4)?,
            }),
            [b'H' | b'h', _] => Ok(Self::Half {
                year,
                half: number(&rest[1..], 2)?,
            }),
            [b'-', _, _] => Ok(Self::Month {
                year,
                month: number(&rest[1..], 12)?,
            }),
            _ => Err(PeriodError),
        }
    }

    /// The first day of the period.
    pub fn start(&self) -> Date {
        let (year, month) = match *self {
            Self::Month { year, month } => (year, month),
            Self::Quarter { year, quarter } => (year, (quarter - 1) * 3 + 1),
            Self::Half { year, half } => (year, (half - 1) * 6 + 1),
        };
        first_of(year, month)
    }

    /// The first day after the period.
    pub fn end(&self) -> Date {
        let months = match self {
            Self::Month { .. } => 1,
            Self::Quarter { .. } => 3,
            Self::Half { .. } => 6,
        };
        let start = self.start();
        let index = start.year() * 12 + i32::from(start.month() as u8 - 1) + months;
        first_of(index.div_euclid(12), (index.rem_euclid(12) + 1) as u8)
    }
}

fn first_of(year: i32, month: u8) -> Date {
    Date::from_calendar_date(year, Month::try_from(month).expect("1..=12"), 1)
        .expect("the first of a month exists")
}

impl serde::Serialize for Period {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Period {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <String as serde::Deserialize>::deserialize(d)?;
        Period::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Month { year, month } => write!(f, "{year:04}-{month:02}"),
            Self::Quarter { year, quarter } => write!(f, "{year:04}Q{quarter}"),
            Self::Half { year, half } => write!(f, "{year:04}H{half}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::date;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(
            Period::parse("2008Q1"),
            Ok(Period::Quarter {
                year: 2008,
                quarter: 1
            })
        );
        assert_eq!(
            Period::parse("2008-03"),
            Ok(Period::Month {
                year: 2008,
                month: 3
            })
        );
        assert_eq!(
            Period::parse("2008H2"),
            Ok(Period::Half {
                year: 2008,
                half: 2
            })
        );
    }

    #[test]
    fn rejects_nonsense() {
        for bad in [
            "",
            "2008",
            "2008Q5",
            "2008Q0",
            "2008-13",
            "2008-00",
            "2008H3",
            "08Q1",
            "2008Q1x",
            "２００８Q1",
            "2008-3",
        ] {
            assert_eq!(Period::parse(bad), Err(PeriodError), "{bad}");
        }
    }

    #[test]
    fn boundaries() {
        let q4 = Period::parse("2008Q4").unwrap();
        assert_eq!(q4.start(), date!(2008 - 10 - 01));
        assert_eq!(q4.end(), date!(2009 - 01 - 01));
        let dec = Period::parse("2008-12").unwrap();
        assert_eq!(dec.end(), date!(2009 - 01 - 01));
        let h1 = Period::parse("2008H1").unwrap();
        assert_eq!(h1.end(), date!(2008 - 07 - 01));
    }

    proptest! {
        #![proptest_config(crate::proptest_config())]

        #[test]
        fn display_round_trips(s in "[0-9]{4}(Q[1-4]|H[12]|-(0[1-9]|1[0-2]))") {
            let p = Period::parse(&s);
            if let Ok(p) = p {
                prop_assert_eq!(p.to_string(), s);
                prop_assert!(p.start() < p.end());
            }
        }
    }
}
