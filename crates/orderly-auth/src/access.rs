//! Who is calling and what they may do: [`Principal`], staff [`Role`]s and the [`Permission`]s
//! they grant. Roles are fixed sets of permissions; API keys carry permissions directly as
//! scopes. Customers hold no permissions: what they may touch is decided by ownership (their
//! own orders, carts and profile), checked by the use case that loads the thing.

use std::fmt;

use orderly_domain::CustomerId;
use serde::{Deserialize, Serialize};

/// One right over the shop's data. The `as_str` names are the API-key scopes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Permission {
    /// Read any order, its events and notes; list all orders.
    OrdersRead,
    /// Place orders for any customer (a shop's own backend does this).
    OrdersPlace,
    /// Add notes to orders.
    OrdersNote,
    /// Correct the shipping address of an order not yet shipped.
    OrdersEdit,
    /// Run a stuck order's failed step again.
    OrdersRetry,
    /// Cancel an order nothing was captured for yet (and a customer's own, paid or not).
    OrdersCancel,
    /// Cancel an order whose payment was captured: it is refunded in full.
    OrdersCancelPaid,
    /// Refund part of a captured payment, up to the shop's refund limit.
    OrdersRefund,
    /// Refund beyond the shop's refund limit.
    OrdersRefundAny,
    /// Mark orders shipped and delivered.
    OrdersFulfil,
    /// See orders that need attention.
    Escalations,
    /// See raw error text of failed steps (it may quote internals).
    RawErrors,
    /// Create and change products and prices.
    CatalogWrite,
    /// Read any customer.
    CustomersRead,
    /// Create customers.
    CustomersWrite,
    /// Read stock levels and adjustments.
    InventoryRead,
    /// Adjust stock by hand.
    InventoryWrite,
    /// Set exchange rates.
    RatesWrite,
    /// Read the storage metrics.
    MetricsRead,
    /// Create, change and disable staff users.
    UsersManage,
    /// Create and revoke API keys.
    KeysManage,
    /// Read the audit log.
    AuditRead,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 22] = [
        Permission::OrdersRead,
        Permission::OrdersPlace,
        Permission::OrdersNote,
        Permission::OrdersEdit,
        Permission::OrdersRetry,
        Permission::OrdersCancel,
        Permission::OrdersCancelPaid,
        Permission::OrdersRefund,
        Permission::OrdersRefundAny,
        Permission::OrdersFulfil,
        Permission::Escalations,
        Permission::RawErrors,
        Permission::CatalogWrite,
        Permission::CustomersRead,
        Permission::CustomersWrite,
        Permission::InventoryRead,
        Permission::InventoryWrite,
        Permission::RatesWrite,
        Permission::MetricsRead,
        Permission::UsersManage,
        Permission::KeysManage,
        Permission::AuditRead,
    ];

    /// The scope name, e.g. `orders:read`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::OrdersRead => "orders:read",
            Permission::OrdersPlace => "orders:place",
            Permission::OrdersNote => "orders:note",
            Permission::OrdersEdit => "orders:edit",
            Permission::OrdersRetry => "orders:retry",
            Permission::OrdersCancel => "orders:cancel",
            Permission::OrdersCancelPaid => "orders:cancel-paid",
            Permission::OrdersRefund => "orders:refund",
            Permission::OrdersRefundAny => "orders:refund-any",
            Permission::OrdersFulfil => "orders:fulfil",
            Permission::Escalations => "escalations:read",
            Permission::RawErrors => "errors:read",
            Permission::CatalogWrite => "catalog:write",
            Permission::CustomersRead => "customers:read",
            Permission::CustomersWrite => "customers:write",
            Permission::InventoryRead => "inventory:read",
            Permission::InventoryWrite => "inventory:write",
            Permission::RatesWrite => "rates:write",
            Permission::MetricsRead => "metrics:read",
            Permission::UsersManage => "users:manage",
            Permission::KeysManage => "keys:manage",
            Permission::AuditRead => "audit:read",
        }
    }

    /// Parses a scope name.
    ///
    /// # Errors
    /// The message lists the names that exist.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|p| p.as_str()).collect();
                format!("unknown scope {text:?}; scopes are {}", names.join(", "))
            })
    }

    /// True for the scopes an API key may hold: every permission except managing users and
    /// keys, which stay with people.
    #[must_use]
    pub fn grantable_to_keys(self) -> bool {
        !matches!(self, Permission::UsersManage | Permission::KeysManage)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Permission> for String {
    fn from(p: Permission) -> Self {
        p.as_str().to_owned()
    }
}

impl TryFrom<String> for Permission {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Permission::parse(&s)
    }
}

/// A staff member's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Answers customers: reads orders, retries stuck ones, corrects addresses, adds notes,
    /// cancels orders not yet paid and refunds up to the shop's refund limit.
    Support,
    /// Runs the shop: support's rights plus canceling paid orders and refunds of any size,
    /// fulfilment, stock, catalog and exchange rates.
    Manager,
    /// Everything, including staff users, API keys and the audit log.
    Admin,
    /// Keeps the system running: reads orders and escalations with their raw errors, and the
    /// metrics; changes nothing.
    Engineer,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Support, Role::Manager, Role::Admin, Role::Engineer];

    /// The role's name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Support => "support",
            Role::Manager => "manager",
            Role::Admin => "admin",
            Role::Engineer => "engineer",
        }
    }

    /// Parses a role name.
    ///
    /// # Errors
    /// The message lists the roles.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or_else(|| {
                format!("unknown role {text:?}; roles are support, manager, admin, engineer")
            })
    }

    /// What the role may do.
    #[must_use]
    pub fn grants(self, permission: Permission) -> bool {
        use Permission as P;
        const SUPPORT: &[Permission] = &[
            P::OrdersRead,
            P::OrdersNote,
            P::OrdersEdit,
            P::OrdersRetry,
            P::OrdersCancel,
            P::OrdersRefund,
            P::Escalations,
            P::CustomersRead,
            P::InventoryRead,
        ];
        const MANAGER: &[Permission] = &[
            P::OrdersPlace,
            P::OrdersCancelPaid,
            P::OrdersRefundAny,
            P::OrdersFulfil,
            P::CatalogWrite,
            P::CustomersWrite,
            P::InventoryWrite,
            P::RatesWrite,
        ];
        const ENGINEER: &[Permission] = &[
            P::OrdersRead,
            P::Escalations,
            P::RawErrors,
            P::CustomersRead,
            P::InventoryRead,
            P::MetricsRead,
        ];
        match self {
            Role::Support => SUPPORT.contains(&permission),
            Role::Manager => SUPPORT.contains(&permission) || MANAGER.contains(&permission),
            Role::Admin => true,
            Role::Engineer => ENGINEER.contains(&permission),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The caller of one request, established by the credentials it carried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// No credentials: the public catalog, guest carts, sign-up and log-in.
    Anonymous,
    /// A signed-in customer.
    Customer {
        /// Their customer record.
        customer_id: CustomerId,
        /// The e-mail they log in with.
        email: String,
    },
    /// A staff member.
    Staff {
        /// Their user id.
        user_id: String,
        /// The e-mail they log in with.
        email: String,
        /// What they may do.
        role: Role,
    },
    /// A program calling with an API key.
    Service {
        /// The key's public id.
        key_id: String,
        /// The name it was given.
        name: String,
        /// What it may do.
        scopes: Vec<Permission>,
    },
}

impl Principal {
    /// True if the caller holds `permission` (customers and anonymous callers hold none).
    #[must_use]
    pub fn can(&self, permission: Permission) -> bool {
        match self {
            Principal::Anonymous | Principal::Customer { .. } => false,
            Principal::Staff { role, .. } => role.grants(permission),
            Principal::Service { scopes, .. } => scopes.contains(&permission),
        }
    }

    /// The customer, if the caller is one.
    #[must_use]
    pub fn customer_id(&self) -> Option<&CustomerId> {
        match self {
            Principal::Customer { customer_id, .. } => Some(customer_id),
            _ => None,
        }
    }

    /// True for staff and API keys: callers whose changes the audit log records.
    #[must_use]
    pub fn is_operator(&self) -> bool {
        matches!(self, Principal::Staff { .. } | Principal::Service { .. })
    }

    /// How the caller appears in order histories and the audit log: `customer:001`,
    /// `staff:ana@shop.example`, `key:k_…`, `anonymous`.
    #[must_use]
    pub fn actor(&self) -> String {
        match self {
            Principal::Anonymous => "anonymous".to_owned(),
            Principal::Customer { customer_id, .. } => format!("customer:{customer_id}"),
            Principal::Staff { email, .. } => format!("staff:{email}"),
            Principal::Service { key_id, .. } => format!("key:{key_id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Ok(p));
            assert!(seen.insert(p.as_str()));
        }
        assert!(Permission::parse("orders:*").is_err());
    }

    #[test]
    fn roles_nest_as_documented() {
        for p in Permission::ALL {
            if Role::Support.grants(p) {
                assert!(Role::Manager.grants(p), "{p}");
            }
            assert!(Role::Admin.grants(p), "{p}");
        }
        assert!(Role::Support.grants(Permission::OrdersCancel));
        assert!(!Role::Support.grants(Permission::OrdersCancelPaid));
        assert!(Role::Support.grants(Permission::OrdersRefund));
        assert!(!Role::Support.grants(Permission::OrdersRefundAny));
        assert!(Role::Manager.grants(Permission::OrdersCancelPaid));
        assert!(Role::Manager.grants(Permission::OrdersRefundAny));
        assert!(!Role::Manager.grants(Permission::UsersManage));
        assert!(!Role::Manager.grants(Permission::RawErrors));
        assert!(Role::Engineer.grants(Permission::RawErrors));
        assert!(!Role::Engineer.grants(Permission::OrdersCancel));
    }

    #[test]
    fn customers_and_strangers_hold_no_permission() {
        let customer = Principal::Customer {
            customer_id: CustomerId::parse("001").unwrap(),
            email: "a@b.example".into(),
        };
        for p in Permission::ALL {
            assert!(!customer.can(p));
            assert!(!Principal::Anonymous.can(p));
        }
    }
}
