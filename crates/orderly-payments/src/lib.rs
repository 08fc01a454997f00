//! Payment provider adapters.
//!
//! # Layout
//! - [`SimulatedPayments`]: a provider that answers like a real one — captures, declines,
//!   transient outages, latency, voids and refunds — deterministically from a seed, for demos
//!   and tests. Its ledger of charges can be kept in a file, so that "charged once" holds (and
//!   can be checked) across restarts, as it would at a real provider. Like a real provider's
//!   test cards, two payment methods behave on purpose ([`TestMethod`]): `sim_declined` is
//!   declined, `sim_unavailable_N` meets an outage for its first N calls.
//! - [`stripe`]: [`Stripe`], the adapter for Stripe's API; [`verify_webhook`] for its webhooks.
#![forbid(unsafe_code)]

pub mod stripe;

pub use stripe::{Stripe, StripeSettings, WebhookError, WebhookEvent, verify_webhook};

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use async_trait::async_trait;
use orderly_core::ports::{PaymentError, PaymentGateway, PaymentRequest};

/// How the simulated provider behaves.
#[derive(Clone, Debug, PartialEq)]
pub struct SimulatedSettings {
    /// Share of payments declined for good, 0.0..=1.0.
    pub decline_rate: f64,
    /// Share of calls that fail transiently (retry helps), 0.0..=1.0.
    pub transient_rate: f64,
    /// How long each call takes.
    pub latency: Duration,
    /// Same seed, same outcomes.
    pub seed: u64,
}

impl Default for SimulatedSettings {
    fn default() -> Self {
        SimulatedSettings {
            decline_rate: 0.0,
            transient_rate: 0.0,
            latency: Duration::ZERO,
            seed: 42,
        }
    }
}

impl SimulatedSettings {
    /// Checks the rates are shares.
    ///
    /// # Errors
    /// A message naming the bad value.
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [
            ("decline rate", self.decline_rate),
            ("transient-failure rate", self.transient_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!(
                    "simulated payment {name} must be between 0 and 1, got {rate}"
                ));
            }
        }
        Ok(())
    }
}

/// What a payment method of the simulated provider does on purpose, as a real provider's test
/// cards do: for demos and tests of the failure paths. Any other method (or none) pays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestMethod {
    /// `sim_declined`: the issuer declines it, for good.
    Declined,
    /// `sim_unavailable_N` (N from 1 to 1000): the provider is unavailable for the first N
    /// calls about the order, whatever the operation, then answers — an outage that outlasts
    /// the automatic retries when N is as many calls as they make.
    Unavailable(u64),
}

impl TestMethod {
    /// The test behaviour `method` names, if it names one.
    #[must_use]
    pub fn parse(method: Option<&str>) -> Option<Self> {
        match method? {
            "sim_declined" => Some(TestMethod::Declined),
            other => other
                .strip_prefix("sim_unavailable_")
                .and_then(|n| n.parse().ok())
                .filter(|n| (1..=1000).contains(n))
                .map(TestMethod::Unavailable),
        }
    }
}

/// A payment provider simulated in process.
///
/// Whether a payment is declined depends only on the seed and the idempotency key, so a retried
/// or re-run step gets the same answer, and a capture's id is derived from its key the way a
/// real provider returns the original charge for a repeated idempotency key: a step re-run after
/// a crash never makes a second charge. Transient failures depend on the seed, the key and the
/// attempt, so retries eventually get through.
pub struct SimulatedPayments {
    settings: SimulatedSettings,
    state: Arc<Mutex<State>>,
    /// With a ledger file: the thread that appends to it, many calls per fsync.
    ledger: Option<mpsc::Sender<LedgerCall>>,
}

/// A call waiting for the ledger: its decision is made, and written, by the ledger thread.
struct LedgerCall {
    op: &'static str,
    key: String,
    method: Option<TestMethod>,
    reply: tokio::sync::oneshot::Sender<Result<String, PaymentError>>,
}

/// What the provider answers a call with, given what it has done before.
enum Decision {
    /// Done before under this key: the same answer again.
    Done(String),
    /// A new operation with this reference, to be recorded.
    New(String),
    /// Declined by the issuer.
    Declined,
    /// A void with nothing charged to void.
    NothingToVoid,
}

#[derive(Default)]
struct State {
    /// Calls seen per idempotency key, for transient failures.
    calls: HashMap<String, u64>,
    /// Calls seen per order, for the outage of [`TestMethod::Unavailable`].
    outage_calls: HashMap<String, u64>,
    /// Operations done, by idempotency key: a repeated key returns the first answer.
    done: HashMap<String, String>,
    /// Where each new operation is appended, one line each: `op key ref`. Several processes
    /// may share it (the nodes of a cluster on one machine): each call locks it and first reads
    /// what the others appended since.
    ledger: Option<PathBuf>,
    /// How far this process has read the ledger.
    read_to: u64,
}

impl State {
    /// Opens and exclusively locks the ledger (the lock goes with the file), catching up on
    /// what other processes appended.
    fn open_ledger(&mut self) -> std::io::Result<Option<std::fs::File>> {
        let Some(path) = &self.ledger else {
            return Ok(None);
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        file.lock()?;
        file.seek(SeekFrom::Start(self.read_to))?;
        let mut fresh = String::new();
        file.read_to_string(&mut fresh)?;
        self.read_to += fresh.len() as u64;
        for line in fresh.lines() {
            if let [op, key, reference] = line.split(' ').collect::<Vec<_>>()[..] {
                self.done
                    .insert(format!("{op} {key}"), reference.to_owned());
            }
        }
        Ok(Some(file))
    }
}

/// splitmix64: a small, well-mixed hash; plenty for spreading outcomes evenly.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn hash(seed: u64, key: &str, salt: u64) -> u64 {
    key.bytes()
        .fold(mix(seed ^ mix(salt)), |h, b| mix(h ^ u64::from(b)))
}

/// A hash as a share in [0, 1).
fn share(h: u64) -> f64 {
    // The top 53 bits fit a float's mantissa exactly.
    (h >> 11) as f64 / (1u64 << 53) as f64
}

impl SimulatedPayments {
    /// A provider with these settings, its ledger in memory.
    #[must_use]
    pub fn new(settings: SimulatedSettings) -> Self {
        SimulatedPayments {
            settings,
            state: Arc::new(Mutex::new(State::default())),
            ledger: None,
        }
    }

    /// A provider that keeps its ledger in `path` (created if missing, read back if present).
    ///
    /// # Errors
    /// A message if the file cannot be read.
    pub fn with_ledger(settings: SimulatedSettings, path: &Path) -> Result<Self, String> {
        let mut state = State {
            ledger: Some(path.to_path_buf()),
            ..State::default()
        };
        let file = state
            .open_ledger()
            .map_err(|e| format!("cannot open payment ledger {}: {e}", path.display()))?;
        drop(file);
        let state = Arc::new(Mutex::new(state));
        let (ledger, calls) = mpsc::channel();
        let (writer_state, writer_settings) = (Arc::clone(&state), settings.clone());
        std::thread::Builder::new()
            .name("orderly-payment-ledger".into())
            .spawn(move || write_ledger(&writer_state, &writer_settings, &calls))
            .map_err(|e| format!("cannot start the payment ledger: {e}"))?;
        Ok(SimulatedPayments {
            settings,
            state,
            ledger: Some(ledger),
        })
    }

    /// Every operation in a ledger file: `(op, idempotency key, reference)`, oldest first.
    ///
    /// # Errors
    /// The file cannot be read.
    pub fn read_ledger(path: &Path) -> std::io::Result<Vec<(String, String, String)>> {
        let text = std::fs::read_to_string(path)?;
        Ok(text
            .lines()
            .filter_map(|l| match l.split(' ').collect::<Vec<_>>()[..] {
                [op, key, reference] => Some((op.to_owned(), key.to_owned(), reference.to_owned())),
                _ => None,
            })
            .collect())
    }

    async fn call(
        &self,
        request: &PaymentRequest,
        op: &'static str,
    ) -> Result<String, PaymentError> {
        let key = &request.idempotency_key.to_string();
        let method = TestMethod::parse(request.payment_method.as_deref());
        if !self.settings.latency.is_zero() {
            tokio::time::sleep(self.settings.latency).await;
        }
        let poisoned = || PaymentError::Transient("simulator state poisoned".into());
        {
            let mut state = self.state.lock().map_err(|_| poisoned())?;
            let attempt = {
                let n = state.calls.entry(key.to_owned()).or_default();
                *n += 1;
                *n
            };
            if let Some(TestMethod::Unavailable(n)) = method {
                let attempt = {
                    let seen = state
                        .outage_calls
                        .entry(request.order_id.to_string())
                        .or_default();
                    *seen += 1;
                    *seen
                };
                if attempt <= n {
                    tracing::info!(
                        key,
                        attempt,
                        "simulated provider: unavailable for this payment method"
                    );
                    return Err(PaymentError::Transient(format!(
                        "simulated {op} outage for payment method sim_unavailable_{n} (attempt {attempt})"
                    )));
                }
            }
            if share(hash(self.settings.seed, key, attempt)) < self.settings.transient_rate {
                tracing::info!(key, attempt, "simulated provider: transient failure");
                return Err(PaymentError::Transient(format!(
                    "simulated {op} outage (attempt {attempt})"
                )));
            }
            if self.ledger.is_none() {
                return answer(
                    decide(&mut state, &self.settings, op, key, method),
                    op,
                    key,
                    &mut state,
                );
            }
        }
        // The ledger thread decides and records, so that what it answers is on disk first.
        let (reply, answered) = tokio::sync::oneshot::channel();
        let stopped = || PaymentError::Transient("the simulated ledger stopped".into());
        self.ledger
            .as_ref()
            .ok_or_else(stopped)?
            .send(LedgerCall {
                op,
                key: key.to_owned(),
                method,
                reply,
            })
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

/// What a call gets, given what was done before (`state.done`, up to date).
fn decide(
    state: &mut State,
    settings: &SimulatedSettings,
    op: &str,
    key: &str,
    method: Option<TestMethod>,
) -> Decision {
    if let Some(reference) = state.done.get(&format!("{op} {key}")) {
        return Decision::Done(reference.clone());
    }
    // The issuer says yes or no when the money is reserved, as with real cards.
    if op == "authorize"
        && (method == Some(TestMethod::Declined)
            || share(hash(settings.seed, key, 0)) < settings.decline_rate)
    {
        return Decision::Declined;
    }
    if op == "void" && !state.done.contains_key(&format!("capture {key}")) {
        // Nothing was charged under this key: nothing to void.
        return Decision::NothingToVoid;
    }
    Decision::New(format!(
        "sim_{op}_{:016x}",
        hash(settings.seed, key, u64::MAX)
    ))
}

/// The answer to a call decided in memory (no ledger file).
fn answer(
    decision: Decision,
    op: &str,
    key: &str,
    state: &mut State,
) -> Result<String, PaymentError> {
    match decision {
        Decision::Done(reference) => Ok(reference),
        Decision::Declined => Err(PaymentError::Declined("card_declined (simulated)".into())),
        Decision::NothingToVoid => Ok(String::new()),
        Decision::New(reference) => {
            state.done.insert(format!("{op} {key}"), reference.clone());
            Ok(reference)
        }
    }
}

/// The ledger thread: takes every call waiting, locks the file (catching up on what other
/// processes appended), decides each call, appends the new operations, makes them durable with
/// one `fsync`, and only then answers: as at a real provider, an operation exists once it is
/// answered. Ends when the provider is dropped.
fn write_ledger(
    state: &Mutex<State>,
    settings: &SimulatedSettings,
    calls: &mpsc::Receiver<LedgerCall>,
) {
    while let Ok(first) = calls.recv() {
        let mut batch = vec![first];
        batch.extend(calls.try_iter().take(1023));
        let Ok(mut state) = state.lock() else {
            for call in batch {
                let _ = call.reply.send(Err(PaymentError::Transient(
                    "simulator state poisoned".into(),
                )));
            }
            continue;
        };
        let outcome = record(&mut state, settings, &batch);
        let failed = outcome.is_err();
        let answers = match outcome {
            Ok(answers) => answers,
            Err(e) => {
                let error = PaymentError::Transient(format!("simulated ledger: {e}"));
                vec![Err(error); batch.len()]
            }
        };
        drop(state);
        if failed {
            tracing::warn!("simulated payment ledger could not be written");
        }
        for (call, answer) in batch.into_iter().zip(answers) {
            let _ = call.reply.send(answer);
        }
    }
}

/// Decides and durably records one batch of calls; the answers, in order.
fn record(
    state: &mut State,
    settings: &SimulatedSettings,
    batch: &[LedgerCall],
) -> std::io::Result<Vec<Result<String, PaymentError>>> {
    // Held (locked) until the batch is on disk, so two processes never both charge a key.
    let Some(mut file) = state.open_ledger()? else {
        return Err(std::io::Error::other("no ledger file"));
    };
    let mut lines = String::new();
    let mut new = Vec::new();
    let mut answers = Vec::with_capacity(batch.len());
    for call in batch {
        answers.push(
            match decide(state, settings, call.op, &call.key, call.method) {
                Decision::New(reference) => {
                    let entry = format!("{} {}", call.op, call.key);
                    lines.push_str(&format!("{entry} {reference}\n"));
                    // Seen at once by the rest of the batch: a key twice in it charges once.
                    state.done.insert(entry.clone(), reference.clone());
                    new.push(entry);
                    Ok(reference)
                }
                decision => answer(decision, call.op, &call.key, state),
            },
        );
    }
    if !lines.is_empty() {
        let written = file
            .write_all(lines.as_bytes())
            .and_then(|()| file.sync_data());
        if let Err(e) = written {
            // Not recorded, so not done: a retry decides again.
            for entry in new {
                state.done.remove(&entry);
            }
            return Err(e);
        }
        state.read_to += lines.len() as u64;
    }
    Ok(answers)
}

#[async_trait]
impl PaymentGateway for SimulatedPayments {
    async fn authorize(&self, request: &PaymentRequest) -> Result<String, PaymentError> {
        self.call(request, "authorize").await
    }

    async fn capture(
        &self,
        request: &PaymentRequest,
        _authorization: &str,
    ) -> Result<String, PaymentError> {
        self.call(request, "capture").await
    }

    async fn refund(
        &self,
        request: &PaymentRequest,
        _capture_ref: &str,
    ) -> Result<String, PaymentError> {
        self.call(request, "refund").await
    }

    async fn void(&self, request: &PaymentRequest) -> Result<(), PaymentError> {
        self.call(request, "void").await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orderly_core::ports::{PaymentKey, PaymentStep};
    use orderly_domain::{Currency, CustomerId, Money, OrderId};

    /// The capture request of order `n`.
    fn request(n: u128) -> PaymentRequest {
        let order_id = OrderId::from_uuid(uuid::Uuid::from_u128(n));
        PaymentRequest {
            idempotency_key: PaymentKey::new(order_id, PaymentStep::Capture),
            order_id,
            customer_id: CustomerId::parse("001").unwrap(),
            amount: Money::from_minor(27998, Currency::USD),
            payment_method: None,
        }
    }

    #[tokio::test]
    async fn test_methods_decline_or_meet_an_outage_on_purpose() {
        assert_eq!(
            TestMethod::parse(Some("sim_declined")),
            Some(TestMethod::Declined)
        );
        assert_eq!(
            TestMethod::parse(Some("sim_unavailable_3")),
            Some(TestMethod::Unavailable(3))
        );
        for other in [
            None,
            Some("pm_card_visa"),
            Some("sim_unavailable_0"),
            Some("sim_unavailable_x"),
        ] {
            assert_eq!(TestMethod::parse(other), None, "{other:?}");
        }
        let p = SimulatedPayments::new(SimulatedSettings::default());
        let mut declined = request(1);
        declined.payment_method = Some("sim_declined".into());
        for _ in 0..2 {
            assert!(matches!(
                p.authorize(&declined).await,
                Err(PaymentError::Declined(_))
            ));
        }
        let mut down = request(2);
        down.payment_method = Some("sim_unavailable_3".into());
        for attempt in 1..=3 {
            let e = p.authorize(&down).await.unwrap_err();
            assert!(
                matches!(&e, PaymentError::Transient(m) if m.contains(&format!("attempt {attempt}"))),
                "{e:?}"
            );
        }
        let first = p.authorize(&down).await.unwrap();
        assert_eq!(
            p.authorize(&down).await.unwrap(),
            first,
            "answered once, then the same"
        );
        assert!(p.capture(&down, &first).await.is_ok(), "the outage is over");
        assert!(p.authorize(&request(3)).await.is_ok(), "other methods pay");
    }

    #[tokio::test]
    async fn a_repeated_key_returns_the_same_charge() {
        let p = SimulatedPayments::new(SimulatedSettings::default());
        let a = p.capture(&request(1), "auth").await.unwrap();
        let b = p.capture(&request(1), "auth").await.unwrap();
        let c = p.capture(&request(2), "auth").await.unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[tokio::test]
    async fn the_decline_rate_is_honoured_and_deterministic() {
        let settings = SimulatedSettings {
            decline_rate: 0.3,
            ..SimulatedSettings::default()
        };
        let outcomes = |p: SimulatedPayments| async move {
            let mut declined = Vec::new();
            for i in 0..1000 {
                declined.push(p.authorize(&request(10_000 + i)).await.is_err());
            }
            declined
        };
        let first = outcomes(SimulatedPayments::new(settings.clone())).await;
        let second = outcomes(SimulatedPayments::new(settings)).await;
        assert_eq!(first, second);
        let n = first.iter().filter(|d| **d).count();
        assert!((250..350).contains(&n), "{n} declines of 1000 at 30 %");
    }

    #[tokio::test]
    async fn the_ledger_survives_a_restart_and_a_repeated_key_charges_once() {
        let dir = std::env::temp_dir().join(format!("orderly-ledger-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ledger.txt");
        let _ = std::fs::remove_file(&path);
        let first = SimulatedPayments::with_ledger(SimulatedSettings::default(), &path).unwrap();
        let charge = first.capture(&request(9), "auth").await.unwrap();
        drop(first);
        let again = SimulatedPayments::with_ledger(SimulatedSettings::default(), &path).unwrap();
        assert_eq!(again.capture(&request(9), "auth").await.unwrap(), charge);
        again.void(&request(9)).await.unwrap();
        again.void(&request(10)).await.unwrap();
        let ledger = SimulatedPayments::read_ledger(&path).unwrap();
        let ops: Vec<_> = ledger
            .iter()
            .map(|(op, key, _)| format!("{op} {key}"))
            .collect();
        let key = request(9).idempotency_key;
        assert_eq!(
            ops,
            [format!("capture {key}"), format!("void {key}")],
            "nothing to void for order 10"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn processes_sharing_a_ledger_charge_a_key_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.ledger");
        let node_a = SimulatedPayments::with_ledger(SimulatedSettings::default(), &path).unwrap();
        let node_b = SimulatedPayments::with_ledger(SimulatedSettings::default(), &path).unwrap();
        let first = node_a.capture(&request(1), "auth").await.unwrap();
        let again = node_b.capture(&request(1), "auth").await.unwrap();
        assert_eq!(first, again);
        node_b.capture(&request(2), "auth").await.unwrap();
        let ledger = SimulatedPayments::read_ledger(&path).unwrap();
        assert_eq!(ledger.len(), 2, "{ledger:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_calls_share_fsyncs_and_still_charge_each_key_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("busy.ledger");
        let p =
            Arc::new(SimulatedPayments::with_ledger(SimulatedSettings::default(), &path).unwrap());
        let mut calls = tokio::task::JoinSet::new();
        // 200 keys, each captured three times at once: one line per key, one answer per key.
        for round in 0..3 {
            for i in 0..200 {
                let p = Arc::clone(&p);
                calls.spawn(async move {
                    let request = request(i);
                    (
                        round,
                        request.idempotency_key.to_string(),
                        p.capture(&request, "auth").await.unwrap(),
                    )
                });
            }
        }
        let mut answers: HashMap<String, String> = HashMap::new();
        while let Some(done) = calls.join_next().await {
            let (_, key, reference) = done.unwrap();
            let first = answers.entry(key).or_insert_with(|| reference.clone());
            assert_eq!(*first, reference);
        }
        assert_eq!(answers.len(), 200);
        let ledger = SimulatedPayments::read_ledger(&path).unwrap();
        assert_eq!(ledger.len(), 200, "each key recorded once");
        // A void after the capture undoes it; without one there is nothing to void.
        p.void(&request(7)).await.unwrap();
        p.void(&request(999)).await.unwrap();
        let ledger = SimulatedPayments::read_ledger(&path).unwrap();
        assert_eq!(ledger.len(), 201);
        assert_eq!(ledger[200].0, "void");
    }

    #[tokio::test]
    async fn transient_failures_clear_on_retry() {
        let settings = SimulatedSettings {
            transient_rate: 0.5,
            ..SimulatedSettings::default()
        };
        let p = SimulatedPayments::new(settings);
        for i in 0..50 {
            let request = request(20_000 + i);
            let mut tries = 0;
            loop {
                tries += 1;
                match p.capture(&request, "auth").await {
                    Ok(_) => break,
                    Err(PaymentError::Transient(_)) => assert!(tries < 40),
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }
}
