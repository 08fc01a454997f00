//! Stripe: [`Stripe`] implements the [`PaymentGateway`] port with Stripe's PaymentIntents API,
//! and [`verify_webhook`] checks the signature of Stripe's webhook calls.
//!
//! # How the port maps to Stripe
//! Every call sends `Authorization: Bearer <secret key>`, the pinned [`STRIPE_VERSION`] and a
//! form-encoded body; every POST carries the request's idempotency key, so a retried or re-run
//! step gets Stripe's first answer back instead of a second charge.
//! - `authorize`: `POST /v1/payment_intents` with `capture_method=manual`, `confirm=true` and
//!   the order's `pm_…`, confirmed server side (`allow_redirects=never`). `requires_capture`
//!   is success; a card that needs the customer (3-D Secure, `requires_action`) or that the
//!   issuer refused is [`PaymentError::Declined`].
//! - `capture`: `POST /v1/payment_intents/{id}/capture` with `amount_to_capture`; returns the
//!   PaymentIntent's id, which refunds refer to.
//! - `refund`: `POST /v1/refunds` for the PaymentIntent, whole or part.
//! - `void`: finds the order's PaymentIntents with the Search API (by `metadata[order_id]`) and
//!   cancels the uncaptured ones and refunds the captured ones.
//!
//! # What `void` can miss
//! Stripe's Search API is eventually consistent: a PaymentIntent shows up in results up to
//! about a minute after it was created or changed (longer during an outage at Stripe), so a
//! `void` right after an interrupted payment step can miss it. A missed authorization is not
//! lost money: Stripe cancels a card authorization that is not captured within 7 days by
//! itself. A missed *capture* stays charged, though; it shows in Stripe's dashboard with the
//! order's id in its metadata.
//!
//! # Errors
//! Declines (HTTP 402, `card_error`) and requests Stripe refuses as invalid (other 4xx) are
//! final: [`PaymentError::Declined`]. Rate limits (429), a concurrent request on the same key
//! or object (409), Stripe's own failures (5xx), timeouts and lost connections are
//! [`PaymentError::Transient`]. So is a refused API key (401/403): that is Orderly's
//! misconfiguration, not the buyer's fault, and once staff fix the key the retries get through.
//! `Stripe-Should-Retry: true` makes any error transient; `false` makes a 409 final (a 5xx
//! stays transient: its outcome is unknown, so it must not become a decline).
//!
//! Amounts are converted from Orderly's ISO 4217 minor units to Stripe's (see
//! [`stripe_amount`]); currencies are sent lower case.
//!
//! The API key and webhook secret are [`Secret`]s: neither is logged nor put into an error.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use orderly_core::ports::{PaymentError, PaymentGateway, PaymentRequest};
use orderly_core::secret::Secret;
use orderly_domain::{Money, OrderId};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;

/// The Stripe API version every request pins (`Stripe-Version`), so an account's default
/// version changing at Stripe cannot change the answers this adapter reads.
pub const STRIPE_VERSION: &str = "2024-06-20";

/// Where Stripe's API is, unless the settings say otherwise.
pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";

/// How far a webhook's signed timestamp may be from now: Stripe's libraries use five minutes.
pub const DEFAULT_WEBHOOK_TOLERANCE: Duration = Duration::from_secs(300);

/// How long one call to Stripe may take before it counts as a transient failure.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// Search pages read at most per `void`: an order has a handful of PaymentIntents, not
/// thousands; this only bounds a misbehaving answer.
const MAX_SEARCH_PAGES: usize = 10;

/// How to reach Stripe. `Debug` shows the secrets masked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StripeSettings {
    /// The account's secret key (`sk_…`) or a restricted key (`rk_…`) allowed to write
    /// PaymentIntents and Refunds and to read (search) PaymentIntents.
    pub api_key: Secret,
    /// The API's base URL; default [`DEFAULT_API_BASE`]. `http://` is accepted only for
    /// loopback addresses (a local test double), so the key never crosses a network in clear.
    pub api_base: String,
    /// The endpoint's signing secret (`whsec_…`), for [`Stripe::verify_webhook`]; `None` if
    /// webhooks are not received.
    pub webhook_secret: Option<Secret>,
    /// How old (or how far ahead) a webhook's timestamp may be; default
    /// [`DEFAULT_WEBHOOK_TOLERANCE`]. Bounds replays of a captured webhook call.
    pub webhook_tolerance: Duration,
    /// Time limit of one HTTP call to Stripe; default [`DEFAULT_TIMEOUT`].
    pub timeout: Duration,
}

impl StripeSettings {
    /// Settings for this key with every other field at its default.
    #[must_use]
    pub fn new(api_key: Secret) -> Self {
        StripeSettings {
            api_key,
            api_base: DEFAULT_API_BASE.to_owned(),
            webhook_secret: None,
            webhook_tolerance: DEFAULT_WEBHOOK_TOLERANCE,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// The Stripe payment adapter: one HTTP client (connections are pooled) and the settings.
pub struct Stripe {
    client: reqwest::Client,
    /// The API base, without a trailing `/`.
    base: String,
    api_key: Secret,
    webhook_secret: Option<Secret>,
    webhook_tolerance: Duration,
}

impl fmt::Debug for Stripe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stripe")
            .field("base", &self.base)
            .field("api_key", &self.api_key)
            .field("webhook_secret", &self.webhook_secret)
            .field("webhook_tolerance", &self.webhook_tolerance)
            .finish_non_exhaustive()
    }
}

impl Stripe {
    /// An adapter with these settings, checked first.
    ///
    /// # Errors
    /// A message naming the bad setting (never showing a secret): an empty or publishable key,
    /// a base URL that is not one or sends the key unencrypted to another machine, a zero
    /// timeout, or an HTTP client that cannot be built.
    pub fn new(settings: StripeSettings) -> Result<Stripe, String> {
        check_api_key(&settings.api_key)?;
        let base = check_api_base(&settings.api_base)?;
        if settings.timeout.is_zero() {
            return Err("the Stripe request timeout must be more than zero".to_owned());
        }
        if settings
            .webhook_secret
            .as_ref()
            .is_some_and(Secret::is_empty)
        {
            return Err(
                "the Stripe webhook secret is empty: set the endpoint's signing secret (whsec_…) \
                 or leave it unset"
                    .to_owned(),
            );
        }
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("orderly/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client for Stripe: {e}"))?;
        Ok(Stripe {
            client,
            base,
            api_key: settings.api_key,
            webhook_secret: settings.webhook_secret,
            webhook_tolerance: settings.webhook_tolerance,
        })
    }

    /// True when a webhook signing secret is configured, so webhooks can be verified.
    #[must_use]
    pub fn has_webhook_secret(&self) -> bool {
        self.webhook_secret.as_ref().is_some_and(|s| !s.is_empty())
    }

    /// Checks a webhook call with the configured secret and tolerance against the system
    /// clock; see [`verify_webhook`].
    ///
    /// # Errors
    /// [`WebhookError::NotConfigured`] without a webhook secret, else as [`verify_webhook`].
    pub fn verify_webhook(
        &self,
        payload: &[u8],
        signature_header: &str,
    ) -> Result<WebhookEvent, WebhookError> {
        let secret = self
            .webhook_secret
            .as_ref()
            .ok_or(WebhookError::NotConfigured)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        verify_webhook(
            payload,
            signature_header,
            secret,
            self.webhook_tolerance,
            now,
        )
    }

    /// One call to Stripe. POSTs send `params` form-encoded with the idempotency key; GETs
    /// send them as the query string.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, String)],
        idempotency_key: Option<&str>,
    ) -> Result<T, Failure> {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(self.api_key.expose())
            .header("Stripe-Version", STRIPE_VERSION);
        if method == Method::GET {
            request = request.query(params);
        } else {
            request = request.form(params);
            if let Some(key) = idempotency_key {
                request = request.header("Idempotency-Key", key);
            }
        }
        let response = request.send().await.map_err(Failure::transport)?;
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let should_retry = header("stripe-should-retry").and_then(|v| match v.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        });
        let request_id = header("request-id");
        let body = response.bytes().await.map_err(Failure::transport)?;
        tracing::debug!(
            %method,
            path,
            status = status.as_u16(),
            request_id = request_id.as_deref().unwrap_or(""),
            "Stripe call"
        );
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|e| Failure::Unexpected(format!("{method} {path} answered {e}")));
        }
        let error = serde_json::from_slice::<ErrorBody>(&body)
            .map(|b| b.error)
            .unwrap_or_default();
        Err(Failure::Api {
            status,
            should_retry,
            error,
            request_id,
        })
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, String)],
        idempotency_key: &str,
    ) -> Result<T, Failure> {
        self.call(Method::POST, path, params, Some(idempotency_key))
            .await
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<T, Failure> {
        self.call(Method::GET, path, params, None).await
    }

    async fn retrieve(&self, id: &str) -> Result<PaymentIntent, Failure> {
        self.get(&format!("/v1/payment_intents/{id}"), &[]).await
    }

    /// Every PaymentIntent whose `metadata[order_id]` is the order's.
    ///
    /// Eventually consistent (Stripe documents up to about a minute): a PaymentIntent made just
    /// before can be missing. An authorization missed this way is not lost: Stripe cancels an
    /// uncaptured card authorization by itself after 7 days, releasing the money.
    async fn search_order(&self, order_id: OrderId) -> Result<Vec<PaymentIntent>, Failure> {
        let query = format!(
            "metadata['order_id']:'{}'",
            search_literal(&order_id.to_string())
        );
        let mut found = Vec::new();
        let mut page: Option<String> = None;
        for _ in 0..MAX_SEARCH_PAGES {
            let mut params = vec![("query", query.clone()), ("limit", "100".to_owned())];
            if let Some(page) = page.take() {
                params.push(("page", page));
            }
            let result: SearchResult = self.get("/v1/payment_intents/search", &params).await?;
            found.extend(result.data);
            match result.next_page {
                Some(next) if result.has_more => page = Some(next),
                _ => return Ok(found),
            }
        }
        Err(Failure::Unexpected(format!(
            "more than {MAX_SEARCH_PAGES} pages of PaymentIntents for order {order_id}"
        )))
    }

    /// Cancels one uncaptured PaymentIntent, releasing the authorization.
    async fn cancel(&self, id: &str, key: &str) -> Result<(), Failure> {
        let _: PaymentIntent = self
            .post(
                &format!("/v1/payment_intents/{id}/cancel"),
                &[("cancellation_reason", "abandoned".to_owned())],
                key,
            )
            .await?;
        Ok(())
    }

    /// Refunds what is left of one captured PaymentIntent. No `amount` is sent: Stripe then
    /// refunds the whole remaining amount, which is all of it unless staff refunded part in the
    /// dashboard (a refund of the full original amount would then be refused).
    async fn refund_rest(&self, id: &str, order_id: OrderId, key: &str) -> Result<(), Failure> {
        let params = [
            ("payment_intent", id.to_owned()),
            ("metadata[order_id]", order_id.to_string()),
        ];
        match self.post::<Refund>("/v1/refunds", &params, key).await {
            Ok(_) => Ok(()),
            Err(f) if f.code() == Some("charge_already_refunded") => Ok(()),
            Err(f) => Err(f),
        }
    }
}

#[async_trait]
impl PaymentGateway for Stripe {
    async fn authorize(&self, request: &PaymentRequest) -> Result<String, PaymentError> {
        let Some(payment_method) = request
            .payment_method
            .as_deref()
            .filter(|p| !p.trim().is_empty())
        else {
            return Err(PaymentError::Declined(format!(
                "no payment method on the order {}: the shop's checkout must collect one \
                 (a Stripe pm_… id) before the order can be paid",
                request.order_id
            )));
        };
        let amount = stripe_amount(request.amount).map_err(PaymentError::Declined)?;
        let params = [
            ("amount", amount.to_string()),
            (
                "currency",
                request.amount.currency().code().to_ascii_lowercase(),
            ),
            ("capture_method", "manual".to_owned()),
            ("confirm", "true".to_owned()),
            ("payment_method", payment_method.to_owned()),
            ("automatic_payment_methods[enabled]", "true".to_owned()),
            (
                "automatic_payment_methods[allow_redirects]",
                "never".to_owned(),
            ),
            ("metadata[order_id]", request.order_id.to_string()),
            ("metadata[customer_id]", request.customer_id.to_string()),
        ];
        let mut intent: PaymentIntent = self
            .post(
                "/v1/payment_intents",
                &params,
                &request.idempotency_key.to_string(),
            )
            .await
            .map_err(|f| f.judge(&self.api_key))?;
        if intent.status == "processing" {
            // A repeated key replays the first answer; only a fresh read tells how it ended.
            intent = self
                .retrieve(&intent.id)
                .await
                .map_err(|f| f.judge(&self.api_key))?;
        }
        match intent.status.as_str() {
            // `succeeded` only if the method captured at once; `capture` accepts it as done.
            "requires_capture" | "succeeded" => Ok(intent.id),
            "requires_action" => Err(PaymentError::Declined(format!(
                "payment method {payment_method} needs the customer to authenticate (3-D Secure \
                 or a redirect), which a charge made by the server cannot do (PaymentIntent {})",
                intent.id
            ))),
            "requires_payment_method" => Err(PaymentError::Declined(
                intent
                    .last_payment_error
                    .as_ref()
                    .map(|e| e.describe(&self.api_key))
                    .filter(|d| !d.is_empty())
                    .unwrap_or_else(|| {
                        format!(
                            "the payment method was refused (PaymentIntent {})",
                            intent.id
                        )
                    }),
            )),
            "canceled" => Err(PaymentError::Declined(format!(
                "PaymentIntent {} was canceled",
                intent.id
            ))),
            "processing" => Err(PaymentError::Transient(format!(
                "PaymentIntent {} is still processing",
                intent.id
            ))),
            other => Err(PaymentError::Transient(format!(
                "PaymentIntent {} has the unexpected status {other:?}",
                intent.id
            ))),
        }
    }

    async fn capture(
        &self,
        request: &PaymentRequest,
        authorization: &str,
    ) -> Result<String, PaymentError> {
        check_id(authorization, "pi_")?;
        let amount = stripe_amount(request.amount).map_err(PaymentError::Declined)?;
        let answer = self
            .post::<PaymentIntent>(
                &format!("/v1/payment_intents/{authorization}/capture"),
                &[("amount_to_capture", amount.to_string())],
                &request.idempotency_key.to_string(),
            )
            .await;
        let intent = match answer {
            Ok(intent) => intent,
            Err(refused) if refused.code() == Some("payment_intent_unexpected_state") => {
                // Captured already: by an earlier attempt whose idempotency record Stripe no
                // longer keeps (it keeps them 24 hours), or because authorize succeeded at once.
                let current = self
                    .retrieve(authorization)
                    .await
                    .map_err(|f| f.judge(&self.api_key))?;
                if current.status != "succeeded" {
                    return Err(refused.judge(&self.api_key));
                }
                current
            }
            Err(f) => return Err(f.judge(&self.api_key)),
        };
        match intent.status.as_str() {
            "succeeded" => Ok(intent.id),
            "canceled" => Err(PaymentError::Declined(format!(
                "authorization {} was canceled or expired (Stripe cancels uncaptured card \
                 authorizations after 7 days)",
                intent.id
            ))),
            other => Err(PaymentError::Transient(format!(
                "PaymentIntent {} is {other:?} after capture",
                intent.id
            ))),
        }
    }

    async fn refund(
        &self,
        request: &PaymentRequest,
        capture_ref: &str,
    ) -> Result<String, PaymentError> {
        check_id(capture_ref, "pi_")?;
        let amount = stripe_amount(request.amount).map_err(PaymentError::Declined)?;
        let params = [
            ("payment_intent", capture_ref.to_owned()),
            ("amount", amount.to_string()),
            ("metadata[order_id]", request.order_id.to_string()),
        ];
        let refund: Refund = self
            .post("/v1/refunds", &params, &request.idempotency_key.to_string())
            .await
            .map_err(|f| f.judge(&self.api_key))?;
        match refund.status.as_deref() {
            Some(status @ ("failed" | "canceled")) => Err(PaymentError::Declined(format!(
                "refund {} {status}: {}",
                refund.id,
                refund
                    .failure_reason
                    .as_deref()
                    .unwrap_or("no reason given")
            ))),
            _ => Ok(refund.id),
        }
    }

    /// Cancels the order's uncaptured PaymentIntents and refunds its captured ones, found with
    /// the Search API (see "What `void` can miss" in the module documentation). Every failure
    /// is transient: the next try searches again and acts on what it finds then.
    async fn void(&self, request: &PaymentRequest) -> Result<(), PaymentError> {
        let transient = |f: Failure| match f.judge(&self.api_key) {
            PaymentError::Transient(m) | PaymentError::Declined(m) => {
                PaymentError::Transient(format!("void of order {}: {m}", request.order_id))
            }
        };
        let intents = self
            .search_order(request.order_id)
            .await
            .map_err(transient)?;
        let mut processing = Vec::new();
        for intent in intents {
            check_id(&intent.id, "pi_").map_err(|e| PaymentError::Transient(e.to_string()))?;
            // One key per PaymentIntent and action: a cancel refused because the intent moved
            // on must not block the refund a later try makes with its own key.
            let key =
                |action: &str| format!("{}:void:{action}:{}", request.idempotency_key, intent.id);
            match intent.status.as_str() {
                "canceled" => {}
                "succeeded" => {
                    tracing::info!(
                        order = %request.order_id,
                        intent = %intent.id,
                        "void: refunding an unrecorded capture"
                    );
                    self.refund_rest(&intent.id, request.order_id, &key("refund"))
                        .await
                        .map_err(transient)?;
                }
                "processing" => processing.push(intent.id),
                _ => {
                    tracing::info!(
                        order = %request.order_id,
                        intent = %intent.id,
                        status = %intent.status,
                        "void: canceling an unrecorded PaymentIntent"
                    );
                    self.cancel(&intent.id, &key("cancel"))
                        .await
                        .map_err(transient)?;
                }
            }
        }
        if processing.is_empty() {
            Ok(())
        } else {
            Err(PaymentError::Transient(format!(
                "void of order {}: PaymentIntent(s) {} still processing; will look again",
                request.order_id,
                processing.join(", ")
            )))
        }
    }
}

/// Orderly's amount as the integer Stripe's `amount` fields take.
///
/// Stripe counts in the currency's minor unit like Orderly (USD 279.98 → `27998`, JPY 1500 →
/// `1500`, KWD 24.590 → `24590`), with two documented exceptions: ISK, zero-decimal in
/// ISO 4217 and Orderly, is two-decimal at Stripe (ISK 5 → `500`); and three-decimal currencies
/// must end in 0 (Stripe's card partners take no finer unit). An amount that cannot be sent
/// as it is yields a message rather than a silently rounded charge.
///
/// # Errors
/// A zero or negative amount, an amount too large, or a three-decimal amount not ending in 0.
pub fn stripe_amount(money: Money) -> Result<i64, String> {
    let currency = money.currency();
    let minor = money.minor();
    if minor <= 0 {
        return Err(format!(
            "Stripe cannot charge or refund {money}: the amount must be more than zero"
        ));
    }
    match (currency.code(), currency.exponent()) {
        ("ISK", 0) => minor
            .checked_mul(100)
            .ok_or_else(|| format!("{money} is too large for Stripe")),
        (code, 3) if minor % 10 != 0 => Err(format!(
            "Stripe takes {code} amounts in steps of 0.010 only (the last of the three decimals \
             must be 0); {money} is not one: round the price"
        )),
        _ => Ok(minor),
    }
}

/// Refuses an id that is not a plain Stripe id, before it goes into a URL path.
fn check_id(id: &str, prefix: &str) -> Result<(), PaymentError> {
    let plain = id.starts_with(prefix)
        && id.len() <= 255
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if plain {
        Ok(())
    } else {
        Err(PaymentError::Declined(format!(
            "{id:?} is not a Stripe id ({prefix}…)"
        )))
    }
}

/// A value for a Search API query string literal: `'` and `\` escaped.
fn search_literal(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\'', "\\'")
}

fn check_api_key(key: &Secret) -> Result<(), String> {
    let key = key.expose();
    if key.is_empty() {
        return Err(
            "the Stripe API key is empty: set the account's secret key (sk_…) or a restricted \
             key (rk_…)"
                .to_owned(),
        );
    }
    if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the Stripe API key contains spaces or line breaks: copy it again".to_owned());
    }
    if key.starts_with("pk_") {
        return Err(
            "the Stripe API key is a publishable key (pk_…), which cannot create payments: use \
             the secret key (sk_…) or a restricted key (rk_…)"
                .to_owned(),
        );
    }
    if !(key.starts_with("sk_") || key.starts_with("rk_")) {
        return Err(
            "the Stripe API key is not a secret key (sk_…) or a restricted key (rk_…)".to_owned(),
        );
    }
    Ok(())
}

/// The base URL without a trailing `/`, if it is https, or http to this machine.
fn check_api_base(base: &str) -> Result<String, String> {
    let base = base.trim().trim_end_matches('/');
    let url = reqwest::Url::parse(base)
        .map_err(|e| format!("the Stripe API base {base:?} is not a URL: {e}"))?;
    let loopback = match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(format!(
                "the Stripe API base {base:?} is plain http: the key would cross the network \
                 unencrypted; use https (http is only for a test double on this machine)"
            ));
        }
        other => {
            return Err(format!(
                "the Stripe API base {base:?} has the scheme {other:?}; use https"
            ));
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "the Stripe API base {base:?} must not have a query or fragment"
        ));
    }
    Ok(base.to_owned())
}

/// A call that did not give the expected object, before it is judged final or not.
#[derive(Debug)]
enum Failure {
    /// No HTTP answer: connection refused or dropped, or the time limit passed.
    Transport(String),
    /// Stripe answered with an error status.
    Api {
        status: StatusCode,
        /// `Stripe-Should-Retry`, if Stripe sent it.
        should_retry: Option<bool>,
        error: ApiError,
        /// Stripe's `Request-Id`, for its support.
        request_id: Option<String>,
    },
    /// A success status with a body that is not the expected object.
    Unexpected(String),
}

impl Failure {
    fn transport(e: reqwest::Error) -> Failure {
        let what = if e.is_timeout() {
            "no answer in time"
        } else if e.is_connect() {
            "cannot connect"
        } else {
            "connection failed"
        };
        let mut text = format!("{what}: {e}");
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            text.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        Failure::Transport(text)
    }

    /// Stripe's error code (`card_declined`, `payment_intent_unexpected_state`, …).
    fn code(&self) -> Option<&str> {
        match self {
            Failure::Api { error, .. } => error.code.as_deref(),
            _ => None,
        }
    }

    /// Final or worth retrying; see the module documentation.
    fn judge(self, api_key: &Secret) -> PaymentError {
        let (status, should_retry, error, request_id) = match self {
            Failure::Transport(m) => {
                return PaymentError::Transient(format!("Stripe unreachable ({m})"));
            }
            Failure::Unexpected(m) => {
                return PaymentError::Transient(format!("unexpected answer from Stripe: {m}"));
            }
            Failure::Api {
                status,
                should_retry,
                error,
                request_id,
            } => (status, should_retry, error, request_id),
        };
        let request = request_id
            .map(|id| format!(" (request {id})"))
            .unwrap_or_default();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            // Stripe's message quotes part of the key: not passed on.
            return PaymentError::Transient(format!(
                "Stripe refused the API key (HTTP {}): check the configured Stripe secret key \
                 and its permissions{request}",
                status.as_u16()
            ));
        }
        let mut detail = error.describe(api_key);
        if detail.is_empty() {
            detail = format!("HTTP {}", status.as_u16());
        }
        let detail = format!("{detail}{request}");
        let kind = error.kind.as_deref();
        if should_retry == Some(true) {
            PaymentError::Transient(format!("Stripe asks to retry: {detail}"))
        } else if status == StatusCode::PAYMENT_REQUIRED || kind == Some("card_error") {
            PaymentError::Declined(detail)
        } else if status == StatusCode::TOO_MANY_REQUESTS {
            PaymentError::Transient(format!("Stripe rate limit: {detail}"))
        } else if status.is_server_error() {
            // Even with `Stripe-Should-Retry: false`: the outcome of a 5xx is unknown (the
            // charge may have happened), so declining would risk rejecting a paid order; the
            // dispatcher's retry limit hands a step that keeps failing to a person instead.
            PaymentError::Transient(format!(
                "Stripe failed (HTTP {}): {detail}",
                status.as_u16()
            ))
        } else if status == StatusCode::CONFLICT && should_retry != Some(false) {
            // Another request with the same key or on the same object is in flight.
            PaymentError::Transient(format!("Stripe conflict: {detail}"))
        } else {
            PaymentError::Declined(detail)
        }
    }
}

/// Stripe's error object: `{"error": {"type", "code", "decline_code", "message", …}}`.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    error: ApiError,
}

#[derive(Debug, Default, Deserialize)]
struct ApiError {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    decline_code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

impl ApiError {
    /// `decline_code or code: message`, the key masked should Stripe ever quote it.
    fn describe(&self, api_key: &Secret) -> String {
        let code = match (&self.decline_code, &self.code) {
            (Some(decline), Some(code)) if decline != code => format!("{code} ({decline})"),
            (Some(decline), _) => decline.clone(),
            (None, Some(code)) => code.clone(),
            (None, None) => String::new(),
        };
        let text = match (code.is_empty(), self.message.as_deref()) {
            (false, Some(m)) => format!("{code}: {m}"),
            (true, Some(m)) => m.to_owned(),
            (_, None) => code,
        };
        if api_key.is_empty() {
            text
        } else {
            text.replace(api_key.expose(), &api_key.masked())
        }
    }
}

/// The fields of a PaymentIntent this adapter reads.
#[derive(Debug, Deserialize)]
struct PaymentIntent {
    id: String,
    status: String,
    #[serde(default)]
    last_payment_error: Option<ApiError>,
}

/// The fields of a Refund this adapter reads.
#[derive(Debug, Deserialize)]
struct Refund {
    id: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    failure_reason: Option<String>,
}

/// A page of Search API results.
#[derive(Debug, Deserialize)]
struct SearchResult {
    data: Vec<PaymentIntent>,
    #[serde(default)]
    has_more: bool,
    #[serde(default)]
    next_page: Option<String>,
}

/// A Stripe event delivered to a webhook endpoint, after its signature was checked.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookEvent {
    /// The event's id (`evt_…`); Stripe may deliver an event more than once, so handlers
    /// should remember the ids they handled.
    pub id: String,
    /// What happened, e.g. `payment_intent.succeeded`, `charge.refunded`.
    pub event_type: String,
    /// When Stripe created the event, in Unix seconds.
    pub created: i64,
    /// `data.object`: the object the event is about, as Stripe sent it.
    pub object: serde_json::Value,
}

/// Why a webhook call was refused. None of them should be acted on: answer 400.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// No `Stripe-Signature` header, or an empty one.
    #[error("the Stripe-Signature header is missing")]
    MissingHeader,
    /// The header is not `t=<unix time>,v1=<hex>[,v1=…]`.
    #[error("the Stripe-Signature header is malformed: {0}")]
    MalformedHeader(String),
    /// No `v1` signature matches: the payload was changed, or the secret is not this
    /// endpoint's.
    #[error(
        "no signature in the Stripe-Signature header matches the payload: it was changed, or \
         the webhook secret is not this endpoint's"
    )]
    NoMatchingSignature,
    /// The signed timestamp is further from now than the tolerance: a replayed call, or a
    /// clock far off.
    #[error(
        "the webhook was signed at {timestamp}, {age} s from now ({now}), more than the \
         {tolerance} s allowed: a replay, or a wrong clock"
    )]
    TimestampOutsideTolerance {
        /// The header's `t`.
        timestamp: i64,
        /// The time it was checked at.
        now: i64,
        /// Seconds between the two.
        age: u64,
        /// The tolerance in seconds.
        tolerance: u64,
    },
    /// The signature is right but the payload is not a Stripe event.
    #[error("the webhook payload is not a Stripe event: {0}")]
    BadJson(String),
    /// No webhook secret is configured, so no call can be trusted.
    #[error("no Stripe webhook secret is configured")]
    NotConfigured,
}

/// Checks a webhook call the way Stripe documents it, then reads the event.
///
/// Stripe signs `"<t>.<payload>"` with HMAC-SHA256 under the endpoint's secret and sends
/// `Stripe-Signature: t=<unix time>,v1=<hex>`; there can be several `v1` entries (while a
/// secret is rolled) and other schemes (`v0`) that are ignored. The comparison is constant
/// time, and a timestamp further than `tolerance` from `now_unix` (either way) is refused so a
/// recorded call cannot be replayed later. `payload` must be the raw request body, unparsed.
///
/// # Errors
/// A [`WebhookError`] saying which check failed.
pub fn verify_webhook(
    payload: &[u8],
    signature_header: &str,
    secret: &Secret,
    tolerance: Duration,
    now_unix: i64,
) -> Result<WebhookEvent, WebhookError> {
    if secret.is_empty() {
        return Err(WebhookError::NotConfigured);
    }
    let header = signature_header.trim();
    if header.is_empty() {
        return Err(WebhookError::MissingHeader);
    }
    let mut timestamp: Option<&str> = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        let Some((scheme, value)) = item.trim().split_once('=') else {
            return Err(WebhookError::MalformedHeader(
                "an entry without '='".to_owned(),
            ));
        };
        match scheme {
            "t" if timestamp.is_none() => timestamp = Some(value),
            "t" => {
                return Err(WebhookError::MalformedHeader(
                    "more than one t= timestamp".to_owned(),
                ));
            }
            "v1" => signatures.push(value),
            _ => {}
        }
    }
    let Some(signed_at) = timestamp else {
        return Err(WebhookError::MalformedHeader("no t=<timestamp>".to_owned()));
    };
    let at: i64 = signed_at
        .parse()
        .map_err(|_| WebhookError::MalformedHeader("t= is not a Unix timestamp".to_owned()))?;
    if signatures.is_empty() {
        return Err(WebhookError::MalformedHeader("no v1= signature".to_owned()));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .map_err(|_| WebhookError::NoMatchingSignature)?;
    mac.update(signed_at.as_bytes());
    mac.update(b".");
    mac.update(payload);
    let matches = signatures
        .iter()
        .filter_map(|s| hex::decode(s).ok())
        // `verify_slice` compares in constant time.
        .any(|expected| mac.clone().verify_slice(&expected).is_ok());
    if !matches {
        return Err(WebhookError::NoMatchingSignature);
    }
    let age = now_unix.abs_diff(at);
    if age > tolerance.as_secs() {
        return Err(WebhookError::TimestampOutsideTolerance {
            timestamp: at,
            now: now_unix,
            age,
            tolerance: tolerance.as_secs(),
        });
    }
    let event: RawEvent =
        serde_json::from_slice(payload).map_err(|e| WebhookError::BadJson(e.to_string()))?;
    Ok(WebhookEvent {
        id: event.id,
        event_type: event.event_type,
        created: event.created,
        object: event.data.object,
    })
}

/// An event as Stripe sends it (the fields read).
#[derive(Deserialize)]
struct RawEvent {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    created: i64,
    data: RawEventData,
}

#[derive(Deserialize)]
struct RawEventData {
    object: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;
    use orderly_domain::Currency;

    fn money(minor: i64, code: &str) -> Money {
        Money::from_minor(minor, Currency::parse(code).unwrap())
    }

    #[test]
    fn stripe_amounts_follow_stripes_currency_rules() {
        assert_eq!(stripe_amount(money(27998, "USD")), Ok(27998));
        assert_eq!(stripe_amount(money(1500, "JPY")), Ok(1500));
        assert_eq!(stripe_amount(money(24590, "KWD")), Ok(24590));
        assert_eq!(stripe_amount(money(5, "ISK")), Ok(500));
        assert_eq!(stripe_amount(money(100_000, "UGX")), Ok(100_000));
        let err = stripe_amount(money(24593, "KWD")).unwrap_err();
        assert!(err.contains("24.593 KWD"), "{err}");
        assert!(stripe_amount(money(0, "USD")).is_err());
        assert!(stripe_amount(money(-1, "USD")).is_err());
        assert!(stripe_amount(money(i64::MAX, "ISK")).is_err());
    }

    #[test]
    fn search_literals_are_escaped() {
        assert_eq!(search_literal("a'b\\c"), "a\\'b\\\\c");
    }

    #[test]
    fn ids_going_into_paths_must_be_plain() {
        assert!(check_id("pi_3MtwBwLkdIwHu7ix28a3tqPa", "pi_").is_ok());
        assert!(check_id("pi_1/../../v1/refunds", "pi_").is_err());
        assert!(check_id("ch_123", "pi_").is_err());
    }

    #[test]
    fn error_text_masks_the_key_if_stripe_quotes_it() {
        let key = Secret::new("sk_test_0123456789abcdefWXYZ");
        let error = ApiError {
            message: Some("Invalid API Key provided: sk_test_0123456789abcdefWXYZ".into()),
            ..ApiError::default()
        };
        assert_eq!(error.describe(&key), "Invalid API Key provided: ****WXYZ");
    }
}
