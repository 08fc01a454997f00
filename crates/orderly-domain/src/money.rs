//! Exact money: integer minor units plus an ISO 4217 currency.
//!
//! There is no float anywhere on this path. Amounts are parsed from and formatted to decimal
//! strings ("279.98"), with exactly as many fraction digits as the currency has (USD 2, JPY 0,
//! KWD 3). Arithmetic is checked: overflow and mixing currencies are errors, never wrong numbers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// ISO 4217 codes Orderly accepts, with their minor-unit exponent.
///
/// The list covers the currencies shops commonly sell in; adding one is a one-line change.
const CURRENCIES: &[(&str, u8)] = &[
    ("AED", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BRL", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("CZK", 2),
    ("DKK", 2),
    ("EGP", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("HKD", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("ISK", 0),
    ("JOD", 3),
    ("JPY", 0),
    ("KRW", 0),
    ("KWD", 3),
    ("LYD", 3),
    ("MAD", 2),
    ("MXN", 2),
    ("MYR", 2),
    ("NGN", 2),
    ("NOK", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PEN", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("SAR", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("THB", 2),
    ("TND", 3),
    ("TRY", 2),
    ("TWD", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("VND", 0),
    ("XAF", 0),
    ("XOF", 0),
    ("ZAR", 2),
];

/// An ISO 4217 currency that Orderly supports, with its number of decimal places.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    /// The three upper-case letters, e.g. `USD`.
    code: &'static str,
    /// Digits after the decimal point in the currency's minor unit (USD 2, JPY 0, KWD 3).
    exponent: u8,
}

/// Why a text is not a supported currency or amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The code is not three letters of a currency in Orderly's ISO 4217 table.
    #[error("unsupported currency {0:?}: use an ISO 4217 code such as USD, EUR, JPY or KWD")]
    UnsupportedCurrency(String),
    /// The amount text is not a plain decimal number.
    #[error(
        "{0:?} is not a decimal amount: write digits with an optional '.' and fraction, e.g. \"279.98\""
    )]
    Malformed(String),
    /// More fraction digits than the currency has.
    #[error("{currency} has {exponent} decimal place(s); {text:?} has more")]
    TooPrecise {
        /// The amount as given.
        text: String,
        /// The currency code.
        currency: &'static str,
        /// Its exponent.
        exponent: u8,
    },
    /// The amount does not fit in 64-bit minor units.
    #[error("amount out of range")]
    Overflow,
    /// Arithmetic across two currencies.
    #[error("cannot combine {0} with {1}")]
    CurrencyMismatch(&'static str, &'static str),
    /// A negative amount where only zero or more makes sense.
    #[error("amount must not be negative")]
    Negative,
}

impl Currency {
    /// Looks up an upper-case ISO 4217 code.
    ///
    /// # Errors
    /// [`MoneyError::UnsupportedCurrency`] for anything not in the table, including lower case.
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        CURRENCIES
            .iter()
            .find(|(c, _)| *c == code)
            .map(|&(code, exponent)| Currency { code, exponent })
            .ok_or_else(|| MoneyError::UnsupportedCurrency(code.chars().take(16).collect()))
    }

    /// The ISO 4217 code.
    #[must_use]
    pub fn code(self) -> &'static str {
        self.code
    }

    /// Decimal places of the minor unit.
    #[must_use]
    pub fn exponent(self) -> u8 {
        self.exponent
    }

    /// Every supported currency, in code order.
    pub fn all() -> impl Iterator<Item = Currency> {
        CURRENCIES
            .iter()
            .map(|&(code, exponent)| Currency { code, exponent })
    }

    /// The US dollar, the reference designs' currency.
    pub const USD: Currency = Currency {
        code: "USD",
        exponent: 2,
    };
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::parse(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code)
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Currency::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An exact amount of one currency, in minor units (cents, yen, fils).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    /// Minor units; may be negative only where a use case allows it (refund deltas).
    minor: i64,
    /// The currency the units are of.
    currency: Currency,
}

impl Money {
    /// Money from minor units.
    #[must_use]
    pub fn from_minor(minor: i64, currency: Currency) -> Self {
        Money { minor, currency }
    }

    /// Zero of a currency.
    #[must_use]
    pub fn zero(currency: Currency) -> Self {
        Money { minor: 0, currency }
    }

    /// Parses a decimal string such as `"279.98"`, `"1500"` or `"1.250"`.
    ///
    /// # Errors
    /// [`MoneyError::Malformed`] for anything but `-?digits(.digits)?`,
    /// [`MoneyError::TooPrecise`] for more fraction digits than the currency has, and
    /// [`MoneyError::Overflow`] beyond 64-bit minor units.
    pub fn parse(text: &str, currency: Currency) -> Result<Self, MoneyError> {
        let malformed = || MoneyError::Malformed(text.chars().take(40).collect());
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (int_part, frac_part) = match digits.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (digits, None),
        };
        let is_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !is_digits(int_part) || frac_part.is_some_and(|f| !is_digits(f)) {
            return Err(malformed());
        }
        let frac = frac_part.unwrap_or("");
        let exponent = usize::from(currency.exponent);
        if frac.len() > exponent {
            return Err(MoneyError::TooPrecise {
                text: text.chars().take(40).collect(),
                currency: currency.code,
                exponent: currency.exponent,
            });
        }
        let mut minor: i64 = 0;
        let padded = frac
            .bytes()
            .chain(std::iter::repeat_n(b'0', exponent - frac.len()));
        for b in int_part.bytes().chain(padded) {
            minor = minor
                .checked_mul(10)
                .and_then(|m| m.checked_add(i64::from(b - b'0')))
                .ok_or(MoneyError::Overflow)?;
        }
        if negative {
            minor = -minor;
        }
        Ok(Money { minor, currency })
    }

    /// Minor units.
    #[must_use]
    pub fn minor(self) -> i64 {
        self.minor
    }

    /// The currency.
    #[must_use]
    pub fn currency(self) -> Currency {
        self.currency
    }

    /// True for a negative amount.
    #[must_use]
    pub fn is_negative(self) -> bool {
        self.minor < 0
    }

    /// The decimal string with exactly the currency's decimal places: `"279.98"`, `"1500"`, `"1.250"`.
    #[must_use]
    pub fn to_decimal_string(self) -> String {
        let exponent = u32::from(self.currency.exponent);
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        if exponent == 0 {
            return format!("{sign}{abs}");
        }
        let scale = 10u64.pow(exponent);
        format!(
            "{sign}{}.{:0width$}",
            abs / scale,
            abs % scale,
            width = exponent as usize
        )
    }

    /// The amount as a receipt shows it: the currency's sign where it has a well-known one,
    /// its code otherwise, thousands grouped, exactly its decimals — `$1,279.98`, `€83.09`,
    /// `¥30,248`, `KWD 24.593`, `-£5.00`.
    #[must_use]
    pub fn to_display_string(self) -> String {
        use std::fmt::Write as _;
        let exponent = u32::from(self.currency.exponent);
        let abs = self.minor.unsigned_abs();
        let scale = 10u64.pow(exponent);
        let (int, frac) = (abs / scale, abs % scale);
        let mut out = String::with_capacity(24);
        if self.minor < 0 {
            out.push('-');
        }
        match self.currency.code {
            "USD" => out.push('$'),
            "EUR" => out.push('€'),
            "GBP" => out.push('£'),
            "JPY" => out.push('¥'),
            "CNY" => out.push_str("CN¥"),
            "KRW" => out.push('₩'),
            "INR" => out.push('₹'),
            code => {
                out.push_str(code);
                out.push(' ');
            }
        }
        // Thousands groups, most significant first.
        let mut groups = [0u64; 7];
        let (mut n, mut count) = (int, 0);
        loop {
            groups[count] = n % 1000;
            count += 1;
            n /= 1000;
            if n == 0 {
                break;
            }
        }
        let _ = write!(out, "{}", groups[count - 1]);
        for g in groups[..count - 1].iter().rev() {
            let _ = write!(out, ",{g:03}");
        }
        if exponent > 0 {
            let _ = write!(out, ".{frac:0width$}", width = exponent as usize);
        }
        out
    }

    /// Sum of two amounts of one currency.
    ///
    /// # Errors
    /// [`MoneyError::CurrencyMismatch`] or [`MoneyError::Overflow`].
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let minor = self
            .minor
            .checked_add(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money { minor, ..self })
    }

    /// Difference of two amounts of one currency.
    ///
    /// # Errors
    /// [`MoneyError::CurrencyMismatch`] or [`MoneyError::Overflow`].
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let minor = self
            .minor
            .checked_sub(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money { minor, ..self })
    }

    /// The amount times a count (a line's quantity).
    ///
    /// # Errors
    /// [`MoneyError::Overflow`].
    pub fn checked_mul(self, count: u32) -> Result<Money, MoneyError> {
        let minor = self
            .minor
            .checked_mul(i64::from(count))
            .ok_or(MoneyError::Overflow)?;
        Ok(Money { minor, ..self })
    }

    fn same_currency(self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch(
                self.currency.code,
                other.currency.code,
            ))
        }
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_decimal_string(), self.currency.code)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_decimal_string(), self.currency.code)
    }
}

/// The JSON form of money everywhere in Orderly: `{"amount":"279.98","currency":"USD"}`.
///
/// The amount is a string so that no JSON reader turns it into a float.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MoneyJson {
    amount: String,
    currency: Currency,
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        MoneyJson {
            amount: self.to_decimal_string(),
            currency: self.currency,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let json = MoneyJson::deserialize(d)?;
        Money::parse(&json.amount, json.currency).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn c(code: &str) -> Currency {
        Currency::parse(code).unwrap()
    }

    #[test]
    fn exponents_follow_iso_4217() {
        assert_eq!(c("USD").exponent(), 2);
        assert_eq!(c("JPY").exponent(), 0);
        assert_eq!(c("KWD").exponent(), 3);
    }

    #[test]
    fn unknown_and_lower_case_codes_are_refused() {
        assert!(Currency::parse("usd").is_err());
        assert!(Currency::parse("XXX").is_err());
        assert!(Currency::parse("").is_err());
    }

    #[test]
    fn the_reference_order_totals_279_98() {
        let usd = c("USD");
        let a = Money::parse("79.99", usd).unwrap();
        let b = Money::parse("199.99", usd).unwrap();
        let total = a.checked_add(b).unwrap();
        assert_eq!(total.minor(), 27998);
        assert_eq!(total.to_decimal_string(), "279.98");
    }

    #[test]
    fn parse_pads_short_fractions_and_formats_every_place() {
        assert_eq!(Money::parse("1.5", c("USD")).unwrap().minor(), 150);
        assert_eq!(
            Money::parse("1.25", c("KWD")).unwrap().to_decimal_string(),
            "1.250"
        );
        assert_eq!(
            Money::parse("1500", c("JPY")).unwrap().to_decimal_string(),
            "1500"
        );
        assert_eq!(Money::from_minor(5, c("USD")).to_decimal_string(), "0.05");
        assert_eq!(
            Money::from_minor(-5, c("KWD")).to_decimal_string(),
            "-0.005"
        );
    }

    #[test]
    fn parse_refuses_what_is_not_exact() {
        assert!(matches!(
            Money::parse("79.999", c("USD")),
            Err(MoneyError::TooPrecise { .. })
        ));
        assert!(matches!(
            Money::parse("1.5", c("JPY")),
            Err(MoneyError::TooPrecise { .. })
        ));
        for bad in ["", ".", "1.", ".5", "1e3", "1,00", " 1", "+1", "0x10", "١٢"] {
            assert!(Money::parse(bad, c("USD")).is_err(), "{bad:?} parsed");
        }
        assert_eq!(
            Money::parse("99999999999999999999", c("USD")),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn arithmetic_never_mixes_currencies() {
        let usd = Money::from_minor(100, c("USD"));
        let eur = Money::from_minor(100, c("EUR"));
        assert_eq!(
            usd.checked_add(eur),
            Err(MoneyError::CurrencyMismatch("USD", "EUR"))
        );
        assert!(usd.checked_sub(eur).is_err());
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        let big = Money::from_minor(i64::MAX, c("USD"));
        assert_eq!(
            big.checked_add(Money::from_minor(1, c("USD"))),
            Err(MoneyError::Overflow)
        );
        assert_eq!(big.checked_mul(2), Err(MoneyError::Overflow));
    }

    #[test]
    fn json_amount_is_a_string() {
        let m = Money::parse("1.250", c("KWD")).unwrap();
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"amount":"1.250","currency":"KWD"}"#);
        assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), m);
    }

    fn currency() -> impl Strategy<Value = Currency> {
        prop::sample::select(vec![c("USD"), c("JPY"), c("KWD")])
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(minor in any::<i64>().prop_filter("abs", |m| *m != i64::MIN), cur in currency()) {
            let m = Money::from_minor(minor, cur);
            prop_assert_eq!(Money::parse(&m.to_decimal_string(), cur), Ok(m));
        }

        #[test]
        fn addition_matches_integer_addition(a in -1_000_000_000i64..1_000_000_000, b in -1_000_000_000i64..1_000_000_000, cur in currency()) {
            let sum = Money::from_minor(a, cur).checked_add(Money::from_minor(b, cur)).unwrap();
            prop_assert_eq!(sum.minor(), a + b);
            let back = sum.checked_sub(Money::from_minor(b, cur)).unwrap();
            prop_assert_eq!(back.minor(), a);
        }

        #[test]
        fn formatted_amounts_have_exactly_the_currency_places(minor in 0i64..i64::MAX, cur in currency()) {
            let text = Money::from_minor(minor, cur).to_decimal_string();
            let places = text.split_once('.').map_or(0, |(_, f)| f.len());
            prop_assert_eq!(places, usize::from(cur.exponent()));
        }
    }

    #[test]
    fn receipts_show_the_currency_sign_grouping_and_its_decimals() {
        let m =
            |text: &str, code: &str| Money::parse(text, Currency::parse(code).unwrap()).unwrap();
        assert_eq!(m("1279.98", "USD").to_display_string(), "$1,279.98");
        assert_eq!(m("83.09", "EUR").to_display_string(), "€83.09");
        assert_eq!(m("30248", "JPY").to_display_string(), "¥30,248");
        assert_eq!(
            m("1234567.250", "KWD").to_display_string(),
            "KWD 1,234,567.250"
        );
        assert_eq!(m("-5.00", "GBP").to_display_string(), "-£5.00");
        assert_eq!(m("0", "KRW").to_display_string(), "₩0");
        assert_eq!(m("999", "ISK").to_display_string(), "ISK 999");
    }
}
