//! The load: a closed loop of `PlaceOrder` calls at a fixed concurrency for a fixed time, from
//! one tonic client, the same for the echo server and for order.
//!
//! Each of `concurrency` tasks sends its next call as soon as the previous one is answered, and
//! starts none after the end of the run; the run's time is measured until the last answer. The
//! tasks share a few HTTP/2 connections (one per 32 tasks, at most 8), as a client library's
//! pool would: one connection would cap the streams in flight at the server's limit.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use contracts::order::v1::{self as pb, order_service_client::OrderServiceClient};
use tonic::transport::Channel;

/// How long one call may take before the client gives up (far above any deadline in play).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Clients connected to one gRPC server, and the processes that serve it (whose CPU time a run
/// measures).
#[derive(Debug, Clone)]
pub struct Clients {
    clients: Vec<OrderServiceClient<Channel>>,
    servers: Vec<u32>,
}

impl Clients {
    /// Opens the connections `concurrency` tasks will share; `servers` are the process ids
    /// that do the serving (order and payment, or the echo server).
    pub async fn connect(
        grpc_addr: &str,
        concurrency: usize,
        servers: Vec<u32>,
    ) -> anyhow::Result<Self> {
        let connections = concurrency.div_ceil(32).clamp(1, 8);
        let mut clients = Vec::with_capacity(connections);
        for _ in 0..connections {
            let channel = Channel::from_shared(format!("http://{grpc_addr}"))?
                .timeout(CALL_TIMEOUT)
                .connect()
                .await
                .with_context(|| format!("cannot connect to {grpc_addr}"))?;
            clients.push(OrderServiceClient::new(channel));
        }
        Ok(Self { clients, servers })
    }

    /// CPU time the serving processes have used so far (user + system), from `/proc`.
    fn server_cpu(&self) -> Duration {
        self.servers.iter().map(|pid| cpu_time(*pid)).sum()
    }
}

/// User + system CPU time of a process, from `/proc/<pid>/stat` (in USER_HZ ticks, 100 a
/// second on Linux); zero if it cannot be read.
fn cpu_time(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // The command name may hold spaces; the fields after it are plain.
    let Some((_, after_name)) = stat.rsplit_once(')') else {
        return Duration::ZERO;
    };
    let fields: Vec<u64> = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|field| field.parse().ok())
        .collect();
    Duration::from_millis(fields.iter().sum::<u64>() * 10)
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Calls answered OK.
    pub ok: u64,
    /// …of which the order came back CONFIRMED (paid).
    pub confirmed: u64,
    /// …of which it came back PAYMENT_PENDING (accepted through the fallback).
    pub payment_pending: u64,
    /// Calls that failed, by gRPC code name.
    pub errors: BTreeMap<String, u64>,
    /// From the first call to the last answer.
    pub elapsed: Duration,
    /// Latency of every OK call, in microseconds, sorted.
    pub latencies_us: Vec<u32>,
    /// CPU time the serving processes used during the run.
    pub server_cpu: Duration,
}

impl Outcome {
    /// OK answers per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// CPU cores the serving processes kept busy on average.
    pub fn server_cores(&self) -> f64 {
        self.server_cpu.as_secs_f64() / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// Server CPU time per OK call.
    pub fn cpu_per_call(&self) -> Option<Duration> {
        (self.ok > 0).then(|| self.server_cpu / u32::try_from(self.ok).unwrap_or(u32::MAX))
    }

    /// The latency at quantile `q` (0..=1) of OK calls, nearest rank.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let n = self.latencies_us.len();
        if n == 0 {
            return None;
        }
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        Some(Duration::from_micros(u64::from(
            self.latencies_us[rank - 1],
        )))
    }

    /// Several runs of the same subject as one.
    pub fn merge(runs: &[Self]) -> Self {
        let mut merged = Self::default();
        for run in runs {
            merged.ok += run.ok;
            merged.confirmed += run.confirmed;
            merged.payment_pending += run.payment_pending;
            for (code, count) in &run.errors {
                *merged.errors.entry(code.clone()).or_default() += count;
            }
            merged.elapsed += run.elapsed;
            merged.server_cpu += run.server_cpu;
            merged.latencies_us.extend_from_slice(&run.latencies_us);
        }
        merged.latencies_us.sort_unstable();
        merged
    }
}

/// Runs `concurrency` closed loops of `PlaceOrder` against `clients` for `duration`.
pub async fn drive(clients: &Clients, concurrency: usize, duration: Duration) -> Outcome {
    let cpu_before = clients.server_cpu();
    let start = Instant::now();
    let end = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..concurrency {
        let mut client = clients.clients[task % clients.clients.len()].clone();
        tasks.spawn(async move {
            let mut outcome = Outcome::default();
            let customer_id = format!("bench-{task}");
            while Instant::now() < end {
                let request = pb::PlaceOrderRequest {
                    customer_id: customer_id.clone(),
                    lines: vec![pb::OrderLine {
                        sku: "TSHIRT-BLK-M".to_owned(),
                        quantity: 1,
                        unit_price: None,
                    }],
                    idempotency_key: String::new(),
                };
                let sent = Instant::now();
                match client.place_order(request).await {
                    Ok(response) => {
                        let took = sent.elapsed();
                        outcome.ok += 1;
                        outcome
                            .latencies_us
                            .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
                        match response.into_inner().order.map(|order| order.status()) {
                            Some(pb::OrderStatus::Confirmed) => outcome.confirmed += 1,
                            Some(pb::OrderStatus::PaymentPending) => outcome.payment_pending += 1,
                            _ => {}
                        }
                    }
                    Err(status) => {
                        *outcome
                            .errors
                            .entry(format!("{:?}", status.code()))
                            .or_default() += 1;
                    }
                }
            }
            outcome
        });
    }
    let mut runs = Vec::with_capacity(concurrency);
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(outcome) => runs.push(outcome),
            Err(error) => {
                let mut failed = Outcome::default();
                failed.errors.insert(format!("task: {error}"), 1);
                runs.push(failed);
            }
        }
    }
    let elapsed = start.elapsed();
    let mut outcome = Outcome::merge(&runs);
    outcome.elapsed = elapsed;
    outcome.server_cpu = clients.server_cpu().saturating_sub(cpu_before);
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank_and_merging_adds_up() {
        let a = Outcome {
            ok: 3,
            latencies_us: vec![1, 2, 3],
            elapsed: Duration::from_secs(1),
            ..Outcome::default()
        };
        let b = Outcome {
            ok: 2,
            latencies_us: vec![10, 4],
            elapsed: Duration::from_secs(1),
            errors: BTreeMap::from([("Unavailable".to_owned(), 1)]),
            ..Outcome::default()
        };
        let merged = Outcome::merge(&[a, b]);
        assert_eq!(merged.latencies_us, [1, 2, 3, 4, 10]);
        assert_eq!(merged.quantile(0.5), Some(Duration::from_micros(3)));
        assert_eq!(merged.quantile(0.99), Some(Duration::from_micros(10)));
        assert_eq!(merged.quantile(0.0), Some(Duration::from_micros(1)));
        assert_eq!((merged.ok, merged.errors["Unavailable"]), (5, 1));
        assert!((merged.rate() - 2.5).abs() < 1e-9);
        assert_eq!(Outcome::default().quantile(0.5), None);
        assert_eq!(Outcome::default().cpu_per_call(), None);
    }
}
