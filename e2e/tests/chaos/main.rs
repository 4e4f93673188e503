//! The chaos verification suite (issue 10): real order and payment processes on 127.0.0.1,
//! driven by the real `loadgen` binary, each scenario checked against order's store and
//! payment's ledger. Each records its rows for `docs/reliability.md` before it asserts
//! (`stormproof_e2e::reliability`), so a missed target shows in the table and fails the test.
//!
//! Run one scenario at a time (they measure throughput on shared cores):
//!
//! ```sh
//! cargo build --release --bin order --bin payment --bin loadgen
//! STORMPROOF_WRITE_RELIABILITY=1 cargo nextest run -p stormproof-e2e --test chaos --test-threads 1 --no-fail-fast --run-ignored all
//! ```

mod crash;
mod models;
mod network;
mod outage;
mod overload;
mod rolling;

use std::time::Duration;

use serde_json::Value;
use stormproof_e2e::{ADMIN_TOKEN, reliability::Row};

/// `part / whole` as a percentage (100 for an empty whole).
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        100.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// `PUT {ops}/admin/faults` on payment with `body`.
pub async fn set_payment_faults(payment_ops: &str, body: Value) {
    reqwest::Client::new()
        .put(format!("{payment_ops}/admin/faults"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .and_then(|response| response.error_for_status())
        .expect("payment's faults set");
}

/// Asserts every row held, after they were recorded.
pub fn assert_rows(rows: &[Row]) {
    stormproof_e2e::reliability::record(rows);
    let missed: Vec<String> = rows
        .iter()
        .filter(|row| !row.pass && !row.machine_limited)
        .map(|row| {
            format!(
                "{}: target {}, measured {}",
                row.name, row.target, row.measured
            )
        })
        .collect();
    assert!(missed.is_empty(), "targets missed:\n{}", missed.join("\n"));
}

/// Seconds, one decimal.
pub fn secs(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}
