//! A local double of Stripe's API, for tests of the Stripe adapter and of an Orderly that pays
//! through it.
//!
//! [`StripeDouble::start`] serves on `127.0.0.1` at a free port ([`StripeDouble::base_url`])
//! until the double is dropped. It answers the endpoints the adapter uses the way Stripe's API
//! reference documents them:
//! - `POST /v1/payment_intents`, `GET /v1/payment_intents/{id}`,
//!   `POST /v1/payment_intents/{id}/capture`, `POST /v1/payment_intents/{id}/cancel`,
//!   `GET /v1/payment_intents/search` (the query `metadata['order_id']:'<id>'`, paged) and
//!   `POST /v1/refunds`, with PaymentIntent, Refund and search-result objects;
//! - error objects with Stripe's HTTP statuses and a `Request-Id` (`req_dbl0001`, … counting
//!   every request);
//! - `Authorization: Bearer <key>` enforced (401 otherwise; the key is [`API_KEY`] unless
//!   started with [`StripeDouble::start_with_key`]), POST bodies must be form-encoded;
//! - a repeated `Idempotency-Key` answered with the stored first answer
//!   (`Idempotent-Replayed: true`), the same key with other parameters refused (400), and one
//!   still in flight refused (409).
//!
//! Special payment methods drive outcomes like Stripe's test cards: `pm_card_visa` authorizes
//! (`requires_capture` with `capture_method=manual`), `pm_card_chargeDeclined` and
//! `pm_card_chargeDeclinedInsufficientFunds` are declined (402, `card_declined`),
//! `pm_card_authenticationRequired` needs 3-D Secure (`requires_action`), any other `pm_…` is
//! unknown (400, `resource_missing`).
//!
//! Every request is recorded ([`StripeDouble::requests`]), and so are the objects made
//! ([`StripeDouble::intents`], [`StripeDouble::refunds`]). Failure switches inject what the
//! network and Stripe can do: [`StripeDouble::fail_next`] (an error status, or a hang) and
//! [`StripeDouble::drop_next_connection`].
//!
//! [`webhook_signature`] signs a webhook payload the way Stripe does, for tests of a webhook
//! endpoint configured with [`WEBHOOK_SECRET`].
//!
//! ```text
//! let stripe = StripeDouble::start().await;
//! // orderly serve --payment-provider stripe --stripe-api-base {stripe.base_url()}
//! //               --stripe-api-key {API_KEY} …
//! assert_eq!(stripe.requests()[0].path, "/v1/payment_intents");
//! ```

// The crate allows missing docs; this module is a public API for other crates' tests.
#![warn(missing_docs)]

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The secret key the double accepts unless started with another
/// ([`StripeDouble::start_with_key`]). It looks like a test-mode key and ends in `Qx7Z`.
pub const API_KEY: &str = "sk_test_51DoubleKey0000000000000000000000Qx7Z";

/// A webhook signing secret for tests; the double itself sends no webhooks, see
/// [`webhook_signature`].
pub const WEBHOOK_SECRET: &str = "whsec_test_5b1c0a2f9e8d7c6b";

/// One request as the double received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the query: `/v1/payment_intents/pi_…/capture`.
    pub path: String,
    /// The query string's parameters, decoded, in order.
    pub query: Vec<(String, String)>,
    /// Every header as sent.
    pub headers: HeaderMap,
    /// The form-encoded body's parameters, decoded, in order (empty for a GET).
    pub form: Vec<(String, String)>,
}

impl Recorded {
    /// A header's value, if it was sent and is text (names are case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body's parameters by name (the last one wins should a name repeat; compare
    /// [`Recorded::form`]'s length to find repeats).
    #[must_use]
    pub fn form_map(&self) -> BTreeMap<&str, &str> {
        self.form
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// The first query parameter called `name`.
    #[must_use]
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the double does with a request instead of answering it normally; see
/// [`StripeDouble::fail_next`].
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answers this error before doing anything: nothing is created and nothing is stored for
    /// the idempotency key, as Stripe stores nothing for a request that never started.
    Status {
        /// The HTTP status, e.g. 429, 500, 409.
        status: u16,
        /// The `Stripe-Should-Retry` header to send, if any.
        should_retry: Option<bool>,
        /// The body, e.g. `{"error": {"type": "api_error", "message": "…"}}`, or any JSON.
        body: Value,
    },
    /// Waits this long, then does the work and answers, too late for a client that gave up;
    /// the work is done even if the client hangs up, as at Stripe.
    Hang(Duration),
}

/// Everything the double knows.
#[derive(Default)]
struct Book {
    requests: Vec<Recorded>,
    /// Faults for the coming requests, in order; `None` lets one through.
    faults: VecDeque<Option<Fault>>,
    /// Connections to drop, after reading the request, before answering.
    drops: usize,
    dropped: usize,
    /// Idempotency key → (request fingerprint, status, body) of the first answer.
    replies: HashMap<String, (String, u16, Value)>,
    in_flight: HashSet<String>,
    /// PaymentIntents in creation order.
    intents: Vec<Value>,
    refunds: Vec<Value>,
    /// Results per search page; 0 means the `limit` asked for.
    search_page_size: usize,
    next_id: u64,
}

impl Book {
    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}_3Dbl{:020}", self.next_id)
    }

    fn intent(&mut self, id: &str) -> Option<&mut Value> {
        self.intents.iter_mut().find(|pi| pi["id"] == id)
    }
}

/// What the server's handlers share.
struct Shared {
    /// The one key accepted in `Authorization: Bearer`.
    api_key: String,
    book: Mutex<Book>,
}

impl Shared {
    /// The book, even if a test panicked while holding it.
    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running double of Stripe's API; it stops when dropped.
pub struct StripeDouble {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl std::fmt::Debug for StripeDouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeDouble")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for StripeDouble {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl StripeDouble {
    /// Starts a double accepting [`API_KEY`], on `127.0.0.1` at a free port, on the current
    /// Tokio runtime.
    ///
    /// # Panics
    /// If no local port can be bound.
    pub async fn start() -> StripeDouble {
        Self::start_with_key(API_KEY).await
    }

    /// Starts a double accepting the secret key `api_key` (and refusing every other with 401).
    ///
    /// # Panics
    /// If no local port can be bound.
    pub async fn start_with_key(api_key: &str) -> StripeDouble {
        let shared = Arc::new(Shared {
            api_key: api_key.to_owned(),
            book: Mutex::new(Book::default()),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .fallback(handle)
            .layer(axum::middleware::map_response(close_connection))
            .with_state(Arc::clone(&shared));
        let listener = DroppingListener {
            inner: listener,
            shared: Arc::clone(&shared),
        };
        let server = tokio::spawn(async move {
            // `serve` returns only if the runtime goes away.
            let _ = axum::serve(listener, app).await;
        });
        StripeDouble {
            addr,
            shared,
            server,
        }
    }

    /// The API base to configure the adapter with: `http://127.0.0.1:<port>`, no trailing `/`.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The secret key the double accepts.
    #[must_use]
    pub fn api_key(&self) -> &str {
        &self.shared.api_key
    }

    /// Every request received so far, oldest first (also those answered with a fault or a
    /// 401; not the connections dropped by [`StripeDouble::drop_next_connection`]).
    #[must_use]
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.book().requests.clone()
    }

    /// Every PaymentIntent created, oldest first, as it is now.
    #[must_use]
    pub fn intents(&self) -> Vec<Value> {
        self.shared.book().intents.clone()
    }

    /// Every Refund created, oldest first.
    #[must_use]
    pub fn refunds(&self) -> Vec<Value> {
        self.shared.book().refunds.clone()
    }

    /// The PaymentIntent `id` as it is now.
    ///
    /// # Panics
    /// If the double created no PaymentIntent `id`.
    #[must_use]
    pub fn intent(&self, id: &str) -> Value {
        self.intents()
            .into_iter()
            .find(|pi| pi["id"] == id)
            .unwrap_or_else(|| panic!("no PaymentIntent {id} at the double"))
    }

    /// Queues what happens to the next request not yet given a fault: `Some` fault, or `None`
    /// to let it through (to aim a fault at a later request). Faults apply in the order
    /// queued, one per request.
    pub fn fail_next(&self, fault: Option<Fault>) {
        self.shared.book().faults.push_back(fault);
    }

    /// Makes the next new connection be read up to the end of the request headers and then
    /// closed without an answer. Every answer closes its connection, so each request comes on
    /// a new one.
    pub fn drop_next_connection(&self) {
        self.shared.book().drops += 1;
    }

    /// How many connections were dropped so far.
    #[must_use]
    pub fn dropped(&self) -> usize {
        self.shared.book().dropped
    }

    /// Answers searches with at most `size` results per page (0, the default: the `limit`
    /// asked for), to test paging.
    pub fn set_search_page_size(&self, size: usize) {
        self.shared.book().search_page_size = size;
    }

    /// Forgets every stored idempotent answer, as Stripe does after 24 hours.
    pub fn forget_idempotency_keys(&self) {
        self.shared.book().replies.clear();
    }

    /// How many requests with an idempotency key are being worked on (e.g. hanging).
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.shared.book().in_flight.len()
    }
}

/// The `Stripe-Signature` header Stripe sends with `payload` at Unix time `timestamp`:
/// `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<payload>" under secret>`.
#[must_use]
pub fn webhook_signature(secret: &str, timestamp: i64, payload: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        webhook_v1(secret, timestamp, payload)
    )
}

/// The `v1` part of [`webhook_signature`]: the lowercase hex HMAC-SHA256 of
/// `"<timestamp>.<payload>"` under `secret`.
#[must_use]
pub fn webhook_v1(secret: &str, timestamp: i64, payload: &[u8]) -> String {
    // HMAC takes a key of any length: this never fails.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(payload);
    hex::encode(mac.finalize().into_bytes())
}

/// Makes every connection carry one request, so a drop switch always meets a new connection.
async fn close_connection(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Accepts connections for axum, or reads the request and hangs up when told to.
struct DroppingListener {
    inner: TcpListener,
    shared: Arc<Shared>,
}

impl axum::serve::Listener for DroppingListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            let Ok((mut stream, addr)) = self.inner.accept().await else {
                continue;
            };
            let drop_it = {
                let mut book = self.shared.book();
                let drop_it = book.drops > 0;
                book.drops = book.drops.saturating_sub(1);
                drop_it
            };
            if !drop_it {
                return (stream, addr);
            }
            let shared = Arc::clone(&self.shared);
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                shared.book().dropped += 1;
                drop(stream);
            });
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

fn stripe_error(
    status: u16,
    kind: &str,
    code: Option<&str>,
    message: &str,
    extra: Value,
) -> (u16, Value) {
    let mut error = json!({ "type": kind, "message": message });
    if let Some(code) = code {
        error["code"] = json!(code);
    }
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            error[k] = v;
        }
    }
    (status, json!({ "error": error }))
}

fn reply(status: u16, body: &Value, extra: &[(&'static str, String)]) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    for (name, value) in extra {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.headers_mut().insert(*name, value);
        }
    }
    response
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let path = uri.path().to_owned();
    let (fault, request_id) = {
        let mut book = shared.book();
        let n = book.requests.len() + 1;
        book.requests.push(Recorded {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
            headers: headers.clone(),
            form: form.clone(),
        });
        (book.faults.pop_front().flatten(), format!("req_dbl{n:04}"))
    };
    let mut hang = None;
    match fault {
        Some(Fault::Status {
            status,
            should_retry,
            body,
        }) => {
            let mut extra = vec![("request-id", request_id)];
            if let Some(retry) = should_retry {
                extra.push(("stripe-should-retry", retry.to_string()));
            }
            return reply(status, &body, &extra);
        }
        Some(Fault::Hang(d)) => hang = Some(d),
        None => {}
    }
    // Like Stripe, finish the work even if the client hangs up (hyper drops this future then).
    let work = Request {
        method,
        path,
        headers,
        body,
        form,
        query,
        request_id,
        hang,
    };
    match tokio::spawn(execute(shared, work)).await {
        Ok(response) => response,
        Err(e) => reply(
            500,
            &json!({"error": {"type": "api_error", "message": format!("the double failed: {e}")}}),
            &[],
        ),
    }
}

/// A request on its way through [`execute`].
struct Request {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
    form: Vec<(String, String)>,
    query: Vec<(String, String)>,
    request_id: String,
    hang: Option<Duration>,
}

async fn execute(shared: Arc<Shared>, request: Request) -> Response {
    let Request {
        method,
        path,
        headers,
        body,
        form,
        query,
        request_id,
        hang,
    } = request;
    match headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        Some(value) if value == format!("Bearer {}", shared.api_key) => {}
        Some(_) => {
            // Stripe quotes the key masked; a 401 with type invalid_request_error.
            let (status, body) = stripe_error(
                401,
                "invalid_request_error",
                None,
                "Invalid API Key provided: sk_test_********************abcd",
                json!({}),
            );
            return reply(status, &body, &[("request-id", request_id)]);
        }
        None => {
            let (status, body) = stripe_error(
                401,
                "invalid_request_error",
                None,
                "You did not provide an API key.",
                json!({}),
            );
            return reply(status, &body, &[("request-id", request_id)]);
        }
    }
    let key = if method == Method::POST {
        headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    } else {
        None
    };
    let fingerprint = format!("{method} {path} {body:?}");
    if let Some(key) = &key {
        let mut book = shared.book();
        if let Some((first, status, value)) = book.replies.get(key) {
            if *first == fingerprint {
                return reply(
                    *status,
                    value,
                    &[
                        ("request-id", request_id),
                        ("idempotent-replayed", "true".into()),
                    ],
                );
            }
            let (status, body) = stripe_error(
                400,
                "idempotency_error",
                None,
                "Keys for idempotent requests can only be used with the same parameters they \
                 were first used with.",
                json!({}),
            );
            return reply(status, &body, &[("request-id", request_id)]);
        }
        if !book.in_flight.insert(key.clone()) {
            let (status, body) = stripe_error(
                409,
                "idempotency_error",
                None,
                "There is currently another in-progress request using this Idempotency Key.",
                json!({}),
            );
            return reply(status, &body, &[("request-id", request_id)]);
        }
    }
    if let Some(d) = hang {
        tokio::time::sleep(d).await;
    }
    if method == Method::POST
        && headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            != Some("application/x-www-form-urlencoded")
    {
        let (status, body) = stripe_error(
            400,
            "invalid_request_error",
            None,
            "Bodies must be form-encoded.",
            json!({}),
        );
        return reply(status, &body, &[("request-id", request_id)]);
    }
    let mut book = shared.book();
    let (status, value) = route(&mut book, &method, &path, &form, &query);
    if let Some(key) = key {
        book.in_flight.remove(&key);
        book.replies
            .insert(key, (fingerprint, status, value.clone()));
    }
    reply(status, &value, &[("request-id", request_id)])
}

fn param<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn missing(name: &str) -> (u16, Value) {
    stripe_error(
        400,
        "invalid_request_error",
        Some("parameter_missing"),
        &format!("Missing required param: {name}."),
        json!({ "param": name }),
    )
}

fn no_such_intent(id: &str) -> (u16, Value) {
    stripe_error(
        404,
        "invalid_request_error",
        Some("resource_missing"),
        &format!("No such payment_intent: '{id}'"),
        json!({ "param": "intent" }),
    )
}

/// `metadata[<name>]` parameters as a JSON object.
fn metadata(form: &[(String, String)]) -> serde_json::Map<String, Value> {
    form.iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("metadata[")
                .and_then(|k| k.strip_suffix(']'))
                .map(|k| (k.to_owned(), json!(v)))
        })
        .collect()
}

fn route(
    book: &mut Book,
    method: &Method,
    path: &str,
    form: &[(String, String)],
    query: &[(String, String)],
) -> (u16, Value) {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["v1", "payment_intents"]) => create_intent(book, form),
        ("GET", ["v1", "payment_intents", "search"]) => search(book, query),
        ("GET", ["v1", "payment_intents", id]) => match book.intent(id) {
            Some(pi) => (200, pi.clone()),
            None => no_such_intent(id),
        },
        ("POST", ["v1", "payment_intents", id, "capture"]) => capture(book, id, form),
        ("POST", ["v1", "payment_intents", id, "cancel"]) => cancel(book, id, form),
        ("POST", ["v1", "refunds"]) => refund(book, form),
        _ => stripe_error(
            404,
            "invalid_request_error",
            None,
            &format!("Unrecognized request URL ({method}: {path})."),
            json!({}),
        ),
    }
}

fn create_intent(book: &mut Book, form: &[(String, String)]) -> (u16, Value) {
    let Some(amount) = param(form, "amount") else {
        return missing("amount");
    };
    let Ok(amount) = amount.parse::<i64>() else {
        return stripe_error(
            400,
            "invalid_request_error",
            Some("parameter_invalid_integer"),
            "Invalid integer: amount",
            json!({ "param": "amount" }),
        );
    };
    let Some(currency) = param(form, "currency") else {
        return missing("currency");
    };
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_lowercase()) {
        return stripe_error(
            400,
            "invalid_request_error",
            None,
            &format!(
                "Invalid currency: {currency}. Stripe currently supports these currencies: usd, \
                 eur, jpy, kwd, ..."
            ),
            json!({ "param": "currency" }),
        );
    }
    let confirm = param(form, "confirm") == Some("true");
    let manual = param(form, "capture_method") == Some("manual");
    if confirm
        && param(form, "automatic_payment_methods[enabled]") == Some("true")
        && param(form, "automatic_payment_methods[allow_redirects]") != Some("never")
        && param(form, "return_url").is_none()
    {
        return stripe_error(
            400,
            "invalid_request_error",
            None,
            "This PaymentIntent is configured to accept payment methods enabled in your \
             Dashboard. Because some of these payment methods might redirect your customer off \
             of your page, you must provide a `return_url`.",
            json!({}),
        );
    }
    let metadata = metadata(form);
    let payment_method = param(form, "payment_method");
    let decline = |decline_code: &str, message: &str| {
        json!({
            "type": "card_error", "code": "card_declined", "decline_code": decline_code,
            "message": message,
        })
    };
    let (status, last_error) = match (payment_method, confirm) {
        (_, false) => ("requires_confirmation", Value::Null),
        (Some("pm_card_visa"), true) if manual => ("requires_capture", Value::Null),
        (Some("pm_card_visa"), true) => ("succeeded", Value::Null),
        (Some("pm_card_chargeDeclined"), true) => (
            "requires_payment_method",
            decline("generic_decline", "Your card was declined."),
        ),
        (Some("pm_card_chargeDeclinedInsufficientFunds"), true) => (
            "requires_payment_method",
            decline("insufficient_funds", "Your card has insufficient funds."),
        ),
        (Some("pm_card_authenticationRequired"), true) => ("requires_action", Value::Null),
        (Some(other), true) => {
            return stripe_error(
                400,
                "invalid_request_error",
                Some("resource_missing"),
                &format!("No such PaymentMethod: '{other}'"),
                json!({ "param": "payment_method" }),
            );
        }
        (None, true) => {
            return stripe_error(
                400,
                "invalid_request_error",
                Some("payment_intent_unexpected_state"),
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                json!({}),
            );
        }
    };
    let id = book.id("pi");
    let intent = json!({
        "id": id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": if status == "requires_capture" { amount } else { 0 },
        "amount_received": if status == "succeeded" { amount } else { 0 },
        "currency": currency,
        "status": status,
        "capture_method": if manual { "manual" } else { "automatic" },
        "payment_method": payment_method,
        "metadata": metadata,
        "last_payment_error": last_error,
        "cancellation_reason": null,
        "livemode": false,
    });
    book.intents.push(intent.clone());
    if let Value::Object(mut error) = last_error {
        // A declined confirmation answers 402 with the PaymentIntent in the error.
        error.insert("payment_intent".into(), intent);
        return (402, json!({ "error": error }));
    }
    (200, intent)
}

fn capture(book: &mut Book, id: &str, form: &[(String, String)]) -> (u16, Value) {
    let Some(pi) = book.intent(id) else {
        return no_such_intent(id);
    };
    if pi["status"] != "requires_capture" {
        return stripe_error(
            400,
            "invalid_request_error",
            Some("payment_intent_unexpected_state"),
            &format!(
                "This PaymentIntent could not be captured because it has a status of {}. Only \
                 a PaymentIntent with one of the following statuses may be captured: \
                 requires_capture.",
                pi["status"].as_str().unwrap_or_default()
            ),
            json!({ "payment_intent": pi.clone() }),
        );
    }
    let capturable = pi["amount_capturable"].as_i64().unwrap_or_default();
    let amount = match param(form, "amount_to_capture").map(str::parse::<i64>) {
        None => capturable,
        Some(Ok(a)) if a > 0 && a <= capturable => a,
        Some(_) => {
            return stripe_error(
                400,
                "invalid_request_error",
                Some("amount_too_large"),
                "The amount to capture must be a positive integer no more than the amount \
                 capturable.",
                json!({ "param": "amount_to_capture" }),
            );
        }
    };
    pi["status"] = json!("succeeded");
    pi["amount_received"] = json!(amount);
    pi["amount_capturable"] = json!(0);
    (200, pi.clone())
}

fn cancel(book: &mut Book, id: &str, form: &[(String, String)]) -> (u16, Value) {
    let Some(pi) = book.intent(id) else {
        return no_such_intent(id);
    };
    let status = pi["status"].as_str().unwrap_or_default().to_owned();
    let cancelable = [
        "requires_payment_method",
        "requires_capture",
        "requires_confirmation",
        "requires_action",
        "processing",
    ];
    if !cancelable.contains(&status.as_str()) {
        return stripe_error(
            400,
            "invalid_request_error",
            Some("payment_intent_unexpected_state"),
            &format!(
                "You cannot cancel this PaymentIntent because it has a status of {status}. Only \
                 a PaymentIntent with one of the following statuses may be canceled: {}.",
                cancelable.join(", ")
            ),
            json!({}),
        );
    }
    pi["status"] = json!("canceled");
    pi["amount_capturable"] = json!(0);
    pi["cancellation_reason"] = json!(param(form, "cancellation_reason"));
    (200, pi.clone())
}

fn refund(book: &mut Book, form: &[(String, String)]) -> (u16, Value) {
    let Some(id) = param(form, "payment_intent") else {
        return missing("payment_intent");
    };
    let refunded: i64 = book
        .refunds
        .iter()
        .filter(|r| r["payment_intent"] == id)
        .filter_map(|r| r["amount"].as_i64())
        .sum();
    let Some(pi) = book.intent(id) else {
        return no_such_intent(id);
    };
    if pi["status"] != "succeeded" {
        return stripe_error(
            400,
            "invalid_request_error",
            Some("charge_not_refundable"),
            &format!("PaymentIntent {id} does not have a successful charge to refund."),
            json!({}),
        );
    }
    let currency = pi["currency"].clone();
    let remaining = pi["amount_received"].as_i64().unwrap_or_default() - refunded;
    if remaining == 0 {
        return stripe_error(
            400,
            "invalid_request_error",
            Some("charge_already_refunded"),
            &format!("Charge for {id} has already been refunded."),
            json!({}),
        );
    }
    let amount = match param(form, "amount").map(str::parse::<i64>) {
        None => remaining,
        Some(Ok(a)) if a > 0 && a <= remaining => a,
        Some(_) => {
            return stripe_error(
                400,
                "invalid_request_error",
                Some("amount_too_large"),
                &format!(
                    "Refund amount is greater than unrefunded amount on charge ({remaining})."
                ),
                json!({ "param": "amount" }),
            );
        }
    };
    let refund = json!({
        "id": book.id("re"),
        "object": "refund",
        "amount": amount,
        "currency": currency,
        "payment_intent": id,
        "status": "succeeded",
        "metadata": metadata(form),
    });
    book.refunds.push(refund.clone());
    (200, refund)
}

/// Answers `metadata['order_id']:'<id>'`, the one query form the adapter sends.
fn search(book: &mut Book, query: &[(String, String)]) -> (u16, Value) {
    let Some(q) = query.iter().find(|(k, _)| k == "query").map(|(_, v)| v) else {
        return missing("query");
    };
    let Some(order_id) = q
        .strip_prefix("metadata['order_id']:'")
        .and_then(|rest| rest.strip_suffix('\''))
    else {
        return stripe_error(
            400,
            "invalid_request_error",
            None,
            &format!("Invalid search query: {q}"),
            json!({ "param": "query" }),
        );
    };
    let limit: usize = query
        .iter()
        .find(|(k, _)| k == "limit")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(10);
    let size = if book.search_page_size == 0 {
        limit
    } else {
        book.search_page_size.min(limit)
    };
    let start: usize = query
        .iter()
        .find(|(k, _)| k == "page")
        .and_then(|(_, v)| v.strip_prefix("page_"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let matching: Vec<Value> = book
        .intents
        .iter()
        .filter(|pi| pi["metadata"]["order_id"] == order_id)
        .cloned()
        .collect();
    let page: Vec<Value> = matching.iter().skip(start).take(size).cloned().collect();
    let has_more = start + size < matching.len();
    (
        200,
        json!({
            "object": "search_result",
            "url": "/v1/payment_intents/search",
            "data": page,
            "has_more": has_more,
            "next_page": has_more.then(|| format!("page_{}", start + size)),
        }),
    )
}
