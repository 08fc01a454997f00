//! The `api` function's router, fed a real API Gateway HTTP API (v2) proxy event, on DynamoDB.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use lambda_http::request::LambdaRequest;
use orderly_auth::jwks::{ExternalIssuer, ExternalSettings};
use orderly_core::Application;
use orderly_core::accounts::AuthSettings;
use orderly_core::ports::Store;
use orderly_store_dynamodb::testing::TestTable;
use serde_json::{Value, json};
use tower::ServiceExt;

/// An HTTP API payload 2.0 event, as API Gateway sends it.
fn proxy_event(method: &str, path: &str, body: Option<&str>, key: &str) -> Value {
    proxy_event_as(method, path, body, key, None)
}

fn proxy_event_as(
    method: &str,
    path: &str,
    body: Option<&str>,
    key: &str,
    bearer: Option<&str>,
) -> Value {
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "content-type": "application/json",
            "host": "abc123.execute-api.eu-west-1.amazonaws.com",
            "idempotency-key": key,
            "user-agent": "curl/8.5.0"
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "curl/8.5.0"},
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "$default",
            "stage": "$default",
            "time": "22/Nov/2026:10:15:30 +0000",
            "timeEpoch": 1795000530000u64
        },
        "body": body,
        "isBase64Encoded": false
    });
    if let Some(token) = bearer {
        event["headers"]["authorization"] = json!(format!("Bearer {token}"));
    }
    event
}

async fn call(router: &axum::Router, event: Value) -> (u16, Value) {
    let request: LambdaRequest = serde_json::from_value(event).unwrap();
    let request: http::Request<lambda_http::Body> = request.into();
    // As the `api` binary's layer does.
    let request = orderly_lambda::with_client_address(request);
    let (parts, body) = request.into_parts();
    let request = http::Request::from_parts(parts, axum::body::Body::from(body.as_ref().to_vec()));
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

const POOL: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_TestPool";
const CLIENT: &str = "shop-app-client";

/// A stand-in for a Cognito user pool: an RSA key made here, its JWKS, and tokens signed as
/// Cognito signs them.
struct TestPool {
    signing: jsonwebtoken::EncodingKey,
    jwks: String,
}

impl TestPool {
    fn new() -> Self {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::rsa::{KeyPair, KeySize};
        use aws_lc_rs::signature::KeyPair as _;
        use base64::Engine;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let pair = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(der.as_ref())
        );
        let public = pair.public_key();
        let jwks = json!({"keys": [{
            "kty": "RSA", "alg": "RS256", "use": "sig", "kid": "pool-key-1",
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        }]})
        .to_string();
        TestPool {
            signing: jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
            jwks,
        }
    }

    fn issuer(&self) -> ExternalIssuer {
        ExternalIssuer::new(ExternalSettings::cognito(POOL, CLIENT), &self.jwks).unwrap()
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some("pool-key-1".into());
        jsonwebtoken::encode(&header, claims, &self.signing).unwrap()
    }

    fn now() -> i64 {
        i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        )
        .unwrap()
    }

    /// An ID token of a shopper whose customer id is `customer`, valid `secs` more.
    fn id_token(&self, customer: &str, secs: i64) -> String {
        let now = Self::now();
        self.sign(&json!({
            "sub": format!("sub-{customer}"), "iss": POOL, "aud": CLIENT, "token_use": "id",
            "email": format!("{customer}@example.com"), "custom:customer_id": customer,
            "iat": now - 5, "exp": now + secs,
        }))
    }

    /// An access token of a staff member in `group`.
    fn staff_token(&self, group: &str, secs: i64) -> String {
        let now = Self::now();
        self.sign(&json!({
            "sub": "staff-1", "iss": POOL, "client_id": CLIENT, "token_use": "access",
            "username": "dana", "cognito:groups": [group],
            "iat": now - 5, "exp": now + secs,
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_gateway_event_places_the_reference_order_on_dynamodb() {
    let table = TestTable::create().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(table.store.clone());
    let wiring = Application::new(store);
    let app = wiring.orderly();
    app.catalog.load_demo_data().await.unwrap();
    // Shoppers sign in with the shop's Cognito user pool; the function trusts its keys.
    let pool = TestPool::new();
    let accounts = wiring
        .accounts(AuthSettings::default(), Some(Arc::new(pool.issuer())))
        .await
        .unwrap();
    let accounts = Arc::new(accounts);
    let router = orderly_api::router(app, Arc::clone(&accounts));
    let alice = pool.id_token("001", 600);
    let body = r#"{"customerId":"001","items":[{"productId":"001","quantity":1},{"productId":"002","quantity":1}]}"#;

    let (status, order) = call(
        &router,
        proxy_event_as("POST", "/v1/orders", Some(body), "lambda-1", Some(&alice)),
    )
    .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(
        order["total"],
        json!({"amount": "279.98", "currency": "USD", "formatted": "$279.98"})
    );
    let (status, again) = call(
        &router,
        proxy_event_as("POST", "/v1/orders", Some(body), "lambda-1", Some(&alice)),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(again["id"], order["id"], "the same Idempotency-Key replays");

    let path = format!("/v1/orders/{}", order["id"].as_str().unwrap());
    let (status, read) = call(
        &router,
        proxy_event_as("GET", &path, None, "unused", Some(&alice)),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(read["status"], "placed");

    // Another shopper of the pool cannot see it; nobody unsigned can; an expired or forged
    // token is refused.
    let michael = pool.id_token("002", 600);
    let (status, _) = call(
        &router,
        proxy_event_as("GET", &path, None, "x", Some(&michael)),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(&router, proxy_event("GET", &path, None, "x")).await;
    assert_eq!(status, 401);
    let expired = pool.id_token("001", -120);
    let (status, problem) = call(
        &router,
        proxy_event_as("GET", &path, None, "x", Some(&expired)),
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        problem["detail"].as_str().unwrap().contains("expired"),
        "{problem}"
    );
    let forged = TestPool::new().id_token("001", 600);
    let (status, _) = call(
        &router,
        proxy_event_as("GET", &path, None, "x", Some(&forged)),
    )
    .await;
    assert_eq!(status, 401);
    // A member of the pool's manager group is staff.
    let manager = pool.staff_token("orderly-manager", 600);
    let (status, _) = call(
        &router,
        proxy_event_as("GET", "/v1/orders", None, "x", Some(&manager)),
    )
    .await;
    assert_eq!(status, 200);
    let (status, problem) = call(
        &router,
        proxy_event_as("POST", "/v1/orders", Some("{"), "lambda-2", Some(&alice)),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(problem["code"], "malformed-json");
}
