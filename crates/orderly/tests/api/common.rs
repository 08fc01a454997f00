//! A running `orderly serve` in a temporary folder, and helpers to talk to it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Fast retries for tests: the policy is data, so milliseconds instead of seconds, and no
/// stage-1 waits (a test that wants them sets its own; a later flag wins).
pub const FAST_RETRY: &[&str] = &[
    "--retry-interval-ms",
    "10",
    "--retry-max-attempts",
    "5",
    "--retry-backoff-rate",
    "2",
    "--retry-payment-unavailable",
    "none",
    "--retry-payment-declined",
    "none",
    "--retry-mail-unavailable",
    "none",
];

pub struct TestServer {
    child: Option<Child>,
    pub base: String,
    pub dir: PathBuf,
    log_name: String,
    _owned: Option<TempDir>,
    pub client: reqwest::Client,
    /// The database URL, for `orderly` commands run beside the server.
    pub db: String,
}

impl TestServer {
    /// A server on a fresh database with demo data.
    pub async fn start(extra: &[&str]) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let mut server = Self::start_in(&path, extra).await;
        server._owned = Some(dir);
        server
    }

    /// A server on the database in `dir` (kept if it exists).
    pub async fn start_in(dir: &Path, extra: &[&str]) -> TestServer {
        let db = format!("sqlite://{}", dir.join("orderly.db").display());
        Self::start_node(dir, "server.log", &db, extra).await
    }

    /// A server on database `db`, logging to `dir/log_name`.
    pub async fn start_node(dir: &Path, log_name: &str, db: &str, extra: &[&str]) -> TestServer {
        Self::launch(dir, log_name, db, extra, None).await
    }

    /// A server on a fresh database with demo data, started with at most `files` open files
    /// (soft and hard limit), as on a host with the common default of 1,024.
    pub async fn start_with_file_limit(files: u32, extra: &[&str]) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}", dir.path().join("orderly.db").display());
        let mut server = Self::launch(dir.path(), "server.log", &db, extra, Some(files)).await;
        server._owned = Some(dir);
        server
    }

    async fn launch(
        dir: &Path,
        log_name: &str,
        db: &str,
        extra: &[&str],
        files: Option<u32>,
    ) -> TestServer {
        let key = api_key(db).await;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(log_name))
            .unwrap();
        let mut command = match files {
            None => Command::new(env!("CARGO_BIN_EXE_orderly")),
            Some(n) => {
                // The shell lowers both limits, then becomes the server.
                let mut c = Command::new("sh");
                c.args([
                    "-c",
                    &format!("ulimit -n {n} && exec \"$0\" \"$@\""),
                    env!("CARGO_BIN_EXE_orderly"),
                ]);
                c
            }
        };
        let mut child = command
            .arg("serve")
            .args(["--bind", "127.0.0.1:0", "--database-url", db])
            .args(FAST_RETRY)
            .args(extra)
            .env_remove("ORDERLY_CONFIG")
            .env("ORDERLY_LOG", "info,sqlx=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("server printed nothing within 20 s")
            .unwrap()
            .unwrap_or_else(|| panic!("server exited; log: {}", read_log(&dir.join(log_name))));
        let base = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {first:?}"))
            .to_owned();
        // Keep draining the banner so the pipe never fills.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        TestServer {
            child: Some(child),
            base,
            dir: dir.to_path_buf(),
            log_name: log_name.to_owned(),
            _owned: None,
            client: client_with(&key),
            db: db.to_owned(),
        }
    }

    /// A client that sends no credentials.
    pub fn anonymous(&self) -> reqwest::Client {
        reqwest::Client::new()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.client.get(self.url(path)).send().await.unwrap();
        status_and_json(r).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        status_and_json(r).await
    }

    /// GET with another caller's client.
    pub async fn get_with(&self, client: &reqwest::Client, path: &str) -> (u16, Value) {
        status_and_json(client.get(self.url(path)).send().await.unwrap()).await
    }

    /// POST JSON with another caller's client.
    pub async fn post_with(
        &self,
        client: &reqwest::Client,
        path: &str,
        body: &Value,
    ) -> (u16, Value) {
        status_and_json(client.post(self.url(path)).json(body).send().await.unwrap()).await
    }

    /// PATCH JSON with another caller's client.
    pub async fn patch_with(
        &self,
        client: &reqwest::Client,
        path: &str,
        body: &Value,
    ) -> (u16, Value) {
        status_and_json(
            client
                .patch(self.url(path))
                .json(body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn place(&self, body: &Value) -> Value {
        let (status, order) = self.post("/v1/orders", body).await;
        assert_eq!(status, 201, "{order}");
        order
    }

    /// Places the reference order of customer 001: one headphones, one smartwatch.
    pub async fn place_reference(&self) -> Value {
        self.place(&reference_body()).await
    }

    /// Polls until the order's status is `status`, or panics after 15 s.
    pub async fn wait_for(&self, id: &str, status: &str) -> Value {
        self.wait_until(id, |o| o["status"] == status, &format!("status {status}"))
            .await
    }

    pub async fn wait_until(&self, id: &str, ok: impl Fn(&Value) -> bool, what: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (code, order) = self.get(&format!("/v1/orders/{id}")).await;
            assert_eq!(code, 200, "{order}");
            if ok(&order) {
                return order;
            }
            assert!(
                Instant::now() < deadline,
                "order {id} never reached {what}: {order}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls until no saga work is queued, or panics after 15 s.
    pub async fn wait_idle(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (code, ready) = self.get("/readyz").await;
            if code == 200 && ready["pendingJobs"] == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "saga work still queued: {ready}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn stock(&self, product: &str) -> (i64, i64) {
        let (code, s) = self.get(&format!("/v1/inventory/{product}")).await;
        assert_eq!(code, 200, "{s}");
        (
            s["available"].as_i64().unwrap(),
            s["reserved"].as_i64().unwrap(),
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().and_then(Child::id).unwrap()
    }

    /// SIGKILL: no chance to flush or clean up.
    pub async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
        }
    }

    /// SIGTERM, then the exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.pid();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let mut child = self.child.take().unwrap();
        tokio::time::timeout(Duration::from_secs(20), child.wait())
            .await
            .expect("did not exit after SIGTERM")
            .unwrap()
    }

    pub fn log(&self) -> String {
        read_log(&self.dir.join(&self.log_name))
    }
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// An API key with every scope a key may hold, made with `orderly api-key create` on `db`.
pub async fn api_key(db: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_orderly"))
        .args([
            "api-key",
            "create",
            "--database-url",
            db,
            "--name",
            "tests",
            "--all-scopes",
        ])
        .env_remove("ORDERLY_CONFIG")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "orderly api-key create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A client that sends `credential` as its bearer token.
pub fn client_with(credential: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {credential}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

pub async fn status_and_json(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

/// A server on a fresh PostgreSQL schema; keep the schema and folder alive as long as it runs.
pub async fn on_postgres(
    extra: &[&str],
) -> (
    TestServer,
    orderly_store_postgres::testing::TestSchema,
    tempfile::TempDir,
) {
    let schema = orderly_store_postgres::testing::TestSchema::create()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_node(dir.path(), "server.log", &schema.url, extra).await;
    (server, schema, dir)
}

pub fn reference_body() -> Value {
    json!({"customerId": "001", "items": [{"productId": "001", "quantity": 1}, {"productId": "002", "quantity": 1}]})
}

pub fn history_events(order: &Value) -> Vec<String> {
    order["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event"].as_str().unwrap().to_owned())
        .collect()
}

pub fn id_of(order: &Value) -> String {
    order["id"].as_str().unwrap().to_owned()
}
