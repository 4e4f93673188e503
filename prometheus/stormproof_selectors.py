#!/usr/bin/env python3
"""The selectors, objectives and thresholds the dashboards and the rules share, in one place
(as the kubernetes-mixin keeps its config): dashboards/generate.py builds its queries and
lines from them, and `--check` holds prometheus/rules/*.yml to them, so a dashboard cannot
draw a 300 ms line beside rules that judge 250 ms.

    python3 prometheus/stormproof_selectors.py --check   # exit 1 naming what the rules differ in

Standard library only: the rules are read as text, each value looked for where the rules
spell it.
"""
import argparse
import pathlib
import re
import sys

# Scrape jobs (prometheus/prometheus.yml, the compose targets, the ServiceMonitors).
ORDER_JOB = 'job="order"'
PAYMENT_JOB = 'job="payment"'
LOADGEN = 'job="loadgen"'

# The PlaceOrder SLOs: availability (201/202 over every answer but client errors) and latency
# (answered within LATENCY_SLO_SECONDS, a bucket boundary of the histogram).
AVAILABILITY_OBJECTIVE = 0.999
LATENCY_OBJECTIVE = 0.99
LATENCY_SLO_SECONDS = 0.3

# The burn-rate alerts' windows (short and long: pages 5m/1h and 30m/6h, tickets 2h/1d and
# 6h/3d) and the burn rate each pair alerts above, with the colour the dashboards draw it in.
BURN_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
BURN_RATE_LINES = ((1, "light-yellow"), (3, "yellow"), (6, "orange"), (14.4, "red"))
FAST_BURN = BURN_RATE_LINES[-1][0]

RULES = pathlib.Path(__file__).resolve().parent / "rules"


def problems(recording: str | None = None, alerts: str | None = None) -> list[str]:
    """Where the rules (recording.yml's and alerts.yml's text, the repository's by default) do
    not say what this module says."""
    recording = recording if recording is not None else (RULES / "recording.yml").read_text()
    alerts = alerts if alerts is not None else (RULES / "alerts.yml").read_text()
    found = []

    def objective(sli, value):
        pattern = rf"record: job:{sli}:objective\s+expr: label_replace\(vector\(([0-9.]+)\)"
        match = re.search(pattern, recording)
        if not match or float(match.group(1)) != value:
            found.append(f"job:{sli}:objective is not {value} in recording.yml")

    objective("order_availability", AVAILABILITY_OBJECTIVE)
    objective("order_latency", LATENCY_OBJECTIVE)
    buckets = set(re.findall(r'le="([0-9.]+)"', recording))
    if buckets != {f"{LATENCY_SLO_SECONDS:g}"}:
        found.append(f"the latency SLI reads buckets {sorted(buckets)}, not le=\"{LATENCY_SLO_SECONDS:g}\"")
    windows = set(re.findall(r"job:order_availability:burn_rate(\w+)", recording))
    if windows != set(BURN_WINDOWS):
        found.append(f"recording.yml's burn-rate windows are {sorted(windows)}, not {sorted(BURN_WINDOWS)}")
    lines = {float(value) for value in re.findall(r"burn_rate\w+ > ([0-9.]+)", alerts)}
    if lines != {float(value) for value, _ in BURN_RATE_LINES}:
        found.append(f"alerts.yml alerts on burn rates {sorted(lines)}, not {[v for v, _ in BURN_RATE_LINES]}")
    for job in {m for m in re.findall(r'job="(\w+)"', recording + alerts)} - {"order", "payment", "loadgen"}:
        found.append(f'the rules select job="{job}", which no scrape job is')
    if ORDER_JOB not in recording:
        found.append(f"recording.yml never selects {ORDER_JOB}")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="hold the rules to these values")
    args = parser.parse_args()
    if not args.check:
        parser.print_help()
        return 0
    found = problems()
    for problem in found:
        print(f"prometheus/rules: {problem}", file=sys.stderr)
    if not found:
        print("the rules use the shared selectors, objectives and burn-rate lines")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
