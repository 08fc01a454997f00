//! Refunds staff give back of a captured payment — a goodwill gesture, a missing item — and the
//! limit a role without `orders:refund-any` works within.

use orderly_domain::text::check_text;
use orderly_domain::{Currency, Money, Order, RefundRefused};

use super::Orders;
use crate::access::{Permit, Refund};
use crate::commits::{MAX_REASON, order_change};
use crate::error::AppError;

/// How much of one order's payment a caller without `orders:refund-any` may give back in all,
/// per currency; an order in a currency with no limit is refunded by someone without one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundLimits(Vec<Money>);

impl RefundLimits {
    /// 100 of the shop's base currency (100.00 USD, 100 JPY…), and none in other currencies.
    #[must_use]
    pub fn default_for(base: Currency) -> Self {
        let unit = 10_i64.pow(u32::from(base.exponent()));
        RefundLimits(vec![Money::from_minor(100 * unit, base)])
    }

    /// The limits given, one per currency.
    ///
    /// # Errors
    /// A message naming a currency given twice, or a limit below zero.
    pub fn new(limits: Vec<Money>) -> Result<Self, String> {
        for (i, m) in limits.iter().enumerate() {
            if m.minor() < 0 {
                return Err(format!("a refund limit is zero or more, got {m}"));
            }
            if limits[..i].iter().any(|o| o.currency() == m.currency()) {
                return Err(format!(
                    "the refund limit for {} is given twice",
                    m.currency().code()
                ));
            }
        }
        Ok(RefundLimits(limits))
    }

    /// Reads `100.00 USD, 90.00 EUR` (or `none`).
    ///
    /// # Errors
    /// A message naming the part that is not an amount and a currency.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() || text.eq_ignore_ascii_case("none") {
            return Ok(RefundLimits(Vec::new()));
        }
        let limits = text
            .split(',')
            .map(|part| {
                let bad = || {
                    format!(
                        "{:?} is not an amount and a currency, e.g. 100.00 USD",
                        part.trim()
                    )
                };
                let (amount, code) = part.trim().split_once(' ').ok_or_else(bad)?;
                let currency = Currency::parse(code.trim()).map_err(|_| bad())?;
                Money::parse(amount.trim(), currency).map_err(|e| format!("{}: {e}", bad()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        RefundLimits::new(limits)
    }

    /// The limit in `currency`, if there is one.
    #[must_use]
    pub fn limit(&self, currency: Currency) -> Option<Money> {
        self.0.iter().copied().find(|m| m.currency() == currency)
    }

    /// Every limit, as given.
    #[must_use]
    pub fn all(&self) -> &[Money] {
        &self.0
    }
}

impl Default for RefundLimits {
    fn default() -> Self {
        RefundLimits::default_for(Currency::USD)
    }
}

/// Refunded and asked for: what an order's refunds come to once those asked for are made.
fn refunds_held(order: &Order) -> i64 {
    order.payment.as_ref().map_or(0, |p| {
        p.refunded().minor() + p.refund_pending.map_or(0, Money::minor)
    })
}

fn refused(e: RefundRefused) -> AppError {
    match e {
        RefundRefused::NotPaid | RefundRefused::Canceled => AppError::NotNow(e.to_string()),
        RefundRefused::WrongCurrency { .. } => AppError::invalid("amount.currency", e.to_string()),
        RefundRefused::NotPositive | RefundRefused::TooMuch { .. } => {
            AppError::invalid("amount.amount", e.to_string())
        }
    }
}

impl Orders {
    /// The limit in `currency` of a role without `orders:refund-any`, if it has one there.
    #[must_use]
    pub fn refund_limit(&self, currency: Currency) -> Option<Money> {
        self.refund_limits.limit(currency)
    }

    /// The refund rules on `order`, applied: what the order refuses first (nothing captured,
    /// canceled, another currency, zero, more than is left), then the caller's limit on the
    /// refunds the order would then hold.
    fn ask(
        &self,
        permit: &Permit<Refund>,
        order: &mut Order,
        amount: Money,
        stamp: &orderly_domain::Stamp,
        reason: Option<&str>,
    ) -> Result<orderly_domain::Event, AppError> {
        let event = order
            .request_refund(amount, stamp, reason)
            .map_err(refused)?;
        if !permit.unlimited() {
            let Some(limit) = self.refund_limits.limit(order.currency) else {
                return Err(AppError::Forbidden(format!(
                    "your role has no refund limit in {}; a manager (orders:refund-any) refunds it",
                    order.currency.code()
                )));
            };
            let total = refunds_held(order);
            if total > limit.minor() {
                return Err(AppError::Forbidden(format!(
                    "your role refunds up to {limit} of one order in all (this one would bring it to {}); a manager (orders:refund-any) can refund more",
                    Money::from_minor(total, order.currency)
                )));
            }
        }
        Ok(event)
    }

    /// Whether [`Orders::refund`] would take `amount` for the permit's order as the permit read
    /// it, changing nothing: for a form's review step, which shows exactly what goes back.
    ///
    /// # Errors
    /// What [`Orders::refund`] would answer for the amount.
    pub fn check_refund(&self, permit: &Permit<Refund>, amount: Money) -> Result<(), AppError> {
        let mut order = permit.order().clone();
        let stamp = self.changes.stamp(permit.actor().clone());
        self.ask(permit, &mut order, amount, &stamp, None).map(drop)
    }

    /// Asks for `amount` of a captured payment back, for `reason`: the payment step refunds
    /// it (its own key, so never twice) and the customer is told. Never more than is left, in
    /// the order's currency. Without `orders:refund-any` the order's refunds in all stay within
    /// the shop's limit for its currency.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for an empty or long reason, another currency, zero, or more than
    /// is left; [`AppError::Forbidden`] over the caller's limit; [`AppError::NotNow`] for an
    /// order with nothing captured or canceled; [`AppError::Changed`] if the permit expects a
    /// version the order has left.
    #[tracing::instrument(skip_all, fields(order_id = %permit.id()))]
    pub async fn refund(
        &self,
        permit: Permit<Refund>,
        amount: Money,
        reason: &str,
    ) -> Result<Order, AppError> {
        if reason.trim().is_empty() {
            return Err(AppError::invalid(
                "reason",
                "say why the money goes back: a missing item, a late parcel, …",
            ));
        }
        check_text("reason", reason, MAX_REASON)?;
        let permit = &permit;
        self.changes
            .retrying(permit.id(), || async move {
                let mut order = self.order(permit.id()).await?;
                permit.check_current(&order)?;
                // What the order refuses first (another currency, zero, more than is left),
                // then the caller's limit, on the refunds the order would then hold.
                let expected_version = order.version;
                let stamp = self.changes.stamp(permit.actor().clone());
                let event = self.ask(permit, &mut order, amount, &stamp, Some(reason))?;
                Ok((
                    order_change(order.clone(), expected_version, event, Vec::new()),
                    order,
                ))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_read_per_currency() {
        let limits = RefundLimits::parse("100.00 USD, 90.00 EUR, 15000 JPY").unwrap();
        assert_eq!(
            limits.limit(Currency::parse("EUR").unwrap()),
            Some(Money::from_minor(9_000, Currency::parse("EUR").unwrap()))
        );
        assert_eq!(limits.limit(Currency::parse("GBP").unwrap()), None);
        assert!(RefundLimits::parse("none").unwrap().all().is_empty());
        assert!(RefundLimits::parse("100 dollars").is_err());
        assert!(RefundLimits::parse("1.234 USD").is_err());
        assert!(
            RefundLimits::parse("1 USD, 2 USD")
                .unwrap_err()
                .contains("twice")
        );
        assert_eq!(
            RefundLimits::default_for(Currency::parse("JPY").unwrap()).all(),
            [Money::from_minor(100, Currency::parse("JPY").unwrap())]
        );
        assert_eq!(
            RefundLimits::default().all(),
            [Money::from_minor(10_000, Currency::USD)]
        );
    }
}
