//! Who may do what to an order, decided in one place for every entry point: the REST routes,
//! the GraphQL resolvers, cart checkout, and anything built later.
//!
//! A use case that reads or changes one order takes a [`Permit`] for it, and placing an order
//! takes a [`PlacePermit`] (checking out a cart, a [`CheckoutPermit`]). Only a [`Policy`] mints
//! them, so an entry point that forgets to ask does not compile. The policy trusts the principal
//! it is built from: entry points build it only from a verified credential (the API's
//! `authenticate` layer, the panel's session), never from what a request claims. A permit is typed by what it
//! allows ([`Read`], [`Cancel`], [`Fulfil`]…): one minted to read an order cannot cancel it.
//!
//! The rules: a customer acts on their own orders; staff and API keys on anyone's, with the
//! permission the action needs. Someone else's order answers exactly as a missing one does, so
//! nobody learns what exists. Placing and checking out count against the caller's order rate
//! limit. Staff and key changes are audited ([`Policy::audit`]).
//!
//! Outside this module a permit cannot be made,
//!
//! ```compile_fail
//! use orderly_core::access::{Cancel, Permit};
//! fn forge(order: orderly_domain::Order, actor: orderly_domain::Actor) -> Permit<Cancel> {
//!     Permit { order, actor, expected: None, unlimited: true, action: std::marker::PhantomData }
//! }
//! ```
//!
//! and a permit to read an order does not cancel it:
//!
//! ```compile_fail
//! use orderly_core::access::{Permit, Read};
//! async fn cancel(orders: &orderly_core::Orders, permit: Permit<Read>) {
//!     let _ = orders.cancel(permit, None).await;
//! }
//! ```

use std::marker::PhantomData;

use orderly_auth::{Permission, Principal};
use orderly_domain::{Actor, CustomerId, Order, OrderId};

use crate::accounts::Accounts;
use crate::error::{AppError, not_found};

/// Where the policy reads the order a permit is asked for ([`crate::Orders`]).
pub trait OrderLookup {
    /// The order `id`.
    ///
    /// # Errors
    /// [`AppError::NotFound`], storage.
    fn order(&self, id: OrderId) -> impl Future<Output = Result<Order, AppError>> + Send;
}

/// What a [`Permit`] allows: the permission staff and keys need for it, and whether an order's
/// own customer may do it without one.
pub trait Action: sealed::Sealed {
    /// The permission staff and keys need.
    const PERMISSION: Permission;
    /// True if the order's customer may do it to their own order.
    const CUSTOMERS: bool;
    /// The permission that lifts the action's role limit (canceling a paid order, refunding
    /// beyond the shop's limit), if it has one: see [`Permit::unlimited`].
    const BEYOND: Option<Permission>;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! actions {
    ($($(#[$doc:meta])* $name:ident = $permission:ident, customers: $customers:literal $(, beyond: $beyond:ident)?;)*) => {
        $(
            $(#[$doc])*
            #[derive(Debug)]
            pub enum $name {}
            impl sealed::Sealed for $name {}
            impl Action for $name {
                const PERMISSION: Permission = Permission::$permission;
                const CUSTOMERS: bool = $customers;
                const BEYOND: Option<Permission> = actions!(@beyond $($beyond)?);
            }
        )*
    };
    (@beyond) => { None };
    (@beyond $beyond:ident) => { Some(Permission::$beyond) };
}

actions! {
    /// Reading an order and its history: its customer, or `orders:read`.
    Read = OrdersRead, customers: true;
    /// Reading the staff's notes on an order: `orders:read`, staff and keys only.
    ReadNotes = OrdersRead, customers: false;
    /// Canceling an order: its customer, or `orders:cancel` — with `orders:cancel-paid` for an
    /// order whose payment was captured.
    Cancel = OrdersCancel, customers: true, beyond: OrdersCancelPaid;
    /// Refunding part of a captured payment: `orders:refund`, up to the shop's refund limit;
    /// beyond it with `orders:refund-any`.
    Refund = OrdersRefund, customers: false, beyond: OrdersRefundAny;
    /// Correcting the shipping address: its customer, or `orders:edit`.
    Edit = OrdersEdit, customers: true;
    /// Writing a note: `orders:note`.
    AddNote = OrdersNote, customers: false;
    /// Running a step that gave up once more: `orders:retry`.
    Retry = OrdersRetry, customers: false;
    /// Handing a case to engineering: `orders:retry`, as for working it.
    HandOver = OrdersRetry, customers: false;
    /// Reading a case's engineering bundle and sending the case back with a resolution note:
    /// `errors:read`.
    Engineer = RawErrors, customers: false;
    /// Recording shipment and delivery: `orders:fulfil`.
    Fulfil = OrdersFulfil, customers: false;
}

/// Leave to do `A` to one order, with the order as the policy read it and the actor to record.
#[derive(Debug)]
pub struct Permit<A: Action> {
    order: Order,
    actor: Actor,
    expected: Option<u32>,
    /// The action's role limit does not hold for this caller (see [`Action::BEYOND`]).
    unlimited: bool,
    action: PhantomData<A>,
}

impl<A: Action> Permit<A> {
    /// The order as it was when the permit was given (a change reads it again).
    #[must_use]
    pub fn order(&self) -> &Order {
        &self.order
    }

    /// Its id.
    #[must_use]
    pub fn id(&self) -> OrderId {
        self.order.id
    }

    /// True if the action's role limit does not hold for the caller: the order's own customer,
    /// or staff and keys with the permission that lifts it ([`Action::BEYOND`]); always true
    /// for an action without one.
    #[must_use]
    pub fn unlimited(&self) -> bool {
        self.unlimited
    }

    /// Who acts, as the order's history names them.
    #[must_use]
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// The order.
    #[must_use]
    pub fn into_order(self) -> Order {
        self.order
    }

    /// The same leave, on condition that the order is still at `version` when the change
    /// commits — the version a form was made from, so a second post of it (a double click, a
    /// reload) changes nothing and a change made meanwhile by someone else is not overridden.
    #[must_use]
    pub fn expecting(mut self, version: u32) -> Self {
        self.expected = Some(version);
        self
    }

    /// [`AppError::Changed`] if the permit expects a version `current` (the order as the change
    /// just read it) has left. Called inside the change's commit loop: the commit is made on
    /// that read's version, so nothing can come between the check and the write.
    pub(crate) fn check_current(&self, current: &Order) -> Result<(), AppError> {
        match self.expected {
            Some(v) if v != current.version => Err(AppError::Changed(format!(
                "order {} changed since version {v} (it is at version {}); read it again and decide anew",
                current.id, current.version
            ))),
            _ => Ok(()),
        }
    }
}

/// Leave to place one order for one customer, already counted against the caller's limit.
#[derive(Debug)]
pub struct PlacePermit {
    customer: CustomerId,
    actor: Actor,
}

impl PlacePermit {
    /// The customer the order may be placed for.
    #[must_use]
    pub fn customer(&self) -> &CustomerId {
        &self.customer
    }

    /// Who places it.
    #[must_use]
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// `Ok` if the order is for the customer the permit names.
    ///
    /// # Errors
    /// [`AppError::Forbidden`] for another customer.
    pub(crate) fn check(&self, customer: &CustomerId) -> Result<(), AppError> {
        if &self.customer == customer {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "this permit places orders for customer {}, not {customer}",
                self.customer
            )))
        }
    }
}

/// Leave to check out one cart (the cart's token proves it is the caller's), already counted
/// against the caller's limit.
#[derive(Debug)]
pub struct CheckoutPermit {
    actor: Actor,
}

impl CheckoutPermit {
    /// Who checks out.
    #[must_use]
    pub fn actor(&self) -> &Actor {
        &self.actor
    }
}

/// The access rules for one caller.
#[derive(Clone, Copy, Debug)]
pub struct Policy<'a> {
    principal: &'a Principal,
    source: &'a str,
}

impl<'a> Policy<'a> {
    /// The rules for `principal`, calling from `source` (the client's address, for the guest
    /// rate limit and the audit log).
    #[must_use]
    pub fn new(principal: &'a Principal, source: &'a str) -> Self {
        Policy { principal, source }
    }

    /// How the caller is written in order histories.
    #[must_use]
    pub fn actor(&self) -> Actor {
        Actor::caller(&self.principal.actor())
    }

    /// Leave to place an order for `customer` — that customer themself, or staff and keys with
    /// `orders:place` — counted against the caller's order rate limit.
    ///
    /// # Errors
    /// 403 for another customer's order; 401/403 without the permission; 429 over the limit.
    pub fn place_for(
        &self,
        accounts: &Accounts,
        customer: &CustomerId,
    ) -> Result<PlacePermit, AppError> {
        self.may_order_for(customer)?;
        accounts.count_order(self.principal, self.source)?;
        Ok(PlacePermit {
            customer: customer.clone(),
            actor: self.actor(),
        })
    }

    /// Leave to check out a cart, counted against the caller's limit (a customer's, or for a
    /// guest their address's; staff and keys are not limited).
    ///
    /// # Errors
    /// 429 with the wait.
    pub fn check_out(&self, accounts: &Accounts) -> Result<CheckoutPermit, AppError> {
        accounts.count_order(self.principal, self.source)?;
        Ok(CheckoutPermit {
            actor: self.actor(),
        })
    }

    /// May the caller order for `customer` (opening a cart for them, say)?
    ///
    /// # Errors
    /// As [`Policy::place_for`], without the rate limit.
    pub fn may_order_for(&self, customer: &CustomerId) -> Result<(), AppError> {
        match self.principal.customer_id() {
            Some(own) if own == customer => Ok(()),
            Some(_) => Err(AppError::Forbidden(
                "customers place orders for themselves; customerId must be your own".into(),
            )),
            None => self.require(Permission::OrdersPlace).map(drop),
        }
    }

    /// Leave to do `A` to the order `id`: its customer (where `A` allows customers), or staff
    /// and keys holding `A`'s permission. Anyone else gets the same 404 as for an order that
    /// does not exist.
    ///
    /// # Errors
    /// 401/403 for callers who can hold no such right; 404 as described; storage.
    pub async fn order<A: Action>(
        &self,
        orders: &impl OrderLookup,
        id: &str,
    ) -> Result<Permit<A>, AppError> {
        let customer = A::CUSTOMERS && self.principal.customer_id().is_some();
        if !customer && !self.principal.can(A::PERMISSION) {
            return Err(denied(
                self.principal,
                &format!("this needs {}", A::PERMISSION),
            ));
        }
        let order_id = OrderId::parse(id).map_err(|_| not_found("order", id))?;
        let order = orders.order(order_id).await?;
        let theirs = A::CUSTOMERS && self.principal.customer_id() == Some(&order.customer_id);
        if theirs || self.principal.can(A::PERMISSION) {
            Ok(Permit {
                order,
                actor: self.actor(),
                expected: None,
                unlimited: theirs || A::BEYOND.is_none_or(|p| self.principal.can(p)),
                action: PhantomData,
            })
        } else {
            Err(not_found("order", id))
        }
    }

    /// The customer whose orders a listing may show: a customer sees their own only (naming
    /// another is refused); staff and keys with `orders:read` see whom they ask for, or
    /// everyone.
    ///
    /// # Errors
    /// 403 for a customer naming another customer; 401/403 without the permission.
    pub fn orders_of(&self, asked: Option<CustomerId>) -> Result<Option<CustomerId>, AppError> {
        match self.principal.customer_id() {
            Some(own) if asked.as_ref().is_some_and(|c| c != own) => Err(AppError::Forbidden(
                "customers list their own orders only".into(),
            )),
            Some(own) => Ok(Some(own.clone())),
            None => self.require(Permission::OrdersRead).map(|_| asked),
        }
    }

    /// `Ok` with the actor to record if the caller holds `permission`.
    ///
    /// # Errors
    /// 401 for anonymous callers, 403 for others.
    pub fn require(&self, permission: Permission) -> Result<Actor, AppError> {
        if self.principal.can(permission) {
            Ok(self.actor())
        } else {
            Err(denied(
                self.principal,
                &format!("this needs the {permission} permission"),
            ))
        }
    }

    /// Records a staff or key change in the audit log (a customer's own changes are in their
    /// orders' histories).
    pub async fn audit(&self, accounts: &Accounts, action: &str, target: Option<&str>, ok: bool) {
        if self.principal.is_operator() {
            accounts
                .audit(
                    self.principal.actor(),
                    action,
                    target,
                    if ok { "ok" } else { "refused" },
                    self.source,
                )
                .await;
        }
    }
}

/// 401 for anonymous callers, 403 for the others.
#[must_use]
pub fn denied(principal: &Principal, why: &str) -> AppError {
    match principal {
        Principal::Anonymous => AppError::Unauthenticated(format!(
            "{why}; send Authorization: Bearer <access token or API key> (log in at POST /v1/auth/login)"
        )),
        _ => AppError::Forbidden(format!("{why}, which you do not have")),
    }
}
