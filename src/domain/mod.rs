//! The pure rules of the exchange: what a well-formed message is, who may
//! send it, and what it does to a case. No I/O and no async here: the store
//! applies what these functions decide.

pub mod case;
pub mod kpi;
pub mod message;
pub mod period;
pub mod policy;
pub mod reconcile;
pub mod region;
pub mod resident_id;
pub mod tally;

use std::fmt;

use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, UtcOffset};

pub use case::{CaseState, CaseStatus};
pub use message::{Body, CaseKey, Kind, Message, MessageId};
pub use period::Period;
pub use policy::Policy;
pub use region::{RegionCode, RegionPrefix};
pub use resident_id::ResidentId;

/// All calendar dates of the exchange are in Asia/Shanghai (UTC+8, no DST
/// since 1991).
pub const SHANGHAI: UtcOffset = match UtcOffset::from_hms(8, 0, 0) {
    Ok(o) => o,
    Err(_) => panic!("valid offset"),
};

/// Today's date where the offices are.
pub fn today(now: OffsetDateTime) -> time::Date {
    now.to_offset(SHANGHAI).date()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sex {
    Male,
    Female,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MaritalStatus {
    Unmarried,
    FirstMarriage,
    Remarried,
    Divorced,
    Widowed,
}

/// A person's name: 1 to 50 characters, no control characters.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonName(String);

impl PersonName {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let name = raw.trim();
        let len = name.chars().count();
        if len == 0 {
            Err("must not be empty")
        } else if len > 50 {
            Err("must be at most 50 characters")
        } else if name.chars().any(char::is_control) {
            Err("must not contain control characters")
        } else {
            Ok(Self(name.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The family name's first character and a star per other character
    /// (`张*`, `欧***`): what logs and masked views show.
    pub fn masked(&self) -> String {
        mask_name(&self.0)
    }
}

pub fn mask_name(name: &str) -> String {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return String::new();
    };
    let stars = chars.count().min(3);
    std::iter::once(first)
        .chain(std::iter::repeat_n('*', stars))
        .collect()
}

impl fmt::Debug for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PersonName({})", self.masked())
    }
}

/// A field-level complaint about a message, with the path of the field
/// relative to the message (`case_ref.resident_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    /// Stable UPPER_SNAKE_CASE code.
    pub reason: &'static str,
    pub description: String,
}

impl Violation {
    pub fn new(
        field: impl Into<String>,
        reason: &'static str,
        description: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            reason,
            description: description.into(),
        }
    }

    /// The same complaint about a field nested under `prefix`.
    pub fn under(mut self, prefix: &str) -> Self {
        self.field = if self.field.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}.{}", self.field)
        };
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_masked() {
        assert_eq!(mask_name("张三"), "张*");
        assert_eq!(mask_name("欧阳娜娜"), "欧***");
        assert_eq!(mask_name("张"), "张");
        assert_eq!(mask_name(""), "");
        assert!(!format!("{:?}", PersonName::parse("张三").unwrap()).contains('三'));
    }

    #[test]
    fn names_are_limited() {
        assert!(PersonName::parse("").is_err());
        assert!(PersonName::parse("   ").is_err());
        assert!(PersonName::parse(&"张".repeat(50)).is_ok());
        assert!(PersonName::parse(&"张".repeat(51)).is_err());
        assert!(PersonName::parse("张\u{0}三").is_err());
    }
}
