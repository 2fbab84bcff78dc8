//! The time controllers read, so tests can run a CronJob's minutes or a Job's deadline
//! without waiting for them: `Clock::System` in the server, `Clock::manual` in tests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The wall clock.
    #[default]
    System,
    /// A clock that moves only when [`Clock::advance`] or [`Clock::set`] is called.
    Manual(Arc<Mutex<Timestamp>>),
}

impl Clock {
    pub fn manual(start: Timestamp) -> Self {
        Clock::Manual(Arc::new(Mutex::new(start)))
    }

    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            Clock::Manual(t) => *t.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Moves a manual clock forward (no-op for the system clock).
    pub fn advance(&self, by: Duration) {
        if let Clock::Manual(t) = self {
            let mut t = t.lock().unwrap_or_else(|e| e.into_inner());
            let by = SignedDuration::try_from(by).unwrap_or(SignedDuration::MAX);
            *t = t.checked_add(by).unwrap_or(Timestamp::MAX);
        }
    }

    /// Sets a manual clock (no-op for the system clock).
    pub fn set(&self, to: Timestamp) {
        if let Clock::Manual(t) = self {
            *t.lock().unwrap_or_else(|e| e.into_inner()) = to;
        }
    }
}

/// A timestamp as Kubernetes writes it (RFC 3339, whole seconds, UTC).
pub fn rfc3339(t: Timestamp) -> String {
    Timestamp::from_second(t.as_second())
        .unwrap_or(t)
        .to_string()
}

/// Parses a Kubernetes timestamp field.
pub fn parse_time(v: Option<&serde_json::Value>) -> Option<Timestamp> {
    v?.as_str()?.parse().ok()
}

/// `to - from` as a std Duration (zero when `to` is not after `from`).
pub fn until(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = Clock::manual("2024-01-01T00:00:00Z".parse().unwrap());
        assert_eq!(rfc3339(c.now()), "2024-01-01T00:00:00Z");
        c.advance(Duration::from_secs(90));
        assert_eq!(rfc3339(c.now()), "2024-01-01T00:01:30Z");
        assert_eq!(
            until(c.now(), "2024-01-01T00:02:00Z".parse().unwrap()),
            Duration::from_secs(30)
        );
        assert_eq!(
            until(c.now(), "2024-01-01T00:00:00Z".parse().unwrap()),
            Duration::ZERO
        );
    }
}
