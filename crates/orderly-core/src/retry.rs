//! Retry with exponential backoff, as data.

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
}
