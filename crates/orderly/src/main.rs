//! `orderly`: the order management system's one binary.
//!
//! # Layout
//! - `serve`: opens the database, loads demo data into an empty one, starts the saga dispatcher
//!   and the HTTP server, prints the URLs, and shuts down gracefully on SIGINT/SIGTERM.
//! - `migrate`: applies the schema and exits.
//! - `seed`: loads the demo data, or synthetic products and customers with a progress bar.
//! - `user create`: makes a staff user (the first admin); `api-key create`: makes an API key.
//! - `routes`: prints every route with who may call it.
//!
//! Wiring only: every rule lives in the library crates.
#![forbid(unsafe_code)]
#![allow(missing_docs)]

mod auth_config;
mod backend;
mod config;
mod demo;
mod webhooks;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use orderly_core::accounts::{Accounts, AuthSettings};
use orderly_core::metered::{Metered, StorageMetrics};
use orderly_core::ports::{Clock, PageRequest, PaymentGateway, Store, SystemClock};
use orderly_core::saga::DispatcherSettings;
use orderly_core::{AppSettings, Application, CreateProduct, Orderly};
use orderly_domain::{Currency, CustomerId, Email, Money, Name, ProductId};
use orderly_payments::{SimulatedPayments, Stripe};
use tokio::sync::watch;

use crate::backend::Backend;
use crate::config::{Channel, Database, LogFormat, Provider, ServeArgs, Settings, StorageArgs};

#[derive(Parser)]
#[command(
    name = "orderly",
    version,
    about = "Order management for e-commerce",
    args_override_self = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API and the order saga (embedded SQLite by default).
    Serve(Box<ServeArgs>),
    /// Apply the database schema and exit.
    Migrate(StorageArgs),
    /// Load demo data, or synthetic products and customers.
    Seed(SeedArgs),
    /// Staff users.
    #[command(subcommand)]
    User(UserCommand),
    /// API keys for programs.
    #[command(subcommand, name = "api-key")]
    ApiKey(KeyCommand),
    /// Print every route and who may call it.
    Routes {
        /// As JSON lines: {"method", "path", "access"}.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Make a staff user; the password is read from standard input (one line).
    Create {
        #[command(flatten)]
        storage: StorageArgs,
        /// Their log-in e-mail.
        #[arg(long)]
        email: String,
        /// Their name (default: the e-mail).
        #[arg(long)]
        name: Option<String>,
        /// support, manager, admin or engineer.
        #[arg(long)]
        role: String,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Make an API key and print it (it is shown only this once).
    Create {
        #[command(flatten)]
        storage: StorageArgs,
        /// What it is for.
        #[arg(long)]
        name: String,
        /// A scope it holds (repeat for more), e.g. --scope orders:place --scope orders:read.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Every scope a key may hold.
        #[arg(long)]
        all_scopes: bool,
    },
}

#[derive(clap::Args)]
struct SeedArgs {
    #[command(flatten)]
    storage: StorageArgs,
    /// Synthetic products to create (SKU-000001, …), each with stock.
    #[arg(long)]
    products: Option<u32>,
    /// Synthetic customers to create (C000001, …).
    #[arg(long)]
    customers: Option<u32>,
    /// Finished orders to import (delivered, some canceled; on the demo catalog and customers),
    /// the newest last: a database of realistic size for benchmarks, fast.
    #[arg(long)]
    orders: Option<u64>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(*args).await,
            Command::Migrate(args) => migrate(args).await,
            Command::Seed(args) => seed(args).await,
            Command::User(command) => user_command(command).await,
            Command::ApiKey(command) => key_command(command).await,
            Command::Routes { json } => {
                print_routes(json);
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ORDERLY_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.with_writer(std::io::stderr).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .init(),
    }
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let settings = Settings::resolve(&args).map_err(|e| e.to_string())?;
    init_logging(settings.log_format);
    // One node owns an embedded database; a second `serve` on the same file would take over
    // the first one's saga work.
    let _owner = match &settings.database {
        Database::Sqlite(path) => Some(backend::lock_embedded(path)?),
        Database::Postgres(_) => None,
    };
    let backend = Backend::open(&settings.database, &settings.tuning).await?;
    let storage_metrics = Arc::new(StorageMetrics::default());
    let store: Arc<dyn Store> =
        Arc::new(Metered::new(backend.store(), Arc::clone(&storage_metrics)));
    if backend.is_embedded() {
        // Leases left by a killed process are ours to take: nobody else runs on this file.
        // (Cluster nodes never do this: a dead node's leases simply run out.)
        let released = store.release_leases().await.map_err(|e| e.to_string())?;
        if released > 0 {
            tracing::info!(
                jobs = released,
                "resuming saga work left by the previous run"
            );
        }
    }
    // A provider call must end well inside the lease, or another node could start the step.
    let payment_timeout = (settings.job_lease / 2).min(Duration::from_secs(30));
    let wiring = Application::new(Arc::clone(&store))
        .with_settings(AppSettings {
            base_currency: settings.base_currency,
            cart_idle: settings.cart_idle,
            refund_limits: settings.refund_limits.clone(),
        })
        .with_retry_policies(settings.retry.clone())
        .with_lease(settings.job_lease)
        .with_payment_timeout(payment_timeout);
    let wiring = with_notifier(&settings, wiring)?;
    let auth = args.auth.resolve()?;
    let accounts = Arc::new(
        wiring
            .accounts(auth.settings, auth.external)
            .await
            .map_err(|e| format!("cannot open the accounts: {e}"))?,
    );
    let app = wiring.orderly();
    let demo = if settings.demo_data && catalog_is_empty(&store).await? {
        app.catalog
            .load_demo_data()
            .await
            .map_err(|e| e.to_string())?
    } else {
        false
    };

    let mut stripe = None;
    let payments: Arc<dyn PaymentGateway> = match (&settings.provider, &settings.payment_ledger) {
        (Provider::Stripe(s), _) => {
            let adapter = Arc::new(Stripe::new(s.clone())?);
            stripe = Some(Arc::clone(&adapter));
            adapter
        }
        (Provider::Simulated, Some(ledger)) => Arc::new(SimulatedPayments::with_ledger(
            settings.payments.clone(),
            ledger,
        )?),
        (Provider::Simulated, None) => Arc::new(SimulatedPayments::new(settings.payments.clone())),
    };
    let saga = Arc::new(wiring.saga(payments));
    let notifications = wiring
        .notifications()
        .ok_or("the notifier was not configured")?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let dispatcher_settings = DispatcherSettings {
        lease: settings.job_lease,
        // Embedded, a step mostly waits for the writer's next batch, and more steps in flight
        // fill those batches; on PostgreSQL each step holds one of the pool's connections, and
        // more than a few per connection starve the API of them.
        batch: if backend.is_embedded() { 256 } else { 64 },
        ..DispatcherSettings::default()
    };
    let dispatcher = tokio::spawn(
        wiring
            .dispatcher(saga, dispatcher_settings)
            .run(stop_rx.clone()),
    );
    tokio::spawn(sweep_carts(
        app.clone(),
        settings.cart_sweep_interval,
        stop_rx,
    ));
    wiring.work().notify_one();
    let demo_failures = match (settings.demo_failures, demo) {
        (true, true) => {
            // The outage lasts exactly as long as the automatic tries: the first try, its
            // retries, and the stage-1 waits' tries if there are any.
            let calls = settings
                .retry
                .tries(orderly_core::retry::FailureClass::PaymentUnavailable);
            demo::seed_failures(&app, &accounts, calls).await?;
            true
        }
        (true, false) => {
            tracing::warn!(
                "--demo-failures places its orders only with fresh demo data (an empty database); none were placed"
            );
            false
        }
        (false, _) => false,
    };

    let http = http_limits(settings.http);
    let listener = tokio::net::TcpListener::bind(settings.bind)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}\n  is another Orderly running? choose another address with --bind 127.0.0.1:PORT", settings.bind))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let staff = accounts.staff().await.map(|s| s.len()).unwrap_or(0);
    print_banner(&settings, addr, (demo, demo_failures), staff);

    let extra = match stripe {
        Some(stripe) if stripe.has_webhook_secret() => vec![webhooks::route(stripe)],
        Some(_) => {
            tracing::warn!(
                "Stripe webhooks are off: set ORDERLY_STRIPE_WEBHOOK_SECRET to receive them at /v1/webhooks/stripe"
            );
            Vec::new()
        }
        None => Vec::new(),
    };
    let router = orderly_api::router_with(app, accounts, extra)
        .layer(axum::Extension(storage_metrics))
        .layer(axum::Extension(notifications));
    if let Err(e) = orderly_api::server::serve(
        listener,
        router,
        http,
        shutdown_signal(),
        settings.shutdown_timeout,
    )
    .await
    {
        tracing::error!(error = %e, "server error");
    }
    tracing::info!("stopped accepting requests; finishing saga steps in flight");
    let _ = stop_tx.send(true);
    if tokio::time::timeout(settings.shutdown_timeout, dispatcher)
        .await
        .is_err()
    {
        tracing::warn!(
            "saga steps still running at the shutdown timeout; they resume at next start"
        );
    }
    backend.close().await;
    tracing::info!("bye");
    Ok(())
}

/// The listener's limits, with the connection bound lowered to what the open-files limit
/// allows once the soft limit is raised to the hard one.
fn http_limits(wanted: orderly_api::server::ServerLimits) -> orderly_api::server::ServerLimits {
    use orderly_api::server::{connections_allowed, raise_open_files_limit};
    let (open_files, hard) = raise_open_files_limit();
    tracing::info!(soft = open_files, hard, "open-files limit");
    let allowed = connections_allowed(wanted.max_connections, open_files);
    if allowed < wanted.max_connections {
        tracing::warn!(
            wanted = wanted.max_connections,
            allowed,
            open_files,
            "the open-files limit allows fewer connections than --max-connections; raise it (ulimit -n) to allow more"
        );
    }
    orderly_api::server::ServerLimits {
        max_connections: allowed,
        ..wanted
    }
}

/// `app` with the notifier configured, the templates and the shop's and staff's names.
fn with_notifier(settings: &Settings, app: Application) -> Result<Application, String> {
    use orderly_core::ports::{Notifier, Recipient};
    use orderly_notify::sink::LogNotifier;
    let notifier: Arc<dyn Notifier> = match &settings.notify.channel {
        Channel::Log(None) => Arc::new(LogNotifier::log()),
        Channel::Log(Some(dir)) => Arc::new(LogNotifier::dir(dir)),
        Channel::Smtp(smtp) => Arc::new(orderly_notify::Routes {
            email: Some(Arc::new(orderly_notify::smtp::SmtpNotifier::new(smtp)?)),
            ..orderly_notify::Routes::default()
        }),
    };
    Ok(app.with_notifier(
        notifier,
        Arc::new(orderly_notify::FileTemplates::load()?),
        orderly_core::notify::NotifySettings {
            shop_name: settings.notify.shop_name.clone(),
            staff: settings
                .notify
                .admin_email
                .iter()
                .map(|a| Recipient::Email(a.clone()))
                .collect(),
        },
    ))
}

/// Runs the cart availability sweep every `interval` until shutdown.
async fn sweep_carts(app: Orderly, interval: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        match app.carts.sweep_carts().await {
            Ok(r) if r.expired > 0 || r.changed > 0 => {
                tracing::info!(
                    carts = r.carts,
                    expired = r.expired,
                    changed = r.changed,
                    "cart sweep"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cart sweep failed; trying again next time"),
        }
    }
}

async fn catalog_is_empty(store: &Arc<dyn Store>) -> Result<bool, String> {
    let first = store
        .list_products(&PageRequest {
            limit: 1,
            cursor: None,
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok(first.items.is_empty())
}

/// `demo`: whether the demo data, and the demo's failing orders, were loaded now.
fn print_banner(
    settings: &Settings,
    addr: std::net::SocketAddr,
    (demo, demo_failures): (bool, bool),
    staff: usize,
) {
    let base = format!("http://{addr}");
    println!("Orderly {} listening on {base}", env!("CARGO_PKG_VERSION"));
    println!("  storage   {}", settings.database.describe());
    println!("  API       {base}/v1/orders");
    println!("  API docs  {base}/docs");
    println!("  OpenAPI   {base}/openapi.json");
    println!("  GraphQL   {base}/graphql  (GraphiQL in a browser)");
    println!("  staff     {base}/admin  (the staff panel; sign in as a staff user)");
    println!("  metrics   {base}/metrics");
    println!("  health    {base}/healthz  {base}/readyz");
    println!("  notify    {}", settings.notify.describe());
    if staff == 0 {
        println!(
            "  accounts  no staff users yet: make the first admin with\n            orderly user create --role admin --email you@your-shop.example   (reads the password from stdin)"
        );
    } else {
        println!("  accounts  {staff} staff users; log in at {base}/v1/auth/staff/login");
    }
    if demo {
        println!(
            "  demo data loaded: products 001 Wireless Headphones, 002 Smartwatch; customers 001, 002"
        );
    }
    if demo_failures {
        println!(
            "  demo failures: a payment provider outage, a declined card and an undeliverable address;\n            the two that need a person are in {base}/admin within seconds, the card is tried again in 10 min"
        );
    }
    println!("Press Ctrl-C to stop.");
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown requested");
}

/// Accounts on the database `storage` names, for the commands that manage them.
async fn open_accounts(storage: &StorageArgs) -> Result<(Backend, Accounts), String> {
    let (database, tuning) = config::storage(storage).map_err(|e| e.to_string())?;
    let backend = Backend::open(&database, &tuning).await?;
    let accounts = Application::new(backend.store())
        .accounts(AuthSettings::default(), None)
        .await
        .map_err(|e| e.to_string())?;
    Ok((backend, accounts))
}

async fn user_command(command: UserCommand) -> Result<(), String> {
    let UserCommand::Create {
        storage,
        email,
        name,
        role,
    } = command;
    let role = orderly_auth::Role::parse(&role)?;
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let password = password.trim_end_matches(['\r', '\n']);
    let (backend, accounts) = open_accounts(&storage).await?;
    let created = accounts
        .create_staff(
            &email,
            name.as_deref().unwrap_or(&email),
            role,
            password,
            "cli",
        )
        .await;
    backend.close().await;
    let user = created.map_err(|e| match e {
        orderly_core::AppError::Invalid(errors) => errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    })?;
    println!(
        "created {} user {}; log in with POST /v1/auth/staff/login",
        user.role, user.email
    );
    Ok(())
}

async fn key_command(command: KeyCommand) -> Result<(), String> {
    let KeyCommand::Create {
        storage,
        name,
        scopes,
        all_scopes,
    } = command;
    let scopes: Vec<orderly_auth::Permission> = if all_scopes {
        orderly_auth::Permission::ALL
            .into_iter()
            .filter(|p| p.grantable_to_keys())
            .collect()
    } else {
        scopes
            .iter()
            .map(|s| orderly_auth::Permission::parse(s))
            .collect::<Result<_, _>>()?
    };
    let (backend, accounts) = open_accounts(&storage).await?;
    let created = accounts.create_key(&name, &scopes, "cli").await;
    backend.close().await;
    let (record, key) = created.map_err(|e| e.to_string())?;
    eprintln!(
        "API key {} ({}) with scopes {}; it is shown only now:",
        record.id,
        record.name,
        record
            .scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("{key}");
    Ok(())
}

fn print_routes(json: bool) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for spec in orderly_api::route_table()
        .iter()
        .chain(std::iter::once(&webhooks::declared()))
    {
        let line = if json {
            serde_json::json!({"method": spec.method.as_str(), "path": spec.path, "access": spec.access.describe()})
                .to_string()
        } else {
            format!(
                "{:<7} {:<42} {}",
                spec.method.as_str(),
                spec.path,
                spec.access.describe()
            )
        };
        // A closed pipe (`orderly routes | head`) ends the listing quietly.
        if writeln!(out, "{line}").is_err() {
            return;
        }
    }
}

async fn migrate(args: StorageArgs) -> Result<(), String> {
    let (database, tuning) = config::storage(&args).map_err(|e| e.to_string())?;
    let n = Backend::migrate(&database, &tuning).await?;
    println!(
        "{}: schema up to date ({n} migrations)",
        database.describe()
    );
    Ok(())
}

async fn seed(args: SeedArgs) -> Result<(), String> {
    let (database, tuning) = config::storage(&args.storage).map_err(|e| e.to_string())?;
    let backend = Backend::open(&database, &tuning).await?;
    let app = Application::new(backend.store()).orderly();
    if args.products.is_none() && args.customers.is_none() || args.orders.is_some() {
        let loaded = app
            .catalog
            .load_demo_data()
            .await
            .map_err(|e| e.to_string())?;
        println!(
            "{}",
            if loaded {
                "demo data loaded: products 001, 002; customers 001, 002"
            } else {
                "demo data already present"
            }
        );
    }
    if let Some(n) = args.products {
        let bar = progress(u64::from(n), "products");
        let mut created = 0u64;
        for i in 1..=n {
            let cents = 500 + i64::from(i % 200) * 100 + 99;
            let request = CreateProduct {
                id: ProductId::parse(&format!("SKU-{i:06}")).map_err(|e| e.to_string())?,
                name: Name::parse("name", &format!("Product {i}")).map_err(|e| e.to_string())?,
                prices: vec![
                    Money::from_minor(cents, Currency::USD),
                    Money::from_minor(cents, Currency::parse("EUR").map_err(|e| e.to_string())?),
                ],
                stock: 1_000,
                active: true,
            };
            match app.catalog.create_product(request).await {
                Ok(_) => created += 1,
                Err(orderly_core::AppError::AlreadyExists { .. }) => {}
                Err(e) => return Err(format!("{e}; {created} products were created before it")),
            }
            bar.inc(1);
        }
        bar.finish_with_message(format!("{created} new products"));
    }
    if let Some(n) = args.customers {
        let bar = progress(u64::from(n), "customers");
        let names = [
            "Alice Johnson",
            "Michael Brown",
            "山田 太郎",
            "فاطمة الزهراء",
            "Zoë Müller",
            "Ólafur 🏔",
        ];
        let mut created = 0u64;
        for i in 1..=n {
            let id = CustomerId::parse(&format!("C{i:06}")).map_err(|e| e.to_string())?;
            let email =
                Email::parse(&format!("customer{i}@example.com")).map_err(|e| e.to_string())?;
            let name =
                Name::parse("name", names[i as usize % names.len()]).map_err(|e| e.to_string())?;
            match app.catalog.create_customer(id, email, name).await {
                Ok(_) => created += 1,
                Err(orderly_core::AppError::AlreadyExists { .. }) => {}
                Err(e) => return Err(format!("{e}; {created} customers were created before it")),
            }
            bar.inc(1);
        }
        bar.finish_with_message(format!("{created} new customers"));
    }
    if let Some(n) = args.orders {
        seed_orders(&backend.store(), n).await?;
    }
    backend.close().await;
    Ok(())
}

/// Orders imported per storage call.
const IMPORT_BATCH: u64 = 2_000;

/// Imports `n` finished orders of the demo customers, a minute apart, ending now.
async fn seed_orders(store: &Arc<dyn Store>, n: u64) -> Result<(), String> {
    use orderly_domain::{
        Actor, EventId, NewOrder, Order, OrderId, OrderLine, Payment, Quantity, Shipment, Stamp,
        Timestamp, Transition,
    };
    let products = [
        ("001", "Wireless Headphones", 7_999),
        ("002", "Smartwatch", 19_999),
    ];
    let now = SystemClock.now().millis();
    let bar = progress(n, "orders");
    let mut done = 0u64;
    while done < n {
        let size = IMPORT_BATCH.min(n - done);
        let mut batch = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        for i in done..done + size {
            let minutes = i64::try_from(n - i).unwrap_or(i64::MAX);
            let at = Timestamp::from_millis(now - minutes * 60_000);
            let stamp = |offset: i64| Stamp {
                event_id: EventId::from_uuid(uuid::Uuid::now_v7()),
                at: at.plus_millis(offset),
                actor: Actor::api(),
            };
            let (id, name, cents) = products[usize::from(i % 3 == 0)];
            let quantity =
                Quantity::new(i64::try_from(i % 3 + 1).unwrap_or(1)).map_err(|e| e.to_string())?;
            let unit = Money::from_minor(cents, Currency::USD);
            let line = OrderLine {
                product_id: ProductId::parse(id).map_err(|e| e.to_string())?,
                name: Name::parse("name", name).map_err(|e| e.to_string())?,
                quantity,
                unit_price: unit,
                line_total: unit
                    .checked_mul(quantity.get())
                    .map_err(|e| e.to_string())?,
            };
            let new = NewOrder {
                id: OrderId::from_uuid(uuid::Uuid::now_v7()),
                customer_id: CustomerId::parse(if i % 2 == 0 { "001" } else { "002" })
                    .map_err(|e| e.to_string())?,
                currency: Currency::USD,
                lines: vec![line],
                shipping_address: None,
                exchange_rate: None,
                payment_method: None,
            };
            let (mut order, _) = Order::place(new, stamp(0)).map_err(|e| e.to_string())?;
            let history = |e: orderly_domain::IllegalTransition| e.to_string();
            order
                .apply(Transition::Reserve, &stamp(50), None)
                .map_err(history)?;
            if i % 10 == 9 {
                order
                    .apply(
                        Transition::Cancel,
                        &stamp(60_000),
                        Some("changed my mind".into()),
                    )
                    .map_err(history)?;
            } else {
                let payment = Payment {
                    provider_ref: format!("imported_{i}"),
                    authorization: None,
                    amount: order.total,
                    captured_at: at.plus_millis(100),
                    refunds: Vec::new(),
                    refund_pending: None,
                    refund_in_flight: None,
                };
                order.capture(payment, &stamp(100)).map_err(history)?;
                let shipment = Shipment {
                    carrier: "DHL".into(),
                    tracking_number: format!("JD{i:012}"),
                    shipped_at: at.plus_millis(3_600_000),
                };
                order.ship(shipment, &stamp(3_600_000)).map_err(history)?;
                order
                    .apply(Transition::Deliver, &stamp(86_400_000), None)
                    .map_err(history)?;
            }
            batch.push(order);
        }
        store
            .import_orders(&batch)
            .await
            .map_err(|e| format!("{e}; {done} orders were imported before it"))?;
        done += size;
        bar.inc(size);
    }
    bar.finish_with_message(format!("{n} orders imported"));
    Ok(())
}

fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix:>10} [{bar:40}] {pos}/{len} {per_sec} eta {eta} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
