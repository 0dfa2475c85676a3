//! Waiting for a condition with a deadline (tests never sleep instead).

use std::future::Future;
use std::time::{Duration, Instant};

/// The condition did not hold before the deadline.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {after:?} waiting for {what}; last seen: {last}")]
pub struct WaitTimedOut {
    /// What was awaited.
    pub what: String,
    /// How long.
    pub after: Duration,
    /// The last observation, for the failure message.
    pub last: String,
}

/// Polls `check` every 50 ms until it returns `Ok(value)`, or fails with the
/// last `Err(observation)` after `timeout`.
pub async fn wait_for<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut check: F,
) -> Result<T, WaitTimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match check().await {
            Ok(value) => return Ok(value),
            Err(last) if start.elapsed() >= timeout => {
                return Err(WaitTimedOut {
                    what: what.to_owned(),
                    after: timeout,
                    last,
                });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
