//! Accounts and access: customer accounts and their profiles, staff users, sessions with
//! rotating refresh tokens, API keys, rate limits on log-in and ordering, and the audit log.
//!
//! Everything is kept through the [`DocumentStore`](crate::ports::DocumentStore) port, so the
//! embedded, cluster and serverless runtimes share it unchanged:
//! - `account` (customers) and `staff` documents by normalised e-mail, holding the argon2id
//!   hash;
//! - `session` documents by id (one per log-in) and `refresh` documents by the SHA-256 of the
//!   refresh token; a refresh token is used once and replaced, and presenting a used one again
//!   revokes its whole session (a stolen token and its thief are cut off together);
//! - `api-key` documents by key id, with the SHA-256 of the key;
//! - `audit` entries by a time-ordered id;
//! - one `secret` document, the access-token signing key, made by the first node to start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use orderly_auth::limit::RateLimiter;
use orderly_auth::token::{self, SubjectKind, TokenSigner};
use orderly_auth::{AuthError, ExternalVerifier, Permission, Principal, Role, password};
use orderly_domain::{Address, Currency, Customer, CustomerId, Email, Name, Timestamp, ValueError};
use serde::{Deserialize, Serialize};

use crate::documents::{Change, DocumentType, Documents, Versioned};
use crate::error::AppError;
use crate::ports::{CatalogStore, Clock, DocKind, DocumentStore, Store, StoreError};

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
    /// Accounts on `store`, signing tokens with the shared secret (made now if this is the
    /// first node ever to start on the store), and trusting `external` tokens if given.
    ///
    /// # Errors
    /// [`AppError::Unavailable`] if the store cannot be read.
    pub async fn open(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        settings: AuthSettings,
        external: Option<Arc<dyn ExternalVerifier>>,
    ) -> Result<Self, AppError> {
        let documents: Arc<dyn DocumentStore> = store.clone();
        let secret = Self::signing_secret(&documents).await?;
        let signer = TokenSigner::new(secret.as_bytes(), settings.access_ttl_secs)
            .map_err(|e| AppError::Internal(e.to_string()))?;
        Ok(Accounts {
            docs: Docs::new(&documents),
            customers: store,
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

    // ----- customers ------------------------------------------------------------------------

    /// Registers a customer: a customer record, and an account to log in with. Logs them in.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for bad fields; [`AppError::AlreadyExists`] if the e-mail has an
    /// account.
    pub async fn register(
        &self,
        email: &str,
        password: &str,
        name: &str,
        default_currency: Option<Currency>,
        source: &str,
    ) -> Result<(Profile, Tokens), AppError> {
        let mut errors = Vec::new();
        let email_key = normalise_email("email", email)
            .map_err(|e| errors.push(e))
            .ok();
        let parsed_name = Name::parse("name", name).map_err(|e| errors.push(e)).ok();
        if let Err(m) = password::check_new(password) {
            errors.push(ValueError::new("password", m));
        }
        let (Some(email_key), Some(parsed_name)) = (email_key, parsed_name) else {
            return Err(AppError::Invalid(errors));
        };
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        if self.docs.accounts.get(&email_key).await?.is_some() {
            return Err(AppError::AlreadyExists {
                what: "account",
                id: email_key,
            });
        }
        let now = self.now();
        let customer_id = CustomerId::parse(&format!("c-{}", uuid::Uuid::now_v7().simple()))?;
        let customer = Customer {
            id: customer_id.clone(),
            email: Email::parse(email.trim())?,
            name: parsed_name,
            created_at: now,
        };
        let account = AccountDoc {
            customer_id: customer_id.clone(),
            email: email_key.clone(),
            name: name.to_owned(),
            password_hash: hash_password(password.to_owned()).await?,
            addresses: Vec::new(),
            default_currency,
            created_at: now,
        };
        // The customer first: an account must never point at a customer that is not there. A
        // failure in between leaves an unused customer record, which harms nobody.
        self.customers.create_customer(&customer).await?;
        match self.docs.accounts.insert(&email_key, &account).await {
            Err(StoreError::AlreadyExists) => {
                return Err(AppError::AlreadyExists {
                    what: "account",
                    id: email_key,
                });
            }
            other => other?,
        }
        let tokens = self
            .start_session(
                SubjectKind::Customer,
                &email_key,
                customer_id.as_str(),
                None,
                source,
            )
            .await?;
        Ok((profile_of(&account), tokens))
    }

    /// Logs a customer in.
    ///
    /// # Errors
    /// [`AppError::Unauthenticated`] for a wrong e-mail or password (the same answer for
    /// both); [`AppError::RateLimited`] after too many failures for the account or too many
    /// attempts from the address.
    pub async fn login_customer(
        &self,
        email: &str,
        password: &str,
        source: &str,
    ) -> Result<Tokens, AppError> {
        let (key, account) = self
            .check_password(
                &self.docs.accounts,
                "customer",
                email,
                password,
                source,
                |a| &a.password_hash,
            )
            .await?;
        self.failures_per_account.clear(&key);
        self.start_session(
            SubjectKind::Customer,
            &key,
            account.customer_id.as_str(),
            None,
            source,
        )
        .await
    }

    /// Logs a staff user in.
    ///
    /// # Errors
    /// As [`Accounts::login_customer`]; a disabled user cannot log in.
    pub async fn login_staff(
        &self,
        email: &str,
        password: &str,
        source: &str,
    ) -> Result<Tokens, AppError> {
        let (key, user) = self
            .check_password(&self.docs.staff, "staff", email, password, source, |u| {
                &u.password_hash
            })
            .await?;
        if user.disabled {
            self.audit(
                format!("staff:{key}"),
                "login.failed",
                None,
                "user disabled",
                source,
            )
            .await;
            return Err(unauthenticated("this user is disabled; ask an admin"));
        }
        self.failures_per_account.clear(&key);
        self.audit(format!("staff:{key}"), "login", None, "ok", source)
            .await;
        self.start_session(SubjectKind::Staff, &key, &key, Some(user.role), source)
            .await
    }

    /// Checks an e-mail and password against the stored document of `kind` (customer accounts
    /// or staff users): the rate limits first, then one argon2 verification whether or not the
    /// e-mail is known, so an unknown e-mail and a wrong password take the same time and get
    /// the same answer. The normalised e-mail and the document if the password is right.
    async fn check_password<T: DocumentType>(
        &self,
        docs: &Documents<T>,
        who: &str,
        email: &str,
        password: &str,
        source: &str,
        hash: impl Fn(&T) -> &str,
    ) -> Result<(String, T), AppError> {
        let key = self.before_login(email, source)?;
        let doc = match &key {
            Some(key) => docs.value(key).await?,
            None => None,
        };
        let ok = verify_password(
            password.to_owned(),
            doc.as_ref().map(|d| hash(d).to_owned()),
        )
        .await;
        let (Some(key), Some(doc), true) = (key, doc, ok) else {
            return Err(self.login_failed(email, source, who).await);
        };
        Ok((key, doc))
    }

    /// The rate-limit checks every log-in passes; the normalised e-mail if it is one.
    fn before_login(&self, email: &str, source: &str) -> Result<Option<String>, AppError> {
        let now = self.now().millis();
        let limited = |wait: i64, what: &str| AppError::RateLimited {
            detail: format!(
                "too many log-in attempts {what}; try again in {} s",
                (wait + 999) / 1000
            ),
            retry_after_ms: wait,
        };
        self.attempts_per_address
            .hit(&format!("address:{source}"), now)
            .map_err(|w| limited(w, "from this address"))?;
        let key = normalise_email("email", email).ok();
        if let Some(key) = &key {
            self.failures_per_account
                .check(key, now)
                .map_err(|w| limited(w, "for this account"))?;
        }
        Ok(key)
    }

    async fn login_failed(&self, email: &str, source: &str, realm: &str) -> AppError {
        let key =
            normalise_email("email", email).unwrap_or_else(|_| email.chars().take(200).collect());
        let _ = self.failures_per_account.hit(&key, self.now().millis());
        self.audit(
            format!("{realm}:{key}"),
            "login.failed",
            None,
            WRONG_LOGIN,
            source,
        )
        .await;
        unauthenticated(WRONG_LOGIN)
    }

    async fn start_session(
        &self,
        kind: SubjectKind,
        email: &str,
        subject: &str,
        role: Option<Role>,
        source: &str,
    ) -> Result<Tokens, AppError> {
        let now = self.now();
        let session = uuid::Uuid::now_v7().to_string();
        let doc = SessionDoc {
            kind,
            email: email.to_owned(),
            created_at: now,
            expires_at: now.plus_millis(self.settings.refresh_ttl_secs * 1000),
            revoked_at: None,
            source: source.to_owned(),
        };
        self.docs.sessions.insert(&session, &doc).await?;
        self.tokens(kind, email, subject, role, &session, doc.expires_at)
            .await
    }

    async fn tokens(
        &self,
        kind: SubjectKind,
        email: &str,
        subject: &str,
        role: Option<Role>,
        session: &str,
        session_expires: Timestamp,
    ) -> Result<Tokens, AppError> {
        let now = self.now();
        let (access, _) = self
            .signer
            .issue(kind, subject, email, role, session, now.millis() / 1000)
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let refresh = token::random_secret(32).map_err(|e| AppError::Internal(e.to_string()))?;
        let doc = RefreshDoc {
            session: session.to_owned(),
            expires_at: session_expires,
            used_at: None,
        };
        self.docs
            .refresh
            .insert(&token::digest(&refresh), &doc)
            .await?;
        Ok(Tokens {
            access_token: access,
            token_type: "Bearer",
            expires_in: self.signer.ttl_secs(),
            refresh_token: refresh,
            refresh_expires_in: ((session_expires.millis() - now.millis()) / 1000).max(0),
        })
    }

    /// Trades a refresh token for new tokens. The old one is spent; presenting it again
    /// revokes the session. A staff user's current role goes into the new token.
    ///
    /// # Errors
    /// [`AppError::Unauthenticated`] if the token is unknown, spent, expired or its session
    /// revoked or its user disabled.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, AppError> {
        let now = self.now();
        let digest = token::digest(refresh_token);
        let Some(Versioned {
            value: mut refresh,
            version,
        }) = self.docs.refresh.get(&digest).await?
        else {
            return Err(unauthenticated(
                "this refresh token is not valid; log in again",
            ));
        };
        let Some(session) = self.docs.sessions.value(&refresh.session).await? else {
            return Err(unauthenticated("this session has ended; log in again"));
        };
        if refresh.used_at.is_some() {
            // Replay of a spent token: someone else holds a copy. End the session for both.
            self.revoke_session(&refresh.session).await?;
            return Err(unauthenticated(
                "this refresh token was already used; the session has been ended, log in again",
            ));
        }
        if session.revoked_at.is_some() || session.expires_at <= now || refresh.expires_at <= now {
            return Err(unauthenticated("this session has ended; log in again"));
        }
        refresh.used_at = Some(now);
        // Spent once: no retry, since a concurrent use of the same token is a replay.
        match self
            .docs
            .refresh
            .save(&digest, &refresh, Some(version))
            .await
        {
            Err(StoreError::Conflict) => {
                return Err(unauthenticated(
                    "this refresh token was used by another request at the same time; log in again",
                ));
            }
            other => other?,
        }
        let (subject, role) = match session.kind {
            SubjectKind::Customer => {
                let account = self.account(&session.email).await?;
                (account.customer_id.to_string(), None)
            }
            SubjectKind::Staff => {
                let user = self.staff_doc(&session.email).await?;
                if user.disabled {
                    return Err(unauthenticated("this user is disabled; ask an admin"));
                }
                (user.email, Some(user.role))
            }
        };
        self.tokens(
            session.kind,
            &session.email,
            &subject,
            role,
            &refresh.session,
            session.expires_at,
        )
        .await
    }

    /// Ends the session a refresh token belongs to: none of its refresh tokens works again.
    /// Access tokens already issued run out on their own (minutes).
    ///
    /// # Errors
    /// [`AppError::Unauthenticated`] if the token is unknown.
    pub async fn logout(&self, refresh_token: &str) -> Result<(), AppError> {
        let Some(refresh) = self
            .docs
            .refresh
            .value(&token::digest(refresh_token))
            .await?
        else {
            return Err(unauthenticated("this refresh token is not valid"));
        };
        self.revoke_session(&refresh.session).await
    }

    async fn revoke_session(&self, id: &str) -> Result<(), AppError> {
        let now = self.now();
        self.docs
            .sessions
            .update(id, |session| {
                session.revoked_at.is_none() && {
                    session.revoked_at = Some(now);
                    true
                }
            })
            .await
            .map(|_| ())
    }

    async fn account(&self, email_key: &str) -> Result<AccountDoc, AppError> {
        self.docs
            .accounts
            .value(email_key)
            .await?
            .ok_or_else(|| unauthenticated("this account no longer exists"))
    }

    /// The profile of the signed-in customer.
    ///
    /// # Errors
    /// [`AppError::Unauthenticated`] if the account is gone.
    pub async fn profile(&self, email: &str) -> Result<Profile, AppError> {
        Ok(profile_of(&self.account(&email.to_lowercase()).await?))
    }

    /// Changes the signed-in customer's profile.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for bad fields.
    pub async fn update_profile(
        &self,
        email: &str,
        change: ProfileChange,
    ) -> Result<Profile, AppError> {
        let key = email.to_lowercase();
        let mut errors = Vec::new();
        if let Some(name) = &change.name
            && let Err(e) = Name::parse("name", name)
        {
            errors.push(e);
        }
        if let Some(addresses) = &change.addresses {
            if addresses.len() > MAX_ADDRESSES {
                errors.push(ValueError::new(
                    "addresses",
                    format!("at most {MAX_ADDRESSES} addresses"),
                ));
            }
            for (i, a) in addresses.iter().enumerate() {
                if let Err(es) = a.validate() {
                    errors.extend(es.into_iter().map(|e| {
                        ValueError::new(&format!("addresses[{i}].{}", e.field), e.message)
                    }));
                }
            }
        }
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let account = self
            .docs
            .accounts
            .update(&key, |account| {
                if let Some(name) = &change.name {
                    account.name.clone_from(name);
                }
                if let Some(addresses) = &change.addresses {
                    account.addresses.clone_from(addresses);
                }
                if let Some(currency) = change.default_currency {
                    account.default_currency = currency;
                }
                true
            })
            .await?
            .ok_or_else(|| unauthenticated("this account no longer exists"))?;
        Ok(profile_of(&account))
    }

    // ----- staff ----------------------------------------------------------------------------

    async fn staff_doc(&self, email_key: &str) -> Result<StaffDoc, AppError> {
        self.docs
            .staff
            .value(email_key)
            .await?
            .ok_or_else(|| AppError::NotFound {
                what: "user",
                id: email_key.to_owned(),
            })
    }

    /// Makes a staff user.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for bad fields; [`AppError::AlreadyExists`] if the e-mail has a
    /// user.
    pub async fn create_staff(
        &self,
        email: &str,
        name: &str,
        role: Role,
        password: &str,
        created_by: &str,
    ) -> Result<StaffUser, AppError> {
        let mut errors = Vec::new();
        let key = normalise_email("email", email)
            .map_err(|e| errors.push(e))
            .ok();
        if let Err(e) = Name::parse("name", name) {
            errors.push(e);
        }
        if let Err(AppError::Invalid(es)) = check_password(password) {
            errors.extend(es);
        }
        let Some(key) = key.filter(|_| errors.is_empty()) else {
            return Err(AppError::Invalid(errors));
        };
        let doc = StaffDoc {
            email: key.clone(),
            name: name.to_owned(),
            role,
            password_hash: hash_password(password.to_owned()).await?,
            disabled: false,
            created_at: self.now(),
            created_by: created_by.to_owned(),
        };
        match self.docs.staff.insert(&key, &doc).await {
            Err(StoreError::AlreadyExists) => Err(AppError::AlreadyExists {
                what: "user",
                id: key,
            }),
            other => {
                other?;
                Ok(staff_of(&doc))
            }
        }
    }

    /// Every staff user, by e-mail.
    ///
    /// # Errors
    /// [`AppError::Unavailable`] if the store is down.
    pub async fn staff(&self) -> Result<Vec<StaffUser>, AppError> {
        let users = self.docs.staff.all().await?;
        Ok(users.iter().map(|(_, user)| staff_of(user)).collect())
    }

    /// Changes a staff user's role or disables them. Their access tokens keep the old role
    /// until they expire (minutes); refreshing picks up the new one or, if disabled, fails.
    ///
    /// # Errors
    /// [`AppError::NotFound`] for an unknown user.
    pub async fn update_staff(
        &self,
        email: &str,
        role: Option<Role>,
        disabled: Option<bool>,
    ) -> Result<StaffUser, AppError> {
        let key = email.to_lowercase();
        let user = self
            .docs
            .staff
            .update(&key, |user| {
                user.role = role.unwrap_or(user.role);
                user.disabled = disabled.unwrap_or(user.disabled);
                true
            })
            .await?
            .ok_or_else(|| AppError::NotFound {
                what: "user",
                id: key.clone(),
            })?;
        Ok(staff_of(&user))
    }

    // ----- API keys -------------------------------------------------------------------------

    /// Makes an API key; the answer holds the key itself, which is not kept and never shown
    /// again.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for an empty name, no scopes or a scope keys may not hold.
    pub async fn create_key(
        &self,
        name: &str,
        scopes: &[Permission],
        created_by: &str,
    ) -> Result<(ApiKey, String), AppError> {
        let mut errors = Vec::new();
        if name.trim().is_empty() || name.chars().count() > MAX_KEY_NAME {
            errors.push(ValueError::new(
                "name",
                format!("must be 1 to {MAX_KEY_NAME} characters"),
            ));
        }
        if scopes.is_empty() {
            errors.push(ValueError::new("scopes", "name at least one scope"));
        }
        for s in scopes {
            if !s.grantable_to_keys() {
                errors.push(ValueError::new(
                    "scopes",
                    format!("{s} stays with people; API keys cannot hold it"),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let mut scopes = scopes.to_vec();
        scopes.sort();
        scopes.dedup();
        let (id, key) = token::new_api_key().map_err(|e| AppError::Internal(e.to_string()))?;
        let doc = ApiKeyDoc {
            key: ApiKey {
                id: id.clone(),
                name: name.trim().to_owned(),
                scopes,
                created_at: self.now(),
                created_by: created_by.to_owned(),
                revoked_at: None,
            },
            digest: token::digest(&key),
        };
        self.docs.keys.insert(&id, &doc).await?;
        Ok((doc.key, key))
    }

    /// Every API key, revoked ones included.
    ///
    /// # Errors
    /// [`AppError::Unavailable`] if the store is down.
    pub async fn keys(&self) -> Result<Vec<ApiKey>, AppError> {
        let keys = self.docs.keys.all().await?;
        Ok(keys.into_iter().map(|(_, doc)| doc.key).collect())
    }

    /// Revokes a key; it stops working at once here and within the key cache time elsewhere.
    ///
    /// # Errors
    /// [`AppError::NotFound`] for an unknown key.
    pub async fn revoke_key(&self, id: &str) -> Result<ApiKey, AppError> {
        let now = self.now();
        let doc = self
            .docs
            .keys
            .update(id, |doc| {
                doc.key.revoked_at.is_none() && {
                    doc.key.revoked_at = Some(now);
                    true
                }
            })
            .await?
            .ok_or_else(|| AppError::NotFound {
                what: "API key",
                id: id.to_owned(),
            })?;
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        Ok(doc.key)
    }

    // ----- audit ----------------------------------------------------------------------------

    /// Records an entry; a failure to record is logged, never lost silently, and never fails
    /// the action (which has already happened).
    pub async fn audit(
        &self,
        actor: String,
        action: &str,
        target: Option<&str>,
        outcome: &str,
        source: &str,
    ) {
        let entry = AuditEntry {
            id: uuid::Uuid::now_v7().to_string(),
            at: self.now(),
            actor,
            action: action.to_owned(),
            target: target.map(ToOwned::to_owned),
            outcome: outcome.to_owned(),
            source: source.to_owned(),
        };
        if let Err(e) = self.docs.audit.insert(&entry.id, &entry).await {
            tracing::error!(error = %e, actor = %entry.actor, action = %entry.action, target = ?entry.target, outcome = %entry.outcome, source = %entry.source, "could not record an audit entry");
        }
    }

    /// Audit entries oldest first, after `after`, at most `limit`.
    ///
    /// # Errors
    /// [`AppError::Unavailable`] if the store is down.
    pub async fn audit_log(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, AppError> {
        let entries = self
            .docs
            .audit
            .page(
                after,
                limit.clamp(*AUDIT_PAGE_LIMITS.start(), *AUDIT_PAGE_LIMITS.end()),
            )
            .await?;
        Ok(entries.into_iter().map(|(_, entry)| entry).collect())
    }
}

fn profile_of(account: &AccountDoc) -> Profile {
    Profile {
        customer_id: account.customer_id.clone(),
        email: account.email.clone(),
        name: account.name.clone(),
        addresses: account.addresses.clone(),
        default_currency: account.default_currency,
    }
}

fn staff_of(doc: &StaffDoc) -> StaffUser {
    StaffUser {
        email: doc.email.clone(),
        name: doc.name.clone(),
        role: doc.role,
        disabled: doc.disabled,
        created_at: doc.created_at,
        created_by: doc.created_by.clone(),
    }
}
