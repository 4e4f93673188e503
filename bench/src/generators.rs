//! Item 4's second half: loadgen against wrk, by `loadgen/bench/catalogue.sh` (the script the
//! loadgen issue measured it with), run by this bench so that both figures land in one report.

use std::{path::Path, process::Command};

/// Requests/s of each generator against `GET /v1/products`, one core each, in one script run.
#[derive(Debug)]
pub struct Generators {
    pub wrk_rps: f64,
    pub loadgen_rps: f64,
}

/// Runs the script with the bench's target directory; `Err` says why it could not.
pub fn measure(target_dir: Option<&Path>) -> Result<Generators, String> {
    for tool in ["wrk", "taskset"] {
        if crate::stack::which(tool).is_none() {
            return Err(format!(
                "`{tool}` is not installed (`scripts/install-deps bench` installs it)"
            ));
        }
    }
    if std::thread::available_parallelism().map_or(0, usize::from) < 2 {
        return Err("it pins each side to its own CPU and this machine has one".to_owned());
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../loadgen/bench/catalogue.sh");
    let mut command = Command::new("bash");
    command.arg(&script);
    if let Some(target) = target_dir {
        command.env("CARGO_TARGET_DIR", target);
    }
    let output = command
        .output()
        .map_err(|error| format!("cannot run {}: {error}", script.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "{} failed ({}): {}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    parse(&stdout).ok_or_else(|| format!("cannot read the script's figures from: {stdout}"))
}

/// Reads `  wrk      33505.1 requests/s` and `  loadgen  37647.2 requests/s …`.
fn parse(stdout: &str) -> Option<Generators> {
    let rate = |name: &str| {
        stdout.lines().find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some(name))
                .then(|| words.next()?.parse::<f64>().ok())
                .flatten()
        })
    };
    Some(Generators {
        wrk_rps: rate("wrk")?,
        loadgen_rps: rate("loadgen")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_rates_from_the_scripts_summary() {
        let stdout = "  loadgen statuses: {'200': 376470}\nGET /v1/products, one core each, 32 connections, 10 s:\n  wrk      33505.12 requests/s\n  loadgen  37647.0 requests/s (goose, 1 s ramp included)\n  ratio    1.12x wrk (goal >= 0.3x)\n";
        let read = parse(stdout).expect("figures");
        assert_eq!((read.wrk_rps, read.loadgen_rps), (33505.12, 37647.0));
        assert!(parse("  wrk      n/a requests/s\n").is_none());
    }
}
