//! Identifiers and small validated values: parse, don't validate.
//!
//! Every type here can only hold a valid value; its `parse` says what is wrong with a bad one in
//! words a caller can act on.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::ValueError;

/// Longest merchant-chosen id (product, customer).
pub const MAX_ID_LEN: usize = 64;
/// Longest e-mail address, in bytes.
pub const MAX_EMAIL_BYTES: usize = 254;
/// Smallest and largest quantity of one order line.
pub const QUANTITY_RANGE: std::ops::RangeInclusive<u32> = 1..=10_000;

macro_rules! merchant_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Accepts 1 to 64 ASCII letters, digits, `-`, `_`, `.` or `:`.
            ///
            /// # Errors
            /// [`ValueError`] naming what is wrong.
            pub fn parse(text: &str) -> Result<Self, ValueError> {
                parse_merchant_id(text, $what).map(|s| $name(s))
            }

            /// The id as text.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

fn parse_merchant_id(text: &str, what: &'static str) -> Result<String, ValueError> {
    if text.is_empty() {
        return Err(ValueError::new(what, "must not be empty"));
    }
    if text.len() > MAX_ID_LEN {
        return Err(ValueError::new(
            what,
            format!(
                "is {} characters long; the limit is {MAX_ID_LEN}",
                text.chars().count()
            ),
        ));
    }
    if !text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    {
        return Err(ValueError::new(
            what,
            "may contain only ASCII letters, digits, '-', '_', '.' and ':'",
        ));
    }
    Ok(text.to_owned())
}

merchant_id!(
    /// A product id chosen by the merchant, such as the reference catalog's `"001"`.
    ProductId,
    "productId"
);
merchant_id!(
    /// A customer id chosen by the shop, such as the reference customers' `"001"`.
    CustomerId,
    "customerId"
);

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps a UUID made by the id generator.
            #[must_use]
            pub fn from_uuid(id: Uuid) -> Self {
                $name(id)
            }

            /// Parses the hyphenated UUID form.
            ///
            /// # Errors
            /// [`ValueError`] if the text is not a UUID.
            pub fn parse(text: &str) -> Result<Self, ValueError> {
                Uuid::try_parse(text)
                    .map($name)
                    .map_err(|_| ValueError::new($what, "is not a valid id (a UUID such as 0193a5c4-…)"))
            }

            /// The UUID.
            #[must_use]
            pub fn uuid(self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&self.0.hyphenated())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

uuid_id!(
    /// An order's id: a time-ordered UUID (v7) made by Orderly.
    OrderId,
    "orderId"
);
uuid_id!(
    /// An event's id, used by consumers to recognise a redelivery.
    EventId,
    "eventId"
);
uuid_id!(
    /// A cart's id: a random UUID (v4), so that one cart's id says nothing about another's.
    CartId,
    "cartId"
);

/// How many of one product a line orders: 1 to 10 000.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize)]
#[serde(transparent)]
pub struct Quantity(u32);

impl Quantity {
    /// Accepts 1..=10000.
    ///
    /// # Errors
    /// [`ValueError`] outside that range.
    pub fn new(n: i64) -> Result<Self, ValueError> {
        u32::try_from(n)
            .ok()
            .filter(|n| QUANTITY_RANGE.contains(n))
            .map(Quantity)
            .ok_or_else(|| {
                ValueError::new(
                    "quantity",
                    format!(
                        "must be between {} and {}, got {n}",
                        QUANTITY_RANGE.start(),
                        QUANTITY_RANGE.end()
                    ),
                )
            })
    }

    /// The count.
    #[must_use]
    pub fn get(self) -> u32 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Quantity::new(i64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// An e-mail address: one `@`, something on each side, no spaces, at most 254 bytes.
///
/// Deliverability is the mail system's business; this only refuses what is surely wrong.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Parses an address.
    ///
    /// # Errors
    /// [`ValueError`] saying what is wrong.
    pub fn parse(text: &str) -> Result<Self, ValueError> {
        let invalid = || ValueError::new("email", "is not an e-mail address like name@example.com");
        if text.len() > MAX_EMAIL_BYTES {
            return Err(ValueError::new(
                "email",
                format!("is longer than {MAX_EMAIL_BYTES} bytes"),
            ));
        }
        let (local, domain) = text.split_once('@').ok_or_else(invalid)?;
        if local.is_empty()
            || domain.is_empty()
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || text.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid());
        }
        Ok(Email(text.to_owned()))
    }

    /// The address.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Email {
    // Personal data: keep the domain, hide the person.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let domain = self.0.split_once('@').map_or("", |(_, d)| d);
        write!(f, "Email(***@{domain})")
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Email::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merchant_ids_accept_the_reference_ids_and_refuse_junk() {
        assert_eq!(ProductId::parse("001").unwrap().as_str(), "001");
        assert!(ProductId::parse("sku-42_a.b:c").is_ok());
        assert!(ProductId::parse("").is_err());
        assert!(ProductId::parse("a b").is_err());
        assert!(ProductId::parse("é").is_err());
        assert!(ProductId::parse(&"x".repeat(65)).is_err());
        assert!(ProductId::parse(&"x".repeat(64)).is_ok());
    }

    #[test]
    fn quantity_is_one_to_ten_thousand() {
        assert!(Quantity::new(0).is_err());
        assert!(Quantity::new(-1).is_err());
        assert!(Quantity::new(10_001).is_err());
        assert!(Quantity::new(i64::MAX).is_err());
        assert_eq!(Quantity::new(10_000).unwrap().get(), 10_000);
    }

    #[test]
    fn emails_need_a_local_part_and_a_dotted_domain() {
        assert!(Email::parse("alice.johnson@example.com").is_ok());
        assert!(Email::parse("δοκιμή@παράδειγμα.δοκιμή").is_ok());
        for bad in [
            "",
            "alice",
            "@example.com",
            "a@",
            "a@b",
            "a b@c.d",
            "a@@c.d",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            format!("{:?}", Email::parse("a@b.c").unwrap()),
            "Email(***@b.c)"
        );
    }

    #[test]
    fn order_ids_round_trip_as_hyphenated_uuids() {
        let id = OrderId::parse("0193a5c4-7d2e-7b3a-9c1d-2e3f4a5b6c7d").unwrap();
        assert_eq!(id.to_string(), "0193a5c4-7d2e-7b3a-9c1d-2e3f4a5b6c7d");
        assert!(OrderId::parse("not-an-id").is_err());
    }
}
