//! `notify-worker`: the bus's notification rule delivers events here; new orders and orders
//! that need attention become alerts on the admin SNS topic.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use orderly_aws::alerts::AdminAlerts;
use orderly_domain::Event;
use orderly_lambda::{Error, batch_response, init_tracing, required};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let alerts = AdminAlerts::new(&aws, required("ORDERLY_ADMIN_TOPIC_ARN")?);
    let alerts = &alerts;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let mut failed = Vec::new();
        for message in event.payload.records {
            let id = message.message_id.clone().unwrap_or_default();
            // The body is the EventBridge envelope; the event is its `detail`.
            let parsed = message
                .body
                .as_deref()
                .and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
                .and_then(|envelope| serde_json::from_value::<Event>(envelope["detail"].clone()).ok());
            let Some(event) = parsed else {
                tracing::error!(message_id = %id, "not an Orderly event; leaving it for the dead-letter queue");
                failed.push(id);
                continue;
            };
            if let Err(e) = alerts.publish(&event).await {
                tracing::warn!(error = %e, order_id = %event.order_id, "alert not sent; SQS will deliver it again");
                failed.push(id);
            }
        }
        Ok::<_, Error>(batch_response(failed))
    }))
    .await
}
