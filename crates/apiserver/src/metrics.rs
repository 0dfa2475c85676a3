//! `/metrics` in Prometheus text format, with upstream's metric names.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// (verb, resource, code) → (count, seconds).
type RequestTotals = BTreeMap<(String, String, u16), (u64, f64)>;

/// Request counters and latency sums.
#[derive(Default)]
pub(crate) struct Metrics {
    requests: Mutex<RequestTotals>,
}

impl Metrics {
    /// Counts one request.
    pub(crate) fn observe(&self, verb: &str, resource: &str, code: u16, elapsed: Duration) {
        let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let entry = requests
            .entry((verb.to_owned(), resource.to_owned(), code))
            .or_insert((0, 0.0));
        entry.0 += 1;
        entry.1 += elapsed.as_secs_f64();
    }

    /// The text exposition.
    pub(crate) fn render(&self) -> String {
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::from(
            "# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, resource and HTTP response code.\n# TYPE apiserver_request_total counter\n",
        );
        for ((verb, resource, code), (count, _)) in requests.iter() {
            out.push_str(&format!(
                "apiserver_request_total{{verb=\"{verb}\",resource=\"{resource}\",code=\"{code}\"}} {count}\n"
            ));
        }
        out.push_str("# HELP apiserver_request_duration_seconds Response latency sum and count per verb and resource.\n# TYPE apiserver_request_duration_seconds summary\n");
        let mut sums: BTreeMap<(&str, &str), (u64, f64)> = BTreeMap::new();
        for ((verb, resource, _), (count, secs)) in requests.iter() {
            let entry = sums.entry((verb, resource)).or_insert((0, 0.0));
            entry.0 += count;
            entry.1 += secs;
        }
        for ((verb, resource), (count, secs)) in sums {
            out.push_str(&format!(
                "apiserver_request_duration_seconds_sum{{verb=\"{verb}\",resource=\"{resource}\"}} {secs}\napiserver_request_duration_seconds_count{{verb=\"{verb}\",resource=\"{resource}\"}} {count}\n"
            ));
        }
        out
    }
}
