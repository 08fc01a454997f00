//! Orderly on AWS: the adapters and the logic behind the Lambda functions.
//!
//! # Layout
//! - [`AwsSettings`]: endpoint, region and credentials, loaded once per cold start.
//! - [`bus`]: publishes events to an EventBridge bus (`source`, `detail-type`, the reference
//!   payload as `detail`), ten entries per call, failed entries retried.
//! - [`queues`]: sends saga jobs to each consumer's SQS FIFO queue, `MessageGroupId` = order id
//!   (one order's steps in order), `MessageDeduplicationId` = event id and consumer.
//! - [`notify`]: [`notify::SnsNotifier`], the notifier port on SNS — staff alerts to a topic,
//!   customers' text messages to their phones.
//! - [`relay`]: the outbox relay — from the table's stream of new items, events go to the bus,
//!   jobs to their queues (notify jobs to the notifier's).
//! - [`worker`]: runs the saga step of each SQS message, reporting the messages that must be
//!   delivered again (batch item failures), with backoff as data and the "needs attention" flag
//!   when retries run out — or hands each job to the `ProcessOrder` state machine.
//! - [`process_order`]: the state machine's task and the client that runs it.
//!
//! Why jobs go to the queues from the relay, not through a bus rule: an EventBridge rule can only
//! give a FIFO target a fixed message group, and the saga needs one group per order. The bus
//! carries every event for everything else (notifications, other services), through its rules.
#![forbid(unsafe_code)]

pub mod bus;
pub mod notify;
pub mod process_order;
pub mod queues;
pub mod relay;
pub mod worker;

/// Where the AWS services are; everything optional comes from the environment (Lambda's role).
#[derive(Clone, Debug, Default)]
pub struct AwsSettings {
    /// An endpoint other than AWS's (the local emulator).
    pub endpoint: Option<String>,
    /// Region; from the environment if absent.
    pub region: Option<String>,
    /// Static credentials (the emulator); from the environment if absent.
    pub static_credentials: Option<(String, String)>,
}

impl AwsSettings {
    /// Settings for the local emulator at `endpoint`.
    #[must_use]
    pub fn emulator(endpoint: &str) -> Self {
        AwsSettings {
            endpoint: Some(endpoint.to_owned()),
            region: Some("us-east-1".to_owned()),
            static_credentials: Some(("testing".to_owned(), "testing".to_owned())),
        }
    }

    /// Loads the SDK configuration.
    pub async fn load(&self) -> aws_config::SdkConfig {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(endpoint) = &self.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(region) = &self.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some((id, secret)) = &self.static_credentials {
            loader = loader.credentials_provider(aws_sdk_sqs::config::Credentials::new(
                id, secret, None, None, "static",
            ));
        }
        loader.load().await
    }
}

/// A failure talking to AWS: worth retrying (the relay's batch, the worker's message).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AwsError(pub String);

impl AwsError {
    pub(crate) fn sdk<E: std::error::Error + 'static, R: std::fmt::Debug>(
        what: &str,
        e: aws_sdk_sqs::error::SdkError<E, R>,
    ) -> AwsError {
        AwsError(format!(
            "{what}: {}",
            aws_sdk_sqs::error::DisplayErrorContext(e)
        ))
    }
}
