//! Saga jobs on SQS FIFO queues, one queue per consumer.

use std::collections::HashMap;

use aws_sdk_sqs::Client;
use orderly_core::ports::{Consumer, Job};
use orderly_domain::Event;
use serde::{Deserialize, Serialize};

use crate::AwsError;

/// The body of a job message.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobMessage {
    /// The job's id in the table (its item is deleted when the step commits).
    pub job_id: i64,
    /// Which saga step.
    pub consumer: String,
    /// The event the step handles.
    pub event: Event,
}

impl JobMessage {
    /// The job, with the attempts SQS has counted.
    ///
    /// # Errors
    /// A message for an unknown consumer.
    pub fn into_job(self, attempts: u32) -> Result<Job, AwsError> {
        Ok(Job {
            id: self.job_id,
            consumer: Consumer::parse(&self.consumer)
                .ok_or_else(|| AwsError(format!("unknown consumer {:?}", self.consumer)))?,
            event: self.event,
            attempts,
            last_error: None,
            // SQS's visibility timeout is the lease; the table's job item is not claimed.
            lease: None,
        })
    }
}

/// Sends jobs to their consumer's FIFO queue.
#[derive(Clone)]
pub struct JobQueues {
    client: Client,
    urls: HashMap<&'static str, String>,
}

impl JobQueues {
    /// Queues by consumer (`inventory`, `payment`, `notify`) → queue URL.
    #[must_use]
    pub fn new(config: &aws_config::SdkConfig, urls: HashMap<&'static str, String>) -> Self {
        JobQueues {
            client: Client::new(config),
            urls,
        }
    }

    /// Sends one job: group = its order (one order's jobs in order), deduplication = its event
    /// and consumer (a relay that runs twice sends it once).
    ///
    /// # Errors
    /// [`AwsError`] if the queue is unknown or SQS refuses.
    pub async fn send(&self, message: &JobMessage) -> Result<(), AwsError> {
        let url = self
            .urls
            .get(message.consumer.as_str())
            .ok_or_else(|| AwsError(format!("no queue for consumer {}", message.consumer)))?;
        let body = serde_json::to_string(message).map_err(|e| AwsError(e.to_string()))?;
        self.client
            .send_message()
            .queue_url(url)
            .message_group_id(message.event.order_id.to_string())
            .message_deduplication_id(format!("{}:{}", message.event.id, message.consumer))
            .message_body(body)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::sdk("SQS SendMessage", e))
    }
}
