//! The queue worker: runs the saga step of each SQS message.
//!
//! SQS does the retrying: a step that fails for a transient reason leaves its message on the
//! queue, made invisible for the policy's backoff (`interval × rate^(n-1)`), and the FIFO queue
//! holds the order's later messages back meanwhile. When the message has been received more
//! times than the policy allows, the order is flagged as needing attention and the message is
//! done. Messages whose body is not a job are reported failed, so they end in the dead-letter
//! queue for an engineer.

use std::collections::HashSet;
use std::sync::Arc;

use aws_sdk_sqs::Client;
use orderly_core::saga::Saga;

use crate::process_order::Runner;
use crate::queues::JobMessage;

/// One received message.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// SQS's id, reported back when the message must come again.
    pub message_id: String,
    /// The body.
    pub body: String,
    /// How many times SQS has delivered it (1 the first time).
    pub receive_count: u32,
    /// For changing its visibility (the backoff).
    pub receipt_handle: Option<String>,
    /// Its message group (the order), to keep a failed order's later messages back.
    pub group: Option<String>,
}

/// Runs saga steps from a queue.
pub struct Worker {
    runner: Runner,
    sqs: Client,
    queue_url: String,
}

impl Worker {
    /// A worker for the queue at `queue_url` that runs the steps itself.
    #[must_use]
    pub fn new(
        saga: Arc<Saga>,
        config: &aws_config::SdkConfig,
        queue_url: impl Into<String>,
    ) -> Self {
        Self::with_runner(Runner::Local(saga), config, queue_url)
    }

    /// A worker for the queue at `queue_url` whose steps run as `runner` says.
    #[must_use]
    pub fn with_runner(
        runner: Runner,
        config: &aws_config::SdkConfig,
        queue_url: impl Into<String>,
    ) -> Self {
        Worker {
            runner,
            sqs: Client::new(config),
            queue_url: queue_url.into(),
        }
    }

    /// Handles a batch in order; returns the ids of the messages to deliver again.
    pub async fn handle(&self, deliveries: Vec<Delivery>) -> Vec<String> {
        let mut failed = Vec::new();
        let mut held_groups = HashSet::new();
        for delivery in deliveries {
            // A later message of an order whose earlier message failed must wait for it.
            if let Some(group) = &delivery.group
                && held_groups.contains(group)
            {
                failed.push(delivery.message_id);
                continue;
            }
            if !self.handle_one(&delivery).await {
                if let Some(group) = &delivery.group {
                    held_groups.insert(group.clone());
                }
                failed.push(delivery.message_id);
            }
        }
        failed
    }

    /// True when the message is done with.
    #[tracing::instrument(skip_all, fields(message_id = %delivery.message_id, receive_count = delivery.receive_count))]
    async fn handle_one(&self, delivery: &Delivery) -> bool {
        let attempts = delivery.receive_count.max(1);
        let parsed = serde_json::from_str::<JobMessage>(&delivery.body)
            .map_err(|e| e.to_string())
            .and_then(|m| {
                let job = m
                    .clone()
                    .into_job(attempts - 1)
                    .map_err(|e| e.to_string())?;
                Ok((m, job))
            });
        let (message, job) = match parsed {
            Ok(pair) => pair,
            Err(e) => {
                tracing::error!(error = %e, "not a job message; leaving it for the dead-letter queue");
                return false;
            }
        };
        let saga = match &self.runner {
            Runner::Local(saga) => saga,
            Runner::StateMachine(machine) => {
                // The machine retries and, in the end, flags the order; an error here means it
                // could not run, so SQS delivers the message again.
                return match machine.run(&message).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(error = %e, "ProcessOrder did not run; SQS will deliver the job again");
                        false
                    }
                };
            }
        };
        match saga.attempt(&job).await {
            Ok(()) => true,
            Err(error) => match saga.next_try(&job, &error) {
                (class, Some(delay)) => {
                    tracing::warn!(%error, %class, retry_in_s = delay.as_secs(), "step failed; SQS will deliver it again");
                    if let Some(receipt) = &delivery.receipt_handle {
                        let seconds =
                            i32::try_from(delay.as_secs().clamp(1, 43_200)).unwrap_or(43_200);
                        if let Err(e) = self
                            .sqs
                            .change_message_visibility()
                            .queue_url(&self.queue_url)
                            .receipt_handle(receipt)
                            .visibility_timeout(seconds)
                            .send()
                            .await
                        {
                            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(e), "could not set the backoff; the queue's visibility timeout applies");
                        }
                    }
                    false
                }
                (class, None) => {
                    let error = error.to_string();
                    tracing::error!(%error, %class, attempts, "step out of tries; order needs attention");
                    match saga.give_up(&job, attempts, error).await {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::error!(error = %e, "could not flag the order; trying again later");
                            false
                        }
                    }
                }
            },
        }
    }
}
