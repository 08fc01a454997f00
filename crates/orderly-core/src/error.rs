//! What a use case can answer instead of a result.

use orderly_domain::{IllegalTransition, ProductId, ValueError};

use crate::ports::{CommitError, StoreError};

/// A use case's failure, in terms the API maps one-to-one onto problem types.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    /// The request is well-formed but its values are not acceptable; one entry per field.
    #[error("invalid request: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<ValueError>),
    /// The thing addressed does not exist.
    #[error("{what} {id} not found")]
    NotFound {
        /// `order`, `product`, `customer`.
        what: &'static str,
        /// The id asked for.
        id: String,
    },
    /// The order's state machine does not allow it.
    #[error(transparent)]
    IllegalTransition(#[from] IllegalTransition),
    /// The order's state does not allow this change (answered like an illegal transition).
    #[error("{0}")]
    NotNow(String),
    /// The change was made from a version of the order that is no longer current (see
    /// `access::Permit::expecting`): nothing was changed.
    #[error("{0}")]
    Changed(String),
    /// An `Idempotency-Key` reused with a different request.
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    /// Creating something whose id is taken.
    #[error("{what} {id} already exists")]
    AlreadyExists {
        /// `product`, `customer`.
        what: &'static str,
        /// The id.
        id: String,
    },
    /// A stock change would take a count below zero.
    #[error("not enough stock of product {0}")]
    InsufficientStock(ProductId),
    /// The cart was checked out or expired: it can change no more.
    #[error("{0}")]
    CartClosed(String),
    /// A pagination cursor that was not issued by this server.
    #[error("invalid cursor")]
    InvalidCursor,
    /// No credentials, or credentials that are not (or no longer) valid.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Too many requests of this kind from this caller; wait and try again.
    #[error("{detail}")]
    RateLimited {
        /// What the limit is and when to come back.
        detail: String,
        /// Milliseconds until the caller may try again.
        retry_after_ms: i64,
    },
    /// The storage is down or overloaded; the client may retry.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    /// A bug or corrupt data; details go to the log, not to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    /// One invalid field.
    #[must_use]
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        AppError::Invalid(vec![ValueError::new(field, message)])
    }
}

impl From<ValueError> for AppError {
    fn from(e: ValueError) -> Self {
        AppError::Invalid(vec![e])
    }
}

/// A missing `what` named `id`.
pub(crate) fn not_found(what: &'static str, id: impl ToString) -> AppError {
    AppError::NotFound {
        what,
        id: id.to_string(),
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => AppError::Unavailable(m),
            StoreError::InvalidCursor => AppError::InvalidCursor,
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl From<CommitError> for AppError {
    fn from(e: CommitError) -> Self {
        match e {
            CommitError::InsufficientStock(p) => AppError::InsufficientStock(p),
            CommitError::UnknownProduct(p) => AppError::NotFound {
                what: "product",
                id: p.to_string(),
            },
            CommitError::Store(s) => s.into(),
            other => AppError::Internal(other.to_string()),
        }
    }
}
