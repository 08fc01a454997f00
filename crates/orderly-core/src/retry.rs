//! Stage 1 as data: retry with exponential backoff, then per failure class the longer waits
//! before a person is needed.

use std::time::Duration;

/// How a failing saga step is retried: the Step Functions shape (`IntervalSeconds`,
/// `MaxAttempts`, `BackoffRate`). The reference design uses 5 s, 5, ×2.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Wait before the first retry.
    pub interval: Duration,
    /// Retries after the first attempt; when they are used up, the order needs attention.
    pub max_attempts: u32,
    /// Each wait is this many times the previous one.
    pub backoff_rate: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            interval: Duration::from_secs(5),
            max_attempts: 5,
            backoff_rate: 2.0,
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1-based): `interval × rate^(retry-1)`, at most a day.
    #[must_use]
    pub fn delay(&self, retry: u32) -> Duration {
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let factor = self.backoff_rate.powi(exponent);
        let secs = (self.interval.as_secs_f64() * factor).min(86_400.0);
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::from_secs(86_400))
    }

    /// Checks the numbers make sense.
    ///
    /// # Errors
    /// A message naming the bad value.
    pub fn validate(&self) -> Result<(), String> {
        if self.interval.is_zero() {
            return Err("retry interval must be greater than zero".into());
        }
        if !(1.0..=10.0).contains(&self.backoff_rate) {
            return Err(format!(
                "retry backoff rate must be between 1 and 10, got {}",
                self.backoff_rate
            ));
        }
        if self.max_attempts > 100 {
            return Err(format!(
                "retry max attempts must be at most 100, got {}",
                self.max_attempts
            ));
        }
        Ok(())
    }
}

/// What went wrong with a step, as far as stage 1 is concerned: each class waits by its own
/// schedule before the next automatic try ([`RetryPolicies`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureClass {
    /// The payment provider did not answer, or failed on its side.
    PaymentUnavailable,
    /// The card was declined when the payment was taken.
    PaymentDeclined,
    /// Not enough stock to reserve the order.
    StockShort,
    /// The mail (or SMS) server did not take a message.
    MailUnavailable,
    /// Orderly's own database did not answer.
    Storage,
}

impl FailureClass {
    /// Every class, in the order the documentation lists them.
    pub const ALL: [FailureClass; 5] = [
        FailureClass::PaymentUnavailable,
        FailureClass::PaymentDeclined,
        FailureClass::StockShort,
        FailureClass::MailUnavailable,
        FailureClass::Storage,
    ];

    /// The class's name in configuration, the API and stored job errors.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::PaymentUnavailable => "payment-unavailable",
            FailureClass::PaymentDeclined => "payment-declined",
            FailureClass::StockShort => "stock-short",
            FailureClass::MailUnavailable => "mail-unavailable",
            FailureClass::Storage => "storage",
        }
    }

    /// The class a name stands for.
    #[must_use]
    pub fn parse(name: &str) -> Option<FailureClass> {
        FailureClass::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// Whether a failure of this class is the world answering "no" for now (a declined card,
    /// short stock) rather than not answering: such a step has no fast retries, only its
    /// class's waits, and when they run out the step's own final answer applies (the order
    /// is rejected) instead of the order needing attention.
    #[must_use]
    pub fn is_refusal(self) -> bool {
        matches!(
            self,
            FailureClass::PaymentDeclined | FailureClass::StockShort
        )
    }

    /// What happened, in plain words for staff.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            FailureClass::PaymentUnavailable => "The payment provider did not answer",
            FailureClass::PaymentDeclined => "The customer's card was declined",
            FailureClass::StockShort => "There was not enough stock",
            FailureClass::MailUnavailable => "The mail server did not take the message",
            FailureClass::Storage => "The database did not answer",
        }
    }

    /// A job's stored error tagged with its class (see [`FailureClass::untag`]).
    #[must_use]
    pub fn tag(self, error: &str) -> String {
        format!("[{}] {error}", self.as_str())
    }

    /// The class and the error of a stored job error written by [`FailureClass::tag`]
    /// (`None` and the whole text for one written before classes were stored).
    #[must_use]
    pub fn untag(stored: &str) -> (Option<FailureClass>, &str) {
        stored
            .strip_prefix('[')
            .and_then(|rest| rest.split_once("] "))
            .and_then(|(name, error)| FailureClass::parse(name).map(|c| (Some(c), error)))
            .unwrap_or((None, stored))
    }
}

impl std::fmt::Display for FailureClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Stage 1 as data: the fast retries every transient failure gets ([`RetryPolicy`]) and, per
/// [`FailureClass`], the longer waits after them before a person is needed.
///
/// A transient class (the provider, the mail server or the database not answering) gets the
/// fast retries first, then its waits. A refusal ([`FailureClass::is_refusal`]) gets only its
/// waits. A job's tries count across classes: the `n`-th failed try of a job waits the
/// `n`-th wait of its class's schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicies {
    /// The fast retries of a transient failure.
    pub fast: RetryPolicy,
    waits: [Vec<Duration>; 5],
}

/// Five minutes, half an hour, six hours: the default waits of the payment classes and the
/// mail server.
pub const STAGE_ONE_WAITS: [Duration; 3] = [
    Duration::from_secs(300),
    Duration::from_secs(1_800),
    Duration::from_secs(21_600),
];

/// At most this many waits per class.
pub const MAX_WAITS: usize = 20;

/// The longest single wait: SQS holds a message out of sight for at most 12 hours.
pub const MAX_WAIT: Duration = Duration::from_secs(43_200);

impl Default for RetryPolicies {
    /// The fast retries of [`RetryPolicy::default`]; 5 min, 30 min and 6 h for the payment
    /// provider being down, a declined card and the mail server being down; short stock
    /// rejects the order at once and the database gets only the fast retries.
    fn default() -> Self {
        let stage_one = STAGE_ONE_WAITS.to_vec();
        RetryPolicies {
            fast: RetryPolicy::default(),
            waits: [
                stage_one.clone(),
                stage_one.clone(),
                Vec::new(),
                stage_one,
                Vec::new(),
            ],
        }
    }
}

impl RetryPolicies {
    /// The fast retries only: no class waits beyond them (tests, the demo's failures).
    #[must_use]
    pub fn fast_only(fast: RetryPolicy) -> Self {
        RetryPolicies {
            fast,
            waits: Default::default(),
        }
    }

    fn slot(class: FailureClass) -> usize {
        FailureClass::ALL
            .iter()
            .position(|c| *c == class)
            .unwrap_or_default()
    }

    /// The class's waits after its fast retries.
    #[must_use]
    pub fn waits(&self, class: FailureClass) -> &[Duration] {
        &self.waits[Self::slot(class)]
    }

    /// Sets a class's waits.
    #[must_use]
    pub fn with_waits(mut self, class: FailureClass, waits: Vec<Duration>) -> Self {
        self.waits[Self::slot(class)] = waits;
        self
    }

    /// The wait before the next try of a job whose `attempts`-th try failed with `class`, or
    /// `None` when the job has had all its tries.
    #[must_use]
    pub fn next_wait(&self, class: FailureClass, attempts: u32) -> Option<Duration> {
        let fast = if class.is_refusal() {
            0
        } else {
            self.fast.max_attempts
        };
        if attempts <= fast {
            return Some(self.fast.delay(attempts));
        }
        let index = usize::try_from(attempts - fast - 1).ok()?;
        self.waits(class).get(index).copied()
    }

    /// How many tries a step failing with `class` every time gets in all.
    #[must_use]
    pub fn tries(&self, class: FailureClass) -> u32 {
        let fast = if class.is_refusal() {
            0
        } else {
            self.fast.max_attempts
        };
        1 + fast + u32::try_from(self.waits(class).len()).unwrap_or(u32::MAX)
    }

    /// Checks the numbers make sense.
    ///
    /// # Errors
    /// A message naming the bad value.
    pub fn validate(&self) -> Result<(), String> {
        self.fast.validate()?;
        for class in FailureClass::ALL {
            let waits = self.waits(class);
            if waits.len() > MAX_WAITS {
                return Err(format!(
                    "retry waits for {class}: at most {MAX_WAITS}, got {}",
                    waits.len()
                ));
            }
            if let Some(w) = waits.iter().find(|w| w.is_zero() || **w > MAX_WAIT) {
                return Err(format!(
                    "retry waits for {class}: each must be more than 0 and at most 12h, got {}",
                    format_wait(*w)
                ));
            }
        }
        Ok(())
    }
}

/// Reads a schedule of waits: `5m,30m,6h` (units `ms`, `s`, `m`, `h`), or `none`.
///
/// # Errors
/// A message naming the part that is not a wait.
pub fn parse_waits(text: &str) -> Result<Vec<Duration>, String> {
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|part| {
            let part = part.trim();
            let split = part
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(part.len());
            let (digits, unit) = part.split_at(split);
            let n: u64 = digits
                .parse()
                .map_err(|_| format!("{part:?} is not a wait: write e.g. 500ms, 30s, 5m or 6h"))?;
            let millis = match unit {
                "ms" => Some(n),
                "s" => n.checked_mul(1_000),
                "m" => n.checked_mul(60_000),
                "h" => n.checked_mul(3_600_000),
                _ => None,
            }
            .ok_or_else(|| format!("{part:?} is not a wait: write e.g. 500ms, 30s, 5m or 6h"))?;
            Ok(Duration::from_millis(millis))
        })
        .collect()
}

/// A wait as [`parse_waits`] reads it: the largest unit that divides it.
#[must_use]
pub fn format_wait(wait: Duration) -> String {
    let ms = wait.as_millis();
    match ms {
        0 => "0s".to_owned(),
        _ if ms.is_multiple_of(3_600_000) => format!("{}h", ms / 3_600_000),
        _ if ms.is_multiple_of(60_000) => format!("{}m", ms / 60_000),
        _ if ms.is_multiple_of(1_000) => format!("{}s", ms / 1_000),
        _ => format!("{ms}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_policy_waits_5_10_20_40_80_seconds() {
        let p = RetryPolicy::default();
        let waits: Vec<u64> = (1..=5).map(|n| p.delay(n).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80]);
    }

    #[test]
    fn delays_are_capped_at_a_day() {
        let p = RetryPolicy {
            interval: Duration::from_secs(3600),
            max_attempts: 100,
            backoff_rate: 10.0,
        };
        assert_eq!(p.delay(50), Duration::from_secs(86_400));
    }
    #[test]
    fn a_provider_outage_gets_the_fast_retries_then_5_min_30_min_6_h() {
        let p = RetryPolicies::default();
        let waits: Vec<u64> = (1..=9)
            .filter_map(|n| p.next_wait(FailureClass::PaymentUnavailable, n))
            .map(|d| d.as_secs())
            .collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 300, 1_800, 21_600]);
        assert_eq!(p.tries(FailureClass::PaymentUnavailable), 9);
    }

    #[test]
    fn a_refusal_gets_only_its_class_waits() {
        let p = RetryPolicies::default();
        assert_eq!(
            p.next_wait(FailureClass::PaymentDeclined, 1),
            Some(Duration::from_secs(300))
        );
        assert_eq!(p.next_wait(FailureClass::PaymentDeclined, 4), None);
        assert_eq!(p.tries(FailureClass::PaymentDeclined), 4);
        assert_eq!(
            p.next_wait(FailureClass::StockShort, 1),
            None,
            "short stock rejects at once by default"
        );
        assert_eq!(p.tries(FailureClass::StockShort), 1);
    }

    #[test]
    fn schedules_are_read_and_written_back_alike() {
        let waits = parse_waits("500ms, 30s,5m,6h").unwrap();
        assert_eq!(
            waits.iter().map(|w| format_wait(*w)).collect::<Vec<_>>(),
            ["500ms", "30s", "5m", "6h"]
        );
        assert_eq!(parse_waits("none").unwrap(), Vec::<Duration>::new());
        assert!(parse_waits("5 minutes").unwrap_err().contains("not a wait"));
        assert!(parse_waits("99999999999999999h").is_err());
        let too_long = RetryPolicies::default()
            .with_waits(FailureClass::StockShort, vec![Duration::from_secs(86_400)]);
        assert!(too_long.validate().unwrap_err().contains("12h"));
    }

    #[test]
    fn a_stored_error_keeps_its_class() {
        let stored = FailureClass::PaymentDeclined.tag("card_declined");
        assert_eq!(
            FailureClass::untag(&stored),
            (Some(FailureClass::PaymentDeclined), "card_declined")
        );
        assert_eq!(FailureClass::untag("[x] y"), (None, "[x] y"));
        assert_eq!(FailureClass::untag("plain"), (None, "plain"));
    }
}
