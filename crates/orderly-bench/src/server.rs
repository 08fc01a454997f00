//! A fresh `orderly serve` to measure: started on loopback, watched for memory and CPU.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use orderly_store_postgres::testing::TestSchema;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// What the server used.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    /// From process start to its first answered request.
    pub startup_ms: f64,
    /// Resident memory once ready, before the load.
    pub idle_rss_mb: f64,
    /// Highest resident memory seen during the run (sampled every 20 ms).
    pub peak_rss_mb: f64,
    /// CPU seconds the server used during the run.
    pub cpu_s: f64,
}

/// A database for one run: a temporary SQLite file, or a fresh PostgreSQL schema.
pub enum Fresh {
    Sqlite(tempfile::TempDir),
    Postgres {
        /// Dropped with the run: the schema goes with it.
        _schema: Option<TestSchema>,
        url: String,
    },
}

impl Fresh {
    /// `sqlite`, `postgres` (a fresh schema on the machine's server) or a PostgreSQL URL.
    pub async fn create(database: &str) -> Result<Fresh, String> {
        match database {
            "sqlite" => tempfile::tempdir()
                .map(Fresh::Sqlite)
                .map_err(|e| e.to_string()),
            "postgres" => {
                let schema = TestSchema::create().await?;
                let url = schema.url.clone();
                Ok(Fresh::Postgres {
                    _schema: Some(schema),
                    url,
                })
            }
            url => Ok(Fresh::Postgres {
                _schema: None,
                url: url.to_owned(),
            }),
        }
    }

    /// The URL to give `--database-url`.
    pub fn url(&self) -> String {
        match self {
            Fresh::Sqlite(dir) => format!("sqlite://{}", dir.path().join("orderly.db").display()),
            Fresh::Postgres { url, .. } => url.clone(),
        }
    }
}

/// Resident memory of a process, in MB.
pub fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// CPU seconds (user + system) a process has used.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // Linux reports clock ticks of 1/100 s.
    Some((utime + stime) / 100.0)
}

pub struct Server {
    child: Child,
    pub base: String,
    /// An API key with every scope keys may hold: the load generator is the shop's backend.
    pub api_key: String,
    pid: u32,
    startup_ms: f64,
    idle_rss_mb: Arc<AtomicU64>,
    peak_rss_kb: Arc<AtomicU64>,
    cpu_mark: std::sync::Mutex<(f64, Instant)>,
    _database: Fresh,
}

impl Server {
    /// The database the server runs on, for `orderly` commands beside it.
    #[must_use]
    pub fn database_url(&self) -> String {
        self._database.url()
    }

    /// Starts `binary` on a fresh database holding `existing_orders` finished orders (imported
    /// with `orderly seed --orders` first); start-up is timed from there.
    pub async fn start(
        binary: &str,
        database: &str,
        existing_orders: u64,
    ) -> Result<Server, String> {
        Self::start_limited(binary, database, existing_orders, None).await
    }

    /// As [`Server::start`], with the server's open files limited to `open_files` (soft and
    /// hard) when given, as on a host with a low default.
    pub async fn start_limited(
        binary: &str,
        database: &str,
        existing_orders: u64,
        open_files: Option<u32>,
    ) -> Result<Server, String> {
        let fresh = Fresh::create(database).await?;
        if existing_orders > 0 {
            eprintln!("importing {existing_orders} orders first…");
            let status = Command::new(binary)
                .args([
                    "seed",
                    "--orders",
                    &existing_orders.to_string(),
                    "--database-url",
                    &fresh.url(),
                ])
                .env("ORDERLY_LOG", "warn")
                .stdout(Stdio::null())
                .status()
                .await
                .map_err(|e| format!("cannot run {binary} seed: {e}"))?;
            if !status.success() {
                return Err(format!(
                    "{binary} seed --orders {existing_orders} failed: {status}"
                ));
            }
        }
        let key = Command::new(binary)
            .args([
                "api-key",
                "create",
                "--name",
                "bench",
                "--all-scopes",
                "--database-url",
                &fresh.url(),
            ])
            .env("ORDERLY_LOG", "warn")
            .output()
            .await
            .map_err(|e| format!("cannot run {binary} api-key create: {e}"))?;
        if !key.status.success() {
            return Err(format!(
                "{binary} api-key create failed: {}",
                String::from_utf8_lossy(&key.stderr)
            ));
        }
        let api_key = String::from_utf8_lossy(&key.stdout).trim().to_owned();
        let started = Instant::now();
        let mut command = match open_files {
            None => Command::new(binary),
            Some(n) => {
                let mut c = Command::new("sh");
                c.args([
                    "-c",
                    &format!("ulimit -n {n} && exec \"$0\" \"$@\""),
                    binary,
                ]);
                c
            }
        };
        let mut child = command
            .args([
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--database-url",
                &fresh.url(),
            ])
            .env("ORDERLY_LOG", "warn")
            // Guest checkouts all come from this one address: lift the per-address order
            // limit, which is there for real shoppers.
            .env("ORDERLY_ORDERS_PER_MINUTE", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                format!("cannot start {binary}: {e}; build it with cargo build --release")
            })?;
        let pid = child.id().ok_or("the server exited at once")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = lines
            .next_line()
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the server exited before printing its address")?;
        let base = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .ok_or_else(|| format!("no URL in {first:?}"))?
            .to_owned();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let client = reqwest::Client::new();
        loop {
            if client
                .get(format!("{base}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err("the server did not answer within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let startup_ms = started.elapsed().as_secs_f64() * 1000.0;
        let peak = Arc::new(AtomicU64::new(0));
        let sampler = Arc::clone(&peak);
        tokio::spawn(async move {
            while let Some(mb) = rss_mb(pid) {
                sampler.fetch_max((mb * 1024.0) as u64, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Ok(Server {
            child,
            base,
            api_key,
            pid,
            startup_ms,
            idle_rss_mb: Arc::new(AtomicU64::new(0)),
            peak_rss_kb: peak,
            cpu_mark: std::sync::Mutex::new((0.0, Instant::now())),
            _database: fresh,
        })
    }

    /// Waits until no saga work is queued.
    pub async fn wait_idle(&self, client: &reqwest::Client) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let ready: serde_json::Value = client
                .get(format!("{}/readyz", self.base))
                .send()
                .await
                .map_err(|e| e.to_string())?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            if ready["pendingJobs"] == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("saga work still queued after 10 minutes: {ready}"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Notes the idle memory and the CPU used so far: the run starts now.
    pub fn mark_idle(&self) {
        let rss = rss_mb(self.pid).unwrap_or(0.0);
        self.idle_rss_mb
            .store((rss * 1024.0) as u64, Ordering::Relaxed);
        self.peak_rss_kb
            .store((rss * 1024.0) as u64, Ordering::Relaxed);
        if let Ok(mut mark) = self.cpu_mark.lock() {
            *mark = (cpu_seconds(self.pid).unwrap_or(0.0), Instant::now());
        }
    }

    /// Seconds since [`Server::mark_idle`].
    pub fn since_idle_mark(&self) -> f64 {
        self.cpu_mark
            .lock()
            .map(|m| m.1.elapsed().as_secs_f64())
            .unwrap_or(0.0)
    }

    pub fn usage(&self) -> Usage {
        let cpu_start = self.cpu_mark.lock().map(|m| m.0).unwrap_or(0.0);
        Usage {
            startup_ms: self.startup_ms,
            idle_rss_mb: self.idle_rss_mb.load(Ordering::Relaxed) as f64 / 1024.0,
            peak_rss_mb: self.peak_rss_kb.load(Ordering::Relaxed) as f64 / 1024.0,
            cpu_s: cpu_seconds(self.pid).unwrap_or(0.0) - cpu_start,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
