//! Notifications through Amazon SNS: staff alerts published to a topic (e-mail, SMS, chat or a
//! queue subscribe to it), and text messages published straight to a customer's phone.
//!
//! SNS has no idempotency key for `Publish`, so a message is sent once by the caller's record
//! (see `orderly_core::notify`); the dedupe key still travels as the `dedupeKey` attribute so a
//! subscriber can drop a repeat. SNS's throttling and server errors are transient, its refusals
//! of the request (a malformed number, a topic that does not exist) permanent.

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;
use orderly_core::ports::{Category, Message, Notifier, NotifyError, Recipient};

/// Publishes messages for topics and phone numbers.
#[derive(Clone, Debug)]
pub struct SnsNotifier {
    client: Client,
}

/// SNS subjects are at most 100 printable ASCII characters: what does not fit is replaced, the
/// full subject stays the first line of the message.
fn sns_subject(subject: &str) -> String {
    let ascii: String = subject
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    let trimmed = ascii.trim();
    if trimmed.len() > 100 {
        format!("{}...", &trimmed[..97])
    } else {
        trimmed.to_owned()
    }
}

fn attribute(value: &str) -> Result<MessageAttributeValue, NotifyError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| NotifyError::Permanent(e.to_string()))
}

impl SnsNotifier {
    /// A notifier with the SDK configuration `config`.
    #[must_use]
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        SnsNotifier {
            client: Client::new(config),
        }
    }
}

#[async_trait]
impl Notifier for SnsNotifier {
    async fn send(&self, message: &Message) -> Result<(), NotifyError> {
        let publish = self
            .client
            .publish()
            .message_attributes("dedupeKey", attribute(&message.dedupe_key)?);
        let publish = match &message.recipient {
            Recipient::Topic(arn) => publish
                .topic_arn(arn)
                .subject(sns_subject(&message.subject))
                .message(format!("{}\n\n{}", message.subject, message.text)),
            Recipient::Sms(phone) => {
                let kind = match message.category {
                    Category::Transactional => "Transactional",
                    Category::Marketing => "Promotional",
                };
                publish
                    .phone_number(phone)
                    .message(&message.text)
                    .message_attributes("AWS.SNS.SMS.SMSType", attribute(kind)?)
            }
            Recipient::Email(_) => {
                return Err(NotifyError::Permanent(
                    "SNS does not send e-mail to an address; configure SMTP".into(),
                ));
            }
        };
        match publish.send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let service = e.as_service_error();
                let refused = service.is_some_and(|s| {
                    s.is_invalid_parameter_exception()
                        || s.is_invalid_parameter_value_exception()
                        || s.is_not_found_exception()
                        || s.is_authorization_error_exception()
                });
                let text = format!(
                    "SNS Publish: {}",
                    aws_sdk_sns::error::DisplayErrorContext(e)
                );
                if refused {
                    Err(NotifyError::Permanent(text))
                } else {
                    Err(NotifyError::Transient(text))
                }
            }
        }
    }

    fn reaches(&self, recipient: &Recipient) -> bool {
        matches!(recipient, Recipient::Topic(_) | Recipient::Sms(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_fit_sns_rules() {
        assert_eq!(
            sns_subject("New order 0193: ¥1,000"),
            "New order 0193: ?1,000"
        );
        let long = "x".repeat(150);
        assert_eq!(sns_subject(&long).len(), 100);
    }
}
