//! The outbox relay: what the table's stream says was committed goes out — events to the bus,
//! jobs to their consumers' queues (the notifier's included: staff alerts and customer messages
//! are notify jobs like any other, see `orderly_core::notify`).

use serde_json::Value;

use crate::AwsError;
use crate::bus::EventBus;
use crate::queues::{JobMessage, JobQueues};

/// What one relay run sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Relayed {
    /// Events published to the bus.
    pub events: usize,
    /// Jobs sent to queues.
    pub jobs: usize,
}

/// Publishes committed events and jobs.
#[derive(Clone)]
pub struct Relay {
    bus: EventBus,
    queues: JobQueues,
}

fn text<'a>(image: &'a Value, name: &str) -> Option<&'a str> {
    image.get(name)?.get("S")?.as_str()
}

fn number(image: &Value, name: &str) -> Option<i64> {
    image.get(name)?.get("N")?.as_str()?.parse().ok()
}

impl Relay {
    /// A relay to these destinations.
    #[must_use]
    pub fn new(bus: EventBus, queues: JobQueues) -> Self {
        Relay { bus, queues }
    }

    /// Relays the new images of a stream batch (DynamoDB JSON, as Lambda delivers them), in
    /// order. Items other than events and jobs are ignored.
    ///
    /// # Errors
    /// [`AwsError`] if something could not be sent; the whole batch is then delivered again,
    /// which is harmless: queues deduplicate and consumers recognise events they handled.
    pub async fn relay(&self, images: &[Value]) -> Result<Relayed, AwsError> {
        let mut events = Vec::new();
        let mut jobs = Vec::new();
        for image in images {
            let sk = text(image, "sk").unwrap_or_default();
            let payload = || -> Result<orderly_domain::Event, AwsError> {
                let text = text(image, "payload")
                    .ok_or_else(|| AwsError(format!("{sk} has no payload")))?;
                serde_json::from_str(text).map_err(|e| AwsError(format!("{sk}: {e}")))
            };
            if sk.starts_with("EVENT#") {
                events.push(payload()?);
            } else if sk.starts_with("JOB#") {
                jobs.push(JobMessage {
                    job_id: number(image, "job_id")
                        .ok_or_else(|| AwsError(format!("{sk} has no job_id")))?,
                    consumer: text(image, "consumer")
                        .ok_or_else(|| AwsError(format!("{sk} has no consumer")))?
                        .to_owned(),
                    event: payload()?,
                });
            }
        }
        self.bus.publish(&events).await?;
        for job in &jobs {
            self.queues.send(job).await?;
        }
        Ok(Relayed {
            events: events.len(),
            jobs: jobs.len(),
        })
    }
}
