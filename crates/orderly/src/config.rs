//! Configuration: defaults, then an optional TOML file, then `ORDERLY_…` environment variables
//! and flags (clap reads both; a flag beats its variable). Checked once at start, with messages
//! that say which setting is wrong and what would be right.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use orderly_core::RetryPolicy;
use orderly_core::orders::refunds::RefundLimits;
use orderly_core::retry::{FailureClass, RetryPolicies, parse_waits};
use orderly_domain::Currency;
use orderly_payments::SimulatedSettings;
use serde::Deserialize;

/// Where the data lives; shared by every command.
#[derive(Args, Debug, Clone, Default)]
pub struct StorageArgs {
    /// Database URL: `sqlite://PATH` (embedded; the default is sqlite://data/orderly.db) or
    /// `postgres://USER@HOST:PORT/DATABASE` (cluster).
    #[arg(long, env = "ORDERLY_DATABASE_URL")]
    pub database_url: Option<String>,
    /// PostgreSQL: connections per node.
    #[arg(long, env = "ORDERLY_DB_POOL_SIZE")]
    pub pool_size: Option<u32>,
    /// PostgreSQL: longest a statement may run, in milliseconds.
    #[arg(long, env = "ORDERLY_DB_STATEMENT_TIMEOUT_MS")]
    pub statement_timeout_ms: Option<u64>,
    /// PostgreSQL: longest a statement may wait for a lock, in milliseconds.
    #[arg(long, env = "ORDERLY_DB_LOCK_TIMEOUT_MS")]
    pub lock_timeout_ms: Option<u64>,
    /// PostgreSQL: longest a request waits for a database connection before it is refused
    /// with 503, in milliseconds.
    #[arg(long, env = "ORDERLY_DB_ACQUIRE_TIMEOUT_MS")]
    pub acquire_timeout_ms: Option<u64>,
    /// A TOML configuration file (see the README, section Configuration).
    #[arg(long, env = "ORDERLY_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Settings of `orderly serve`.
#[derive(Args, Debug, Clone, Default)]
pub struct ServeArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub auth: crate::auth_config::AuthArgs,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "ORDERLY_BIND")]
    pub bind: Option<SocketAddr>,
    /// Longest a client may take to send a request's headers, in seconds.
    #[arg(long, env = "ORDERLY_HEADER_TIMEOUT_SECS")]
    pub header_timeout_secs: Option<u64>,
    /// Longest a client may take to send a request's body once its headers are in, in seconds.
    #[arg(long, env = "ORDERLY_BODY_TIMEOUT_SECS")]
    pub body_timeout_secs: Option<u64>,
    /// How long a kept-alive connection may wait for its next request, in seconds.
    #[arg(long, env = "ORDERLY_IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// Most client connections open at once.
    #[arg(long, env = "ORDERLY_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Load the reference demo catalog and customers into an empty database.
    #[arg(long, env = "ORDERLY_DEMO_DATA")]
    pub demo_data: Option<bool>,
    /// With the demo data, also place orders that need a person (the payment provider down
    /// past its retries, a card declined, an address the carrier cannot deliver to), for the
    /// staff panel; retries are fast (0.5 s, 3 tries, no stage-1 waits but 10 min for the declined
    /// card) unless set otherwise.
    #[arg(long)]
    pub demo_failures: bool,
    /// Currency orders are priced in when the request names none.
    #[arg(long, env = "ORDERLY_BASE_CURRENCY")]
    pub base_currency: Option<String>,
    /// `text` for people, `json` for log collectors.
    #[arg(long, env = "ORDERLY_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Wait before the first retry of a failed saga step, in milliseconds.
    #[arg(long, env = "ORDERLY_RETRY_INTERVAL_MS")]
    pub retry_interval_ms: Option<u64>,
    /// Retries of a failed step before the order needs attention.
    #[arg(long, env = "ORDERLY_RETRY_MAX_ATTEMPTS")]
    pub retry_max_attempts: Option<u32>,
    /// Each retry waits this many times longer than the last.
    #[arg(long, env = "ORDERLY_RETRY_BACKOFF_RATE")]
    pub retry_backoff_rate: Option<f64>,
    /// Simulated payments: share declined (0 to 1).
    #[arg(long, env = "ORDERLY_PAYMENT_DECLINE_RATE")]
    pub payment_decline_rate: Option<f64>,
    /// Simulated payments: share of calls failing transiently (0 to 1).
    #[arg(long, env = "ORDERLY_PAYMENT_TRANSIENT_RATE")]
    pub payment_transient_rate: Option<f64>,
    /// Simulated payments: latency of each call, in milliseconds.
    #[arg(long, env = "ORDERLY_PAYMENT_LATENCY_MS")]
    pub payment_latency_ms: Option<u64>,
    /// Simulated payments: seed of the outcomes.
    #[arg(long, env = "ORDERLY_PAYMENT_SEED")]
    pub payment_seed: Option<u64>,
    /// Longest wait for in-flight work at shutdown, in seconds.
    #[arg(long, env = "ORDERLY_SHUTDOWN_TIMEOUT_SECS")]
    pub shutdown_timeout_secs: Option<u64>,
    /// How long a claimed saga step is this node's before another node may take it over, in
    /// seconds (what a dead node's work waits).
    #[arg(long, env = "ORDERLY_JOB_LEASE_SECS")]
    pub job_lease_secs: Option<u64>,
    /// Simulated payments: the ledger file of charges (default: beside an embedded database;
    /// nodes of a cluster on one machine may share one).
    #[arg(long, env = "ORDERLY_PAYMENT_LEDGER")]
    pub payment_ledger: Option<PathBuf>,
    /// Stage 1: after the fast retries, the payment provider being down is tried again after
    /// these waits before the order needs attention (`5m,30m,6h`; `none`).
    #[arg(long, env = "ORDERLY_RETRY_PAYMENT_UNAVAILABLE")]
    pub retry_payment_unavailable: Option<String>,
    /// Stage 1: a declined card is tried again after these waits, the stock held, before the
    /// order is rejected (`5m,30m,6h`; `none` rejects at once).
    #[arg(long, env = "ORDERLY_RETRY_PAYMENT_DECLINED")]
    pub retry_payment_declined: Option<String>,
    /// Stage 1: an order short of stock is tried again after these waits before it is rejected
    /// (default `none`: rejected at once).
    #[arg(long, env = "ORDERLY_RETRY_STOCK_SHORT")]
    pub retry_stock_short: Option<String>,
    /// Stage 1: after the fast retries, a message the mail (or SMS) server did not take is
    /// tried again after these waits before it is marked failed (`5m,30m,6h`; `none`).
    #[arg(long, env = "ORDERLY_RETRY_MAIL_UNAVAILABLE")]
    pub retry_mail_unavailable: Option<String>,
    /// Stage 1: after the fast retries, a step the database failed is tried again after
    /// these waits before the order needs attention (default `none`).
    #[arg(long, env = "ORDERLY_RETRY_STORAGE")]
    pub retry_storage: Option<String>,
    /// `simulated` (the default) or `stripe`.
    #[arg(long, env = "ORDERLY_PAYMENT_PROVIDER")]
    pub payment_provider: Option<String>,
    /// Stripe: the secret API key (`sk_…`); better given by environment than by flag.
    #[arg(long, env = "ORDERLY_STRIPE_API_KEY", hide_env_values = true)]
    pub stripe_api_key: Option<String>,
    /// Stripe: where its API answers (change only to test against a double).
    #[arg(long, env = "ORDERLY_STRIPE_API_BASE")]
    pub stripe_api_base: Option<String>,
    /// Stripe: the webhook endpoint's signing secret (`whsec_…`), for `/v1/webhooks/stripe`.
    #[arg(long, env = "ORDERLY_STRIPE_WEBHOOK_SECRET", hide_env_values = true)]
    pub stripe_webhook_secret: Option<String>,
    /// How much of one order's payment a role without orders:refund-any (support) may
    /// refund in all, per currency: `100.00 USD, 90.00 EUR`, or `none` (default: 100 of the
    /// base currency).
    #[arg(long, env = "ORDERLY_REFUND_LIMIT")]
    pub refund_limit: Option<String>,
    /// A cart expires this long after the shopper last changed it, in seconds.
    #[arg(long, env = "ORDERLY_CART_IDLE_SECS")]
    pub cart_idle_secs: Option<u64>,
    /// How often the availability sweep checks open carts, in milliseconds.
    #[arg(long, env = "ORDERLY_CART_SWEEP_INTERVAL_MS")]
    pub cart_sweep_interval_ms: Option<u64>,
    /// Where notifications go: `log` (the default: the log, or files in --notify-dir) or `smtp`.
    #[arg(long, env = "ORDERLY_NOTIFIER")]
    pub notifier: Option<String>,
    /// Log notifier: write each message as a file into this directory instead of the log.
    #[arg(long, env = "ORDERLY_NOTIFY_DIR")]
    pub notify_dir: Option<PathBuf>,
    /// The shop's name, as messages print it.
    #[arg(long, env = "ORDERLY_SHOP_NAME")]
    pub shop_name: Option<String>,
    /// Staff address for new-order and needs-attention alerts (none: no staff e-mail).
    #[arg(long, env = "ORDERLY_NOTIFY_ADMIN_EMAIL")]
    pub notify_admin_email: Option<String>,
    /// The sender of e-mail, e.g. "Shop <orders@shop.example>" (required with smtp).
    #[arg(long, env = "ORDERLY_NOTIFY_FROM")]
    pub notify_from: Option<String>,
    /// SMTP server host.
    #[arg(long, env = "ORDERLY_SMTP_HOST")]
    pub smtp_host: Option<String>,
    /// SMTP server port (default by TLS mode: 25, 587 or 465).
    #[arg(long, env = "ORDERLY_SMTP_PORT")]
    pub smtp_port: Option<u16>,
    /// SMTP connection protection: `starttls` (the default), `tls`, or `none` (local relays).
    #[arg(long, env = "ORDERLY_SMTP_TLS")]
    pub smtp_tls: Option<String>,
    /// SMTP login name.
    #[arg(long, env = "ORDERLY_SMTP_USERNAME")]
    pub smtp_username: Option<String>,
    /// SMTP password; better given by environment than by flag.
    #[arg(long, env = "ORDERLY_SMTP_PASSWORD", hide_env_values = true)]
    pub smtp_password: Option<String>,
}

/// The TOML file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    server: FileServer,
    #[serde(default)]
    database: FileDatabase,
    #[serde(default)]
    shop: FileShop,
    #[serde(default)]
    retry: FileRetry,
    #[serde(default)]
    payments: FilePayments,
    #[serde(default)]
    notify: FileNotify,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileNotify {
    notifier: Option<String>,
    dir: Option<PathBuf>,
    shop_name: Option<String>,
    admin_email: Option<String>,
    from: Option<String>,
    #[serde(default)]
    smtp: FileSmtp,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSmtp {
    host: Option<String>,
    port: Option<u16>,
    tls: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// Where notifications go.
#[derive(Clone, Debug)]
pub enum Channel {
    /// The log, or one file per message in a directory.
    Log(Option<PathBuf>),
    /// An SMTP server (the password is masked in every log).
    Smtp(orderly_notify::smtp::SmtpSettings),
}

/// Validated notification settings.
#[derive(Clone, Debug)]
pub struct NotifyConfig {
    /// How messages leave.
    pub channel: Channel,
    /// Printed in messages.
    pub shop_name: String,
    /// Staff's address for alerts.
    pub admin_email: Option<String>,
}

impl NotifyConfig {
    /// For the banner.
    pub fn describe(&self) -> String {
        let channel = match &self.channel {
            Channel::Log(None) => "log".to_owned(),
            Channel::Log(Some(dir)) => format!("files in {}", dir.display()),
            Channel::Smtp(s) => {
                let tls = match s.tls {
                    orderly_notify::smtp::TlsMode::None => "no TLS",
                    orderly_notify::smtp::TlsMode::StartTls => "STARTTLS",
                    orderly_notify::smtp::TlsMode::Tls => "TLS",
                };
                format!("SMTP {}:{}, {tls}", s.host, s.port)
            }
        };
        match &self.admin_email {
            Some(admin) => format!("{channel}; staff alerts to {admin}"),
            None => format!("{channel}; no staff alerts"),
        }
    }
}

fn notify_config(args: &ServeArgs, file: FileNotify) -> Result<NotifyConfig, ConfigError> {
    let admin_email = args.notify_admin_email.clone().or(file.admin_email);
    if let Some(admin) = &admin_email {
        orderly_domain::Email::parse(admin)
            .map_err(|e| ConfigError(format!("notify admin e-mail: {e}")))?;
    }
    let shop_name = args
        .shop_name
        .clone()
        .or(file.shop_name)
        .unwrap_or_else(|| "Orderly".to_owned());
    let channel = match args
        .notifier
        .clone()
        .or(file.notifier)
        .as_deref()
        .unwrap_or("log")
    {
        "log" => Channel::Log(args.notify_dir.clone().or(file.dir)),
        "smtp" => {
            let smtp = file.smtp;
            let host = args.smtp_host.clone().or(smtp.host).ok_or_else(|| {
                ConfigError("the smtp notifier needs a server: set --smtp-host".into())
            })?;
            let tls_text = args
                .smtp_tls
                .clone()
                .or(smtp.tls)
                .unwrap_or_else(|| "starttls".to_owned());
            let tls = orderly_notify::smtp::TlsMode::parse(&tls_text).map_err(ConfigError)?;
            let from = args.notify_from.clone().or(file.from).ok_or_else(|| {
                ConfigError(
                    "the smtp notifier needs a sender: set --notify-from \"Shop <orders@shop.example>\""
                        .into(),
                )
            })?;
            let username = args.smtp_username.clone().or(smtp.username);
            let password = args
                .smtp_password
                .clone()
                .or(smtp.password)
                .map(orderly_core::secret::Secret::new);
            if password.is_some() && username.is_none() {
                return Err(ConfigError(
                    "an SMTP password needs a user name: set --smtp-username".into(),
                ));
            }
            let settings = orderly_notify::smtp::SmtpSettings {
                port: args.smtp_port.or(smtp.port).unwrap_or(tls.default_port()),
                host,
                tls,
                username,
                password,
                from,
                timeout: Duration::from_secs(30),
            };
            // Checks the sender and the TLS setup now, not at the first order.
            settings.validate().map_err(ConfigError)?;
            Channel::Smtp(settings)
        }
        other => {
            return Err(ConfigError(format!(
                "notifier must be log or smtp, got {other:?}"
            )));
        }
    };
    Ok(NotifyConfig {
        channel,
        shop_name,
        admin_email,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileServer {
    bind: Option<SocketAddr>,
    header_timeout_secs: Option<u64>,
    body_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    log_format: Option<String>,
    shutdown_timeout_secs: Option<u64>,
    job_lease_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDatabase {
    url: Option<String>,
    demo_data: Option<bool>,
    pool_size: Option<u32>,
    statement_timeout_ms: Option<u64>,
    lock_timeout_ms: Option<u64>,
    acquire_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShop {
    base_currency: Option<String>,
    cart_idle_secs: Option<u64>,
    cart_sweep_interval_ms: Option<u64>,
    refund_limit: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRetry {
    interval_ms: Option<u64>,
    max_attempts: Option<u32>,
    backoff_rate: Option<f64>,
    payment_unavailable: Option<String>,
    payment_declined: Option<String>,
    stock_short: Option<String>,
    mail_unavailable: Option<String>,
    storage: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePayments {
    provider: Option<String>,
    /// Replaced by `[retry] payment_unavailable`; named only to say so.
    recovery_delay_ms: Option<u64>,
    #[serde(default)]
    simulated: FileSimulated,
    #[serde(default)]
    stripe: FileStripe,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStripe {
    api_key: Option<String>,
    api_base: Option<String>,
    webhook_secret: Option<String>,
}

/// Which payment provider takes the money.
#[derive(Clone, Debug)]
pub enum Provider {
    /// The deterministic simulated provider.
    Simulated,
    /// Stripe, with these settings (the key is masked in every log).
    Stripe(orderly_payments::StripeSettings),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSimulated {
    decline_rate: Option<f64>,
    transient_rate: Option<f64>,
    latency_ms: Option<u64>,
    seed: Option<u64>,
    ledger: Option<PathBuf>,
}

/// Log output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Readable on a terminal.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where the data is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Database {
    /// The embedded runtime's file.
    Sqlite(PathBuf),
    /// A cluster's PostgreSQL.
    Postgres(String),
}

impl Database {
    /// For the banner.
    pub fn describe(&self) -> String {
        match self {
            Database::Sqlite(path) => format!("embedded, SQLite file {}", path.display()),
            Database::Postgres(url) => {
                format!(
                    "cluster node, PostgreSQL {}",
                    orderly_store_postgres::redact(url)
                )
            }
        }
    }
}

/// PostgreSQL connection tuning.
#[derive(Clone, Debug)]
pub struct PgTuning {
    pub pool_size: u32,
    pub statement_timeout: Duration,
    pub lock_timeout: Duration,
    pub acquire_timeout: Duration,
}

/// Validated settings of `orderly serve`.
#[derive(Clone, Debug)]
pub struct Settings {
    pub bind: SocketAddr,
    /// Time limits and the connection bound of the HTTP listener.
    pub http: orderly_api::server::ServerLimits,
    pub database: Database,
    pub demo_data: bool,
    /// Place the demo's failing orders (with fresh demo data).
    pub demo_failures: bool,
    pub base_currency: Currency,
    pub log_format: LogFormat,
    pub retry: RetryPolicies,
    pub payments: SimulatedSettings,
    pub shutdown_timeout: Duration,
    pub tuning: PgTuning,
    pub job_lease: Duration,
    pub payment_ledger: Option<PathBuf>,
    pub provider: Provider,
    pub cart_idle: Duration,
    pub cart_sweep_interval: Duration,
    pub refund_limits: RefundLimits,
    pub notify: NotifyConfig,
}

/// A configuration mistake, phrased for the person who made it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

fn load_file(path: Option<&Path>) -> Result<FileConfig, ConfigError> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "cannot read the configuration file {}: {e}",
            path.display()
        ))
    })?;
    toml::from_str(&text).map_err(|e| {
        ConfigError(format!(
            "configuration file {} is not valid: {e}",
            path.display()
        ))
    })
}

/// Parses a database URL.
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_database_url(url: &str) -> Result<Database, ConfigError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Database::Postgres(url.to_owned()));
    }
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let path = rest.strip_prefix("//").unwrap_or(rest);
        let path = path.split('?').next().unwrap_or(path);
        if path.is_empty() {
            return Err(ConfigError(format!(
                "database URL {url:?} names no file; write sqlite://data/orderly.db"
            )));
        }
        return Ok(Database::Sqlite(PathBuf::from(path)));
    }
    Err(ConfigError(format!(
        "database URL {:?} is not supported; use sqlite://PATH (e.g. sqlite://data/orderly.db) or postgres://USER@HOST:PORT/DATABASE",
        orderly_store_postgres::redact(url)
    )))
}

/// The database of any command, and how to connect to it.
///
/// # Errors
/// A bad file, URL or setting.
pub fn storage(storage: &StorageArgs) -> Result<(Database, PgTuning), ConfigError> {
    let file = load_file(storage.config.as_deref())?;
    let url = storage
        .database_url
        .clone()
        .or(file.database.url)
        .unwrap_or_else(|| "sqlite://data/orderly.db".to_owned());
    let pool_size = storage.pool_size.or(file.database.pool_size).unwrap_or(16);
    if !(1..=1000).contains(&pool_size) {
        return Err(ConfigError(format!(
            "database pool size must be between 1 and 1000, got {pool_size}"
        )));
    }
    let millis = |name: &str, value: u64| {
        if value == 0 {
            Err(ConfigError(format!("{name} must be greater than zero")))
        } else {
            Ok(Duration::from_millis(value))
        }
    };
    let tuning = PgTuning {
        pool_size,
        statement_timeout: millis(
            "statement timeout",
            storage
                .statement_timeout_ms
                .or(file.database.statement_timeout_ms)
                .unwrap_or(5_000),
        )?,
        lock_timeout: millis(
            "lock timeout",
            storage
                .lock_timeout_ms
                .or(file.database.lock_timeout_ms)
                .unwrap_or(2_000),
        )?,
        acquire_timeout: millis(
            "acquire timeout",
            storage
                .acquire_timeout_ms
                .or(file.database.acquire_timeout_ms)
                .unwrap_or(1_000),
        )?,
    };
    Ok((parse_database_url(&url)?, tuning))
}

fn http_limits(
    args: &ServeArgs,
    file: &FileServer,
) -> Result<orderly_api::server::ServerLimits, ConfigError> {
    let defaults = orderly_api::server::ServerLimits::default();
    let secs =
        |name: &str, flag: Option<u64>, key: Option<u64>, default: Duration| match flag.or(key) {
            None => Ok(default),
            Some(n) if (1..=3600).contains(&n) => Ok(Duration::from_secs(n)),
            Some(n) => Err(ConfigError(format!(
                "{name} must be between 1 and 3600 seconds, got {n}"
            ))),
        };
    let max_connections = args
        .max_connections
        .or(file.max_connections)
        .unwrap_or(defaults.max_connections);
    if !(16..=1_000_000).contains(&max_connections) {
        return Err(ConfigError(format!(
            "max connections must be between 16 and 1000000, got {max_connections}"
        )));
    }
    Ok(orderly_api::server::ServerLimits {
        header_timeout: secs(
            "header timeout",
            args.header_timeout_secs,
            file.header_timeout_secs,
            defaults.header_timeout,
        )?,
        body_timeout: secs(
            "body timeout",
            args.body_timeout_secs,
            file.body_timeout_secs,
            defaults.body_timeout,
        )?,
        idle_timeout: secs(
            "idle timeout",
            args.idle_timeout_secs,
            file.idle_timeout_secs,
            defaults.idle_timeout,
        )?,
        max_connections,
    })
}

fn rate(name: &str, value: f64) -> Result<f64, ConfigError> {
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError(format!(
            "{name} must be between 0 and 1, got {value}"
        )))
    }
}

impl Settings {
    /// Merges flags/env over the file over the defaults, and checks the result.
    ///
    /// # Errors
    /// The first setting that is wrong, with what would be right.
    pub fn resolve(args: &ServeArgs) -> Result<Settings, ConfigError> {
        let file = load_file(args.storage.config.as_deref())?;
        let (database, tuning) = storage(&args.storage)?;
        let http = http_limits(args, &file.server)?;
        let lease_secs = args
            .job_lease_secs
            .or(file.server.job_lease_secs)
            .unwrap_or(60);
        if !(2..=3600).contains(&lease_secs) {
            return Err(ConfigError(format!(
                "job lease must be between 2 and 3600 seconds, got {lease_secs}"
            )));
        }
        let bind = args
            .bind
            .or(file.server.bind)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let currency_text = args
            .base_currency
            .clone()
            .or(file.shop.base_currency)
            .unwrap_or_else(|| "USD".to_owned());
        let base_currency = Currency::parse(&currency_text)
            .map_err(|e| ConfigError(format!("base currency: {e}")))?;
        let log_format = match args
            .log_format
            .clone()
            .or(file.server.log_format)
            .as_deref()
            .unwrap_or("text")
        {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError(format!(
                    "log format must be text or json, got {other:?}"
                )));
            }
        };
        // The demo's failures should reach the queue in seconds, not minutes.
        let demo = args.demo_failures;
        let retry = RetryPolicy {
            interval: Duration::from_millis(
                args.retry_interval_ms
                    .or(file.retry.interval_ms)
                    .unwrap_or(if demo { 500 } else { 5_000 }),
            ),
            max_attempts: args
                .retry_max_attempts
                .or(file.retry.max_attempts)
                .unwrap_or(if demo { 3 } else { 5 }),
            backoff_rate: args
                .retry_backoff_rate
                .or(file.retry.backoff_rate)
                .unwrap_or(2.0),
        };
        // The demo's failures reach the queue in seconds: no class waits unless set, but one.
        let waits = |class: FailureClass, arg: &Option<String>, file: &Option<String>| {
            match arg.as_ref().or(file.as_ref()) {
                Some(text) => parse_waits(text).map_err(|e| {
                    ConfigError(format!(
                        "retry waits for {class}: {e}\n  set --retry-{} (or [retry] {} in the file) to a list such as 5m,30m,6h, or none",
                        class.as_str(),
                        class.as_str().replace('-', "_")
                    ))
                }),
                // The demo shows stage 1 at work on its declined card, and its other failures
                // reach the queue in seconds.
                None if demo && class == FailureClass::PaymentDeclined => {
                    Ok(vec![Duration::from_secs(600)])
                }
                None if demo => Ok(Vec::new()),
                None => Ok(RetryPolicies::default().waits(class).to_vec()),
            }
        };
        if file.payments.recovery_delay_ms.is_some()
            || std::env::var_os("ORDERLY_PAYMENT_RECOVERY_DELAY_MS").is_some()
        {
            return Err(ConfigError(
                "payments.recovery_delay_ms (ORDERLY_PAYMENT_RECOVERY_DELAY_MS) is replaced by the stage-1 waits per failure class\n  set [retry] payment_unavailable = \"5m,30m,6h\" (or --retry-payment-unavailable) instead".to_owned(),
            ));
        }
        let fr = &file.retry;
        let retry = RetryPolicies::fast_only(retry)
            .with_waits(
                FailureClass::PaymentUnavailable,
                waits(
                    FailureClass::PaymentUnavailable,
                    &args.retry_payment_unavailable,
                    &fr.payment_unavailable,
                )?,
            )
            .with_waits(
                FailureClass::PaymentDeclined,
                waits(
                    FailureClass::PaymentDeclined,
                    &args.retry_payment_declined,
                    &fr.payment_declined,
                )?,
            )
            .with_waits(
                FailureClass::StockShort,
                waits(
                    FailureClass::StockShort,
                    &args.retry_stock_short,
                    &fr.stock_short,
                )?,
            )
            .with_waits(
                FailureClass::MailUnavailable,
                waits(
                    FailureClass::MailUnavailable,
                    &args.retry_mail_unavailable,
                    &fr.mail_unavailable,
                )?,
            )
            .with_waits(
                FailureClass::Storage,
                waits(FailureClass::Storage, &args.retry_storage, &fr.storage)?,
            );
        retry.validate().map_err(ConfigError)?;
        let sim = file.payments.simulated;
        let payment_ledger = args
            .payment_ledger
            .clone()
            .or(sim.ledger)
            .or(match &database {
                // The embedded database's ledger lives beside it:
                // `data/orderly.db` → `data/orderly.payments-ledger`.
                Database::Sqlite(path) => Some(path.with_extension("payments-ledger")),
                Database::Postgres(_) => None,
            });
        let payments = SimulatedSettings {
            decline_rate: rate(
                "payment decline rate",
                args.payment_decline_rate
                    .or(sim.decline_rate)
                    .unwrap_or(0.0),
            )?,
            transient_rate: rate(
                "payment transient-failure rate",
                args.payment_transient_rate
                    .or(sim.transient_rate)
                    .unwrap_or(0.0),
            )?,
            latency: Duration::from_millis(args.payment_latency_ms.or(sim.latency_ms).unwrap_or(0)),
            seed: args.payment_seed.or(sim.seed).unwrap_or(42),
        };
        payments.validate().map_err(ConfigError)?;
        let cart_idle_secs = args
            .cart_idle_secs
            .or(file.shop.cart_idle_secs)
            .unwrap_or(7 * 24 * 3600);
        if cart_idle_secs == 0 {
            return Err(ConfigError(
                "cart idle time must be at least 1 second".into(),
            ));
        }
        let sweep_ms = args
            .cart_sweep_interval_ms
            .or(file.shop.cart_sweep_interval_ms)
            .unwrap_or(60_000);
        if sweep_ms < 10 {
            return Err(ConfigError(format!(
                "cart sweep interval must be at least 10 ms, got {sweep_ms}"
            )));
        }
        let provider = match args
            .payment_provider
            .clone()
            .or(file.payments.provider)
            .as_deref()
            .unwrap_or("simulated")
        {
            "simulated" => Provider::Simulated,
            "stripe" => {
                let stripe = file.payments.stripe;
                let key = args
                    .stripe_api_key
                    .clone()
                    .or(stripe.api_key)
                    .ok_or_else(|| {
                        ConfigError(
                        "the stripe payment provider needs a secret key: set ORDERLY_STRIPE_API_KEY"
                            .into(),
                    )
                    })?;
                let mut s =
                    orderly_payments::StripeSettings::new(orderly_core::secret::Secret::new(key));
                if let Some(base) = args.stripe_api_base.clone().or(stripe.api_base) {
                    s.api_base = base;
                }
                s.webhook_secret = args
                    .stripe_webhook_secret
                    .clone()
                    .or(stripe.webhook_secret)
                    .map(orderly_core::secret::Secret::new);
                if args.demo_failures {
                    return Err(ConfigError(
                        "--demo-failures needs the simulated payment provider (its test payment methods make the failures); leave out --payment-provider stripe".into(),
                    ));
                }
                Provider::Stripe(s)
            }
            other => {
                return Err(ConfigError(format!(
                    "payment provider must be simulated or stripe, got {other:?}"
                )));
            }
        };
        let refund_limits = match args.refund_limit.as_ref().or(file.shop.refund_limit.as_ref()) {
            Some(text) => RefundLimits::parse(text).map_err(|e| {
                ConfigError(format!(
                    "refund limit: {e}\n  set --refund-limit (or [shop] refund_limit) to e.g. \"100.00 USD, 90.00 EUR\", or none"
                ))
            })?,
            None => RefundLimits::default_for(base_currency),
        };
        let notify = notify_config(args, file.notify)?;
        Ok(Settings {
            http,
            notify,
            provider,
            cart_idle: Duration::from_secs(cart_idle_secs),
            refund_limits,
            cart_sweep_interval: Duration::from_millis(sweep_ms),
            bind,
            database,
            demo_data: args.demo_data.or(file.database.demo_data).unwrap_or(true),
            demo_failures: args.demo_failures,
            base_currency,
            log_format,
            retry,
            payments,
            tuning,
            job_lease: Duration::from_secs(lease_secs),
            payment_ledger,
            shutdown_timeout: Duration::from_secs(
                args.shutdown_timeout_secs
                    .or(file.server.shutdown_timeout_secs)
                    .unwrap_or(30),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_a_file() {
        assert_eq!(
            parse_database_url("sqlite://data/orderly.db").unwrap(),
            Database::Sqlite("data/orderly.db".into())
        );
        assert_eq!(
            parse_database_url("sqlite:/tmp/x.db?mode=rwc").unwrap(),
            Database::Sqlite("/tmp/x.db".into())
        );
        assert!(parse_database_url("sqlite://").is_err());
        assert!(parse_database_url("mysql://x").is_err());
    }

    #[test]
    fn defaults_follow_the_reference_design() {
        let s = Settings::resolve(&ServeArgs::default()).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.retry, RetryPolicies::default());
        assert!(s.demo_data);
        assert_eq!(s.base_currency.code(), "USD");
        assert_eq!(s.http, orderly_api::server::ServerLimits::default());
        assert_eq!(s.http.header_timeout, Duration::from_secs(10));
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orderly.toml");
        std::fs::write(
            &path,
            "[server]\nbind = \"127.0.0.1:9000\"\n[retry]\ninterval_ms = 10\nmax_attempts = 2\nstock_short = \"30m,6h\"\npayment_declined = \"1h\"\n[shop]\nbase_currency = \"EUR\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            storage: StorageArgs {
                config: Some(path),
                ..StorageArgs::default()
            },
            retry_max_attempts: Some(7),
            retry_payment_declined: Some("none".to_owned()),
            ..ServeArgs::default()
        };
        let s = Settings::resolve(&args).unwrap();
        assert_eq!(s.bind.port(), 9000);
        assert_eq!(s.retry.fast.interval, Duration::from_millis(10));
        assert_eq!(s.retry.fast.max_attempts, 7);
        assert_eq!(
            s.retry.waits(FailureClass::StockShort),
            [Duration::from_secs(1_800), Duration::from_secs(21_600)]
        );
        assert!(s.retry.waits(FailureClass::PaymentDeclined).is_empty());
        assert_eq!(
            s.retry.waits(FailureClass::PaymentUnavailable),
            orderly_core::retry::STAGE_ONE_WAITS
        );
        assert_eq!(s.base_currency.code(), "EUR");
    }

    #[test]
    fn the_demo_s_failures_wait_only_on_the_declined_card() {
        let s = Settings::resolve(&ServeArgs {
            demo_failures: true,
            ..ServeArgs::default()
        })
        .unwrap();
        assert_eq!(
            s.retry.waits(FailureClass::PaymentDeclined),
            [Duration::from_secs(600)]
        );
        for class in [
            FailureClass::PaymentUnavailable,
            FailureClass::MailUnavailable,
        ] {
            assert!(s.retry.waits(class).is_empty(), "{class}");
        }
        assert_eq!(s.retry.fast.max_attempts, 3);
    }

    #[test]
    fn the_old_recovery_delay_says_what_replaced_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orderly.toml");
        std::fs::write(&path, "[payments]\nrecovery_delay_ms = 300000\n").unwrap();
        let args = ServeArgs {
            storage: StorageArgs {
                config: Some(path),
                ..StorageArgs::default()
            },
            ..ServeArgs::default()
        };
        let e = Settings::resolve(&args).unwrap_err().to_string();
        assert!(e.contains("payment_unavailable"), "{e}");
    }

    #[test]
    fn a_bad_retry_schedule_says_what_to_write() {
        let args = ServeArgs {
            retry_stock_short: Some("5 minutes".to_owned()),
            ..ServeArgs::default()
        };
        let e = Settings::resolve(&args).unwrap_err().to_string();
        assert!(e.contains("stock-short") && e.contains("5m,30m,6h"), "{e}");
        let args = ServeArgs {
            retry_mail_unavailable: Some("13h".to_owned()),
            ..ServeArgs::default()
        };
        let e = Settings::resolve(&args).unwrap_err().to_string();
        assert!(e.contains("12h"), "{e}");
    }

    #[test]
    fn smtp_settings_come_from_the_file_and_the_password_is_masked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orderly.toml");
        std::fs::write(
            &path,
            "[notify]\nnotifier = \"smtp\"\nfrom = \"Shop <orders@shop.example>\"\nadmin_email = \"staff@shop.example\"\n[notify.smtp]\nhost = \"mail.shop.example\"\ntls = \"tls\"\nusername = \"orders\"\npassword = \"hunter2-very-secret\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            storage: StorageArgs {
                config: Some(path),
                ..StorageArgs::default()
            },
            ..ServeArgs::default()
        };
        let s = Settings::resolve(&args).unwrap();
        let Channel::Smtp(smtp) = &s.notify.channel else {
            panic!("expected smtp, got {:?}", s.notify.channel);
        };
        assert_eq!(smtp.port, 465, "the TLS mode's port");
        assert_eq!(smtp.host, "mail.shop.example");
        assert_eq!(s.notify.admin_email.as_deref(), Some("staff@shop.example"));
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn mistakes_are_named() {
        let bad = |args: ServeArgs| Settings::resolve(&args).unwrap_err().to_string();
        assert!(
            bad(ServeArgs {
                payment_decline_rate: Some(1.5),
                ..ServeArgs::default()
            })
            .contains("decline rate")
        );
        assert!(
            bad(ServeArgs {
                base_currency: Some("usd".into()),
                ..ServeArgs::default()
            })
            .contains("ISO 4217")
        );
        assert!(
            bad(ServeArgs {
                log_format: Some("xml".into()),
                ..ServeArgs::default()
            })
            .contains("text or json")
        );
        assert!(
            bad(ServeArgs {
                body_timeout_secs: Some(0),
                ..ServeArgs::default()
            })
            .contains("body timeout must be between 1 and 3600")
        );
        assert!(
            bad(ServeArgs {
                max_connections: Some(3),
                ..ServeArgs::default()
            })
            .contains("max connections")
        );
        assert!(
            bad(ServeArgs {
                retry_interval_ms: Some(0),
                ..ServeArgs::default()
            })
            .contains("interval")
        );
        assert!(
            bad(ServeArgs {
                notifier: Some("smtp".into()),
                ..ServeArgs::default()
            })
            .contains("--smtp-host")
        );
        assert!(
            bad(ServeArgs {
                notifier: Some("smtp".into()),
                smtp_host: Some("127.0.0.1".into()),
                smtp_tls: Some("ssl".into()),
                notify_from: Some("a@b.example".into()),
                ..ServeArgs::default()
            })
            .contains("none, starttls or tls")
        );
        assert!(
            bad(ServeArgs {
                notify_admin_email: Some("not an address".into()),
                ..ServeArgs::default()
            })
            .contains("admin e-mail")
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[server]\nport = 1\n").unwrap();
        let args = ServeArgs {
            storage: StorageArgs {
                config: Some(path),
                ..StorageArgs::default()
            },
            ..ServeArgs::default()
        };
        assert!(bad(args).contains("unknown field"));
    }
}
