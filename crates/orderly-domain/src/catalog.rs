//! What a shop sells and to whom: products with their prices, customers, and stock levels.

use serde::{Deserialize, Serialize};

use crate::{Currency, CustomerId, Email, Money, Name, ProductId, Timestamp, ValueError};

/// Something the shop sells, priced in one or more currencies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    /// The merchant's id, e.g. `"001"`.
    pub id: ProductId,
    /// Shown to shoppers and staff; any script.
    pub name: Name,
    /// One price per currency, sorted by currency code, never negative.
    pub prices: Prices,
    /// False once the shop stops selling it; existing orders keep their snapshot.
    pub active: bool,
    /// Starts at 1; +1 on every change, so two concurrent edits cannot overwrite each other.
    pub version: u32,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its name, prices or status last changed.
    pub updated_at: Timestamp,
}

impl Product {
    /// The price in `currency`, if the shop set one.
    #[must_use]
    pub fn price_in(&self, currency: Currency) -> Option<Money> {
        self.prices.get(currency)
    }
}

/// A product's price list: at most one non-negative price per currency, kept sorted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Prices(Vec<Money>);

impl Prices {
    /// Builds a price list.
    ///
    /// # Errors
    /// A [`ValueError`] on `prices` if it is empty, repeats a currency or has a negative amount.
    pub fn new(mut prices: Vec<Money>) -> Result<Self, ValueError> {
        if prices.is_empty() {
            return Err(ValueError::new("prices", "needs at least one price"));
        }
        if prices.iter().any(|p| p.is_negative()) {
            return Err(ValueError::new("prices", "must not be negative"));
        }
        prices.sort_by_key(|p| p.currency());
        if prices
            .windows(2)
            .any(|w| w[0].currency() == w[1].currency())
        {
            return Err(ValueError::new("prices", "has two prices in one currency"));
        }
        Ok(Prices(prices))
    }

    /// The price in one currency.
    #[must_use]
    pub fn get(&self, currency: Currency) -> Option<Money> {
        self.0.iter().copied().find(|p| p.currency() == currency)
    }

    /// All prices, sorted by currency code.
    #[must_use]
    pub fn as_slice(&self) -> &[Money] {
        &self.0
    }
}

/// Someone who buys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    /// The shop's id for them, e.g. `"001"`.
    pub id: CustomerId,
    /// Where order mail goes.
    pub email: Email,
    /// Their name as they write it.
    pub name: Name,
    /// When they were created.
    pub created_at: Timestamp,
}

/// How much of a product is on hand: free to sell, and held for orders not yet shipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StockLevel {
    /// Units that can still be sold. Never negative.
    pub available: i64,
    /// Units held for placed orders until they ship or are released. Never negative.
    pub reserved: i64,
}

/// A recorded manual change of stock (a delivery in, a breakage out, a count correction).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StockAdjustment {
    /// The product adjusted.
    pub product_id: ProductId,
    /// Units added (positive) or removed (negative) from `available`.
    pub delta: i64,
    /// Why, in the words of whoever did it.
    pub reason: String,
    /// Who did it.
    pub actor: String,
    /// When.
    pub at: Timestamp,
}
