//! `bulwark bench …`: benchmarks that compare Bulwark's parts with their
//! goals or peers, measured in one run (never timed assertions in tests).

pub(crate) mod agent;
pub(crate) mod api;
pub(crate) mod control_plane;
pub(crate) mod rbac;
pub(crate) mod store;

use std::time::Duration;

/// The `p`th percentile of `samples` (sorted in place).
pub(crate) fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * (samples.len() - 1) as f64).round() as usize;
    samples[rank.min(samples.len() - 1)]
}

/// Milliseconds, for printing.
pub(crate) fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}
