//! The six functions of the serverless runtime, all in one `bootstrap` binary: the function a
//! process runs is named by `ORDERLY_FUNCTION` (the SAM template sets it per function), so the
//! binary with the whole AWS SDK is compiled and linked once, not six times.

use std::collections::HashMap;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use orderly_aws::bus::EventBus;
use orderly_aws::process_order::{ProcessOrder, Runner, TaskInput, TaskOutput, run_task};
use orderly_aws::queues::JobQueues;
use orderly_aws::relay::Relay;
use orderly_aws::worker::Worker;
use serde_json::Value;

use crate::{Error, Functions, batch_response, deliveries, required};

/// One Lambda function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    /// `api`: the same axum router as `orderly serve`, behind API Gateway (HTTP API proxy
    /// events).
    Api,
    /// `outbox-relay`: the table's stream in, committed events to the bus and saga jobs to
    /// their FIFO queues out. A failure fails the batch, which Lambda retries (sends are
    /// idempotent).
    OutboxRelay,
    /// `inventory-worker`: reserves stock for the jobs on the inventory FIFO queue.
    InventoryWorker,
    /// `payment-worker`: hands each job on the payment FIFO queue to the `ProcessOrder` state
    /// machine and waits for it to settle, so the order's next payment job waits its turn.
    PaymentWorker,
    /// `process-order`: the task of the `ProcessOrder` state machine — runs a payment step (an
    /// error makes Step Functions retry it), or, after the machine's `Catch`, flags the order.
    ProcessOrder,
    /// `notify-worker`: runs the notify jobs of the notifier's FIFO queue — the same templates
    /// and once-per-recipient records as `orderly serve`, through SNS (staff topic, SMS) and,
    /// when `ORDERLY_SMTP_HOST` is set, SMTP. A message that keeps failing is recorded for
    /// staff; the order never waits for it.
    NotifyWorker,
}

impl Function {
    /// Every function, as the SAM template names them.
    pub const ALL: [Function; 6] = [
        Function::Api,
        Function::OutboxRelay,
        Function::InventoryWorker,
        Function::PaymentWorker,
        Function::ProcessOrder,
        Function::NotifyWorker,
    ];

    /// The name in `ORDERLY_FUNCTION`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Function::Api => "api",
            Function::OutboxRelay => "outbox-relay",
            Function::InventoryWorker => "inventory-worker",
            Function::PaymentWorker => "payment-worker",
            Function::ProcessOrder => "process-order",
            Function::NotifyWorker => "notify-worker",
        }
    }

    /// The function of this name.
    ///
    /// # Errors
    /// A message listing the names there are.
    pub fn parse(name: &str) -> Result<Function, Error> {
        Function::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| {
                let names: Vec<_> = Function::ALL.iter().map(|f| f.name()).collect();
                format!(
                    "ORDERLY_FUNCTION is {name:?}; it must be one of {}",
                    names.join(", ")
                )
                .into()
            })
    }

    /// The function named by `ORDERLY_FUNCTION`.
    ///
    /// # Errors
    /// The variable is missing or names no function.
    pub fn from_env() -> Result<Function, Error> {
        Function::parse(&required("ORDERLY_FUNCTION")?)
    }

    /// Builds the function's adapters once, then serves its events until Lambda stops the
    /// process.
    ///
    /// # Errors
    /// Missing configuration at start, or the runtime API failing.
    pub async fn run(self) -> Result<(), Error> {
        match self {
            Function::Api => api().await,
            Function::OutboxRelay => outbox_relay().await,
            Function::InventoryWorker => {
                let functions = Functions::load().await?;
                let worker = Worker::new(
                    functions.saga(),
                    &functions.aws,
                    required("ORDERLY_QUEUE_URL")?,
                );
                sqs_worker(worker).await
            }
            Function::NotifyWorker => {
                let functions = Functions::load().await?;
                let saga = functions.notifier_saga()?;
                let worker = Worker::new(saga, &functions.aws, required("ORDERLY_QUEUE_URL")?);
                sqs_worker(worker).await
            }
            Function::PaymentWorker => {
                let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                let machine = ProcessOrder::new(&aws, required("ORDERLY_PROCESS_ORDER_ARN")?);
                let worker = Worker::with_runner(
                    Runner::StateMachine(machine),
                    &aws,
                    required("ORDERLY_QUEUE_URL")?,
                );
                sqs_worker(worker).await
            }
            Function::ProcessOrder => {
                let functions = Functions::load().await?;
                let saga = functions.saga();
                let saga = &saga;
                lambda_runtime::run(service_fn(
                    move |event: LambdaEvent<TaskInput>| async move {
                        Ok::<TaskOutput, Error>(run_task(saga, event.payload).await?)
                    },
                ))
                .await
            }
        }
    }
}

async fn api() -> Result<(), Error> {
    let functions = Functions::load().await?;
    let router = orderly_api::router(functions.app(), functions.accounts().await?);
    // Rate limits and the audit log key on the client's address, which API Gateway knows.
    let router = tower::ServiceBuilder::new()
        .map_request(crate::with_client_address)
        .service(router);
    lambda_http::run(router).await
}

async fn outbox_relay() -> Result<(), Error> {
    let functions = Functions::load().await?;
    let queues = HashMap::from([
        ("inventory", required("ORDERLY_INVENTORY_QUEUE_URL")?),
        ("payment", required("ORDERLY_PAYMENT_QUEUE_URL")?),
        ("notify", required("ORDERLY_NOTIFY_QUEUE_URL")?),
    ]);
    let relay = Relay::new(
        EventBus::new(&functions.aws, required("ORDERLY_EVENT_BUS")?),
        JobQueues::new(&functions.aws, queues),
    );
    let relay = &relay;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // The stream's records as AWS sends them; only inserted items are news.
        let images: Vec<Value> = event.payload["Records"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["eventName"] == "INSERT")
            .map(|r| r["dynamodb"]["NewImage"].clone())
            .collect();
        let sent = relay.relay(&images).await?;
        tracing::info!(events = sent.events, jobs = sent.jobs, "relayed");
        Ok::<(), Error>(())
    }))
    .await
}

/// Serves a queue's batches with `worker`, reporting the messages that failed.
async fn sqs_worker(worker: Worker) -> Result<(), Error> {
    let worker = &worker;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(batch_response(
            worker.handle(deliveries(event.payload)).await,
        ))
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_is_found_by_its_name_and_a_wrong_name_is_explained() {
        for f in Function::ALL {
            assert_eq!(Function::parse(f.name()).ok(), Some(f));
        }
        let e = Function::parse("api-worker").err().map(|e| e.to_string());
        assert!(e.is_some_and(|m| m.contains("outbox-relay")));
    }
}
