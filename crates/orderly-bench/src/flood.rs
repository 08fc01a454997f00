//! `flood`: what a flood of idle and slow connections does to the answers everyone else gets.
//!
//! Starts a fresh `orderly serve` (optionally with few open files), measures the time from
//! connecting to the first byte of the answer of `GET /healthz` on fresh connections — the
//! baseline —, then opens `--connections` idle connections and `--slow` connections that send
//! their headers a byte at a time, holds them, and measures the same again, plus the placement
//! of one order. Reports both, their ratio, and how many of the flood's connections the server
//! still held at the end.

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::server::Server;

#[derive(clap::Args)]
pub struct FloodArgs {
    /// The `orderly` binary to start (a release build).
    #[arg(long, default_value = "target/release/orderly")]
    server: String,
    /// `sqlite` (a fresh file) or `postgres` (a fresh schema on the machine's PostgreSQL).
    #[arg(long, default_value = "sqlite")]
    database: String,
    /// Idle connections to open and hold.
    #[arg(long, default_value_t = 2_000)]
    connections: usize,
    /// Connections that dribble their headers, one byte every 500 ms.
    #[arg(long, default_value_t = 50)]
    slow: usize,
    /// The server's open-files limit (soft and hard); none: the machine's.
    #[arg(long)]
    open_files: Option<u32>,
    /// `/healthz` probes in each phase.
    #[arg(long, default_value_t = 50)]
    probes: usize,
    /// Writes the report as JSON here.
    #[arg(long)]
    out: Option<String>,
}

#[derive(Debug, Serialize)]
struct Phase {
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    failed: usize,
}

#[derive(Debug, Serialize)]
struct Report {
    connections: usize,
    slow: usize,
    open_files: Option<u32>,
    opened: usize,
    open_for: f64,
    alone: Phase,
    flooded: Phase,
    /// flooded p50 / alone p50.
    ratio_p50: f64,
    order_ms: f64,
    flood_still_open: usize,
    server: crate::server::Usage,
}

/// Connect, ask, first byte of the answer: milliseconds, or `None` if it failed within 5 s.
async fn first_answer(address: &str) -> Option<f64> {
    let started = Instant::now();
    let attempt = async {
        let mut s = TcpStream::connect(address).await.ok()?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut byte = [0u8; 1];
        let n = s.read(&mut byte).await.ok()?;
        (n == 1).then_some(())
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .ok()
        .flatten()
        .map(|()| started.elapsed().as_secs_f64() * 1000.0)
}

async fn phase(address: &str, probes: usize) -> Phase {
    let mut times = Vec::new();
    let mut failed = 0;
    for _ in 0..probes {
        match first_answer(address).await {
            Some(ms) => times.push(ms),
            None => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| {
        if times.is_empty() {
            return f64::NAN;
        }
        let i = ((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1;
        times[i]
    };
    Phase {
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        max_ms: times.last().copied().unwrap_or(f64::NAN),
        failed,
    }
}

pub async fn run(args: FloodArgs) -> Result<(), String> {
    let server = Server::start_limited(&args.server, &args.database, 0, args.open_files).await?;
    let address = server.base.trim_start_matches("http://").to_owned();
    server.mark_idle();
    let alone = phase(&address, args.probes).await;

    eprintln!(
        "opening {} idle and {} slow connections…",
        args.connections, args.slow
    );
    let started = Instant::now();
    let mut idle = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        match TcpStream::connect(&address).await {
            Ok(s) => idle.push(s),
            Err(e) => {
                return Err(format!(
                    "could not open flood connection {}: {e}; raise this process's open-files limit (ulimit -n)",
                    idle.len()
                ));
            }
        }
    }
    let open_for = started.elapsed().as_secs_f64();
    let mut slow = Vec::new();
    for _ in 0..args.slow {
        let Ok(mut s) = TcpStream::connect(&address).await else {
            continue;
        };
        slow.push(tokio::spawn(async move {
            for byte in b"GET /v1/products HTTP/1.1\r\nHost: bench\r\nX-Slow: "
                .iter()
                .cycle()
            {
                if s.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }));
    }
    let flooded = phase(&address, args.probes).await;
    let client = reqwest::Client::new();
    let order_started = Instant::now();
    let placed = client
        .post(format!("{}/v1/orders", server.base))
        .bearer_auth(&server.api_key)
        .json(&serde_json::json!({"customerId": "001", "items": [{"productId": "001", "quantity": 1}]}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if placed.status() != 201 {
        return Err(format!(
            "the order during the flood got {}",
            placed.status()
        ));
    }
    let order_ms = order_started.elapsed().as_secs_f64() * 1000.0;
    // Which flood connections the server still holds: a closed one reads end-of-file.
    let mut still_open = 0;
    for s in &mut idle {
        let mut byte = [0u8; 1];
        if let Err(tokio::time::error::Elapsed { .. }) =
            tokio::time::timeout(Duration::from_millis(1), s.read(&mut byte)).await
        {
            still_open += 1;
        }
    }
    for task in slow {
        task.abort();
    }
    let report = Report {
        connections: args.connections,
        slow: args.slow,
        open_files: args.open_files,
        opened: idle.len(),
        open_for,
        ratio_p50: flooded.p50_ms / alone.p50_ms,
        alone,
        flooded,
        order_ms,
        flood_still_open: still_open,
        server: server.usage(),
    };
    println!(
        "flood  {} idle + {} slow connections{}: /healthz first answer p50 {:.2} ms alone, {:.2} ms flooded ({:.2}×); p99 {:.2} → {:.2} ms, max {:.2} ms, {} failed; an order {:.1} ms; {} of the flood still open; server RSS peak {:.1} MB",
        report.connections,
        report.slow,
        report
            .open_files
            .map_or(String::new(), |n| format!(" against {n} open files")),
        report.alone.p50_ms,
        report.flooded.p50_ms,
        report.ratio_p50,
        report.alone.p99_ms,
        report.flooded.p99_ms,
        report.flooded.max_ms,
        report.flooded.failed,
        report.order_ms,
        report.flood_still_open,
        report.server.peak_rss_mb,
    );
    if let Some(path) = &args.out {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("cannot write {path}: {e}"))?;
    }
    drop(idle);
    Ok(())
}
