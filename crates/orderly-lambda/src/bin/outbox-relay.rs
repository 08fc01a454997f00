//! `outbox-relay`: the table's stream in, committed events to the bus and saga jobs to their
//! FIFO queues out. A failure fails the batch, which Lambda retries (sends are idempotent).

use std::collections::HashMap;

use lambda_runtime::{LambdaEvent, service_fn};
use orderly_aws::bus::EventBus;
use orderly_aws::queues::JobQueues;
use orderly_aws::relay::Relay;
use orderly_lambda::{Error, Functions, init_tracing, required};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
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
