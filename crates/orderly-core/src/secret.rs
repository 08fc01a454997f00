//! A value that must never reach a log: API keys, webhook secrets, passwords.

use std::fmt;

/// A secret string. `Debug` and `Display` print `****` (with the last four characters for
/// keys long enough to be told apart), so logging a config or an error never leaks it; the
/// value itself is only reachable through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must send it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True if empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `****` plus the last four characters of a value longer than 16, to tell keys apart.
    #[must_use]
    pub fn masked(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() > 16 {
            let tail: String = chars[chars.len() - 4..].iter().collect();
            format!("****{tail}")
        } else {
            "****".to_owned()
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.masked())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let key = Secret::new("sk_test_51Hx0000000000000000abcd");
        assert_eq!(format!("{key}"), "****abcd");
        assert_eq!(format!("{key:?}"), "Secret(****abcd)");
        assert_eq!(format!("{:?}", Secret::new("short")), "Secret(****)");
        assert_eq!(key.expose(), "sk_test_51Hx0000000000000000abcd");
    }
}
