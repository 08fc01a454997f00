//! The steps themselves: reserving stock, charging, refunding. Each calls what it must outside
//! the commit loop of [`Saga::settle`], then commits its effect with the handled-mark.

use orderly_domain::{OrderStatus, Payment, Refund, StockEffect, Transition};

use super::{Saga, Settle, StepError, permanent, provider_failure};
use crate::commits::{order_change, stock_moves};
use crate::ports::{
    Commit, CommitError, Job, PaymentError, PaymentKey, PaymentRequest, PaymentStep,
};
use crate::retry::FailureClass;

impl Saga {
    /// OrderPlaced → reserve every line's stock at once; if any line is short, reserve nothing
    /// and try again after the next wait for short stock, or, on the last try, reject the order.
    pub(super) async fn reserve(&self, job: &Job) -> Result<(), StepError> {
        let reserved = self
            .settle(job, |mut order, stamp| {
                if order.status != OrderStatus::Placed {
                    tracing::info!(status = %order.status, "order no longer placed; nothing to reserve");
                    return Ok(Commit::default());
                }
                let expected_version = order.version;
                let event = order.apply(Transition::Reserve, stamp, None).map_err(permanent)?;
                let stock = stock_moves(&order, StockEffect::Reserve);
                Ok(order_change(order, expected_version, event, stock))
            })
            .await;
        let Err(Settle::Commit(CommitError::InsufficientStock(product))) = reserved else {
            return reserved.map_err(StepError::from);
        };
        if !self.last_try(job, FailureClass::StockShort) {
            return Err(StepError::Refused(
                FailureClass::StockShort,
                format!("not enough stock of product {product}"),
            ));
        }
        self.settle(job, |mut order, stamp| {
            if order.status != OrderStatus::Placed {
                return Ok(Commit::default());
            }
            let asked: u32 = order
                .lines
                .iter()
                .filter(|l| l.product_id == product)
                .map(|l| l.quantity.get())
                .sum();
            let expected_version = order.version;
            let reason = format!("not enough stock of product {product} ({asked} asked)");
            let event = order
                .apply(Transition::RejectOutOfStock, stamp, Some(reason))
                .map_err(permanent)?;
            Ok(order_change(order, expected_version, event, Vec::new()))
        })
        .await
        .map_err(StepError::from)
    }

    async fn call_provider<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, PaymentError>>,
    ) -> Result<T, PaymentError> {
        tokio::time::timeout(self.payment_timeout, call)
            .await
            .unwrap_or_else(|_| {
                Err(PaymentError::Transient(format!(
                    "no answer within {} ms",
                    self.payment_timeout.as_millis()
                )))
            })
    }

    /// Authorizes and captures the total for one order. Both calls carry the step's keys, so a
    /// re-run after a crash gets the first answers back instead of charging again.
    async fn charge(&self, request: &PaymentRequest) -> Result<(String, String), PaymentError> {
        let authorize = PaymentRequest {
            idempotency_key: request.idempotency_key.for_step(PaymentStep::Authorize),
            ..request.clone()
        };
        let authorization = self
            .call_provider(self.payments.authorize(&authorize))
            .await?;
        let capture = self
            .call_provider(self.payments.capture(request, &authorization))
            .await?;
        Ok((authorization, capture))
    }

    /// InventoryReserved → authorize and capture the total; a decline is tried again after the
    /// next wait for declined cards, the stock held, and on the last try rejects the order and
    /// releases the stock. If the order was canceled before the charge was recorded, whatever an
    /// earlier, interrupted run may have authorized or charged is voided.
    pub(super) async fn capture(&self, job: &Job) -> Result<(), StepError> {
        let order = self.load(job).await?;
        // After a decline the provider is asked afresh; a try after a timeout repeats the
        // last request under its key, so it never charges twice.
        let request = PaymentRequest {
            idempotency_key: PaymentKey::new(order.id, PaymentStep::Capture).nth(order.declines()),
            order_id: order.id,
            customer_id: order.customer_id.clone(),
            amount: order.total,
            payment_method: order.payment_method.clone(),
        };
        if order.payment.is_some() || order.status != OrderStatus::Reserved {
            if order.status == OrderStatus::Canceled && order.payment.is_none() {
                self.call_provider(self.payments.void(&request))
                    .await
                    .map_err(provider_failure)?;
            }
            return self
                .settle(job, |_, _| Ok(Commit::default()))
                .await
                .map_err(StepError::from);
        }
        match self.charge(&request).await {
            Ok((authorization, provider_ref)) => self
                .settle(job, |mut order, stamp| {
                    if order.payment.is_some() {
                        return Ok(Commit::default());
                    }
                    let payment = Payment {
                        provider_ref: provider_ref.clone(),
                        authorization: Some(authorization.clone()),
                        amount: request.amount,
                        captured_at: stamp.at,
                        refunds: Vec::new(),
                        refund_pending: None,
                        refund_in_flight: None,
                    };
                    let expected_version = order.version;
                    let event = if order.status == OrderStatus::Reserved {
                        order.capture(payment, stamp).map_err(permanent)?
                    } else {
                        // Canceled while the provider was charging: record the money so the
                        // cancel's refund step gives it back.
                        order.record_late_payment(payment, stamp)
                    };
                    Ok(order_change(order, expected_version, event, Vec::new()))
                })
                .await
                .map_err(StepError::from),
            Err(PaymentError::Declined(reason))
                if !self.last_try(job, FailureClass::PaymentDeclined) =>
            {
                // Whatever this request authorized before its capture was declined is released
                // before the next try asks under a new key.
                self.call_provider(self.payments.void(&request))
                    .await
                    .map_err(provider_failure)?;
                let why = format!("payment declined: {reason}");
                self.note(job, |mut order, stamp| {
                    if order.status != OrderStatus::Reserved || order.payment.is_some() {
                        return Ok(Commit::default());
                    }
                    let expected_version = order.version;
                    let event = order.record_decline(&why, stamp);
                    Ok(order_change(order, expected_version, event, Vec::new()))
                })
                .await?;
                Err(StepError::Refused(FailureClass::PaymentDeclined, why))
            }
            Err(PaymentError::Declined(reason)) => self
                .settle(job, |mut order, stamp| {
                    if order.status != OrderStatus::Reserved {
                        return Ok(Commit::default());
                    }
                    let expected_version = order.version;
                    let event = order
                        .apply(
                            Transition::DeclinePayment,
                            stamp,
                            Some(format!("payment declined: {reason}")),
                        )
                        .map_err(permanent)?;
                    let stock = stock_moves(&order, StockEffect::Release);
                    Ok(order_change(order, expected_version, event, stock))
                })
                .await
                .map_err(StepError::from),
            Err(e) => Err(provider_failure(e)),
        }
    }

    /// OrderCanceled → refund what is left of a captured payment (all of it, unless staff
    /// refunded part before); RefundRequested → refund what staff asked for and is not refunded
    /// yet. Each refund of an order has its own key (`order:{id}:refund`, then `…:refund:1`,
    /// …) and its amount is committed (`refund_in_flight`) before the provider is asked, so
    /// every retry of it — after a timeout, a crash, or staff's retry — asks for the same amount
    /// under the same key, and the provider makes it once. One run makes every refund owed.
    pub(super) async fn refund(&self, job: &Job) -> Result<(), StepError> {
        for _ in 0..MAX_REFUNDS_PER_RUN {
            let order = self.load(job).await?;
            let Some(payment) = order.payment.clone() else {
                break;
            };
            let amount = match payment.refund_in_flight {
                Some(amount) => amount,
                None => {
                    let Some(owed) = refund_owed(&order) else {
                        break;
                    };
                    // Fixed before the provider is asked; a concurrent change reads again.
                    self.note(job, |mut order, stamp| {
                        let expected_version = order.version;
                        if order
                            .payment
                            .as_ref()
                            .is_some_and(|p| p.refund_in_flight.is_some())
                            || !order.begin_refund(owed, stamp.at)
                        {
                            return Ok(Commit::default());
                        }
                        Ok(Commit {
                            order: Some(crate::ports::OrderWrite::Update {
                                order,
                                expected_version,
                            }),
                            ..Commit::default()
                        })
                    })
                    .await?;
                    continue;
                }
            };
            let nth = u32::try_from(payment.refunds.len()).unwrap_or(u32::MAX);
            let request = PaymentRequest {
                idempotency_key: PaymentKey::new(order.id, PaymentStep::Refund).nth(nth),
                order_id: order.id,
                customer_id: order.customer_id.clone(),
                amount,
                payment_method: order.payment_method.clone(),
            };
            let provider_ref = self
                .call_provider(self.payments.refund(&request, &payment.provider_ref))
                .await
                .map_err(provider_failure)?;
            self.note(job, |mut order, stamp| {
                // Recorded once: the refund this key was made for is the one in flight.
                let same = order.payment.as_ref().is_some_and(|p| {
                    p.refunds.len() == payment.refunds.len() && p.refund_in_flight == Some(amount)
                });
                if !same {
                    return Ok(Commit::default());
                }
                let expected_version = order.version;
                let refund = Refund {
                    provider_ref: provider_ref.clone(),
                    amount,
                    at: stamp.at,
                };
                let event = order.record_refund(refund, stamp);
                Ok(order_change(order, expected_version, event, Vec::new()))
            })
            .await?;
        }
        self.settle(job, |_, _| Ok(Commit::default()))
            .await
            .map_err(StepError::from)
    }
}

/// Most refunds one run of the refund step makes (a request, then a cancel's rest, …).
const MAX_REFUNDS_PER_RUN: usize = 8;

/// What the payment step owes the customer now: all that is left once the order is canceled,
/// otherwise what staff asked for and is not refunded yet.
pub(super) fn refund_owed(order: &orderly_domain::Order) -> Option<orderly_domain::Money> {
    if order.status == OrderStatus::Canceled {
        order
            .payment
            .as_ref()
            .map(orderly_domain::Payment::refundable)
            .filter(|m| m.minor() > 0)
    } else {
        order.refund_due()
    }
}
