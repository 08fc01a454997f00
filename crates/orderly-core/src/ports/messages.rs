//! The port messages go out through: a channel (SMTP, SNS, a log file) and what it sends.

use async_trait::async_trait;

/// A channel that delivers messages: SMTP, SNS, a log file.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Sends one message. Sending the same [`Message::dedupe_key`] twice must be harmless
    /// (adapters pass it on, e.g. as the e-mail's Message-ID), but the caller avoids it.
    ///
    /// # Errors
    /// [`NotifyError::Transient`] (retry later) or [`NotifyError::Permanent`] (never will).
    async fn send(&self, message: &Message) -> Result<(), NotifyError>;

    /// Which recipients this notifier can reach; messages for others are not planned.
    fn reaches(&self, recipient: &Recipient) -> bool;
}

/// Why a message was not sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// The server or service could not take it now (4xx SMTP reply, timeout, throttling).
    #[error("not sent, will retry: {0}")]
    Transient(String),
    /// It will never go (no such mailbox, invalid number, no channel for the recipient).
    #[error("not sent: {0}")]
    Permanent(String),
}

/// Who a message is for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(tag = "channel", content = "address", rename_all = "camelCase")]
pub enum Recipient {
    /// An e-mail address.
    Email(String),
    /// A phone number in E.164 form (`+15551234567`), for SMS.
    Sms(String),
    /// A topic staff subscribe to (an SNS topic ARN).
    Topic(String),
}

impl Recipient {
    /// The address alone.
    #[must_use]
    pub fn address(&self) -> &str {
        match self {
            Recipient::Email(a) | Recipient::Sms(a) | Recipient::Topic(a) => a,
        }
    }

    /// `email`, `sms` or `topic`.
    #[must_use]
    pub fn channel(&self) -> &'static str {
        match self {
            Recipient::Email(_) => "email",
            Recipient::Sms(_) => "sms",
            Recipient::Topic(_) => "topic",
        }
    }
}

/// Whether a message may be refused by the customer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Category {
    /// About an order the customer placed; always sent.
    Transactional,
    /// Promotion; not sent to customers who opted out.
    Marketing,
}

/// One rendered message to one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// `{event id}/{template}/{recipient}`: the same for every attempt, so the message is sent
    /// once and receivers can recognise a repeat.
    pub dedupe_key: String,
    /// Where it goes.
    pub recipient: Recipient,
    /// The subject line (SMS: unused).
    pub subject: String,
    /// The plain-text body (the whole SMS).
    pub text: String,
    /// The HTML body, user text escaped (empty for SMS and topics).
    pub html: String,
    /// Transactional or marketing.
    pub category: Category,
}
