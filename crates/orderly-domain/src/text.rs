//! Free text from people: names and addresses in any script, stored byte-exact.
//!
//! Nothing here trims, case-folds or normalises: `東京都渋谷区 🏠` comes back as the very bytes
//! that were sent. Only what can never be meant is refused: control characters and text past a
//! length limit.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::ValueError;

/// Checks a free-text field: 1..=`max` characters, not blank, no control characters.
///
/// # Errors
/// [`ValueError`] for `field`, saying what is wrong.
pub fn check_text(field: &str, text: &str, max: usize) -> Result<(), ValueError> {
    if text.trim().is_empty() {
        return Err(ValueError::new(field, "must not be empty"));
    }
    let chars = text.chars().count();
    if chars > max {
        return Err(ValueError::new(
            field,
            format!("is {chars} characters long; the limit is {max}"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(ValueError::new(
            field,
            "must not contain control characters such as newlines or tabs",
        ));
    }
    Ok(())
}

/// A person's or product's name: 1 to 200 characters of any script.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    /// Longest name in characters.
    pub const MAX: usize = 200;

    /// Accepts any script, emoji included; refuses blank text, control characters and > 200 chars.
    ///
    /// # Errors
    /// [`ValueError`] naming `field`.
    pub fn parse(field: &str, text: &str) -> Result<Self, ValueError> {
        check_text(field, text, Self::MAX)?;
        Ok(Name(text.to_owned()))
    }

    /// The name as sent.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({} chars)", self.0.chars().count())
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Name::parse("name", &String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A postal address, each part in any script, byte-exact.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Address {
    /// Who receives the parcel.
    pub name: String,
    /// Street and number.
    pub line1: String,
    /// Flat, floor, building; optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    /// City or town.
    pub city: String,
    /// State, prefecture or province; optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Postal code as written locally; optional (not every country has one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2 country code, e.g. `JP`.
    pub country: String,
}

impl Address {
    /// The address on one line, parts joined by commas, as a person writes it on a label.
    #[must_use]
    pub fn one_line(&self) -> String {
        let mut parts = vec![self.name.as_str(), self.line1.as_str()];
        parts.extend(self.line2.as_deref());
        parts.push(self.city.as_str());
        parts.extend(self.region.as_deref());
        parts.extend(self.postal_code.as_deref());
        parts.push(self.country.as_str());
        parts.join(", ")
    }

    /// Longest address line in characters.
    pub const MAX_LINE: usize = 200;

    /// Checks every part; returns all problems at once, each with its field name.
    ///
    /// # Errors
    /// One [`ValueError`] per bad field.
    pub fn validate(&self) -> Result<(), Vec<ValueError>> {
        let mut errors = Vec::new();
        let mut check = |field: &str, value: &str| {
            if let Err(e) = check_text(field, value, Self::MAX_LINE) {
                errors.push(e);
            }
        };
        check("name", &self.name);
        check("line1", &self.line1);
        check("city", &self.city);
        for (field, value) in [
            ("line2", &self.line2),
            ("region", &self.region),
            ("postalCode", &self.postal_code),
        ] {
            if let Some(v) = value {
                check(field, v);
            }
        }
        if !(self.country.len() == 2 && self.country.bytes().all(|b| b.is_ascii_uppercase())) {
            errors.push(ValueError::new(
                "country",
                "must be an ISO 3166-1 alpha-2 code in capitals, e.g. JP, SA, CH",
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

impl fmt::Debug for Address {
    // Personal data never reaches a log in full.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address(country={})", self.country)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_any_script_round_trip_byte_exact() {
        for text in [
            "東京都渋谷区 🏠",
            "شارع الملك فهد",
            "Zürich",
            "👩\u{200d}👩\u{200d}👧",
            "  spaced  ",
        ] {
            let name = Name::parse("name", text).unwrap();
            assert_eq!(name.as_str().as_bytes(), text.as_bytes());
            let json = serde_json::to_string(&name).unwrap();
            let back: Name = serde_json::from_str(&json).unwrap();
            assert_eq!(back.as_str().as_bytes(), text.as_bytes());
        }
    }

    #[test]
    fn blank_control_and_overlong_text_is_refused() {
        assert!(Name::parse("name", "").is_err());
        assert!(Name::parse("name", "   ").is_err());
        assert!(Name::parse("name", "a\nb").is_err());
        assert!(Name::parse("name", &"é".repeat(201)).is_err());
        assert!(Name::parse("name", &"é".repeat(200)).is_ok());
    }

    #[test]
    fn address_validation_names_every_bad_field() {
        let address = Address {
            name: String::new(),
            line1: "x".into(),
            line2: Some("a\tb".into()),
            city: "c".into(),
            region: None,
            postal_code: None,
            country: "jp".into(),
        };
        let errors = address.validate().unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "line2", "country"]);
    }
}
