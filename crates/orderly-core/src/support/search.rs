//! The customer care search box: one field finds orders by their id or its start, and customers
//! by any word of their name, their e-mail or their phone — in any script, accents aside.

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
        let mut ids: Vec<CustomerId> = Vec::new();
        if let Ok(id) = CustomerId::parse(typed) {
            ids.push(id);
        }
        for id in self.index.find(typed, MAX_FOUND).await? {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids.truncate(MAX_FOUND);
        // Terms of a customer whose creation failed point at nobody: left out here.
        let mut customers = self.customers.customers(&ids).await?;
        customers.sort_by_key(|c| ids.iter().position(|i| *i == c.id));
        found.customers = customers;
        Ok(found)
    }
}
