//! Accounts and access: customer accounts and their profiles, staff users, sessions with
//! rotating refresh tokens, API keys, rate limits on log-in and ordering, and the audit log.
//!
//! Everything is kept through the [`DocumentStore`] port, so the
//! embedded, cluster and serverless runtimes share it unchanged:
//! - `account` (customers) and `staff` documents by normalised e-mail, holding the argon2id
//!   hash;
//! - `session` documents by id (one per log-in) and `refresh` documents by the SHA-256 of the
//!   refresh token; a refresh token is used once and replaced, and presenting a used one again
//!   revokes its whole session (a stolen token and its thief are cut off together);
//! - `api-key` documents by key id, with the SHA-256 of the key;
//! - `audit` entries by a time-ordered id;
//! - one `secret` document, the access-token signing key, made by the first node to start.

mod audit;
pub mod browser;
mod keys;
mod logins;
mod staff;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use orderly_auth::limit::RateLimiter;
use orderly_auth::token::{self, SubjectKind, TokenSigner};
use orderly_auth::{AuthError, ExternalVerifier, Permission, Principal, Role, password};
use orderly_domain::{Address, Currency, Customer, CustomerId, Email, Name, Timestamp, ValueError};
use serde::{Deserialize, Serialize};

use crate::documents::{Change, DocumentType, Documents, Versioned};
use crate::error::AppError;
use crate::ports::{CatalogStore, Clock, DocKind, DocumentStore, StoreError};

/// How long access tokens, sessions and cached keys live, and the rate limits.
#[derive(Clone, Copy, Debug)]
pub struct AuthSettings {
    /// Access token lifetime, seconds.
    pub access_ttl_secs: i64,
    /// Refresh token (and session) lifetime, seconds.
    pub refresh_ttl_secs: i64,
    /// Failed log-ins per account per window before it must wait.
    pub login_failures_per_account: u32,
    /// Log-in attempts per client address per window.
    pub login_attempts_per_address: u32,
    /// The log-in window, milliseconds.
    pub login_window_ms: i64,
    /// Orders a customer (or, for guest checkout, a client address) may place per minute; 0
    /// turns the limit off. Staff and API keys are not limited.
    pub orders_per_minute: u32,
    /// How long a verified API key is trusted before it is read again, milliseconds (revoking
    /// a key takes effect at once on the node that revokes it, and within this on others).
    pub key_cache_ms: i64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            access_ttl_secs: 15 * 60,
            refresh_ttl_secs: 30 * 24 * 3600,
            login_failures_per_account: 5,
            login_attempts_per_address: 30,
            login_window_ms: 15 * 60 * 1000,
            orders_per_minute: 60,
            key_cache_ms: 10_000,
        }
    }
}

/// What a successful log-in or refresh gives.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tokens {
    /// The bearer token for `Authorization: Bearer …`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Trade it for new tokens at `POST /v1/auth/refresh`; usable once.
    pub refresh_token: String,
    /// Seconds until the refresh token (and the session) expires.
    pub refresh_expires_in: i64,
}

/// A customer's profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// Their customer record, which their orders name.
    pub customer_id: CustomerId,
    /// The e-mail they log in with.
    pub email: String,
    /// Their name as they write it.
    pub name: String,
    /// Saved addresses, any script, byte-exact.
    pub addresses: Vec<Address>,
    /// The currency their carts open in when they name none.
    pub default_currency: Option<Currency>,
}

/// A change of profile; absent fields stay as they are.
#[derive(Clone, Debug, Default)]
pub struct ProfileChange {
    /// A new name.
    pub name: Option<String>,
    /// The new list of addresses (replaces the old one).
    pub addresses: Option<Vec<Address>>,
    /// A new default currency (`Some(None)` clears it).
    pub default_currency: Option<Option<Currency>>,
}

/// A staff user as shown to admins (no hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StaffUser {
    /// Their log-in e-mail, which is also their id.
    pub email: String,
    /// Their name.
    pub name: String,
    /// What they may do.
    pub role: Role,
    /// A disabled user cannot log in or refresh.
    pub disabled: bool,
    /// When the user was made.
    pub created_at: Timestamp,
    /// Who made it.
    pub created_by: String,
}

/// An API key as shown after creation (never the key itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    /// The public id (part of the key).
    pub id: String,
    /// What it is for.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Permission>,
    /// When it was made.
    pub created_at: Timestamp,
    /// Who made it.
    pub created_by: String,
    /// When it was revoked, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Timestamp>,
}

/// One entry of the audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// Time-ordered id; pages of the log continue after it.
    pub id: String,
    /// When.
    pub at: Timestamp,
    /// Who: `staff:…`, `key:…`, or for a failed log-in the e-mail tried.
    pub actor: String,
    /// What: `POST /v1/orders/{id}/cancel`, `login`, `login.failed`, `user.create`, …
    pub action: String,
    /// The thing acted on, if one: an order id, a user, a key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `ok`, or what went wrong (`401`, `wrong password`, …).
    pub outcome: String,
    /// From where: the client's address as the server saw it.
    pub source: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccountDoc {
    customer_id: CustomerId,
    email: String,
    name: String,
    password_hash: String,
    #[serde(default)]
    addresses: Vec<Address>,
    #[serde(default)]
    default_currency: Option<Currency>,
    created_at: Timestamp,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StaffDoc {
    email: String,
    name: String,
    role: Role,
    password_hash: String,
    #[serde(default)]
    disabled: bool,
    created_at: Timestamp,
    created_by: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionDoc {
    kind: SubjectKind,
    email: String,
    created_at: Timestamp,
    expires_at: Timestamp,
    #[serde(default)]
    revoked_at: Option<Timestamp>,
    source: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefreshDoc {
    session: String,
    expires_at: Timestamp,
    #[serde(default)]
    used_at: Option<Timestamp>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiKeyDoc {
    #[serde(flatten)]
    key: ApiKey,
    digest: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct SecretDoc {
    secret: String,
}

/// The key of the access-token signing secret.
const SIGNING_SECRET: &str = "access-token-signing";

/// Most saved addresses a profile holds.
pub const MAX_ADDRESSES: usize = 20;
/// Longest API key name, in characters.
pub const MAX_KEY_NAME: usize = 100;
/// Page sizes the audit log accepts.
pub const AUDIT_PAGE_LIMITS: std::ops::RangeInclusive<u32> = 1..=500;
/// The audit log's page size when none is asked for.
pub const DEFAULT_AUDIT_PAGE_LIMIT: u32 = 100;

/// Accounts, sessions, keys and the audit log.
pub struct Accounts {
    customers: Arc<dyn CatalogStore>,
    docs: Docs,
    clock: Arc<dyn Clock>,
    signer: TokenSigner,
    external: Option<Arc<dyn ExternalVerifier>>,
    settings: AuthSettings,
    failures_per_account: RateLimiter,
    attempts_per_address: RateLimiter,
    orders: RateLimiter,
    keys: Mutex<HashMap<String, (ApiKeyDoc, i64)>>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Normalises an e-mail for lookups: trimmed and lower-cased, after checking it is one.
///
/// # Errors
/// A [`ValueError`] for `field` if it is not an e-mail address.
pub fn normalise_email(field: &str, text: &str) -> Result<String, ValueError> {
    let email = Email::parse(text.trim()).map_err(|e| ValueError::new(field, e.message))?;
    Ok(email.as_str().to_lowercase())
}

fn check_password(password: &str) -> Result<(), AppError> {
    password::check_new(password).map_err(|m| AppError::invalid("password", m))
}

/// Hashings at once: each takes 19 MiB and tens of milliseconds of a core, so a flood of
/// log-ins queues here instead of taking all memory.
fn hashing_permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        tokio::sync::Semaphore::new(cores.clamp(1, 8))
    })
}

async fn hash_password(password: String) -> Result<String, AppError> {
    let _permit = hashing_permits()
        .acquire()
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
        .map_err(|e| AppError::Internal(e.to_string()))
}

async fn verify_password(password: String, stored: Option<String>) -> bool {
    let Ok(_permit) = hashing_permits().acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || match stored {
        Some(stored) => password::verify(&password, &stored),
        None => {
            password::verify_nothing(&password);
            false
        }
    })
    .await
    .unwrap_or(false)
}

impl DocumentType for AccountDoc {
    const KIND: DocKind = DocKind::Account;
}

impl DocumentType for StaffDoc {
    const KIND: DocKind = DocKind::Staff;
}

impl DocumentType for SessionDoc {
    const KIND: DocKind = DocKind::Session;
}

impl DocumentType for RefreshDoc {
    const KIND: DocKind = DocKind::Refresh;
}

impl DocumentType for ApiKeyDoc {
    const KIND: DocKind = DocKind::ApiKey;
}

impl DocumentType for SecretDoc {
    const KIND: DocKind = DocKind::Secret;
}

impl DocumentType for AuditEntry {
    const KIND: DocKind = DocKind::Audit;
}

/// Every kind of document accounts keep.
#[derive(Clone)]
struct Docs {
    accounts: Documents<AccountDoc>,
    staff: Documents<StaffDoc>,
    sessions: Documents<SessionDoc>,
    refresh: Documents<RefreshDoc>,
    keys: Documents<ApiKeyDoc>,
    audit: Documents<AuditEntry>,
}

impl Docs {
    fn new(store: &Arc<dyn DocumentStore>) -> Self {
        Docs {
            accounts: Documents::new(Arc::clone(store)),
            staff: Documents::new(Arc::clone(store)),
            sessions: Documents::new(Arc::clone(store)),
            refresh: Documents::new(Arc::clone(store)),
            keys: Documents::new(Arc::clone(store)),
            audit: Documents::new(Arc::clone(store)),
        }
    }
}

fn unauthenticated(detail: &str) -> AppError {
    AppError::Unauthenticated(detail.to_owned())
}

const WRONG_LOGIN: &str = "wrong e-mail or password";

impl Accounts {
    /// Accounts kept in `documents`, making customers in `customers`, signing tokens with the
    /// shared secret (made now if this is the first node ever to start on the store), and
    /// trusting `external` tokens if given (see [`crate::Application::accounts`]).
    ///
    /// # Errors
    /// [`AppError::Unavailable`] if the store cannot be read.
    pub(crate) async fn open(
        documents: Arc<dyn DocumentStore>,
        customers: Arc<dyn CatalogStore>,
        clock: Arc<dyn Clock>,
        settings: AuthSettings,
        external: Option<Arc<dyn ExternalVerifier>>,
    ) -> Result<Self, AppError> {
        let secret = Self::signing_secret(&documents).await?;
        let signer = TokenSigner::new(secret.as_bytes(), settings.access_ttl_secs)
            .map_err(|e| AppError::Internal(e.to_string()))?;
        Ok(Accounts {
            docs: Docs::new(&documents),
            customers,
            clock,
            signer,
            external,
            settings,
            failures_per_account: RateLimiter::new(
                settings.login_failures_per_account,
                settings.login_window_ms,
            ),
            attempts_per_address: RateLimiter::new(
                settings.login_attempts_per_address,
                settings.login_window_ms,
            ),
            orders: RateLimiter::new(settings.orders_per_minute, 60_000),
            keys: Mutex::new(HashMap::new()),
        })
    }

    /// The access-token signing secret: the stored one, or a new one if this is the first
    /// node to start (a concurrent first node's wins, and every node reads the same).
    async fn signing_secret(store: &Arc<dyn DocumentStore>) -> Result<String, AppError> {
        let fresh = token::random_secret(48).map_err(|e| AppError::Internal(e.to_string()))?;
        Documents::<SecretDoc>::new(Arc::clone(store))
            .modify(SIGNING_SECRET, |read| {
                Ok(match read {
                    Some(stored) => Change::Keep(stored.secret),
                    None => Change::Write(
                        SecretDoc {
                            secret: fresh.clone(),
                        },
                        fresh.clone(),
                    ),
                })
            })
            .await
    }

    /// The settings in force.
    #[must_use]
    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    // ----- who is calling -------------------------------------------------------------------

    /// The caller named by a bearer credential: an API key, an access token Orderly signed, or
    /// a token of the configured external identity provider.
    ///
    /// # Errors
    /// [`AppError::Unauthenticated`] saying what is wrong (expired, invalid, revoked).
    pub async fn authenticate(&self, credential: &str) -> Result<Principal, AppError> {
        let now = self.now();
        if let Some(id) = token::api_key_id(credential) {
            return self.authenticate_key(id, credential, now).await;
        }
        let result = match &self.external {
            Some(external) if external.claims_to_be_mine(credential) => {
                external.verify(credential, now.millis() / 1000)
            }
            _ => self
                .signer
                .verify(credential, now.millis() / 1000)
                .and_then(|claims| claims.principal()),
        };
        result.map_err(|e| match e {
            AuthError::Expired => unauthenticated(
                "the access token has expired; get a new one at POST /v1/auth/refresh",
            ),
            AuthError::Invalid(_) | AuthError::Crypto(_) => {
                unauthenticated("the access token is not valid; log in again")
            }
        })
    }

    async fn authenticate_key(
        &self,
        id: &str,
        credential: &str,
        now: Timestamp,
    ) -> Result<Principal, AppError> {
        let cached = self
            .keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .filter(|(_, at)| now.millis() - at < self.settings.key_cache_ms)
            .map(|(doc, _)| doc.clone());
        let doc = match cached {
            Some(doc) => doc,
            None => {
                let Some(doc) = self.docs.keys.value(id).await? else {
                    return Err(unauthenticated("this API key does not exist"));
                };
                self.keys
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.to_owned(), (doc.clone(), now.millis()));
                doc
            }
        };
        if !token::digests_match(&doc.digest, &token::digest(credential)) {
            return Err(unauthenticated("this API key is not valid"));
        }
        if doc.key.revoked_at.is_some() {
            return Err(unauthenticated("this API key was revoked"));
        }
        Ok(Principal::Service {
            key_id: doc.key.id,
            name: doc.key.name,
            scopes: doc.key.scopes,
        })
    }

    /// Counts one order placed by `who` (a customer, or a guest's address); staff and keys are
    /// not limited.
    ///
    /// # Errors
    /// [`AppError::RateLimited`] with the wait.
    pub fn count_order(&self, principal: &Principal, source: &str) -> Result<(), AppError> {
        let key = match principal {
            Principal::Customer { customer_id, .. } => format!("customer:{customer_id}"),
            Principal::Anonymous => format!("address:{source}"),
            Principal::Staff { .. } | Principal::Service { .. } => return Ok(()),
        };
        self.orders
            .hit(&key, self.now().millis())
            .map_err(|wait| AppError::RateLimited {
                detail: format!(
                    "at most {} orders a minute; try again in {} s",
                    self.settings.orders_per_minute,
                    (wait + 999) / 1000
                ),
                retry_after_ms: wait,
            })
    }
}
