//! Why a step — of the saga or of the notifier — did not finish: worth retrying, or not.

use crate::ports::StoreError;
use crate::retry::FailureClass;

/// Why a step did not finish.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Worth retrying later.
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help; the order needs a person now.
    #[error("{0}")]
    Permanent(String),
    /// Refused for now (a declined card, short stock): tried again after the class's next
    /// wait. A step returns it only while a next wait is left; on its last try it commits its
    /// final answer instead (see [`crate::retry::RetryPolicies`]).
    #[error("{1}")]
    Refused(FailureClass, String),
}

impl From<StoreError> for StepError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => StepError::Transient(m),
            other => StepError::Permanent(other.to_string()),
        }
    }
}
