//! Exchange rates: prices converted from the shop's base currency into a buyer's currency.
//!
//! A rate is an exact decimal (at most 9 fraction digits), kept as an integer count of
//! billionths, so a conversion is integer arithmetic end to end:
//!
//! ```text
//! target minor units = base minor units × rate × 10^(target decimals − base decimals)
//! ```
//!
//! rounded to the target currency's minor unit, half away from zero (0.5 yen → 1 yen; USD 79.99
//! at 151.25 JPY/USD is 12 098.4875 → JPY 12098; at 0.30745 KWD/USD it is KWD 24.593).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ValueError;
use crate::money::{Currency, Money, MoneyError};
use crate::time::Timestamp;

/// Billionths in one.
const SCALE: u64 = 1_000_000_000;

/// The most decimal places a rate may have (it is kept in billionths).
pub const RATE_DECIMALS: usize = 9;

/// The largest rate accepted, in whole units: a million units of the target per unit of the
/// base.
pub const MAX_RATE_UNITS: u64 = 1_000_000;

const MAX_RATE: u64 = MAX_RATE_UNITS * SCALE;

/// Units of one currency per unit of another, exact to 9 decimal places, greater than zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    billionths: u64,
}

impl Rate {
    /// Parses a positive decimal such as `"0.92"`, `"151.25"` or `"0.30745"`.
    ///
    /// # Errors
    /// [`ValueError`] for anything else: signs, exponents, more than 9 decimals, zero, or more
    /// than 1 000 000.
    pub fn parse(text: &str) -> Result<Rate, ValueError> {
        let bad = |why: &str| ValueError::new("rate", format!("{why}, got {text:?}"));
        let (int_part, frac) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int_part.is_empty() || !digits(int_part) || !digits(frac) || text.ends_with('.') {
            return Err(bad("must be a decimal number such as \"151.25\""));
        }
        if frac.len() > RATE_DECIMALS {
            return Err(bad(&format!(
                "has more than {RATE_DECIMALS} decimal places"
            )));
        }
        let mut billionths: u64 = 0;
        let padded = frac
            .bytes()
            .chain(std::iter::repeat_n(b'0', RATE_DECIMALS - frac.len()));
        for b in int_part.bytes().chain(padded) {
            billionths = billionths
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
                .ok_or_else(|| bad(&format!("must be at most {MAX_RATE_UNITS}")))?;
        }
        if billionths == 0 {
            return Err(bad("must be greater than zero"));
        }
        if billionths > MAX_RATE {
            return Err(bad(&format!("must be at most {MAX_RATE_UNITS}")));
        }
        Ok(Rate { billionths })
    }

    /// The shortest decimal text that names this rate: `"151.25"`, `"1"`.
    #[must_use]
    pub fn to_decimal_string(self) -> String {
        let int = self.billionths / SCALE;
        let frac = self.billionths % SCALE;
        if frac == 0 {
            return int.to_string();
        }
        let frac = format!("{frac:09}");
        format!("{int}.{}", frac.trim_end_matches('0'))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_decimal_string())
    }
}

impl fmt::Debug for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rate({self})")
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_decimal_string())
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Rate::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A rate staff set: `rate` units of `to` for one unit of `from` (the shop's base currency).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeRate {
    /// The base currency.
    pub from: Currency,
    /// The buyer's currency.
    pub to: Currency,
    /// Units of `to` per unit of `from`.
    pub rate: Rate,
    /// When it was set; an order keeps the rate it was priced with.
    pub set_at: Timestamp,
}

impl ExchangeRate {
    /// Converts `amount` (in `from`) into `to`, rounded half away from zero to `to`'s minor unit.
    ///
    /// # Errors
    /// [`MoneyError::CurrencyMismatch`] if `amount` is not in `from`, [`MoneyError::Overflow`]
    /// if the result does not fit.
    pub fn convert(&self, amount: Money) -> Result<Money, MoneyError> {
        if amount.currency() != self.from {
            return Err(MoneyError::CurrencyMismatch(
                amount.currency().code(),
                self.from.code(),
            ));
        }
        let pow = |e: u8| 10_i128.pow(u32::from(e));
        let numerator = i128::from(amount.minor())
            .checked_mul(i128::from(self.rate.billionths))
            .and_then(|n| n.checked_mul(pow(self.to.exponent())))
            .ok_or(MoneyError::Overflow)?;
        let denominator = i128::from(SCALE) * pow(self.from.exponent());
        let quotient = numerator / denominator;
        let remainder = numerator % denominator;
        let rounded = if remainder.abs() * 2 >= denominator {
            quotient + numerator.signum()
        } else {
            quotient
        };
        let minor = i64::try_from(rounded).map_err(|_| MoneyError::Overflow)?;
        Ok(Money::from_minor(minor, self.to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(text: &str, code: &str) -> Money {
        Money::parse(text, Currency::parse(code).unwrap()).unwrap()
    }

    fn rate(from: &str, to: &str, rate: &str) -> ExchangeRate {
        ExchangeRate {
            from: Currency::parse(from).unwrap(),
            to: Currency::parse(to).unwrap(),
            rate: Rate::parse(rate).unwrap(),
            set_at: Timestamp::from_millis(0),
        }
    }

    #[test]
    fn conversions_round_to_the_target_currency_half_away_from_zero() {
        let cases = [
            ("79.99", "USD", "EUR", "0.92", "73.59"),     // 73.5908
            ("79.99", "USD", "JPY", "151.25", "12098"),   // 12098.4875
            ("79.99", "USD", "KWD", "0.30745", "24.593"), // 24.5928755
            ("0.01", "USD", "JPY", "50", "1"),            // 0.5 → 1
            ("0.01", "USD", "JPY", "49.999", "0"),        // 0.49999 → 0
            ("1500", "JPY", "USD", "0.0066", "9.90"),
            ("1.250", "KWD", "USD", "3.25", "4.06"), // 4.0625
            ("-0.01", "USD", "JPY", "50", "-1"),     // refund deltas round symmetrically
            ("199.99", "USD", "USD", "1", "199.99"),
        ];
        for (amount, from, to, r, want) in cases {
            let got = rate(from, to, r).convert(money(amount, from)).unwrap();
            assert_eq!(got, money(want, to), "{amount} {from} at {r} → {to}");
        }
    }

    #[test]
    fn a_price_in_another_currency_is_refused() {
        let err = rate("USD", "JPY", "150").convert(money("1.00", "EUR"));
        assert_eq!(err, Err(MoneyError::CurrencyMismatch("EUR", "USD")));
    }

    #[test]
    fn huge_amounts_overflow_instead_of_wrapping() {
        let max = Money::from_minor(i64::MAX, Currency::parse("USD").unwrap());
        assert_eq!(
            rate("USD", "KWD", "1000000").convert(max),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn rates_parse_exactly_and_print_shortest() {
        for (text, back) in [
            ("0.92", "0.92"),
            ("151.250", "151.25"),
            ("1", "1"),
            ("0.000000001", "0.000000001"),
            ("1000000", "1000000"),
        ] {
            assert_eq!(Rate::parse(text).unwrap().to_string(), back);
        }
        for bad in [
            "",
            "0",
            "0.0",
            "-1",
            "+1",
            "1e3",
            "1.",
            ".5",
            "1.0000000001",
            "1000000.1",
            "abc",
            "99999999999999999999",
        ] {
            assert!(Rate::parse(bad).is_err(), "{bad:?}");
        }
    }
}
