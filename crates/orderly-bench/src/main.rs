//! `orderly-bench`: measures Orderly the way a shop would load it, and the storage under it.
//!
//! # Layout
//! - `scenario`: starts `orderly serve` on a fresh database (loopback, port 0), prepares stock,
//!   runs one scenario with N concurrent clients, bounded by a request count and a duration, and
//!   reports throughput, latency percentiles, errors, the server's idle and peak memory, and the
//!   CPU used by the server and by this load generator.
//! - `flood`: the time to first answer of `/healthz` on a fresh connection, alone and then with
//!   thousands of idle connections (and slow senders) held open against the server.
//! - `raw`: the storage baseline — the rows a placed order writes, in the same transactions,
//!   straight to SQLite or PostgreSQL with no Orderly code in between.
//!
//! Every figure is printed and, with `--out`, written as JSON.
#![forbid(unsafe_code)]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod flood;
mod panel;
mod raw;
mod server;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;
use serde_json::{Value, json};

use crate::server::Server;

#[derive(Parser)]
#[command(
    name = "orderly-bench",
    about = "Load generator and storage baseline for Orderly"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one HTTP scenario against a fresh `orderly serve`.
    Scenario(ScenarioArgs),
    /// Writes a placed order's rows straight to the database: what the storage itself can do.
    Raw(RawArgs),
    /// Time to first answer of `/healthz` alone, then under a flood of idle connections.
    Flood(flood::FloodArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Scenario {
    /// POST /v1/orders, the reference order, a unique Idempotency-Key each.
    PlaceOrder,
    /// GET /v1/orders/{id} of orders placed beforehand.
    GetOrder,
    /// GET /v1/orders?limit=20, newest first.
    ListOrders,
    /// POST /graphql with the reference query, `getOrder(id) { id status }`, of orders placed
    /// beforehand.
    GraphqlGetOrder,
    /// Place orders, then the time until every one is paid: the saga's throughput.
    Lifecycle,
    /// The whole shopper flow: open a cart, add two lines, check out; the time until every
    /// order is paid.
    Checkout,
    /// The staff panel's start page (`/admin`: counts, the queue, stage 1 at work), signed in
    /// as support.
    PanelStart,
    /// The panel's order list, newest first (`/admin/orders`), and one status of it.
    PanelOrders,
    /// One order's page (`/admin/orders/{id}`) with its timeline, of orders placed beforehand.
    PanelOrder,
    /// The panel's search box: a customer by name, and an order by the start of its id.
    PanelSearch,
}

/// How much load, on what: shared by every command.
#[derive(clap::Args)]
struct Load {
    /// `sqlite` (a fresh file), `postgres` (a fresh schema on the machine's PostgreSQL) or a
    /// PostgreSQL URL of an empty database.
    #[arg(long, default_value = "sqlite")]
    database: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Requests in all (the bound on count).
    #[arg(long, default_value_t = 20_000)]
    requests: u64,
    /// Seconds at most (the bound on time).
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Writes the report as JSON here.
    #[arg(long)]
    out: Option<String>,
}

#[derive(clap::Args)]
struct ScenarioArgs {
    #[arg(value_enum)]
    scenario: Scenario,
    /// The `orderly` binary to start (a release build).
    #[arg(long, default_value = "target/release/orderly")]
    server: String,
    /// Orders placed before `get-order`, `graphql-get-order` and `list-orders` run.
    #[arg(long, default_value_t = 1_000)]
    prefill: u64,
    /// Finished orders in the database before the server starts (imported with `orderly seed
    /// --orders`, about 20 000/s on SQLite): how cost grows with data.
    #[arg(long, default_value_t = 0)]
    existing_orders: u64,
    /// Spread `place-order` over this many products, created first, one line each; 0 (the
    /// default) places the reference order, every order on the same two products — the hot case.
    #[arg(long, default_value_t = 0)]
    products: u64,
    #[command(flatten)]
    load: Load,
}

#[derive(clap::Args)]
struct RawArgs {
    #[command(flatten)]
    load: Load,
}

/// Latencies and counts of a run.
#[derive(Debug, Serialize)]
struct Report {
    scenario: String,
    database: String,
    clients: usize,
    requests: u64,
    errors: u64,
    seconds: f64,
    throughput_per_s: f64,
    latency_ms: Latency,
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<server::Usage>,
    load_generator_cpu_s: f64,
}

#[derive(Debug, Serialize)]
struct Latency {
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
}

fn latency(mut micros: Vec<u64>) -> Latency {
    micros.sort_unstable();
    let at = |q: f64| {
        if micros.is_empty() {
            return 0.0;
        }
        let i = ((micros.len() as f64 * q).ceil() as usize).clamp(1, micros.len()) - 1;
        micros[i] as f64 / 1000.0
    };
    Latency {
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
        max: micros.last().map_or(0.0, |m| *m as f64 / 1000.0),
    }
}

/// CPU seconds this process has used.
fn own_cpu_seconds() -> f64 {
    server::cpu_seconds(std::process::id()).unwrap_or(0.0)
}

/// Runs `clients` loops of `call` until `requests` are done or `seconds` have passed.
async fn drive<F, Fut>(clients: usize, requests: u64, seconds: u64, call: F) -> (Vec<u64>, u64, f64)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let issued = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients.max(1) {
        let (call, issued, errors) = (Arc::clone(&call), Arc::clone(&issued), Arc::clone(&errors));
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if n >= requests || Instant::now() >= deadline {
                    break;
                }
                let t = Instant::now();
                let ok = call(n).await;
                latencies.push(t.elapsed().as_micros() as u64);
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies
        });
    }
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done.unwrap_or_default());
    }
    (
        all,
        errors.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
    )
}

fn reference_order() -> Value {
    json!({"customerId": "001", "items": [{"productId": "001", "quantity": 1}, {"productId": "002", "quantity": 1}]})
}

/// True for a 200 whose body arrived whole. The body is always read, as a real client would: a
/// dropped body can cost the connection, and the benchmark would measure reconnects.
async fn read_ok(response: reqwest::Result<reqwest::Response>) -> bool {
    match response {
        Ok(r) if r.status() == 200 => r.bytes().await.is_ok(),
        _ => false,
    }
}

/// One shopper: opens a cart, adds the two reference products, checks out. `None` if any step
/// failed.
async fn shop(client: &reqwest::Client, base: &str) -> Option<String> {
    let opened = client
        .post(format!("{base}/v1/carts"))
        .json(&json!({"customerId": "001"}))
        .send()
        .await
        .ok()?;
    if opened.status() != 201 {
        return None;
    }
    let cart: Value = opened.json().await.ok()?;
    let (id, token) = (cart["id"].as_str()?, cart["token"].as_str()?);
    for product in ["001", "002"] {
        let r = client
            .post(format!("{base}/v1/carts/{id}/lines"))
            .header("Cart-Token", token)
            .json(&json!({"productId": product, "quantity": 1}))
            .send()
            .await
            .ok()?;
        if r.status() != 200 {
            return None;
        }
    }
    let r = client
        .post(format!("{base}/v1/carts/{id}/checkout"))
        .header("Cart-Token", token)
        .send()
        .await
        .ok()?;
    if r.status() != 201 {
        return None;
    }
    let order: Value = r.json().await.ok()?;
    order["id"].as_str().map(str::to_owned)
}

async fn place(client: &reqwest::Client, base: &str, key: &str) -> Option<String> {
    let r = client
        .post(format!("{base}/v1/orders"))
        .header("Idempotency-Key", key)
        .json(&reference_order())
        .send()
        .await
        .ok()?;
    if r.status() != 201 {
        return None;
    }
    let body: Value = r.json().await.ok()?;
    body["id"].as_str().map(str::to_owned)
}

async fn scenario(args: ScenarioArgs) -> Result<Report, String> {
    let server = Server::start(&args.server, &args.load.database, args.existing_orders).await?;
    let base = server.base.clone();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", server.api_key)
            .parse()
            .map_err(|_| "the API key is not a valid header value".to_owned())?,
    );
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(args.load.clients)
        .build()
        .map_err(|e| e.to_string())?;
    // Stock for every order the run can place, so none is rejected for want of it.
    for product in ["001", "002"] {
        let r = client
            .post(format!("{base}/v1/inventory/{product}/adjustments"))
            .json(&json!({"delta": 900_000_000, "reason": "benchmark stock"}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status() != 201 {
            return Err(format!("could not add stock: {}", r.status()));
        }
    }
    if args.products > 0 {
        let (client, base) = (client.clone(), base.clone());
        let (_, errors, _) = drive(args.load.clients, args.products, 600, move |n| {
            let (client, base) = (client.clone(), base.clone());
            async move {
                let product = json!({"id": format!("B-{n:06}"), "name": format!("Bench product {n}"),
                    "prices": [{"amount": "10.00", "currency": "USD"}], "stock": 1_000_000});
                client
                    .post(format!("{base}/v1/products"))
                    .json(&product)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 201)
            }
        })
        .await;
        if errors > 0 {
            return Err(format!("{errors} products could not be created"));
        }
    }
    let mut ids = Vec::new();
    if matches!(
        args.scenario,
        Scenario::GetOrder
            | Scenario::ListOrders
            | Scenario::GraphqlGetOrder
            | Scenario::PanelOrder
            | Scenario::PanelSearch
    ) {
        for i in 0..args.prefill {
            ids.push(
                place(&client, &base, &format!("prefill-{i}"))
                    .await
                    .ok_or("prefill failed")?,
            );
        }
        server.wait_idle(&client).await?;
    }
    let panel = if args.scenario.is_panel() {
        Some(panel::signed_in(&args.server, &server, args.load.clients).await?)
    } else {
        None
    };
    server.mark_idle();
    let cpu_before = own_cpu_seconds();
    let ids = Arc::new(ids);
    let (latencies, errors, seconds) = match args.scenario {
        Scenario::PlaceOrder | Scenario::Lifecycle if args.products > 0 => {
            let (client, base, products) = (client.clone(), base.clone(), args.products);
            drive(args.load.clients, args.load.requests, args.load.seconds, move |n| {
                let (client, base) = (client.clone(), base.clone());
                async move {
                    let product = format!("B-{:06}", (n * 7919) % products);
                    let body = json!({"customerId": "001", "items": [{"productId": product, "quantity": 1}]});
                    client
                        .post(format!("{base}/v1/orders"))
                        .header("Idempotency-Key", format!("bench-{n}"))
                        .json(&body)
                        .send()
                        .await
                        .is_ok_and(|r| r.status() == 201)
                }
            })
            .await
        }
        Scenario::PlaceOrder | Scenario::Lifecycle => {
            let (client, base) = (client.clone(), base.clone());
            drive(
                args.load.clients,
                args.load.requests,
                args.load.seconds,
                move |n| {
                    let (client, base) = (client.clone(), base.clone());
                    async move { place(&client, &base, &format!("bench-{n}")).await.is_some() }
                },
            )
            .await
        }
        Scenario::GetOrder => {
            let (client, base, ids) = (client.clone(), base.clone(), Arc::clone(&ids));
            drive(
                args.load.clients,
                args.load.requests,
                args.load.seconds,
                move |n| {
                    let (client, base, ids) = (client.clone(), base.clone(), Arc::clone(&ids));
                    async move {
                        let id = &ids[(n as usize * 7919) % ids.len()];
                        read_ok(client.get(format!("{base}/v1/orders/{id}")).send().await).await
                    }
                },
            )
            .await
        }
        Scenario::GraphqlGetOrder => {
            let (client, base, ids) = (client.clone(), base.clone(), Arc::clone(&ids));
            drive(
                args.load.clients,
                args.load.requests,
                args.load.seconds,
                move |n| {
                    let (client, base, ids) = (client.clone(), base.clone(), Arc::clone(&ids));
                    async move {
                        let id = &ids[(n as usize * 7919) % ids.len()];
                        let body = json!({
                            "query": "query($id: ID!) { getOrder(id: $id) { id status } }",
                            "variables": {"id": id},
                        });
                        match client
                            .post(format!("{base}/graphql"))
                            .json(&body)
                            .send()
                            .await
                        {
                            Ok(r) if r.status() == 200 => r
                                .json::<Value>()
                                .await
                                .is_ok_and(|v| v["data"]["getOrder"]["id"] == id.as_str()),
                            _ => false,
                        }
                    }
                },
            )
            .await
        }
        Scenario::Checkout => {
            let (client, base) = (client.clone(), base.clone());
            drive(
                args.load.clients,
                args.load.requests,
                args.load.seconds,
                move |_| {
                    let (client, base) = (client.clone(), base.clone());
                    async move { shop(&client, &base).await.is_some() }
                },
            )
            .await
        }
        Scenario::PanelStart
        | Scenario::PanelOrders
        | Scenario::PanelOrder
        | Scenario::PanelSearch => {
            let (client, base, ids) = (
                panel.clone().ok_or("no panel session")?,
                base.clone(),
                Arc::clone(&ids),
            );
            let scenario = args.scenario;
            drive(
                args.load.clients,
                args.load.requests,
                args.load.seconds,
                move |n| {
                    let (client, base, ids) = (client.clone(), base.clone(), Arc::clone(&ids));
                    async move {
                        let path = panel::path(scenario, n, &ids);
                        read_ok(client.get(format!("{base}{path}")).send().await).await
                    }
                },
            )
            .await
        }
        Scenario::ListOrders => {
            let (client, base) = (client.clone(), base.clone());
            drive(
                args.load.clients,
                args.load.requests,
                args.load.seconds,
                move |_| {
                    let (client, base) = (client.clone(), base.clone());
                    async move {
                        read_ok(
                            client
                                .get(format!("{base}/v1/orders?limit=20"))
                                .send()
                                .await,
                        )
                        .await
                    }
                },
            )
            .await
        }
    };
    let (requests, seconds) = if matches!(args.scenario, Scenario::Lifecycle | Scenario::Checkout) {
        // The saga's throughput: from the first placement until every order is settled.
        server.wait_idle(&client).await?;
        (
            latencies.len() as u64,
            seconds.max(server.since_idle_mark()),
        )
    } else {
        (latencies.len() as u64, seconds)
    };
    let load_cpu = own_cpu_seconds() - cpu_before;
    let usage = server.usage();
    let database = if args.load.database == "sqlite" {
        "sqlite".to_owned()
    } else {
        "postgres".to_owned()
    };
    let name = serde_json::to_value(args.scenario)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    Ok(Report {
        scenario: match (args.products, args.existing_orders) {
            (0, 0) => name,
            (p, 0) => format!("{name}/{p}-products"),
            (0, o) => format!("{name}/{o}-orders"),
            (p, o) => format!("{name}/{p}-products/{o}-orders"),
        },
        database,
        clients: args.load.clients,
        requests,
        errors,
        seconds,
        throughput_per_s: if seconds > 0.0 {
            requests as f64 / seconds
        } else {
            0.0
        },
        latency_ms: latency(latencies),
        server: Some(usage),
        load_generator_cpu_s: load_cpu,
    })
}

fn print(report: &Report, out: Option<&str>) -> Result<(), String> {
    println!(
        "{:<12} {:<8} clients {:>3}  {:>8} req  {:>6} err  {:>9.0}/s  p50 {:>7.2} ms  p95 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
        report.scenario,
        report.database,
        report.clients,
        report.requests,
        report.errors,
        report.throughput_per_s,
        report.latency_ms.p50,
        report.latency_ms.p95,
        report.latency_ms.p99,
        report.latency_ms.max
    );
    if let Some(s) = &report.server {
        println!(
            "             server: start {:.0} ms, RSS idle {:.1} MB, peak {:.1} MB, CPU {:.2} s; load generator CPU {:.2} s",
            s.startup_ms, s.idle_rss_mb, s.peak_rss_mb, s.cpu_s, report.load_generator_cpu_s
        );
    }
    if let Some(path) = out {
        let text = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("cannot write {path}: {e}"))?;
    }
    Ok(())
}

impl Scenario {
    fn is_panel(self) -> bool {
        matches!(
            self,
            Scenario::PanelStart
                | Scenario::PanelOrders
                | Scenario::PanelOrder
                | Scenario::PanelSearch
        )
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    let Ok(runtime) = runtime else {
        eprintln!("error: cannot start the async runtime");
        return ExitCode::FAILURE;
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Scenario(args) => {
                let out = args.load.out.clone();
                let report = scenario(args).await?;
                print(&report, out.as_deref())
            }
            Command::Flood(args) => flood::run(args).await,
            Command::Raw(args) => {
                let out = args.load.out.clone();
                let report = raw::run(
                    &args.load.database,
                    args.load.clients,
                    args.load.requests,
                    args.load.seconds,
                )
                .await?;
                print(&report, out.as_deref())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
