//! The admin topic: a message for every new order and every order that needs attention.

use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;
use orderly_domain::{Event, EventKind};

use crate::AwsError;

/// Publishes alerts for the shop's staff to an SNS topic (e-mail, SMS or a queue subscribe to
/// it).
#[derive(Clone)]
pub struct AdminAlerts {
    client: Client,
    topic_arn: String,
}

impl AdminAlerts {
    /// Alerts to the topic `topic_arn`.
    #[must_use]
    pub fn new(config: &aws_config::SdkConfig, topic_arn: impl Into<String>) -> Self {
        AdminAlerts {
            client: Client::new(config),
            topic_arn: topic_arn.into(),
        }
    }

    /// The alert an event deserves, if any: `(subject, message)`.
    #[must_use]
    pub fn alert_for(event: &Event) -> Option<(String, String)> {
        match event.kind {
            EventKind::OrderPlaced => Some((
                format!("New order {}", event.order_id),
                format!(
                    "Customer {} placed order {} for {}.",
                    event.customer_id, event.order_id, event.total
                ),
            )),
            EventKind::OrderNeedsAttention => Some((
                format!("Order {} needs attention", event.order_id),
                format!(
                    "Order {} needs attention: {}",
                    event.order_id,
                    event
                        .detail
                        .as_deref()
                        .unwrap_or("a step ran out of retries")
                ),
            )),
            _ => None,
        }
    }

    /// Publishes the alert for `event`, if it deserves one.
    ///
    /// # Errors
    /// [`AwsError`] if SNS refuses.
    pub async fn publish(&self, event: &Event) -> Result<(), AwsError> {
        let Some((subject, message)) = Self::alert_for(event) else {
            return Ok(());
        };
        let detail_type = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(event.kind.as_str())
            .build()
            .map_err(|e| AwsError(e.to_string()))?;
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject)
            .message(message)
            .message_attributes("detailType", detail_type)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::sdk("SNS Publish", e))
    }
}
