//! Opaque tokens: feed cursors and page tokens. They carry a position and a
//! tag, so a token of one kind is not taken for another.

use super::error::ApiError;

const CURSOR: &str = "c1.";
const CASES_PAGE: &str = "p1.";

fn encode(tag: &str, position: i64) -> String {
    format!("{tag}{position:x}")
}

fn decode(tag: &str, token: &str, field: &str) -> Result<i64, ApiError> {
    if token.is_empty() {
        return Ok(0);
    }
    token
        .strip_prefix(tag)
        .and_then(|hex| i64::from_str_radix(hex, 16).ok())
        .filter(|p| *p >= 0)
        .ok_or_else(|| {
            ApiError::invalid_field(
                field,
                "INVALID_TOKEN",
                "not a token this service issued; pass one back unchanged, or empty to start over",
            )
        })
}

pub fn feed_cursor(seq: i64) -> String {
    encode(CURSOR, seq)
}

pub fn parse_feed_cursor(token: &str, field: &str) -> Result<i64, ApiError> {
    decode(CURSOR, token, field)
}

pub fn cases_page(id: i64) -> String {
    encode(CASES_PAGE, id)
}

pub fn parse_cases_page(token: &str, field: &str) -> Result<i64, ApiError> {
    decode(CASES_PAGE, token, field)
}

const OBLIGATIONS_PAGE: &str = "o1.";

/// A position in a list ordered by (due time, id).
pub fn obligations_page(due_us: i64, id: i64) -> String {
    format!("{OBLIGATIONS_PAGE}{due_us}.{id:x}")
}

pub fn parse_obligations_page(token: &str, field: &str) -> Result<Option<(i64, i64)>, ApiError> {
    if token.is_empty() {
        return Ok(None);
    }
    token
        .strip_prefix(OBLIGATIONS_PAGE)
        .and_then(|rest| rest.split_once('.'))
        .and_then(|(due, id)| Some((due.parse().ok()?, i64::from_str_radix(id, 16).ok()?)))
        .map(Some)
        .ok_or_else(|| {
            ApiError::invalid_field(
                field,
                "INVALID_TOKEN",
                "not a token this service issued; pass one back unchanged, or empty to start over",
            )
        })
}

const OFFICES_PAGE: &str = "d1.";

/// A position in the office directory: after this code.
pub fn offices_page(code: &str) -> String {
    format!("{OFFICES_PAGE}{code}")
}

pub fn parse_offices_page(token: &str, field: &str) -> Result<String, ApiError> {
    if token.is_empty() {
        return Ok(String::new());
    }
    token
        .strip_prefix(OFFICES_PAGE)
        .filter(|code| {
            !code.is_empty() && code.len() <= 9 && code.bytes().all(|b| b.is_ascii_digit())
        })
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError::invalid_field(
                field,
                "INVALID_TOKEN",
                "not a token this service issued; pass one back unchanged, or empty to start over",
            )
        })
}

/// AIP-158: 0 means the default, more than the maximum means the maximum.
pub fn page_size(raw: i32, field: &str) -> Result<u32, ApiError> {
    match raw {
        0 => Ok(100),
        n if n < 0 => Err(ApiError::invalid_field(
            field,
            "NEGATIVE",
            "must not be negative",
        )),
        n => Ok((n as u32).min(500)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_are_typed() {
        assert_eq!(parse_feed_cursor(&feed_cursor(42), "c").unwrap(), 42);
        assert_eq!(parse_feed_cursor("", "c").unwrap(), 0);
        assert!(parse_feed_cursor(&cases_page(42), "c").is_err());
        assert!(parse_feed_cursor("c1.zz", "c").is_err());
        assert!(parse_feed_cursor("c1.-1", "c").is_err());
        let t = obligations_page(-5, 42);
        assert_eq!(parse_obligations_page(&t, "p").unwrap(), Some((-5, 42)));
        assert!(parse_obligations_page(&feed_cursor(1), "p").is_err());
    }

    #[test]
    fn page_sizes_follow_aip_158() {
        assert_eq!(page_size(0, "p").unwrap(), 100);
        assert_eq!(page_size(7, "p").unwrap(), 7);
        assert_eq!(page_size(10_000, "p").unwrap(), 500);
        assert!(page_size(-1, "p").is_err());
    }
}
