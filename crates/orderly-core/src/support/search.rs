//! The customer care search box: one field finds orders by their id or its start, and customers
//! by any word of their name, their e-mail or their phone — in any script, accents aside.

use orderly_domain::search::{customer_terms, national_digits, phone_e164, query_term};
use orderly_domain::{Customer, CustomerId, Order};

use super::Support;
use crate::error::AppError;
use orderly_domain::search::OrderIdPrefix;

/// Most orders and most customers one search answers.
pub const MAX_FOUND: usize = 20;

/// Fewest hex digits that read as the start of an order id (fewer would match most orders).
pub const MIN_ID_PREFIX: usize = 6;

/// What one search found.
#[derive(Clone, Debug, Default)]
pub struct Found {
    /// Orders whose id starts with what was typed, oldest first.
    pub orders: Vec<Order>,
    /// Customers found by their id, or by a word of their name, their e-mail or their phone.
    pub customers: Vec<Customer>,
}

impl Support {
    /// Everything `typed` finds: orders by id or its start (at least [`MIN_ID_PREFIX`] hex
    /// digits), a customer by their exact id, and customers whose name, a word of it, e-mail or
    /// phone starts with it, accents and case aside ("zoe" finds "Zoé"). At most
    /// [`MAX_FOUND`] of each.
    ///
    /// # Errors
    /// Storage.
    pub async fn search(&self, typed: &str) -> Result<Found, AppError> {
        let typed = typed.trim();
        let mut found = Found::default();
        if typed.is_empty() {
            return Ok(found);
        }
        if let Some(prefix) = OrderIdPrefix::parse(typed, MIN_ID_PREFIX) {
            found.orders = self
                .orders
                .with_id_prefix(&prefix, u32::try_from(MAX_FOUND).unwrap_or(20))
                .await?;
        }
        let exact = CustomerId::parse(typed).ok();
        let mut ids: Vec<CustomerId> = exact.iter().cloned().collect();
        for id in self.index.find(typed, MAX_FOUND * 2).await? {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        // A term may name nobody (a creation that failed after it) or someone whose name or
        // e-mail it no longer is (a failed creation under an id taken already): each customer
        // is kept only if what they are now still matches. A phone number is kept as given.
        let prefix = query_term(typed);
        let phone = phone_e164(typed).is_some() || national_digits(typed).is_some();
        let mut customers: Vec<Customer> = self
            .customers
            .customers(&ids)
            .await?
            .into_iter()
            .filter(|c| {
                phone
                    || exact.as_ref() == Some(&c.id)
                    || customer_terms(c.name.as_str(), c.email.as_str(), None)
                        .iter()
                        .any(|t| t.starts_with(&prefix))
            })
            .collect();
        customers.sort_by_key(|c| ids.iter().position(|i| *i == c.id));
        customers.truncate(MAX_FOUND);
        found.customers = customers;
        Ok(found)
    }
}
