//! Date-time renderings of the Table API: raw UTC values, and display values
//! in the simulated user's zone and format (the trap parsers must avoid).

use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// The simulated user's zone: UTC-08:00, as a Pacific-time user would see it
/// (DST ignored).
const USER_OFFSET_HOURS: i8 = -8;

/// `YYYY-MM-DD hh:mm:ss` in UTC, no zone marker.
pub fn raw(unix: i64) -> String {
    let f = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&f).ok())
        .unwrap_or_default()
}

/// `MM/DD/YYYY hh:mm:ss AM` in the user's zone.
pub fn display(unix: i64) -> String {
    let f = format_description!("[month]/[day]/[year] [hour repr:12]:[minute]:[second] [period]");
    let offset = UtcOffset::from_hms(USER_OFFSET_HOURS, 0, 0).unwrap_or(UtcOffset::UTC);
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .map(|t| t.to_offset(offset))
        .and_then(|t| t.format(&f).ok())
        .unwrap_or_default()
}

/// Parses a raw value (`YYYY-MM-DD hh:mm:ss` or `YYYY-MM-DD`) as UTC.
pub fn parse_raw(s: &str) -> Option<i64> {
    let full = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let s = s.trim();
    if let Ok(t) = PrimitiveDateTime::parse(s, &full) {
        return Some(t.assume_utc().unix_timestamp());
    }
    let day = format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &day)
        .ok()
        .map(|d| d.midnight().assume_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_display_forms() {
        let t = 1_700_000_000; // 2023-11-14 22:13:20 UTC
        assert_eq!(raw(t), "2023-11-14 22:13:20");
        assert_eq!(display(t), "11/14/2023 02:13:20 PM");
        assert_eq!(parse_raw("2023-11-14 22:13:20"), Some(t));
        assert_eq!(parse_raw("2023-11-14"), Some(t - 22 * 3600 - 13 * 60 - 20));
        assert_eq!(parse_raw("11/14/2023"), None);
    }
}
