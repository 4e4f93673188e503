//! Response times timed from each arrival's scheduled moment (the open model), by request
//! name, for the report's percentiles. goose's own figures are service times, from the moment
//! a request is sent; under the open model the difference is time an arrival waited for a
//! free user, which is exactly what a closed loop leaves out (coordinated omission).

use std::{collections::BTreeMap, sync::Mutex, time::Duration};

use hdrhistogram::Histogram;

use crate::lock;

/// Microseconds, three significant digits, up to an hour.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant, valid bounds")
}

/// Per request name: a histogram of response times.
#[derive(Debug, Default)]
pub struct ResponseTimes {
    by_request: Mutex<BTreeMap<&'static str, Histogram<u64>>>,
}

impl ResponseTimes {
    /// Records one answer of `request`, `elapsed` after it was due.
    pub fn record(&self, request: &'static str, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut by_request = lock(&self.by_request);
        by_request
            .entry(request)
            .or_insert_with(histogram)
            .saturating_record(micros);
    }

    /// The `quantile` (0 to 1) of `request`'s response times, milliseconds.
    pub fn quantile_ms(&self, request: &str, quantile: f64) -> Option<f64> {
        let by_request = lock(&self.by_request);
        by_request
            .get(request)
            .filter(|histogram| !histogram.is_empty())
            .map(|histogram| histogram.value_at_quantile(quantile) as f64 / 1000.0)
    }

    /// Adds `other`'s response times to these.
    pub fn merge(&self, other: &ResponseTimes) {
        let theirs = lock(&other.by_request);
        let mut ours = lock(&self.by_request);
        for (request, histogram) in theirs.iter() {
            let entry = ours.entry(request).or_insert_with(self::histogram);
            // Same bounds on both sides: adding cannot fail.
            let _ = entry.add(histogram);
        }
    }

    /// The request names recorded.
    pub fn requests(&self) -> Vec<&'static str> {
        let by_request = lock(&self.by_request);
        by_request.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_what_was_recorded() {
        let times = ResponseTimes::default();
        for ms in 1..=100 {
            times.record("PlaceOrder", Duration::from_millis(ms));
        }
        let p99 = times.quantile_ms("PlaceOrder", 0.99).expect("recorded");
        assert!((98.5..=99.5).contains(&p99), "{p99}");
        assert_eq!(times.quantile_ms("GetOrder", 0.5), None);
        let more = ResponseTimes::default();
        more.record("PlaceOrder", Duration::from_secs(10));
        times.merge(&more);
        assert!(times.quantile_ms("PlaceOrder", 1.0).expect("max") >= 9_990.0);
    }
}
