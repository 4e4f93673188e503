//! The live view while a run goes: what is offered and achieved, how fast answers come, how
//! they are answered, what order's breaker and backlog say, which chaos step is in force, and
//! where each SLO stands so far.
//!
//! On a terminal a compact panel is redrawn every second (indicatif draws and clears it, so
//! the panel stays in place and the verdict prints below it); elsewhere (CI, a pipe) one plain
//! line is printed every `--progress-interval`. Failed requests are counted by kind and
//! summarised once per interval with a first example, never one line each.

use std::{
    collections::{BTreeMap, VecDeque},
    io::IsTerminal as _,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::{arrivals::Dispatcher, chaos::Timeline, lock, slo::Slo};

/// The answer classes the panel counts.
const CLASSES: [&str; 7] = ["201", "202", "402", "4xx", "5xx", "shed", "transport"];
/// Response-time percentiles are over this many most recent seconds.
const WINDOW_SECONDS: usize = 10;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("constant, valid bounds")
}

/// What the scenarios record as they go; read by the panel.
#[derive(Debug)]
pub struct Live {
    answers: AtomicU64,
    classes: [AtomicU64; CLASSES.len()],
    place_order: [AtomicU64; 2], // answered 201/202, all
    /// Per second of the last [`WINDOW_SECONDS`]: response times (µs) of every request.
    window: Mutex<VecDeque<(u64, Histogram<u64>)>>,
    /// PlaceOrder's response times over the whole run, for the p99 SLO's standing.
    place_order_times: Mutex<Histogram<u64>>,
    /// Failures since the last line, by kind: (count, first example).
    errors: Mutex<BTreeMap<String, (u64, String)>>,
    began: Instant,
}

impl Default for Live {
    fn default() -> Self {
        Self {
            answers: AtomicU64::new(0),
            classes: Default::default(),
            place_order: Default::default(),
            window: Mutex::new(VecDeque::new()),
            place_order_times: Mutex::new(histogram()),
            errors: Mutex::new(BTreeMap::new()),
            began: Instant::now(),
        }
    }
}

impl Live {
    /// Records one answer (`status`, or `error` when none came) of `request`, `elapsed` from
    /// when it was due.
    pub fn record(
        &self,
        request: &'static str,
        status: Option<u16>,
        elapsed: Duration,
        error: Option<&str>,
    ) {
        let class = match status {
            Some(201) => 0,
            Some(202) => 1,
            Some(402) => 2,
            Some(503) => 5,
            Some(code) if (400..500).contains(&code) => 3,
            Some(code) if code >= 500 => 4,
            Some(_) => usize::MAX, // 2xx other than an order's: counted nowhere special
            None => 6,
        };
        self.answers.fetch_add(1, Ordering::Relaxed);
        if let Some(counter) = self.classes.get(class) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(elapsed.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        if request == crate::scenarios::PLACE_ORDER {
            self.place_order[1].fetch_add(1, Ordering::Relaxed);
            if matches!(status, Some(201 | 202)) {
                self.place_order[0].fetch_add(1, Ordering::Relaxed);
            }
            lock(&self.place_order_times).saturating_record(micros);
        }
        let second = self.began.elapsed().as_secs();
        {
            let mut window = lock(&self.window);
            if window.back().is_none_or(|(at, _)| *at != second) {
                window.push_back((second, histogram()));
                while window.len() > WINDOW_SECONDS {
                    window.pop_front();
                }
            }
            if let Some((_, histogram)) = window.back_mut() {
                histogram.saturating_record(micros);
            }
        }
        let failure = match (status, error) {
            (None, Some(error)) => Some((format!("transport ({request})"), error.to_owned())),
            (Some(code), _) if code >= 500 => {
                Some((format!("{code} ({request})"), format!("HTTP {code}")))
            }
            _ => None,
        };
        if let Some((kind, example)) = failure {
            let mut errors = lock(&self.errors);
            let entry = errors.entry(kind).or_insert((0, example));
            entry.0 += 1;
        }
    }

    /// p50 and p99 over the last [`WINDOW_SECONDS`], milliseconds.
    fn recent(&self) -> Option<(f64, f64)> {
        let now = self.began.elapsed().as_secs();
        let window = lock(&self.window);
        let mut merged = histogram();
        for (at, histogram) in window.iter() {
            if now.saturating_sub(*at) < WINDOW_SECONDS as u64 {
                let _ = merged.add(histogram);
            }
        }
        (!merged.is_empty()).then(|| {
            (
                merged.value_at_quantile(0.5) as f64 / 1000.0,
                merged.value_at_quantile(0.99) as f64 / 1000.0,
            )
        })
    }

    fn take_errors(&self) -> BTreeMap<String, (u64, String)> {
        std::mem::take(&mut *lock(&self.errors))
    }

    fn class(&self, index: usize) -> u64 {
        self.classes[index].load(Ordering::Relaxed)
    }
}

/// What the panel needs besides the recorder.
#[derive(Debug, Clone)]
pub struct Context {
    /// The profile's name and model, as the first line says them.
    pub title: String,
    /// When the load started (the schedule's clock under the open model).
    pub start: Instant,
    /// How long the load lasts (for `stress`, unknown ahead: `None`).
    pub total: Option<Duration>,
    /// The open model's dispatcher now (each stress rung has its own): offered and dropped
    /// so far. `None` under the closed model.
    pub dispatcher: Option<Arc<Mutex<Option<Arc<Dispatcher>>>>>,
    /// The chaos timeline.
    pub timeline: Timeline,
    /// The SLOs, for their standing.
    pub slo: Slo,
    /// Order's ops port, for its breaker state and backlog.
    pub order_ops_url: String,
    /// Seconds between plain lines when not on a terminal.
    pub interval: Duration,
}

/// Shows the live view until `ended` turns true; returns once it has cleared the panel.
pub async fn show(
    live: Arc<Live>,
    context: Context,
    http: reqwest::Client,
    mut ended: tokio::sync::watch::Receiver<bool>,
) {
    let terminal = std::io::stdout().is_terminal();
    let every = if terminal {
        Duration::from_secs(1)
    } else {
        context.interval.max(Duration::from_secs(1))
    };
    let panel = terminal.then(|| {
        let bar =
            indicatif::ProgressBar::new(context.total.map_or(0, |total| total.as_secs().max(1)));
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Snapshot::default();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = ended.wait_for(|ended| *ended) => break,
        }
        let order = order_state(&http, &context.order_ops_url).await;
        let now = Snapshot::take(&live, &context);
        let errors = live.take_errors();
        let frame = Frame {
            live: &live,
            context: &context,
            now: &now,
            rates: now.rates_since(&last, every),
            order: &order,
            errors: &errors,
        };
        match &panel {
            Some(bar) => {
                bar.set_position(context.start.elapsed().as_secs());
                bar.set_message(frame.panel());
            }
            None => println!("{}", frame.line()),
        }
        last = now;
    }
    if let Some(bar) = panel {
        bar.finish_and_clear();
    }
}

/// Counters at one moment.
#[derive(Debug, Default, Clone, Copy)]
struct Snapshot {
    offered: u64,
    dropped: u64,
    answered: u64,
}

impl Snapshot {
    fn take(live: &Live, context: &Context) -> Self {
        let current = context
            .dispatcher
            .as_ref()
            .and_then(|slot| lock(slot).clone());
        let (offered, dropped) = current.map_or((0, 0), |dispatcher| {
            (dispatcher.counts().offered(), dispatcher.counts().dropped())
        });
        Self {
            offered,
            dropped,
            answered: live.answers.load(Ordering::Relaxed),
        }
    }

    /// (offered, achieved, answered) per second since `before`.
    fn rates_since(&self, before: &Snapshot, every: Duration) -> (f64, f64, f64) {
        let per_second =
            |now: u64, then: u64| now.saturating_sub(then) as f64 / every.as_secs_f64();
        (
            per_second(self.offered, before.offered),
            per_second(self.offered - self.dropped, before.offered - before.dropped),
            per_second(self.answered, before.answered),
        )
    }
}

/// Order's breaker state (to payment) and backlog, from its /metrics.
#[derive(Debug, Default)]
struct OrderState {
    breaker: Option<String>,
    backlog: Option<f64>,
}

async fn order_state(http: &reqwest::Client, ops_url: &str) -> OrderState {
    let url = format!("{}/metrics", ops_url.trim_end_matches('/'));
    let Ok(response) = http
        .get(&url)
        .timeout(Duration::from_millis(500))
        .send()
        .await
    else {
        return OrderState::default();
    };
    let Ok(text) = response.text().await else {
        return OrderState::default();
    };
    let breaker = text.lines().find_map(|line| {
        let rest = line.strip_prefix("circuit_breaker_state{")?;
        let (labels, value) = rest.split_once("} ")?;
        (value.trim() == "1").then_some(())?;
        let state = labels.split("state=\"").nth(1)?.split('"').next()?;
        Some(state.to_owned())
    });
    OrderState {
        breaker,
        backlog: crate::runner::backlog(&text),
    }
}

impl OrderState {
    /// "breaker closed · backlog 42", joined by `separator`.
    fn text(&self, separator: &str) -> String {
        format!(
            "breaker {}{separator}backlog {}",
            self.breaker.as_deref().unwrap_or("unknown"),
            self.backlog
                .map_or_else(|| "unknown".to_owned(), |backlog| format!("{backlog:.0}"))
        )
    }
}

/// "201 12 · 202 3 · …", joined by `separator`.
fn classes_text(live: &Live, separator: &str) -> String {
    CLASSES
        .iter()
        .enumerate()
        .map(|(index, class)| format!("{class} {}", live.class(index)))
        .collect::<Vec<_>>()
        .join(separator)
}

fn clock(duration: Duration) -> String {
    let seconds = duration.as_secs();
    format!("{}:{:02}", seconds / 60, seconds % 60)
}

/// The step in force and the next one with its countdown.
fn chaos_text(context: &Context) -> String {
    let elapsed = context.start.elapsed();
    let steps = &context.timeline.steps;
    if steps.is_empty() {
        return "none".into();
    }
    let current = steps.iter().rev().find(|step| step.at <= elapsed);
    let next = steps.iter().find(|step| step.at > elapsed);
    let mut text = match current {
        Some(step) => format!("{} (since {})", step.name, clock(step.at)),
        None => "none yet".into(),
    };
    match next {
        Some(step) => text.push_str(&format!(
            " · next: {} in {}",
            step.name,
            clock(step.at - elapsed)
        )),
        None => text.push_str(" · no more steps"),
    }
    text
}

/// Each SLO's standing so far, as the verdict will judge it.
fn standing(live: &Live, context: &Context, now: &Snapshot) -> String {
    let mark = |ok: bool| if ok { "ok" } else { "BREAKING" };
    let [answered, all] = [
        live.place_order[0].load(Ordering::Relaxed),
        live.place_order[1].load(Ordering::Relaxed),
    ];
    let share = if all == 0 {
        1.0
    } else {
        answered as f64 / all as f64
    };
    let p99 = {
        let times = lock(&live.place_order_times);
        (!times.is_empty()).then(|| times.value_at_quantile(0.99) as f64 / 1000.0)
    };
    let server_errors = live.class(4);
    let mut parts = vec![
        format!(
            "answered {:.2} % {}",
            share * 100.0,
            mark(share >= context.slo.answered_share_min)
        ),
        match p99 {
            Some(p99) => format!(
                "PlaceOrder p99 {p99:.0} ms {}",
                mark(p99 <= context.slo.place_order_p99_ms_max)
            ),
            None => "PlaceOrder p99 -".into(),
        },
        format!(
            "5xx {server_errors} {}",
            mark(server_errors <= context.slo.server_errors_max)
        ),
    ];
    if context.dispatcher.is_some() {
        let dropped = if now.offered == 0 {
            0.0
        } else {
            now.dropped as f64 / now.offered as f64
        };
        parts.push(format!(
            "dropped {:.2} % {}",
            dropped * 100.0,
            mark(dropped <= context.slo.dropped_share_max)
        ));
    }
    parts.join(" · ")
}

fn errors_text(errors: &BTreeMap<String, (u64, String)>) -> Option<String> {
    (!errors.is_empty()).then(|| {
        errors
            .iter()
            .map(|(kind, (count, example))| format!("{count} × {kind}: {example}"))
            .collect::<Vec<_>>()
            .join("; ")
    })
}

fn progress(context: &Context) -> String {
    let elapsed = context.start.elapsed();
    match context.total {
        Some(total) => {
            let width = 24;
            let done = ((elapsed.as_secs_f64() / total.as_secs_f64().max(1.0)) * width as f64)
                .clamp(0.0, width as f64) as usize;
            format!(
                "[{}{}] {} / {}",
                "#".repeat(done),
                "-".repeat(width - done),
                clock(elapsed),
                clock(total)
            )
        }
        None => clock(elapsed),
    }
}

/// One redraw's figures.
struct Frame<'a> {
    live: &'a Live,
    context: &'a Context,
    now: &'a Snapshot,
    /// Offered, achieved and answered per second since the last redraw.
    rates: (f64, f64, f64),
    order: &'a OrderState,
    errors: &'a BTreeMap<String, (u64, String)>,
}

impl Frame<'_> {
    /// The terminal panel.
    fn panel(&self) -> String {
        let Frame {
            live,
            context,
            now,
            order,
            errors,
            ..
        } = *self;
        let (offered, achieved, answered) = self.rates;
        let mut lines = vec![format!("{} {}", context.title, progress(context))];
        lines.push(if context.dispatcher.is_some() {
        format!(
            "rate     offered {offered:.1}/s · achieved {achieved:.1}/s · answers {answered:.1}/s · dropped {}",
            now.dropped
        )
    } else {
        format!("rate     answers {answered:.1}/s")
    });
        lines.push(match live.recent() {
            Some((p50, p99)) => format!("latency  p50 {p50:.1} ms · p99 {p99:.1} ms (last 10 s)"),
            None => "latency  no answer in the last 10 s".into(),
        });
        lines.push(format!("answers  {}", classes_text(live, " · ")));
        lines.push(format!("order    {}", order.text(" · ")));
        lines.push(format!("chaos    {}", chaos_text(context)));
        lines.push(format!("SLOs     {}", standing(live, context, now)));
        if let Some(errors) = errors_text(errors) {
            lines.push(format!("errors   {errors}"));
        }
        lines.join("\n")
    }

    /// The plain line.
    fn line(&self) -> String {
        let Frame {
            live,
            context,
            now,
            order,
            errors,
            ..
        } = *self;
        let (offered, achieved, answered) = self.rates;
        let mut parts = vec![format!("progress {}", progress(context))];
        if context.dispatcher.is_some() {
            parts.push(format!(
                "offered {offered:.1}/s achieved {achieved:.1}/s dropped {}",
                now.dropped
            ));
        }
        parts.push(format!("answers {answered:.1}/s"));
        if let Some((p50, p99)) = live.recent() {
            parts.push(format!("p50 {p50:.1} ms p99 {p99:.1} ms"));
        }
        parts.push(classes_text(live, " "));
        parts.push(order.text(" "));
        parts.push(format!("chaos {}", chaos_text(context)));
        if let Some(errors) = errors_text(errors) {
            parts.push(format!("errors {errors}"));
        }
        parts.join(" | ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_counted_by_class_and_failures_summarised_by_kind() {
        let live = Live::default();
        for (status, error) in [
            (Some(201), None),
            (Some(202), None),
            (Some(402), None),
            (Some(404), None),
            (Some(500), None),
            (Some(503), None),
            (None, Some("connection refused")),
            (None, Some("connection reset")),
        ] {
            live.record(
                crate::scenarios::PLACE_ORDER,
                status,
                Duration::from_millis(5),
                error,
            );
        }
        let counts: Vec<u64> = (0..CLASSES.len()).map(|class| live.class(class)).collect();
        assert_eq!(counts, [1, 1, 1, 1, 1, 1, 2]);
        let errors = live.take_errors();
        assert_eq!(
            errors["transport (PlaceOrder)"],
            (2, "connection refused".to_owned())
        );
        assert_eq!(errors["500 (PlaceOrder)"].0, 1);
        assert_eq!(errors["503 (PlaceOrder)"].0, 1);
        assert!(
            live.take_errors().is_empty(),
            "summarised once, then counted anew"
        );
        let (p50, p99) = live.recent().expect("recent answers");
        assert!((4.9..5.1).contains(&p50) && (4.9..5.1).contains(&p99));
    }
}
