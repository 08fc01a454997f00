//! What staff type in the search box, and the terms a customer is found by: text folded so
//! that any script matches itself and accents do not matter ("zoe" finds "Zoé", "ZOË" and
//! "zoë"), and phone numbers read as E.164.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Longest term kept, in characters: a prefix this long finds anything longer.
pub const MAX_TERM: usize = 64;

/// `text` as search compares it: compatibility-decomposed (NFKD), without combining marks,
/// lowercased, white space collapsed to single spaces and trimmed. Scripts without case or
/// marks (CJK, Arabic letters) are kept as they are.
#[must_use]
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.nfkd().filter(|c| !is_combining_mark(*c)) {
        if c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.extend(c.to_lowercase());
    }
    // Lowercasing can compose again (and ß → ss is not done by it): decompose once more.
    out.nfkd().filter(|c| !is_combining_mark(*c)).collect()
}

/// A phone number as people type it, in E.164 (`+15551234567`) when it has a country code
/// (`+…` or `00…`): spaces, dots, dashes and brackets are dropped. `None` for anything else.
#[must_use]
pub fn phone_e164(text: &str) -> Option<String> {
    let text = text.trim();
    let rest = text.strip_prefix('+').or_else(|| text.strip_prefix("00"))?;
    let mut digits = String::new();
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '.' | '-' | '(' | ')' | '/' => {}
            _ => return None,
        }
    }
    (7..=15)
        .contains(&digits.len())
        .then_some(())
        .filter(|()| !digits.starts_with('0'))
        .map(|()| format!("+{digits}"))
}

/// The digits of what was typed, when it is only a phone number without a country code
/// (`(555) 123-4567` → `5551234567`, `06 12 34 56 78` → `612345678`, its trunk prefix dropped):
/// it is matched against the ends of the numbers kept.
#[must_use]
pub fn national_digits(text: &str) -> Option<String> {
    let mut digits = String::new();
    for c in text.trim().chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '.' | '-' | '(' | ')' | '/' => {}
            _ => return None,
        }
    }
    // A trunk prefix (the 0 of 06 12 34 56 78) is not part of the number.
    let digits = digits.trim_start_matches('0');
    (6..=15).contains(&digits.len()).then(|| digits.to_owned())
}

fn truncated(term: &str) -> String {
    term.chars().take(MAX_TERM).collect()
}

/// The terms a customer is found by, each a prefix of what may be typed: their whole name and
/// each word of it and of its hyphenated parts (folded), their e-mail whole and its local part
/// (folded), and for a phone its E.164 form and the ends of its digits from 6 on (typed without
/// a country code); at most [`MAX_TERMS`].
#[must_use]
pub fn customer_terms(name: &str, email: &str, phone: Option<&str>) -> Vec<String> {
    let mut terms = Vec::new();
    let name = fold(name);
    let email = fold(email);
    if !name.is_empty() {
        terms.push(truncated(&name));
    }
    if !email.is_empty() {
        terms.push(truncated(&email));
        if let Some((local, _)) = email.split_once('@') {
            terms.push(truncated(local));
        }
    }
    if let Some(e164) = phone.and_then(phone_e164) {
        terms.push(e164.clone());
        let digits = &e164[1..];
        for start in 1..digits.len().saturating_sub(5) {
            terms.push(digits[start..].to_owned());
        }
    }
    // Each word, and each part of a hyphenated one (Martin-Dubois: martin, dubois).
    for word in name.split(' ') {
        terms.push(truncated(word));
        terms.extend(
            word.split(['-', '\''])
                .skip(1)
                .filter(|w| !w.is_empty())
                .map(truncated),
        );
    }
    // The whole name, the e-mail and the phone first; each once; a long name's words last.
    terms.retain(|t| !t.is_empty());
    let mut kept: Vec<String> = Vec::new();
    for t in terms {
        if !kept.contains(&t) {
            kept.push(t);
        }
    }
    kept.truncate(MAX_TERMS);
    kept
}

/// Most terms one customer is found by (a name of many words keeps its first ones).
pub const MAX_TERMS: usize = 32;

/// What was typed, as the prefix the terms are searched by: an E.164 number for a phone with
/// a country code, its digits for one without, otherwise the folded text.
#[must_use]
pub fn query_term(text: &str) -> String {
    phone_e164(text)
        .or_else(|| national_digits(text))
        .unwrap_or_else(|| truncated(&fold(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accents_case_and_width_do_not_matter_and_every_script_matches_itself() {
        assert_eq!(fold("Zoé"), "zoe");
        assert_eq!(fold("ZOË  Ångström"), "zoe angstrom");
        assert_eq!(fold("  Łukasiewicz "), "łukasiewicz");
        assert_eq!(fold("ＡＢＣ"), "abc", "full-width letters read as ASCII");
        assert_eq!(fold("山田 太郎"), "山田 太郎");
        assert_eq!(fold("محمد"), "محمد");
        assert_eq!(fold("Ἀθηνᾶ"), "αθηνα");
        assert_eq!(fold("Straße"), "straße");
        assert_eq!(fold("Ana 🌻 Pérez"), "ana 🌻 perez");
    }

    #[test]
    fn phones_read_as_e164_or_as_national_digits() {
        assert_eq!(
            phone_e164("+1 (555) 123-4567").as_deref(),
            Some("+15551234567")
        );
        assert_eq!(
            phone_e164("0049 30 1234567").as_deref(),
            Some("+49301234567")
        );
        assert_eq!(phone_e164("+0 555"), None);
        assert_eq!(phone_e164("555 1234"), None);
        assert_eq!(phone_e164("+1 555 abc"), None);
        assert_eq!(
            national_digits("(555) 123-4567").as_deref(),
            Some("5551234567")
        );
        assert_eq!(national_digits("Zoé"), None);
        assert_eq!(
            national_digits("06 12 34 56 78").as_deref(),
            Some("612345678")
        );
        assert_eq!(national_digits("12345"), None, "too short to be a phone");
    }

    #[test]
    fn a_customer_is_found_by_any_word_of_the_name_the_email_and_the_phone() {
        let terms = customer_terms(
            "Zoé Martin-Dubois",
            "Zoe.M@Example.com",
            Some("+33 6 12 34 56 78"),
        );
        for typed in [
            "zoe",
            "Zoé",
            "martin",
            "MARTIN-DU",
            "zoe.m@example",
            "zoe.m",
            "+33612345678",
            "0612345678",
            "612345678",
            "06 12 34 56 78",
        ] {
            let q = query_term(typed);
            assert!(
                terms.iter().any(|t| t.starts_with(q.as_str())),
                "{typed:?} ({q:?}) finds nothing in {terms:?}"
            );
        }
        assert!(!terms.iter().any(|t| t.starts_with("dupont")));
        let many: String = (0..150).map(|i| format!("w{i} ")).collect();
        let terms_of_many = customer_terms(&many, "many@example.com", None);
        assert_eq!(terms_of_many.len(), MAX_TERMS);
        assert!(
            terms_of_many.contains(&"many@example.com".to_owned()),
            "the e-mail is kept"
        );
        let cjk = customer_terms("山田 太郎", "taro@example.jp", None);
        assert!(cjk.iter().any(|t| t.starts_with("山田")));
        assert!(cjk.iter().any(|t| t.starts_with("太郎")));
    }
}

/// The start of an order id as staff type it, in the form ids are written: lowercase
/// hexadecimal with the dashes where they fall (`0196ab`, `0196AB12-3`, or the whole id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderIdPrefix {
    dashed: String,
}

impl OrderIdPrefix {
    /// The prefix `text` is, if it reads as the start of an order id of at least `min` hex
    /// digits; dashes may be left out (`0196ab123` reads as `0196ab12-3`).
    #[must_use]
    pub fn parse(text: &str, min: usize) -> Option<OrderIdPrefix> {
        let hex: String = text.trim().chars().filter(|c| *c != '-').collect();
        if hex.len() < min || hex.len() > 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        // A dash typed must fall where a UUID has one: after 8, 12, 16 or 20 hex digits.
        let mut digits = 0;
        for c in text.trim().chars() {
            if c == '-' {
                if ![8, 12, 16, 20].contains(&digits) {
                    return None;
                }
            } else {
                digits += 1;
            }
        }
        let mut dashed = String::with_capacity(36);
        for (i, c) in hex.to_ascii_lowercase().chars().enumerate() {
            if [8, 12, 16, 20].contains(&i) {
                dashed.push('-');
            }
            dashed.push(c);
        }
        Some(OrderIdPrefix { dashed })
    }

    /// As written in an id: `0196ab12-3`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.dashed
    }

    /// The lowest and the highest id with this prefix.
    #[must_use]
    pub fn bounds(&self) -> (uuid::Uuid, uuid::Uuid) {
        let hex: String = self.dashed.chars().filter(|c| *c != '-').collect();
        let pad = |fill: char| {
            let mut full = hex.clone();
            full.extend(std::iter::repeat_n(fill, 32 - hex.len()));
            uuid::Uuid::parse_str(&full).unwrap_or_default()
        };
        (pad('0'), pad('f'))
    }

    /// The first id string after every id with this prefix (for a range `>= prefix AND < end`).
    #[must_use]
    pub fn end(&self) -> String {
        format!("{}~", self.dashed)
    }
}

#[cfg(test)]
mod id_prefix_tests {
    use super::OrderIdPrefix;

    #[test]
    fn a_prefix_is_written_as_ids_are() {
        assert_eq!(
            OrderIdPrefix::parse("0196AB123", 4).unwrap().as_str(),
            "0196ab12-3"
        );
        assert_eq!(
            OrderIdPrefix::parse("0196ab12-3", 4).unwrap().as_str(),
            "0196ab12-3"
        );
        assert!(
            OrderIdPrefix::parse("0196-ab", 4).is_none(),
            "a dash where ids have none"
        );
        assert_eq!(
            OrderIdPrefix::parse("0196ab123456-7890", 4)
                .unwrap()
                .as_str(),
            "0196ab12-3456-7890",
            "dashes left out before one typed"
        );
        assert!(OrderIdPrefix::parse("019", 4).is_none());
        assert!(OrderIdPrefix::parse("zoe", 1).is_none());
        let (low, high) = OrderIdPrefix::parse("0196ab12-3", 4).unwrap().bounds();
        assert_eq!(low.to_string(), "0196ab12-3000-0000-0000-000000000000");
        assert_eq!(high.to_string(), "0196ab12-3fff-ffff-ffff-ffffffffffff");
        let whole = "0196ab12-3456-7890-abcd-ef0123456789";
        assert_eq!(OrderIdPrefix::parse(whole, 4).unwrap().as_str(), whole);
    }
}
