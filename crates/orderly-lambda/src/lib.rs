//! What every Orderly Lambda function shares: configuration from the environment, the adapters
//! built once per cold start, and the translation between Lambda events and the core.
//!
//! # Layout
//! - [`Config`]: the environment every function shares (the table); the rest each function
//!   reads for itself with [`required`].
//! - [`Functions`]: the adapters, built once per cold start outside the handler, and the
//!   notifier (SNS, optionally SMTP) the notify worker adds to the saga.
//! - [`deliveries`] / [`batch_response`]: SQS events in, batch item failures out.
//! - [`functions`]: the six functions — `api`, `outbox-relay`, `inventory-worker`,
//!   `payment-worker`, `process-order`, `notify-worker` — each built from [`Functions`].
//! - `src/bin/bootstrap.rs`: the one binary of them all; `ORDERLY_FUNCTION` picks the function,
//!   so the AWS SDK is compiled and linked once.
#![forbid(unsafe_code)]

pub mod functions;

use std::sync::Arc;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use orderly_auth::ExternalVerifier;
use orderly_auth::jwks::{ExternalIssuer, ExternalSettings};
use orderly_aws::notify::SnsNotifier;
use orderly_aws::worker::Delivery;
use orderly_core::accounts::{Accounts, AuthSettings};
use orderly_core::notify::{Notifications, NotifySettings};
use orderly_core::ports::{Notifier, PaymentGateway, Recipient, Store};
use orderly_core::saga::Saga;
use orderly_core::secret::Secret;
use orderly_core::{Application, Orderly, RetryPolicy};
use orderly_notify::smtp::{SmtpNotifier, SmtpSettings, TlsMode};
use orderly_notify::{FileTemplates, Routes};
use orderly_payments::{SimulatedPayments, SimulatedSettings};
use orderly_store_dynamodb::DynamoStore;

/// A function's error, as Lambda reports it.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The environment every function shares; the SAM template sets it (each function reads the
/// rest of what it needs, its queue URL and so on, with [`required`]).
#[derive(Clone, Debug)]
pub struct Config {
    /// `ORDERLY_TABLE`: the DynamoDB table.
    pub table: String,
}

/// Reads a required variable.
///
/// # Errors
/// A message naming the variable.
pub fn required(name: &str) -> Result<String, Error> {
    std::env::var(name).map_err(|_| format!("environment variable {name} is not set").into())
}

/// Logs as JSON lines, as CloudWatch wants them.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_ansi(false)
        .without_time()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ORDERLY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}

/// The adapters a function needs, built once per cold start.
pub struct Functions {
    /// The AWS SDK configuration (region, credentials, `AWS_ENDPOINT_URL`).
    pub aws: aws_config::SdkConfig,
    /// Every storage port on the table.
    pub store: Arc<dyn Store>,
}

/// The saga's retry policy on AWS: the reference one (5 s, 5 retries, ×2).
fn application(store: Arc<dyn Store>) -> Application {
    Application::new(store).with_retry(RetryPolicy::default())
}

impl Functions {
    /// Loads the SDK configuration and connects the table named by `ORDERLY_TABLE`.
    ///
    /// # Errors
    /// A missing variable.
    pub async fn load() -> Result<Functions, Error> {
        let table = required("ORDERLY_TABLE")?;
        let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let client = aws_sdk_dynamodb_client(&aws);
        let store: Arc<dyn Store> = Arc::new(DynamoStore::with_client(client, table));
        Ok(Functions { aws, store })
    }

    /// The use cases.
    #[must_use]
    pub fn app(&self) -> Orderly {
        application(Arc::clone(&self.store)).orderly()
    }

    /// Accounts and access. Tokens of an external identity provider (a Cognito user pool) are
    /// accepted when `ORDERLY_JWT_ISSUER`, `ORDERLY_JWT_AUDIENCE` (the app client id) and
    /// `ORDERLY_JWKS` (the pool's key set, as JSON) are all set.
    ///
    /// # Errors
    /// A partial or invalid identity-provider setting; the table cannot be read.
    pub async fn accounts(&self) -> Result<Arc<Accounts>, Error> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let external: Option<Arc<dyn ExternalVerifier>> = match (
            var("ORDERLY_JWT_ISSUER"),
            var("ORDERLY_JWT_AUDIENCE"),
            var("ORDERLY_JWKS"),
        ) {
            (None, None, None) => None,
            (Some(issuer), Some(audience), Some(jwks)) => Some(Arc::new(
                ExternalIssuer::new(ExternalSettings::cognito(issuer, audience), &jwks)
                    .map_err(|e| format!("ORDERLY_JWKS: {e}"))?,
            )),
            _ => {
                return Err("an external identity provider needs ORDERLY_JWT_ISSUER, ORDERLY_JWT_AUDIENCE and ORDERLY_JWKS".into());
            }
        };
        let accounts = application(Arc::clone(&self.store))
            .accounts(AuthSettings::default(), external)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(accounts))
    }

    /// The notifier from the environment: staff alerts to the topic `ORDERLY_ADMIN_TOPIC_ARN`
    /// and customers' text messages through SNS; customer e-mail through SMTP when
    /// `ORDERLY_SMTP_HOST` is set (`ORDERLY_SMTP_PORT`, `ORDERLY_SMTP_TLS`,
    /// `ORDERLY_SMTP_USERNAME`, `ORDERLY_SMTP_PASSWORD`, `ORDERLY_NOTIFY_FROM`, as for
    /// `orderly serve`). `ORDERLY_SHOP_NAME` names the shop in messages.
    ///
    /// # Errors
    /// A bad SMTP setting.
    pub fn notifications(&self) -> Result<Arc<Notifications>, Error> {
        self.with_notifier(application(Arc::clone(&self.store)))?
            .notifications()
            .ok_or_else(|| "the notifier was not configured".into())
    }

    /// `app` with the notifier from the environment.
    fn with_notifier(&self, app: Application) -> Result<Application, Error> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let sns: Arc<dyn Notifier> = Arc::new(SnsNotifier::new(&self.aws));
        let email: Option<Arc<dyn Notifier>> = match var("ORDERLY_SMTP_HOST") {
            None => None,
            Some(host) => {
                let tls =
                    TlsMode::parse(&var("ORDERLY_SMTP_TLS").unwrap_or_else(|| "starttls".into()))?;
                let port = match var("ORDERLY_SMTP_PORT") {
                    Some(p) => p
                        .parse()
                        .map_err(|_| format!("ORDERLY_SMTP_PORT {p:?} is not a port"))?,
                    None => tls.default_port(),
                };
                Some(Arc::new(SmtpNotifier::new(&SmtpSettings {
                    host,
                    port,
                    tls,
                    username: var("ORDERLY_SMTP_USERNAME"),
                    password: var("ORDERLY_SMTP_PASSWORD").map(Secret::new),
                    from: required("ORDERLY_NOTIFY_FROM")?,
                    timeout: std::time::Duration::from_secs(20),
                })?))
            }
        };
        let routes = Routes {
            email,
            sms: Some(Arc::clone(&sns)),
            topic: Some(sns),
        };
        Ok(app.with_notifier(
            Arc::new(routes),
            Arc::new(FileTemplates::load()?),
            NotifySettings {
                shop_name: var("ORDERLY_SHOP_NAME").unwrap_or_else(|| "Orderly".into()),
                staff: var("ORDERLY_ADMIN_TOPIC_ARN")
                    .map(Recipient::Topic)
                    .into_iter()
                    .collect(),
            },
        ))
    }

    /// The saga with the notifier: what the notify worker runs.
    ///
    /// # Errors
    /// As for [`Functions::notifications`].
    pub fn notifier_saga(&self) -> Result<Arc<Saga>, Error> {
        let app = self.with_notifier(application(Arc::clone(&self.store)))?;
        Ok(Arc::new(app.saga(self.payments())))
    }

    /// The saga's consumers, with the reference retry policy (5 s, 5 retries, ×2) and the
    /// simulated payment provider (`ORDERLY_PAYMENT_DECLINE_RATE` etc. tune it).
    #[must_use]
    pub fn saga(&self) -> Arc<Saga> {
        Arc::new(application(Arc::clone(&self.store)).saga(self.payments()))
    }

    fn payments(&self) -> Arc<dyn PaymentGateway> {
        let rate = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let payments = SimulatedPayments::new(SimulatedSettings {
            decline_rate: rate("ORDERLY_PAYMENT_DECLINE_RATE"),
            transient_rate: rate("ORDERLY_PAYMENT_TRANSIENT_RATE"),
            ..SimulatedSettings::default()
        });
        Arc::new(payments)
    }
}

fn aws_sdk_dynamodb_client(config: &aws_config::SdkConfig) -> orderly_store_dynamodb::Client {
    orderly_store_dynamodb::Client::new(config)
}

/// The messages of an SQS event, as the worker takes them.
#[must_use]
pub fn deliveries(event: SqsEvent) -> Vec<Delivery> {
    event
        .records
        .into_iter()
        .map(|m| Delivery {
            receive_count: m
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(1),
            group: m.attributes.get("MessageGroupId").cloned(),
            message_id: m.message_id.unwrap_or_default(),
            body: m.body.unwrap_or_default(),
            receipt_handle: m.receipt_handle,
        })
        .collect()
}

/// Tells SQS which messages to deliver again (the function must have
/// `ReportBatchItemFailures` on its event source).
#[must_use]
pub fn batch_response(failed: Vec<String>) -> SqsBatchResponse {
    SqsBatchResponse {
        batch_item_failures: failed
            .into_iter()
            .map(|item_identifier| BatchItemFailure { item_identifier })
            .collect(),
    }
}

/// Marks a request with the client's address from API Gateway's request context, for the
/// rate limits and the audit log.
pub fn with_client_address<B>(
    mut request: lambda_http::http::Request<B>,
) -> lambda_http::http::Request<B> {
    use lambda_http::RequestExt;
    use lambda_http::request::RequestContext;
    let address = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.http.source_ip.clone(),
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.identity.source_ip.clone(),
        _ => None,
    };
    if let Some(address) = address {
        request
            .extensions_mut()
            .insert(orderly_api::auth::ClientAddress(address));
    }
    request
}
