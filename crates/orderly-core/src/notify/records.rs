//! What is kept about messages: one record per message sent or failed (the dedupe record),
//! failures apart for staff, and each customer's preferences.

use std::sync::Arc;

use orderly_domain::{CustomerId, EventId, EventKind, OrderId, Timestamp};
use serde::{Deserialize, Serialize};

use super::Template;
use crate::documents::{DocumentType, Documents};
use crate::error::AppError;
use crate::ports::{CatalogStore, Category, DocKind, DocumentStore, Recipient, StoreError};

/// Whether a notification went out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Status {
    /// Delivered to the channel.
    Sent,
    /// Ran out of retries or was refused for good; staff can retry it.
    Failed,
}

impl Status {
    /// `sent` or `failed`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Sent => "sent",
            Status::Failed => "failed",
        }
    }
}

/// What is kept about one message: the dedupe record, and for failures the staff's view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationRecord {
    /// `{event id}/{template}/{recipient}`.
    pub key: String,
    /// The order it is about.
    pub order_id: OrderId,
    /// The event that caused it.
    pub event_id: EventId,
    /// That event's type.
    pub event: EventKind,
    /// Which message.
    pub template: Template,
    /// Where it went (or was to go).
    pub recipient: Recipient,
    /// Transactional or marketing.
    pub category: Category,
    /// Its subject.
    pub subject: String,
    /// Sent or failed.
    pub status: Status,
    /// Tries so far.
    pub attempts: u32,
    /// The last failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it was sent or last failed.
    pub at: Timestamp,
}

/// A customer's choices about messages, kept as a [`DocKind::NotificationPreferences`] document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Preferences {
    /// False: no marketing messages. Transactional ones always go.
    pub marketing: bool,
    /// An E.164 number (`+15551234567`) for shipping updates by SMS; none: no SMS.
    #[serde(default)]
    pub sms_phone: Option<String>,
}

impl Default for Preferences {
    fn default() -> Self {
        Preferences {
            marketing: true,
            sms_phone: None,
        }
    }
}

impl Preferences {
    /// How many digits an E.164 number has after its `+`.
    pub const PHONE_DIGITS: std::ops::RangeInclusive<usize> = 8..=15;

    /// Checks the phone number is E.164: `+`, then 8 to 15 digits, the first not 0.
    ///
    /// # Errors
    /// [`AppError::Invalid`] naming `smsPhone`.
    pub fn validate(&self) -> Result<(), AppError> {
        if let Some(phone) = &self.sms_phone {
            let digits = phone.strip_prefix('+').unwrap_or("");
            let ok = Self::PHONE_DIGITS.contains(&digits.len())
                && digits.bytes().all(|b| b.is_ascii_digit())
                && !digits.starts_with('0');
            if !ok {
                return Err(AppError::invalid(
                    "smsPhone",
                    "must be an E.164 number such as +15551234567",
                ));
            }
        }
        Ok(())
    }
}

/// Customers' preferences about messages.
#[derive(Clone)]
pub struct MessagePreferences {
    preferences: Documents<Preferences>,
    customers: Arc<dyn CatalogStore>,
    index: crate::search_index::SearchIndex,
}

impl MessagePreferences {
    /// Preferences kept in `documents`, for the customers of `customers`.
    pub(crate) fn new(
        documents: Arc<dyn DocumentStore>,
        customers: Arc<dyn CatalogStore>,
        index: crate::search_index::SearchIndex,
    ) -> Self {
        MessagePreferences {
            preferences: Documents::new(documents),
            customers,
            index,
        }
    }

    /// A customer's preferences, the defaults if they never set any.
    ///
    /// # Errors
    /// A storage failure, or a stored document that does not parse.
    pub async fn of(&self, customer: &CustomerId) -> Result<Preferences, StoreError> {
        Ok(self
            .preferences
            .value(customer.as_str())
            .await?
            .unwrap_or_default())
    }

    /// Replaces a customer's preferences.
    ///
    /// # Errors
    /// [`AppError::NotFound`] for an unknown customer, [`AppError::Invalid`] for a bad number.
    pub async fn set(
        &self,
        customer: &CustomerId,
        prefs: &Preferences,
    ) -> Result<Preferences, AppError> {
        prefs.validate()?;
        if self.customers.customer(customer).await?.is_none() {
            return Err(AppError::NotFound {
                what: "customer",
                id: customer.to_string(),
            });
        }
        // The number is searchable before it is kept (staff find customers by phone).
        if let Some(phone) = &prefs.sms_phone {
            let terms = orderly_domain::search::customer_terms("", "", Some(phone));
            self.index.add(customer, terms).await?;
        }
        self.preferences.put(customer.as_str(), prefs).await?;
        Ok(prefs.clone())
    }
}

impl DocumentType for Preferences {
    const KIND: DocKind = DocKind::NotificationPreferences;
}

impl DocumentType for NotificationRecord {
    const KIND: DocKind = DocKind::Notification;
}

/// A notification that ran out of retries, kept apart for staff (the same record, under
/// [`DocKind::NotificationFailure`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub(super) struct FailedNotification(pub(super) NotificationRecord);

impl DocumentType for FailedNotification {
    const KIND: DocKind = DocKind::NotificationFailure;
}
