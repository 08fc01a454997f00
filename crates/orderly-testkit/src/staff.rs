//! A member of staff who acts on orders the way every entry point does: by asking the access
//! policy for a permit first. Tests of the use cases use it instead of a back door.

use orderly_auth::{Principal, Role};
use orderly_core::access::{Action, Permit, Policy};
use orderly_core::accounts::{Accounts, AuthSettings};
use orderly_core::{AppError, Application, IdempotencyKey, Orderly, PlaceOrder, Placed};
use orderly_domain::OrderId;

/// A member of staff (an admin unless told otherwise), and the accounts that count their
/// orders.
pub struct Staff {
    principal: Principal,
    accounts: Accounts,
}

impl Staff {
    /// An admin (`sam@shop.example`) of the application `wiring` builds.
    ///
    /// # Errors
    /// If the accounts do not open.
    pub async fn admin(wiring: &Application) -> Result<Staff, AppError> {
        Staff::with_role(wiring, Role::Admin).await
    }

    /// A member of staff in `role` (`sam@shop.example`) of the application `wiring` builds.
    ///
    /// # Errors
    /// If the accounts do not open.
    pub async fn with_role(wiring: &Application, role: Role) -> Result<Staff, AppError> {
        Ok(Staff {
            principal: Principal::Staff {
                user_id: "sam".into(),
                email: "sam@shop.example".into(),
                role,
            },
            accounts: wiring.accounts(AuthSettings::default(), None).await?,
        })
    }

    /// The rules for this member of staff.
    #[must_use]
    pub fn policy(&self) -> Policy<'_> {
        Policy::new(&self.principal, "127.0.0.1")
    }

    /// Places `request` as this member of staff.
    ///
    /// # Errors
    /// As [`orderly_core::Orders::place_order`].
    pub async fn place(
        &self,
        app: &Orderly,
        request: PlaceOrder,
        key: Option<IdempotencyKey>,
    ) -> Result<Placed, AppError> {
        let permit = self
            .policy()
            .place_for(&self.accounts, &request.customer_id)?;
        app.orders.place_order(permit, request, key).await
    }

    /// Leave to do `A` to order `id`.
    ///
    /// # Errors
    /// As [`Policy::order`].
    pub async fn permit<A: Action>(
        &self,
        app: &Orderly,
        id: OrderId,
    ) -> Result<Permit<A>, AppError> {
        self.policy().order::<A>(&app.orders, &id.to_string()).await
    }
}
