//! Carts: what a shopper means to buy, before it becomes an order.
//!
//! A cart holds product ids and quantities only; prices are looked up when it is shown and when
//! it is checked out, so a cart never shows a stale price. It is open until it is checked out
//! (once: it then names its order) or until it has been idle past its expiry. The availability
//! sweep may trim or remove lines whose stock ran out; each change is kept as a notice so the
//! shopper sees what changed and why.

use serde::{Deserialize, Serialize};

use crate::ids::{CartId, CustomerId, OrderId, ProductId, Quantity};
use crate::money::Currency;
use crate::time::Timestamp;

/// Most lines a cart (and so an order) may have.
pub const MAX_CART_LINES: usize = 100;

/// Most notices kept; older ones are dropped.
const MAX_NOTICES: usize = 20;

/// Where a cart is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CartStatus {
    /// Lines can be added, changed and removed.
    Open,
    /// Turned into an order; its `order_id` names it.
    CheckedOut,
    /// Idle past its expiry.
    Expired,
}

impl CartStatus {
    /// The name used in the API.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            CartStatus::Open => "open",
            CartStatus::CheckedOut => "checkedOut",
            CartStatus::Expired => "expired",
        }
    }
}

/// One product and how many.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CartLine {
    /// The product.
    pub product_id: ProductId,
    /// How many.
    pub quantity: Quantity,
}

/// What the availability sweep did to a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CartChange {
    /// The quantity was lowered to what is in stock.
    Trimmed,
    /// The line was taken out.
    Removed,
}

/// A change the shopper did not make, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CartNotice {
    /// The product.
    pub product_id: ProductId,
    /// Trimmed or removed.
    pub change: CartChange,
    /// The quantity before.
    pub from: u32,
    /// The quantity after (0 when removed).
    pub to: u32,
    /// Why, for the shopper: "only 3 left", "no longer sold".
    pub reason: String,
    /// When.
    pub at: Timestamp,
}

/// A shopper's cart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cart {
    /// Its id.
    pub id: CartId,
    /// The customer, for a signed-in shopper; a guest's cart has none until checkout.
    pub customer_id: Option<CustomerId>,
    /// SHA-256 (hex) of the secret token that opens the cart; the token is shown once.
    pub token_hash: String,
    /// Prices are shown and charged in this currency.
    pub currency: Currency,
    /// What is in it, in the order added.
    pub lines: Vec<CartLine>,
    /// Changes the sweep made, newest last.
    pub notices: Vec<CartNotice>,
    /// Open, checked out or expired.
    pub status: CartStatus,
    /// The order it became.
    pub order_id: Option<OrderId>,
    /// Created.
    pub created_at: Timestamp,
    /// Last change by the shopper.
    pub updated_at: Timestamp,
    /// When it expires unless the shopper changes it before.
    pub expires_at: Timestamp,
    /// +1 on every change.
    pub version: u32,
}

/// Why a cart cannot do what was asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CartError {
    /// The cart was checked out or expired.
    #[error("the cart is {}; start a new cart", .0.as_str())]
    NotOpen(CartStatus),
    /// Adding would exceed [`MAX_CART_LINES`].
    #[error("a cart holds at most {MAX_CART_LINES} different products")]
    TooManyLines,
    /// Adding would exceed the largest quantity of a line.
    #[error("quantity of product {0} would exceed 10000")]
    QuantityTooLarge(ProductId),
    /// The product is not in the cart.
    #[error("product {0} is not in the cart")]
    NoSuchLine(ProductId),
    /// Checking out an empty cart.
    #[error("the cart is empty; add a line first")]
    Empty,
}

impl Cart {
    /// A new, empty, open cart that expires `idle_ms` after its last change.
    #[must_use]
    pub fn open(
        id: CartId,
        customer_id: Option<CustomerId>,
        token_hash: String,
        currency: Currency,
        now: Timestamp,
        idle_ms: i64,
    ) -> Cart {
        Cart {
            id,
            customer_id,
            token_hash,
            currency,
            lines: Vec::new(),
            notices: Vec::new(),
            status: CartStatus::Open,
            order_id: None,
            created_at: now,
            updated_at: now,
            expires_at: now.plus_millis(idle_ms),
            version: 1,
        }
    }

    /// True when it is open but idle past its expiry.
    #[must_use]
    pub fn is_past_expiry(&self, now: Timestamp) -> bool {
        self.status == CartStatus::Open && now >= self.expires_at
    }

    fn check_open(&self, now: Timestamp) -> Result<(), CartError> {
        match self.status {
            CartStatus::Open if self.is_past_expiry(now) => {
                Err(CartError::NotOpen(CartStatus::Expired))
            }
            CartStatus::Open => Ok(()),
            other => Err(CartError::NotOpen(other)),
        }
    }

    fn touched(&mut self, now: Timestamp, idle_ms: i64) {
        self.updated_at = now;
        self.expires_at = now.plus_millis(idle_ms);
        self.version += 1;
    }

    /// Adds `quantity` of a product, to its line if it has one.
    ///
    /// # Errors
    /// [`CartError::NotOpen`], [`CartError::TooManyLines`], [`CartError::QuantityTooLarge`].
    pub fn add(
        &mut self,
        product_id: ProductId,
        quantity: Quantity,
        now: Timestamp,
        idle_ms: i64,
    ) -> Result<(), CartError> {
        self.check_open(now)?;
        if let Some(line) = self.lines.iter_mut().find(|l| l.product_id == product_id) {
            let sum = i64::from(line.quantity.get()) + i64::from(quantity.get());
            line.quantity =
                Quantity::new(sum).map_err(|_| CartError::QuantityTooLarge(product_id))?;
        } else {
            if self.lines.len() >= MAX_CART_LINES {
                return Err(CartError::TooManyLines);
            }
            self.lines.push(CartLine {
                product_id,
                quantity,
            });
        }
        self.touched(now, idle_ms);
        Ok(())
    }

    /// Sets a line's quantity.
    ///
    /// # Errors
    /// [`CartError::NotOpen`], [`CartError::NoSuchLine`].
    pub fn set_quantity(
        &mut self,
        product_id: &ProductId,
        quantity: Quantity,
        now: Timestamp,
        idle_ms: i64,
    ) -> Result<(), CartError> {
        self.check_open(now)?;
        let line = self
            .lines
            .iter_mut()
            .find(|l| &l.product_id == product_id)
            .ok_or_else(|| CartError::NoSuchLine(product_id.clone()))?;
        line.quantity = quantity;
        self.touched(now, idle_ms);
        Ok(())
    }

    /// Takes a line out.
    ///
    /// # Errors
    /// [`CartError::NotOpen`], [`CartError::NoSuchLine`].
    pub fn remove(
        &mut self,
        product_id: &ProductId,
        now: Timestamp,
        idle_ms: i64,
    ) -> Result<(), CartError> {
        self.check_open(now)?;
        let before = self.lines.len();
        self.lines.retain(|l| &l.product_id != product_id);
        if self.lines.len() == before {
            return Err(CartError::NoSuchLine(product_id.clone()));
        }
        self.touched(now, idle_ms);
        Ok(())
    }

    /// Lowers a line to `available` units (removing it at 0) and records why. Not the shopper's
    /// doing, so the expiry stays. Returns false if the line needed no change.
    pub fn limit_line(
        &mut self,
        product_id: &ProductId,
        available: u32,
        reason: &str,
        now: Timestamp,
    ) -> bool {
        let Some(i) = self.lines.iter().position(|l| &l.product_id == product_id) else {
            return false;
        };
        let from = self.lines[i].quantity.get();
        if from <= available {
            return false;
        }
        let change = match Quantity::new(i64::from(available)) {
            Ok(q) => {
                self.lines[i].quantity = q;
                CartChange::Trimmed
            }
            Err(_) => {
                self.lines.remove(i);
                CartChange::Removed
            }
        };
        let to = if change == CartChange::Removed {
            0
        } else {
            available
        };
        self.notices.push(CartNotice {
            product_id: product_id.clone(),
            change,
            from,
            to,
            reason: reason.to_owned(),
            at: now,
        });
        if self.notices.len() > MAX_NOTICES {
            self.notices.remove(0);
        }
        self.version += 1;
        true
    }

    /// Marks an idle cart expired.
    pub fn expire(&mut self) {
        if self.status == CartStatus::Open {
            self.status = CartStatus::Expired;
            self.version += 1;
        }
    }

    /// Checks it can become an order now.
    ///
    /// # Errors
    /// [`CartError::NotOpen`], [`CartError::Empty`].
    pub fn check_checkout(&self, now: Timestamp) -> Result<(), CartError> {
        self.check_open(now)?;
        if self.lines.is_empty() {
            return Err(CartError::Empty);
        }
        Ok(())
    }

    /// Records the order it became; it can change no more.
    pub fn checked_out(&mut self, order_id: OrderId, now: Timestamp) {
        self.status = CartStatus::CheckedOut;
        self.order_id = Some(order_id);
        self.updated_at = now;
        self.version += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn pid(id: &str) -> ProductId {
        ProductId::parse(id).unwrap()
    }

    fn qty(n: i64) -> Quantity {
        Quantity::new(n).unwrap()
    }

    fn cart() -> Cart {
        Cart::open(
            CartId::from_uuid(uuid::Uuid::nil()),
            None,
            "hash".into(),
            Currency::parse("EUR").unwrap(),
            at(0),
            1_000,
        )
    }

    #[test]
    fn adding_merges_lines_and_every_change_extends_the_expiry() {
        let mut c = cart();
        c.add(pid("001"), qty(1), at(10), 1_000).unwrap();
        c.add(pid("002"), qty(2), at(20), 1_000).unwrap();
        c.add(pid("001"), qty(3), at(30), 1_000).unwrap();
        assert_eq!(c.lines.len(), 2);
        assert_eq!(c.lines[0].quantity.get(), 4);
        assert_eq!(c.expires_at, at(1_030));
        c.set_quantity(&pid("002"), qty(5), at(40), 1_000).unwrap();
        c.remove(&pid("001"), at(50), 1_000).unwrap();
        assert_eq!(
            c.lines,
            [CartLine {
                product_id: pid("002"),
                quantity: qty(5)
            }]
        );
        assert_eq!(c.version, 6);
        assert_eq!(
            c.remove(&pid("001"), at(60), 1_000),
            Err(CartError::NoSuchLine(pid("001")))
        );
        assert_eq!(
            c.add(pid("002"), qty(9_996), at(70), 1_000),
            Err(CartError::QuantityTooLarge(pid("002")))
        );
    }

    #[test]
    fn an_idle_cart_refuses_changes_and_a_checked_out_one_too() {
        let mut c = cart();
        assert_eq!(
            c.add(pid("001"), qty(1), at(1_000), 1_000),
            Err(CartError::NotOpen(CartStatus::Expired))
        );
        let mut c2 = cart();
        assert_eq!(c2.check_checkout(at(1)), Err(CartError::Empty));
        c2.add(pid("001"), qty(1), at(1), 1_000).unwrap();
        c2.check_checkout(at(2)).unwrap();
        c2.checked_out(OrderId::from_uuid(uuid::Uuid::nil()), at(2));
        assert_eq!(
            c2.add(pid("001"), qty(1), at(3), 1_000),
            Err(CartError::NotOpen(CartStatus::CheckedOut))
        );
        c.expire();
        assert_eq!(c.status, CartStatus::Expired);
    }

    #[test]
    fn the_sweep_trims_or_removes_and_says_why() {
        let mut c = cart();
        c.add(pid("001"), qty(5), at(1), 1_000).unwrap();
        c.add(pid("002"), qty(2), at(1), 1_000).unwrap();
        let expires = c.expires_at;
        assert!(c.limit_line(&pid("001"), 3, "only 3 left", at(5)));
        assert!(c.limit_line(&pid("002"), 0, "sold out", at(5)));
        assert!(!c.limit_line(&pid("001"), 3, "only 3 left", at(6)));
        assert_eq!(c.lines.len(), 1);
        assert_eq!(c.lines[0].quantity.get(), 3);
        assert_eq!(c.notices.len(), 2);
        assert_eq!(
            (c.notices[0].change, c.notices[0].from, c.notices[0].to),
            (CartChange::Trimmed, 5, 3)
        );
        assert_eq!(
            (c.notices[1].change, c.notices[1].to),
            (CartChange::Removed, 0)
        );
        assert_eq!(
            c.expires_at, expires,
            "the sweep is not the shopper's activity"
        );
    }
}
