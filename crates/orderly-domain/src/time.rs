//! Instants, to the millisecond, in UTC.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

/// `2026-11-22T10:15:30.120Z`: always three fractional digits, always `Z`.
const MILLIS_UTC: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// A UTC instant with millisecond precision, the same in every storage backend.
///
/// Milliseconds since the Unix epoch inside; RFC 3339 (`2026-11-22T10:15:30.123Z`) outside.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// From milliseconds since the Unix epoch.
    #[must_use]
    pub fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    /// Milliseconds since the Unix epoch.
    #[must_use]
    pub fn millis(self) -> i64 {
        self.0
    }

    /// This instant plus some milliseconds (saturating).
    #[must_use]
    pub fn plus_millis(self, ms: i64) -> Self {
        Timestamp(self.0.saturating_add(ms))
    }

    /// RFC 3339 text in UTC with exactly three fractional digits (`…:30.120Z`, never
    /// `…:30.12Z`): the shape docs/API.md promises, so clients may parse it with a fixed format.
    #[must_use]
    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|t| t.format(MILLIS_UTC).ok())
            .unwrap_or_else(|| format!("@{}ms", self.0))
    }

    /// Parses RFC 3339 text.
    ///
    /// # Errors
    /// A message if the text is not RFC 3339.
    pub fn parse_rfc3339(text: &str) -> Result<Self, String> {
        let t = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| e.to_string())?;
        let ms = t.unix_timestamp_nanos() / 1_000_000;
        i64::try_from(ms)
            .map(Timestamp)
            .map_err(|_| "out of range".to_owned())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Timestamp::parse_rfc3339(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_to_the_millisecond() {
        let t = Timestamp::from_millis(1_795_000_000_123);
        let text = t.to_rfc3339();
        assert!(text.ends_with(".123Z"), "{text}");
        assert_eq!(Timestamp::parse_rfc3339(&text).unwrap(), t);
    }

    #[test]
    fn timestamps_always_carry_three_fractional_digits() {
        for (ms, tail) in [
            (1_795_000_000_120, ":40.120Z"),
            (1_795_000_000_100, ":40.100Z"),
            (1_795_000_000_000, ":40.000Z"),
            (1_795_000_000_007, ":40.007Z"),
            (0, "1970-01-01T00:00:00.000Z"),
        ] {
            let text = Timestamp::from_millis(ms).to_rfc3339();
            assert!(text.ends_with(tail), "{ms}: {text}");
            assert_eq!(text.len(), 24, "{text}");
            assert_eq!(Timestamp::parse_rfc3339(&text).unwrap().millis(), ms);
        }
    }
}
