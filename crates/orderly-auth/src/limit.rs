//! Fixed-window rate limits, in memory, per node: a key (an account, an address, a customer)
//! may be counted `limit` times per window; past that the caller learns how long to wait.
//! Counts live in one node's memory, so with N nodes behind a balancer a client can get up to
//! N times the limit — enough to stop password guessing and runaway clients, which is the job.

use std::collections::HashMap;
use std::sync::Mutex;

/// A limit: `limit` events per `window_ms`.
#[derive(Debug)]
pub struct RateLimiter {
    limit: u32,
    window_ms: i64,
    windows: Mutex<HashMap<String, (i64, u32)>>,
}

/// Entries kept before stale windows are swept.
const SWEEP_AT: usize = 10_000;

impl RateLimiter {
    /// At most `limit` events per key per `window_ms`. A `limit` of 0 turns the limit off.
    #[must_use]
    pub fn new(limit: u32, window_ms: i64) -> Self {
        RateLimiter {
            limit,
            window_ms: window_ms.max(1),
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// True if the limit is off.
    #[must_use]
    pub fn is_off(&self) -> bool {
        self.limit == 0
    }

    /// Counts one event for `key` at `now_ms`. `Err(retry_after_ms)` if the key is over its
    /// limit (the event is then not counted).
    ///
    /// # Errors
    /// The milliseconds until the key's window ends.
    pub fn hit(&self, key: &str, now_ms: i64) -> Result<(), i64> {
        if self.is_off() {
            return Ok(());
        }
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() >= SWEEP_AT {
            let window = self.window_ms;
            windows.retain(|_, (start, _)| now_ms - *start < window);
        }
        let entry = windows.entry(key.to_owned()).or_insert((now_ms, 0));
        if now_ms - entry.0 >= self.window_ms {
            *entry = (now_ms, 0);
        }
        if entry.1 >= self.limit {
            return Err(entry.0 + self.window_ms - now_ms);
        }
        entry.1 += 1;
        Ok(())
    }

    /// `Err(retry_after_ms)` if `key` is over its limit now, without counting anything.
    ///
    /// # Errors
    /// The milliseconds until the key's window ends.
    pub fn check(&self, key: &str, now_ms: i64) -> Result<(), i64> {
        if self.is_off() {
            return Ok(());
        }
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        match windows.get(key) {
            Some((start, count)) if now_ms - start < self.window_ms && *count >= self.limit => {
                Err(start + self.window_ms - now_ms)
            }
            _ => Ok(()),
        }
    }

    /// Forgets `key` (a successful log-in clears its failures).
    pub fn clear(&self, key: &str) {
        self.windows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_over_its_limit_waits_for_the_window_to_end() {
        let limiter = RateLimiter::new(3, 60_000);
        for _ in 0..3 {
            assert!(limiter.hit("a", 1_000).is_ok());
        }
        assert_eq!(limiter.hit("a", 11_000), Err(50_000));
        assert_eq!(limiter.check("a", 11_000), Err(50_000));
        assert!(
            limiter.hit("b", 11_000).is_ok(),
            "other keys are counted apart"
        );
        assert!(
            limiter.hit("a", 61_000).is_ok(),
            "a new window starts afresh"
        );
    }

    #[test]
    fn clearing_a_key_forgets_its_count_and_zero_turns_the_limit_off() {
        let limiter = RateLimiter::new(1, 60_000);
        assert!(limiter.hit("a", 0).is_ok());
        assert!(limiter.hit("a", 0).is_err());
        limiter.clear("a");
        assert!(limiter.hit("a", 0).is_ok());
        let off = RateLimiter::new(0, 60_000);
        for _ in 0..100 {
            assert!(off.hit("a", 0).is_ok());
        }
    }
}
