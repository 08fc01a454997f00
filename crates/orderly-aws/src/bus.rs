//! The EventBridge publisher.

use std::time::Duration;

use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use orderly_domain::Event;

use crate::AwsError;

/// PutEvents takes at most ten entries per call.
const MAX_ENTRIES: usize = 10;
/// Rounds of retrying the entries EventBridge failed.
const ROUNDS: u32 = 5;

/// Publishes events to a custom bus in the reference shape: `source` `ecommerce.order` (or
/// `.inventory`, `.payment`), `detail-type` the event's name, `detail` its JSON.
#[derive(Clone)]
pub struct EventBus {
    client: Client,
    bus: String,
}

impl EventBus {
    /// A publisher to the bus named `bus`.
    #[must_use]
    pub fn new(config: &aws_config::SdkConfig, bus: impl Into<String>) -> Self {
        EventBus {
            client: Client::new(config),
            bus: bus.into(),
        }
    }

    /// Publishes every event, ten per call, retrying the entries EventBridge failed.
    ///
    /// # Errors
    /// [`AwsError`] if some entries still fail after the retries (the caller's batch is retried;
    /// consumers are idempotent, so a repeat is harmless).
    pub async fn publish(&self, events: &[Event]) -> Result<(), AwsError> {
        for chunk in events.chunks(MAX_ENTRIES) {
            let mut pending: Vec<PutEventsRequestEntry> = chunk
                .iter()
                .map(|e| self.entry(e))
                .collect::<Result<_, _>>()?;
            for round in 0..ROUNDS {
                if round > 0 {
                    tokio::time::sleep(Duration::from_millis(50 << round)).await;
                }
                let out = self
                    .client
                    .put_events()
                    .set_entries(Some(pending.clone()))
                    .send()
                    .await
                    .map_err(|e| AwsError::sdk("EventBridge PutEvents", e))?;
                if out.failed_entry_count == 0 {
                    pending.clear();
                    break;
                }
                // Results line up with the entries sent; keep those that carry an error.
                pending = pending
                    .into_iter()
                    .zip(out.entries())
                    .filter(|(_, result)| result.error_code().is_some())
                    .map(|(entry, _)| entry)
                    .collect();
                tracing::warn!(
                    failed = pending.len(),
                    round,
                    "EventBridge failed some entries; retrying them"
                );
            }
            if !pending.is_empty() {
                return Err(AwsError(format!(
                    "EventBridge kept failing {} entries",
                    pending.len()
                )));
            }
        }
        Ok(())
    }

    fn entry(&self, event: &Event) -> Result<PutEventsRequestEntry, AwsError> {
        let detail = serde_json::to_string(event).map_err(|e| AwsError(e.to_string()))?;
        Ok(PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(event.source())
            .detail_type(event.kind.as_str())
            .detail(detail)
            .build())
    }
}
