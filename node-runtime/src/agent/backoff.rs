//! Kubernetes' CrashLoopBackOff: the delay before restarting a container doubles from the
//! initial value to a ceiling, and resets after the container ran long enough.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    reset_after: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration, reset_after: Duration) -> Self {
        Backoff {
            initial,
            max,
            reset_after,
            next: initial,
        }
    }

    /// The delay before the next restart of a container that started at `started` and just
    /// ended; advances the sequence.
    pub fn delay_after_run(&mut self, started: Option<Instant>) -> Duration {
        if started.is_some_and(|s| s.elapsed() >= self.reset_after) {
            self.next = self.initial;
        }
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_ceiling() {
        let mut b = Backoff::new(
            Duration::from_secs(10),
            Duration::from_secs(300),
            Duration::from_secs(600),
        );
        let delays: Vec<u64> = (0..7).map(|_| b.delay_after_run(None).as_secs()).collect();
        assert_eq!(delays, vec![10, 20, 40, 80, 160, 300, 300]);
        let long_ago = Instant::now().checked_sub(Duration::from_secs(601));
        if long_ago.is_some() {
            assert_eq!(b.delay_after_run(long_ago).as_secs(), 10);
        }
    }
}
