//! The live view: a panel on a terminal, interval lines elsewhere, and failures summarised
//! once per interval rather than one line each.

use std::time::Duration;

use crate::helpers::{Stack, loadgen_binary, loadgen_on_a_terminal};

/// On a terminal (a pseudo-terminal here) the panel shows the phase and progress, the
/// offered and achieved rates, order's breaker state and backlog, and the chaos step in
/// force with the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_the_panel_shows_progress_rates_breaker_and_chaos() {
    let stack = Stack::spawn(&[]).await;
    let reports = tempfile::tempdir().expect("dir");
    let exit = loadgen_on_a_terminal(&stack.args(
        reports.path(),
        &["--stages", "20:6s", "--chaos", "seed", "--seed", "1"],
    ))
    .await;
    let screen = exit.stdout.replace('\r', "");
    assert_eq!(exit.code, Some(0), "{screen}");
    for shown in [
        "open model [",
        "/ 0:06",
        "rate     offered ",
        "achieved ",
        "latency  p50 ",
        "answers  201 ",
        "chaos    seed (since 0:00) · next: heal in 0:0",
        "SLOs     answered ",
    ] {
        assert!(
            screen.contains(shown),
            "`{shown}` not on the screen:\n{screen}"
        );
    }
    assert!(
        ["closed", "open", "half_open"]
            .iter()
            .any(|state| screen.contains(&format!("order    breaker {state} · backlog "))),
        "the breaker's state is on the screen:\n{screen}"
    );
    assert!(screen.contains("verdict: PASS"), "{screen}");
}

/// Not on a terminal: the header, one `progress` line per interval, then the verdict; no
/// line per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_on_a_terminal_one_line_per_interval() {
    let stack = Stack::spawn(&[]).await;
    let reports = tempfile::tempdir().expect("dir");
    let exit = loadgen_binary(&stack.args(
        reports.path(),
        &["--stages", "20:5s", "--progress-interval", "1s", "--quiet"],
    ))
    .await;
    assert_eq!(exit.code, Some(0), "{}\n{}", exit.stdout, exit.stderr);
    let before_verdict: Vec<&str> = exit
        .stdout
        .lines()
        .take_while(|line| !line.starts_with("| SLO"))
        .filter(|line| !line.trim().is_empty())
        .collect();
    let progress = before_verdict
        .iter()
        .filter(|line| line.starts_with("progress ["))
        .count();
    // 5 s of arrivals, the answers in flight and the backlog read: about 5 to 8 lines.
    assert!(
        (4..=12).contains(&progress),
        "{progress} lines:\n{}",
        exit.stdout
    );
    // goose prints "N users launched." once the pool is up, whatever its quiet setting.
    let launched = before_verdict
        .iter()
        .filter(|line| line.ends_with("users launched."))
        .count();
    assert_eq!(
        before_verdict.len(),
        progress + launched + 1,
        "the header and progress lines only:\n{}",
        exit.stdout
    );
    assert!(exit.stderr.trim().is_empty(), "{}", exit.stderr);
}

/// order stops in the middle of a run: every request from then on fails. The run prints a
/// bounded number of lines (failures counted and summarised per interval, goose's per-request
/// warnings kept off the terminal) and fails its SLOs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_against_a_stopped_order_prints_a_bounded_number_of_lines() {
    let mut stack = Stack::spawn(&[]).await;
    let reports = tempfile::tempdir().expect("dir");
    let args = stack.args(
        reports.path(),
        &[
            "--stages",
            "50:8s",
            "--progress-interval",
            "2s",
            "--quiet",
            "--request-timeout",
            "1s",
        ],
    );
    let run = tokio::spawn(async move { loadgen_binary(&args).await });
    tokio::time::sleep(Duration::from_secs(3)).await;
    stack.stop_order();
    let exit = run.await.expect("loadgen task");
    assert_eq!(exit.code, Some(1), "{}\n{}", exit.stdout, exit.stderr);
    let lines = exit.stdout.lines().count() + exit.stderr.lines().count();
    // Hundreds of requests failed; the output is the header, a progress line every 2 s
    // (about 6), the verdict table (about 12) and a few more.
    assert!(
        lines <= 40,
        "{lines} lines:\n{}\n{}",
        exit.stdout,
        exit.stderr
    );
    let summarised = exit
        .stdout
        .lines()
        .filter(|line| line.contains("errors ") && line.contains(" × transport"))
        .count();
    assert!(summarised >= 1, "failures summarised:\n{}", exit.stdout);
}
