use std::time::Duration;

/// Exponential backoff: `initial`, doubling per failure, never above `cap`.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(initial: Duration, cap: Duration) -> Self {
        Backoff {
            initial,
            cap,
            failures: 0,
        }
    }

    /// The wait before the next attempt after one more failure.
    pub fn fail(&mut self) -> Duration {
        let factor = 1u32.checked_shl(self.failures).unwrap_or(u32::MAX);
        self.failures = self.failures.saturating_add(1);
        self.initial.saturating_mul(factor).min(self.cap)
    }

    pub fn succeed(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets_on_success() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        let waits: Vec<u64> = (0..40).map(|_| b.fail().as_secs()).collect();
        assert_eq!(&waits[..6], &[1, 2, 4, 8, 10, 10]);
        assert!(waits.iter().all(|w| *w <= 10));
        b.succeed();
        assert_eq!(b.fail(), Duration::from_secs(1));
    }
}
