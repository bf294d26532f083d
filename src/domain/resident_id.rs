//! Resident ID numbers (GB 11643): 17 digits and a check character, or the
//! legacy 15-digit form, which is upgraded on parse and kept.

use std::fmt;

use time::{Date, Month};

use super::Sex;

/// GB 11643's check: the first 17 digits weighted by these, summed, modulo
/// 11, picks the check character from `CHECK_CHARS` (public for the
/// bench's generator, which computes it in SQL).
pub const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
pub const CHECK_CHARS: &[u8; 11] = b"10X98765432";

/// A well-formed resident ID: always 18 characters, birth date a real date.
/// Whether its check character holds is known (`check_digit_ok`), because a
/// policy may accept a bad one and flag it instead of rejecting it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResidentId {
    id: String,
    legacy: Option<String>,
    check_digit_ok: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResidentIdError {
    #[error("must be 18 characters (17 digits and a check digit or X) or a legacy 15-digit ID")]
    Length,
    #[error("must be digits, with only the last character allowed to be X")]
    Characters,
    #[error("characters 7 to 14 are not a real birth date")]
    BirthDate,
}

impl ResidentId {
    /// Parses an 18-character ID or upgrades a 15-digit one (inserting "19"
    /// before the year and computing the check character). A lowercase `x`
    /// is accepted and normalised.
    pub fn parse(raw: &str) -> Result<Self, ResidentIdError> {
        let raw = raw.trim();
        let (id, legacy) = match raw.len() {
            18 => {
                let bytes = raw.as_bytes();
                if !bytes[..17].iter().all(u8::is_ascii_digit)
                    || !(bytes[17].is_ascii_digit() || bytes[17] == b'X' || bytes[17] == b'x')
                {
                    return Err(ResidentIdError::Characters);
                }
                (raw.to_ascii_uppercase(), None)
            }
            15 => {
                if !raw.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ResidentIdError::Characters);
                }
                let body = format!("{}19{}", &raw[..6], &raw[6..]);
                let check = check_char(body.as_bytes()) as char;
                (format!("{body}{check}"), Some(raw.to_string()))
            }
            n if n > 0 && !raw.is_ascii() => return Err(ResidentIdError::Characters),
            _ => return Err(ResidentIdError::Length),
        };
        birth_date_of(&id).ok_or(ResidentIdError::BirthDate)?;
        let check_digit_ok = check_char(&id.as_bytes()[..17]) == id.as_bytes()[17];
        Ok(Self {
            id,
            legacy,
            check_digit_ok,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// The 15-digit ID this one was upgraded from.
    pub fn legacy(&self) -> Option<&str> {
        self.legacy.as_deref()
    }

    pub fn check_digit_ok(&self) -> bool {
        self.check_digit_ok
    }

    pub fn birth_date(&self) -> Date {
        birth_date_of(&self.id).expect("checked in parse")
    }

    /// The 17th character is odd for men.
    pub fn sex(&self) -> Sex {
        if (self.id.as_bytes()[16] - b'0') % 2 == 1 {
            Sex::Male
        } else {
            Sex::Female
        }
    }

    /// The region code of the registered household (first six digits).
    pub fn region_prefix(&self) -> &str {
        &self.id[..6]
    }

    /// The form that may appear in logs and to readers without full access:
    /// the first six and the last four characters (`341502********123X`).
    pub fn masked(&self) -> String {
        format!("{}********{}", &self.id[..6], &self.id[14..])
    }
}

/// The check character for the first 17 digits.
pub fn check_char(first17: &[u8]) -> u8 {
    let sum: u32 = first17
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    CHECK_CHARS[(sum % 11) as usize]
}

fn birth_date_of(id: &str) -> Option<Date> {
    let year: i32 = id[6..10].parse().ok()?;
    let month: u8 = id[10..12].parse().ok()?;
    let day: u8 = id[12..14].parse().ok()?;
    if year < 1850 {
        return None;
    }
    Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()
}

/// Debug never shows the full number: IDs end up in error chains and logs.
impl fmt::Debug for ResidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResidentId({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Check characters computed by hand from the GB 11643 weights.
    #[test]
    fn known_ids_verify() {
        let id = ResidentId::parse("11010519491231002X").unwrap();
        assert!(id.check_digit_ok());
        assert_eq!(id.sex(), Sex::Female);
        assert_eq!(id.birth_date(), time::macros::date!(1949 - 12 - 31));
        let id = ResidentId::parse("440524188001010014").unwrap();
        assert!(id.check_digit_ok());
        assert_eq!(id.sex(), Sex::Male);
    }

    #[test]
    fn lowercase_x_is_normalised() {
        let id = ResidentId::parse("11010519491231002x").unwrap();
        assert_eq!(id.as_str(), "11010519491231002X");
        assert!(id.check_digit_ok());
    }

    #[test]
    fn bad_check_digit_is_known() {
        let id = ResidentId::parse("110105194912310021").unwrap();
        assert!(!id.check_digit_ok());
    }

    #[test]
    fn legacy_ids_are_upgraded_and_kept() {
        let id = ResidentId::parse("341502800101123").unwrap();
        assert_eq!(&id.as_str()[..17], "34150219800101123");
        assert!(id.check_digit_ok());
        assert_eq!(id.legacy(), Some("341502800101123"));
        assert_eq!(id.birth_date(), time::macros::date!(1980 - 01 - 01));
        assert_eq!(id.sex(), Sex::Male);
    }

    #[test]
    fn malformed_ids_are_rejected() {
        assert_eq!(ResidentId::parse(""), Err(ResidentIdError::Length));
        assert_eq!(ResidentId::parse("1234"), Err(ResidentIdError::Length));
        assert_eq!(
            ResidentId::parse("1101051949123100XX"),
            Err(ResidentIdError::Characters)
        );
        assert_eq!(
            ResidentId::parse("11010519491331002X"),
            Err(ResidentIdError::BirthDate)
        );
        assert_eq!(
            ResidentId::parse("110105194902300021"),
            Err(ResidentIdError::BirthDate)
        );
        assert_eq!(
            ResidentId::parse("张三李四王五赵六"),
            Err(ResidentIdError::Characters)
        );
    }

    #[test]
    fn debug_and_masked_hide_the_middle() {
        let id = ResidentId::parse("11010519491231002X").unwrap();
        assert_eq!(id.masked(), "110105********002X");
        assert!(!format!("{id:?}").contains("19491231"));
    }

    proptest! {
        #![proptest_config(crate::proptest_config())]

        #[test]
        fn parse_never_panics(s in "\\PC{0,30}") {
            let _ = ResidentId::parse(&s);
        }

        #[test]
        fn computed_check_digit_always_verifies(
            region in 110000u32..660000,
            days in 0i32..40000,
            seq in 0u32..1000,
        ) {
            let birth = time::macros::date!(1900 - 01 - 01) + time::Duration::days(days.into());
            let body = format!("{region:06}{:04}{:02}{:02}{seq:03}",
                birth.year(), birth.month() as u8, birth.day());
            let id = format!("{body}{}", check_char(body.as_bytes()) as char);
            let parsed = ResidentId::parse(&id).unwrap();
            prop_assert!(parsed.check_digit_ok());
            prop_assert_eq!(parsed.birth_date(), birth);
            // Changing any one digit breaks the check.
            for i in 0..17 {
                let mut bad = id.clone().into_bytes();
                bad[i] = b'0' + (bad[i] - b'0' + 1) % 10;
                let bad = String::from_utf8(bad).unwrap();
                if let Ok(p) = ResidentId::parse(&bad) {
                    prop_assert!(!p.check_digit_ok());
                }
            }
        }

        #[test]
        fn legacy_upgrade_agrees_with_original(
            region in 110000u32..660000,
            days in 0i32..36000,
            seq in 0u32..1000,
        ) {
            let birth = time::macros::date!(1900 - 01 - 01) + time::Duration::days(days.into());
            let legacy = format!("{region:06}{:02}{:02}{:02}{seq:03}",
                birth.year() % 100, birth.month() as u8, birth.day());
            let id = ResidentId::parse(&legacy).unwrap();
            prop_assert_eq!(id.legacy(), Some(legacy.as_str()));
            prop_assert!(id.check_digit_ok());
            prop_assert_eq!(id.region_prefix(), &legacy[..6]);
        }
    }
}
