//! Orderly's identities and their rights, with no storage and no HTTP: the use cases keep
//! accounts, sessions and keys in the store; this crate does the parts that must be exactly
//! right.
//!
//! # Layout
//! - [`access`]: [`Principal`] (who calls), staff [`Role`]s and the [`Permission`]s they grant.
//! - [`password`]: argon2id hashing and verification.
//! - [`token`]: short-lived access tokens Orderly signs (HS256 JWT), and opaque secrets (refresh
//!   tokens, API keys) stored only as their SHA-256.
//! - [`jwks`]: tokens of an external identity provider (Amazon Cognito user pools), verified
//!   against its published keys (JWKS), issuer and audience.
//! - [`limit`]: fixed-window rate limits per key (account, address, customer).
#![forbid(unsafe_code)]

pub mod access;
pub mod jwks;
pub mod limit;
pub mod password;
pub mod token;

pub use access::{Permission, Principal, Role};

/// Why credentials were not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// The token or key is malformed, forged, for another audience or issuer, or its signing
    /// key is unknown.
    #[error("the credentials are not valid: {0}")]
    Invalid(String),
    /// The token was valid but has expired.
    #[error("the token has expired")]
    Expired,
    /// Random numbers or a key could not be had.
    #[error("cryptography failed: {0}")]
    Crypto(String),
}

/// Verifies tokens issued by someone else (an external identity provider).
pub trait ExternalVerifier: Send + Sync {
    /// True if the token says it comes from this issuer (a cheap look, no verification), so it
    /// is sent here rather than to Orderly's own verifier.
    fn claims_to_be_mine(&self, token: &str) -> bool;
    /// The caller the token names, if it verifies at `now_unix_secs`.
    ///
    /// # Errors
    /// [`AuthError::Expired`] or [`AuthError::Invalid`].
    fn verify(&self, token: &str, now_unix_secs: i64) -> Result<Principal, AuthError>;
}

impl ExternalVerifier for jwks::ExternalIssuer {
    fn claims_to_be_mine(&self, token: &str) -> bool {
        jwks::ExternalIssuer::claims_to_be_mine(self, token)
    }

    fn verify(&self, token: &str, now_unix_secs: i64) -> Result<Principal, AuthError> {
        jwks::ExternalIssuer::verify(self, token, now_unix_secs)
    }
}
