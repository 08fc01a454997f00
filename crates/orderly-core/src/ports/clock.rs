//! Time and ids: the wall clock, a clock tests move, and time-ordered ids.

use orderly_domain::{EventId, OrderId, Timestamp};

/// The time.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// New ids.
pub trait IdGenerator: Send + Sync {
    /// A new order id.
    fn order_id(&self) -> OrderId;
    /// A new event id.
    fn event_id(&self) -> EventId;
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Timestamp::from_millis(ms)
    }
}

/// A clock that moves only when told: for tests and simulations that must not wait out real
/// retry delays.
#[derive(Debug, Default)]
pub struct ManualClock {
    millis: std::sync::atomic::AtomicI64,
}

impl ManualClock {
    /// A clock standing at `at`.
    #[must_use]
    pub fn at(at: Timestamp) -> Self {
        ManualClock {
            millis: std::sync::atomic::AtomicI64::new(at.millis()),
        }
    }

    /// Moves the clock on by `ms`.
    pub fn advance(&self, ms: i64) {
        self.millis
            .fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }

    /// Moves the clock to `at`, if that is later than now (a clock never goes back).
    pub fn advance_to(&self, at: Timestamp) {
        self.millis
            .fetch_max(at.millis(), std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.millis.load(std::sync::atomic::Ordering::SeqCst))
    }
}

/// Time-ordered UUID v7 ids.
#[derive(Clone, Copy, Debug, Default)]
pub struct UuidV7;

impl IdGenerator for UuidV7 {
    fn order_id(&self) -> OrderId {
        OrderId::from_uuid(uuid::Uuid::now_v7())
    }
    fn event_id(&self) -> EventId {
        EventId::from_uuid(uuid::Uuid::now_v7())
    }
}
