//! Who may do what to an order, decided in one place for every entry point: the REST routes,
//! the GraphQL mutations and queries, and cart checkout all go through a [`Policy`].
//!
//! A customer acts on their own orders; staff and API keys on anyone's, with the permission the
//! action needs. Someone else's order answers exactly as a missing one does. Placing an order
//! counts against the caller's order rate limit. Staff and key changes are audited — the REST
//! routes by the audit layer, GraphQL mutations through [`Policy::audit`].

use orderly_auth::Permission;
use orderly_core::Orders;
use orderly_core::accounts::Accounts;
use orderly_domain::{Actor, CustomerId, Order, OrderId};

use crate::auth::{Access, Caller, denied};
use crate::problem::{ApiError, Problem};

/// The access rules for one caller.
pub struct Policy<'a> {
    caller: &'a Caller,
}

impl<'a> Policy<'a> {
    /// The rules for `caller`.
    #[must_use]
    pub fn new(caller: &'a Caller) -> Self {
        Policy { caller }
    }

    /// How the caller is written in order histories.
    #[must_use]
    pub fn actor(&self) -> Actor {
        Actor::caller(&self.caller.actor())
    }

    /// May the caller place an order for `customer` — that customer, or staff and keys with
    /// `orders:place` — and is it within their order rate limit? The actor to record if so.
    ///
    /// # Errors
    /// 403 for another customer's order; 401/403 without the permission; 429 over the limit.
    pub fn place_for(&self, accounts: &Accounts, customer: &CustomerId) -> Result<Actor, ApiError> {
        self.may_order_for(customer)?;
        self.count_order(accounts)?;
        Ok(self.actor())
    }

    /// May the caller order for `customer` (opening a cart for them, say)?
    ///
    /// # Errors
    /// As [`Policy::place_for`], without the rate limit.
    pub fn may_order_for(&self, customer: &CustomerId) -> Result<(), ApiError> {
        let principal = &self.caller.principal;
        if principal.customer_id().is_some() {
            if !self.caller.may_touch(customer, Permission::OrdersPlace) {
                return Err(orderly_core::AppError::Forbidden(
                    "customers place orders for themselves; customerId must be your own".into(),
                )
                .into());
            }
        } else {
            self.caller.require(Permission::OrdersPlace)?;
        }
        Ok(())
    }

    /// Counts one order (a checkout) against the caller's limit: a customer's, or for a guest
    /// their address's; staff and keys are not limited.
    ///
    /// # Errors
    /// 429 with the wait.
    pub fn count_order(&self, accounts: &Accounts) -> Result<(), ApiError> {
        Ok(accounts.count_order(&self.caller.principal, &self.caller.source)?)
    }

    /// The order `id` if the caller may act on it with `permission`: its customer, or staff and
    /// keys holding it. Anyone else gets the same 404 as for an order that does not exist.
    ///
    /// # Errors
    /// 401/403 for callers who can hold no such right; 404 as described; storage.
    pub async fn order(
        &self,
        orders: &Orders,
        id: &str,
        permission: Permission,
    ) -> Result<Order, ApiError> {
        let principal = &self.caller.principal;
        if !Access::customers_or(permission).allows(principal) {
            return Err(denied(principal, &format!("this needs {permission}")).into());
        }
        let missing = || ApiError::from(Problem::not_found("order", id));
        let order_id = OrderId::parse(id).map_err(|_| missing())?;
        let order = orders.order(order_id).await?;
        if self.caller.may_touch(&order.customer_id, permission) {
            Ok(order)
        } else {
            Err(missing())
        }
    }

    /// May the caller do what only staff and keys do (ship, deliver)? The actor to record.
    ///
    /// # Errors
    /// 401 for anonymous callers, 403 for others without `permission`.
    pub fn staff(&self, permission: Permission) -> Result<Actor, ApiError> {
        self.caller.require(permission)?;
        Ok(self.actor())
    }

    /// Records a staff or key change in the audit log (a customer's own changes are in their
    /// orders' histories).
    pub async fn audit(&self, accounts: &Accounts, action: &str, target: Option<&str>, ok: bool) {
        if self.caller.principal.is_operator() {
            accounts
                .audit(
                    self.caller.actor(),
                    action,
                    target,
                    if ok { "ok" } else { "refused" },
                    &self.caller.source,
                )
                .await;
        }
    }
}
