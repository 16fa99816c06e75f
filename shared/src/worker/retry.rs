//! Waiting between attempts: exponential backoff with jitter, and the Lambda deadline.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::AttemptFailure;

/// The schedule for repeating failed upstream calls.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries of one call within an invocation before the record goes back to the queue.
    pub in_invocation_retries: u32,
    /// Maximum wait served within an invocation; a longer wait goes back to the queue.
    pub max_in_invocation_wait: Duration,
    /// First backoff step; each retry doubles it.
    pub base_backoff: Duration,
    /// Largest backoff step within an invocation.
    pub max_backoff: Duration,
    /// First wait before a redelivery when the upstream gave none; doubles per delivery.
    pub base_requeue_delay: Duration,
    /// Largest wait before a redelivery; SQS allows at most 12 hours.
    pub max_requeue_delay: Duration,
}

impl Default for RetryPolicy {
    /// Backoff as the official Anthropic SDKs compute it (0.5 s doubling up to 8 s),
    /// two retries within an invocation, and redeliveries from 30 s up to 15 minutes.
    fn default() -> Self {
        Self {
            in_invocation_retries: 2,
            max_in_invocation_wait: Duration::from_secs(5),
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            base_requeue_delay: Duration::from_secs(30),
            max_requeue_delay: Duration::from_secs(15 * 60),
        }
    }
}

impl RetryPolicy {
    /// Returns the backoff before retry number `retry` (0 for the first), with jitter in [0.75, 1].
    pub fn backoff(&self, retry: u32) -> Duration {
        let step = self
            .base_backoff
            .saturating_mul(2u32.saturating_pow(retry))
            .min(self.max_backoff);
        step.mul_f64(1.0 - fastrand::f64() * 0.25)
    }

    /// Returns the wait before delivery `delivery + 1` when the upstream named none.
    pub fn requeue_delay(&self, delivery: u32) -> Duration {
        let exponent = delivery.saturating_sub(1).min(16);
        self.base_requeue_delay
            .saturating_mul(2u32.saturating_pow(exponent))
            .min(self.max_requeue_delay)
    }
}

/// The time by which the invocation must return, from Lambda's context.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Option<SystemTime>);

impl Deadline {
    /// Creates a deadline `deadline_ms` milliseconds after the Unix epoch, as `Context::deadline` gives it.
    ///
    /// A deadline more than an hour in the past is ignored: real Lambda never
    /// sends one, but `cargo lambda watch` (1.9) sends the constant 600000.
    pub fn from_epoch_millis(deadline_ms: u64) -> Self {
        let at = UNIX_EPOCH + Duration::from_millis(deadline_ms);
        let plausible = SystemTime::now()
            .duration_since(at)
            .map_or(true, |late| late < Duration::from_secs(3600));
        if !plausible {
            tracing::debug!(deadline_ms, "ignoring an implausible invocation deadline");
            return Self(None);
        }
        Self(Some(at))
    }

    /// No deadline, for callers outside Lambda such as tests.
    pub fn none() -> Self {
        Self(None)
    }

    /// Returns the time left, or `None` without a deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.0.map(|at| {
            at.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
        })
    }

    /// Tells whether `needed` still fits before the deadline.
    pub fn allows(&self, needed: Duration) -> bool {
        self.remaining().is_none_or(|left| left >= needed)
    }
}

/// Runs `call` and repeats it after transient failures whose wait is short
/// enough and fits before the deadline. `budget` is the time one call may take.
pub async fn with_retries<T, F, Fut>(
    policy: &RetryPolicy,
    deadline: Deadline,
    budget: Duration,
    step: &'static str,
    mut call: F,
) -> Result<T, AttemptFailure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AttemptFailure>>,
{
    let mut retry = 0;
    loop {
        if !deadline.allows(budget) {
            return Err(AttemptFailure::out_of_time(step));
        }

        let failure = match call().await {
            Ok(value) => return Ok(value),
            Err(failure) => failure,
        };

        let wait = failure.retry_after.unwrap_or_else(|| policy.backoff(retry));
        let can_wait = failure.transient
            && retry < policy.in_invocation_retries
            && wait <= policy.max_in_invocation_wait
            && deadline.allows(wait + budget);
        if !can_wait {
            return Err(failure);
        }

        tracing::info!(step, code = %failure.error.code, wait_ms = wait.as_millis() as u64, retry, "retrying within the invocation");
        tokio::time::sleep(wait).await;
        retry += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter() {
        let policy = RetryPolicy::default();
        for (retry, full) in [(0, 500), (1, 1_000), (2, 2_000), (5, 8_000), (30, 8_000)] {
            let wait = policy.backoff(retry).as_millis() as u64;
            assert!(wait <= full, "retry {retry}: {wait} ms");
            assert!(wait >= full * 3 / 4, "retry {retry}: {wait} ms");
        }
    }

    #[test]
    fn requeue_delay_grows_to_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.requeue_delay(1), Duration::from_secs(30));
        assert_eq!(policy.requeue_delay(2), Duration::from_secs(60));
        assert_eq!(policy.requeue_delay(10), Duration::from_secs(900));
        assert_eq!(policy.requeue_delay(u32::MAX), Duration::from_secs(900));
    }

    #[test]
    fn deadline_checks_time_left() {
        let soon = SystemTime::now() + Duration::from_secs(10);
        let millis = soon
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let deadline = Deadline::from_epoch_millis(millis);
        assert!(deadline.allows(Duration::from_secs(5)));
        assert!(!deadline.allows(Duration::from_secs(20)));
        assert!(Deadline::none().allows(Duration::from_secs(1_000_000)));
        let just_passed = SystemTime::now() - Duration::from_secs(1);
        let just_passed_ms = just_passed
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        assert!(!Deadline::from_epoch_millis(just_passed_ms).allows(Duration::from_millis(1)));
        assert!(Deadline::from_epoch_millis(600_000).allows(Duration::from_secs(1_000)));
    }
}
