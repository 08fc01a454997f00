//! The payment provider's port, and the keys that make each of its calls happen once.

use async_trait::async_trait;
use orderly_domain::{CustomerId, Money, OrderId};

/// A payment provider. Every call carries a [`PaymentKey`] made of the order and the step, so
/// a retried call never charges or refunds twice.
#[async_trait]
pub trait PaymentGateway: Send + Sync {
    /// Reserves `amount` on the customer's payment method; returns the authorization's id.
    ///
    /// # Errors
    /// [`PaymentError::Declined`] (final) or [`PaymentError::Transient`] (retry later).
    async fn authorize(&self, request: &PaymentRequest) -> Result<String, PaymentError>;
    /// Takes `amount` of an authorization; returns the id refunds refer to.
    ///
    /// # Errors
    /// As for [`PaymentGateway::authorize`].
    async fn capture(
        &self,
        request: &PaymentRequest,
        authorization: &str,
    ) -> Result<String, PaymentError>;
    /// Gives `amount` back against an earlier capture: all of it, or part.
    ///
    /// # Errors
    /// As for [`PaymentGateway::authorize`].
    async fn refund(
        &self,
        request: &PaymentRequest,
        capture_ref: &str,
    ) -> Result<String, PaymentError>;
    /// Releases whatever the order's payment step authorized or captured and Orderly never
    /// recorded (`request` is that step's capture request); does nothing if there is nothing.
    /// Used when an order is canceled while an earlier, interrupted payment step may have gone
    /// through.
    ///
    /// # Errors
    /// [`PaymentError::Transient`] (retry later).
    async fn void(&self, request: &PaymentRequest) -> Result<(), PaymentError>;
}

/// The payment calls a saga step makes, each under its own key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PaymentStep {
    /// Reserving the total on the buyer's payment method.
    Authorize,
    /// Taking the authorized total (a void of the same step releases it).
    Capture,
    /// Giving money back.
    Refund,
}

impl PaymentStep {
    /// The step's name in the key.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStep::Authorize => "authorize",
            PaymentStep::Capture => "capture",
            PaymentStep::Refund => "refund",
        }
    }
}

/// The idempotency key of a payment call: one order, one step (and, for a step made more than
/// once, which time), the same for every retry, so a retried call never charges or refunds
/// twice. Written `order:{id}:{step}` (`order:{id}:{step}:{n}` from the second time on) —
/// the text providers keep, so it never changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PaymentKey {
    order: OrderId,
    step: PaymentStep,
    nth: u32,
}

impl PaymentKey {
    /// The key of `step` for `order`.
    #[must_use]
    pub fn new(order: OrderId, step: PaymentStep) -> Self {
        PaymentKey {
            order,
            step,
            nth: 0,
        }
    }

    /// The key of the `n`th time the step is made for the order (0 is the first).
    #[must_use]
    pub fn nth(self, n: u32) -> Self {
        PaymentKey { nth: n, ..self }
    }

    /// The same order's key for another step, the same time.
    #[must_use]
    pub fn for_step(self, step: PaymentStep) -> Self {
        PaymentKey { step, ..self }
    }

    /// The order.
    #[must_use]
    pub fn order(self) -> OrderId {
        self.order
    }

    /// The step.
    #[must_use]
    pub fn step(self) -> PaymentStep {
        self.step
    }
}

impl std::fmt::Display for PaymentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "order:{}:{}", self.order, self.step.as_str())?;
        if self.nth > 0 {
            write!(f, ":{}", self.nth)?;
        }
        Ok(())
    }
}

/// A call to the payment provider.
#[derive(Clone, Debug)]
pub struct PaymentRequest {
    /// The same for every retry of one step.
    pub idempotency_key: PaymentKey,
    /// The order paid for.
    pub order_id: OrderId,
    /// The payer.
    pub customer_id: CustomerId,
    /// How much.
    pub amount: Money,
    /// The provider's token for the buyer's payment method (a Stripe `pm_…`), collected by the
    /// shop's front end: card data never reaches Orderly.
    pub payment_method: Option<String>,
}

/// Why the provider did not take the money.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// The provider said no (card declined, fraud): do not retry.
    #[error("payment declined: {0}")]
    Declined(String),
    /// The provider could not answer now: retry with backoff.
    #[error("payment provider unavailable: {0}")]
    Transient(String),
}
