//! Figures read off a run: quantiles of measured durations, and Prometheus histograms read
//! from an exposition and differenced between two readings.

use std::time::Duration;

/// Value of the `q` quantile (0..1) of `values` (nearest rank), 0 for none.
pub fn quantile(values: &mut [Duration], q: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    values.sort_unstable();
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// The cumulative buckets `(le, count)` of histogram `name` in a Prometheus exposition,
/// summed over the series whose labels satisfy `keep`; `le` of `+Inf` is `f64::INFINITY`.
pub fn histogram(
    exposition: &str,
    name: &str,
    keep: impl Fn(&[(&str, &str)]) -> bool,
) -> Vec<(f64, f64)> {
    let bucket = format!("{name}_bucket{{");
    let mut sums: Vec<(f64, f64)> = Vec::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix(&bucket) else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let labels: Vec<(&str, &str)> = labels
            .split("\",")
            .filter_map(|pair| pair.split_once("=\""))
            .map(|(key, value)| (key, value.trim_end_matches('"')))
            .collect();
        let Some(le) = labels.iter().find(|(key, _)| *key == "le").map(|(_, le)| {
            if *le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::INFINITY)
            }
        }) else {
            continue;
        };
        if !keep(&labels) {
            continue;
        }
        let count: f64 = value.trim().parse().unwrap_or(0.0);
        match sums.iter_mut().find(|(bound, _)| *bound == le) {
            Some((_, sum)) => *sum += count,
            None => sums.push((le, count)),
        }
    }
    sums.sort_by(|a, b| a.0.total_cmp(&b.0));
    sums
}

/// The upper bound (seconds) of the bucket holding the `q` quantile of the observations made
/// between two readings of one histogram, `before` and `after` (from [`histogram`]), and
/// how many observations that was.
pub fn quantile_between(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> (f64, f64) {
    let (_, upper, total) = bucket_between(before, after, q);
    (upper, total)
}

/// The bounds `(lower, upper]` (seconds) of the bucket holding the `q` quantile of the
/// observations made between `before` and `after`, and how many observations that was: the
/// quantile is known to lie between the two.
pub fn bucket_between(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> (f64, f64, f64) {
    let delta: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, count)| {
            let earlier = before
                .iter()
                .find(|(bound, _)| bound == le)
                .map_or(0.0, |(_, count)| *count);
            (*le, count - earlier)
        })
        .collect();
    let total = delta.last().map_or(0.0, |(_, count)| *count);
    let at = delta.iter().position(|(_, count)| *count >= q * total);
    let upper = at.map_or(f64::INFINITY, |at| delta[at].0);
    let lower = at
        .and_then(|at| at.checked_sub(1))
        .map_or(0.0, |below| delta[below].0);
    (lower, upper, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quantile_bucket_is_read_from_the_difference_of_two_readings() {
        let before = [(0.1, 10.0), (0.5, 10.0), (f64::INFINITY, 10.0)];
        let after = [(0.1, 60.0), (0.5, 108.0), (f64::INFINITY, 110.0)];
        // 100 observations in between: 50 under 0.1 s, 48 more under 0.5 s, 2 above.
        assert_eq!(bucket_between(&before, &after, 0.5), (0.0, 0.1, 100.0));
        assert_eq!(bucket_between(&before, &after, 0.98), (0.1, 0.5, 100.0));
        assert_eq!(
            bucket_between(&before, &after, 0.99),
            (0.5, f64::INFINITY, 100.0)
        );
        assert_eq!(quantile_between(&before, &after, 0.98), (0.5, 100.0));
    }
}
