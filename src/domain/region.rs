//! Region codes (GB/T 2260): 6-digit province, city and county codes valid in
//! any edition 2002–2013 or today, and today's 9-digit township codes. The
//! tables are compiled into the binary from `src/domain/data/`.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

static REGIONS_TSV: &str = include_str!("data/regions.tsv");
static TOWNSHIPS_TSV: &str = include_str!("data/townships.tsv");

/// A 6- or 9-digit region code. Whether it names a real region is known
/// (`is_known`): unknown codes are rejected by default, but a policy may
/// accept and flag them.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RegionCode(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RegionCodeError {
    #[error("must be a 6-digit county or a 9-digit township code")]
    Format,
    #[error("is not a region code of GB/T 2260")]
    Unknown,
}

impl RegionCode {
    /// A well-formed code that names a real region.
    pub fn parse(raw: &str) -> Result<Self, RegionCodeError> {
        let code = Self::parse_format(raw)?;
        if code.is_known() {
            Ok(code)
        } else {
            Err(RegionCodeError::Unknown)
        }
    }

    /// A well-formed code, known or not.
    pub fn parse_format(raw: &str) -> Result<Self, RegionCodeError> {
        let raw = raw.trim();
        if (raw.len() == 6 || raw.len() == 9) && raw.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(raw.to_string()))
        } else {
            Err(RegionCodeError::Format)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_known(&self) -> bool {
        region_name(&self.0).is_some()
    }

    /// The full name, e.g. `六安市金安区` for 341502 or `六安市金安区中市街道`.
    pub fn name(&self) -> Option<String> {
        full_name(&self.0)
    }

    /// Whether this office lies in the region given by a code prefix
    /// (`34`, `3415`, `341502`).
    pub fn is_within(&self, prefix: &RegionPrefix) -> bool {
        self.0.starts_with(prefix.as_str())
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RegionCode({})", self.0)
    }
}

impl TryFrom<String> for RegionCode {
    type Error = RegionCodeError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse_format(&value)
    }
}

impl From<RegionCode> for String {
    fn from(value: RegionCode) -> Self {
        value.0
    }
}

/// The region an administrator watches: a province (`34`), a city (`3415`)
/// or a county (`341502`) given by its code prefix.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct RegionPrefix(String);

impl RegionPrefix {
    pub fn parse(raw: &str) -> Result<Self, RegionCodeError> {
        let raw = raw.trim();
        if !matches!(raw.len(), 2 | 4 | 6 | 9) || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RegionCodeError::Format);
        }
        // A prefix names the region whose full code it abbreviates.
        let full = format!("{raw:0<6}");
        if region_name(&full).is_some() {
            Ok(Self(raw.to_string()))
        } else {
            Err(RegionCodeError::Unknown)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The region's name: `安徽省`, `六安市`, `六安市金安区`.
    pub fn name(&self) -> Option<String> {
        name_of_prefix(&self.0)
    }

    /// Whether `other` lies within this region.
    pub fn contains(&self, other: &RegionPrefix) -> bool {
        other.0.starts_with(&self.0)
    }
}

/// The name of a region given by a code prefix of 2, 4, 6 or 9 digits.
pub fn name_of_prefix(prefix: &str) -> Option<String> {
    match prefix.len() {
        2 | 4 => region_name(&format!("{prefix:0<6}")).map(str::to_string),
        _ => full_name(prefix),
    }
}

/// The county-level codes in use today under a prefix, in code order.
pub fn counties_within(prefix: &str) -> Vec<&'static str> {
    let mut codes: Vec<&'static str> = REGIONS_TSV
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            match cols.as_slice() {
                [code, _, "county", _, "current"] if code.starts_with(prefix) => Some(*code),
                _ => None,
            }
        })
        .collect();
    codes.sort_unstable();
    codes.dedup();
    codes
}

impl fmt::Display for RegionPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn table() -> &'static HashMap<&'static str, &'static str> {
    static TABLE: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut map = HashMap::with_capacity(50_000);
        // Later rows of the same code carry its newer name; keep the newest.
        for line in REGIONS_TSV.lines().skip(1) {
            let mut cols = line.split('\t');
            if let (Some(code), Some(name)) = (cols.next(), cols.next()) {
                map.insert(code, name);
            }
        }
        for line in TOWNSHIPS_TSV.lines().skip(1) {
            let mut cols = line.split('\t');
            if let (Some(code), Some(name)) = (cols.next(), cols.next()) {
                map.insert(code, name);
            }
        }
        map
    })
}

fn region_name(code: &str) -> Option<&'static str> {
    table().get(code).copied()
}

/// The name with its parents, skipping the placeholder names of the tables
/// (`市辖区`, `县`) that are not places of their own.
fn full_name(code: &str) -> Option<String> {
    let own = region_name(code)?;
    let mut parts = Vec::new();
    let (county, township) = if code.len() == 9 {
        (&code[..6], Some(own))
    } else {
        (code, None)
    };
    let province = format!("{}0000", &county[..2]);
    let city = format!("{}00", &county[..4]);
    for parent in [province.as_str(), city.as_str(), county] {
        if let Some(name) = region_name(parent)
            && !matches!(
                name,
                "市辖区" | "县" | "省直辖县级行政区划" | "自治区直辖县级行政区划"
            )
            && parts.last() != Some(&name)
        {
            parts.push(name);
        }
    }
    // Only the city and below: `六安市金安区`; a province-level city keeps
    // its own name (`上海市闵行区`).
    if parts.len() > 2 && !matches!(&county[..2], "11" | "12" | "31" | "50") {
        parts.remove(0);
    }
    let mut name: String = parts.concat();
    if let Some(t) = township {
        name.push_str(t);
    }
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_codes_parse_with_names() {
        let c = RegionCode::parse("341502").unwrap();
        assert_eq!(c.name().as_deref(), Some("六安市金安区"));
        let c = RegionCode::parse("310112").unwrap();
        assert_eq!(c.name().as_deref(), Some("上海市闵行区"));
        let c = RegionCode::parse("341502001").unwrap();
        assert_eq!(c.name().as_deref(), Some("六安市金安区中市街道"));
        assert_eq!(
            RegionCode::parse("110105").unwrap().name().as_deref(),
            Some("北京市朝阳区")
        );
    }

    #[test]
    fn historic_codes_are_real() {
        // 寿县 belonged to 六安市 until it moved to 淮南市.
        assert!(RegionCode::parse("341521").is_ok());
    }

    #[test]
    fn unknown_and_malformed_codes_are_told_apart() {
        assert_eq!(RegionCode::parse("999999"), Err(RegionCodeError::Unknown));
        assert_eq!(RegionCode::parse("34150"), Err(RegionCodeError::Format));
        assert_eq!(RegionCode::parse("34150a"), Err(RegionCodeError::Format));
        assert_eq!(RegionCode::parse(""), Err(RegionCodeError::Format));
        let c = RegionCode::parse_format("999999").unwrap();
        assert!(!c.is_known());
    }

    #[test]
    fn prefixes_name_regions() {
        let p = RegionPrefix::parse("3415").unwrap();
        assert!(RegionCode::parse("341502").unwrap().is_within(&p));
        assert!(!RegionCode::parse("310112").unwrap().is_within(&p));
        assert!(RegionPrefix::parse("34").is_ok());
        assert_eq!(RegionPrefix::parse("99"), Err(RegionCodeError::Unknown));
        assert_eq!(RegionPrefix::parse("341"), Err(RegionCodeError::Format));
    }
}
