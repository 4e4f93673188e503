#!/usr/bin/env python3
"""The README's quick start, run as a new user would: its first command brings the stack up,
an order goes through the URL it printed, Prometheus scrapes both services, and `task down`
leaves no process it started and every port free.

Run by .ci/run on the CI machine (no Docker engine there, so the stack is local processes).
It binds the stack's fixed ports (8080, 9090, ...): don't run it beside a stack of your own.

    python3 tests/stack/quickstart.py
"""
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PORTS = [8080, 50051, 9464, 50052, 9465, 9090, 9093]


def first_command():
    """The first line of the README's quick start code block."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return block.splitlines()[0].split("#", 1)[0].strip()


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def alive(pid):
    """Running, not exited (a zombie waiting for its parent has exited)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def port_open(port):
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def check(condition, message):
    if not condition:
        print(f"quickstart: FAILED: {message}", file=sys.stderr)
        sys.exit(1)


def main():
    command = first_command()
    check(command.startswith("./taskw up"), f"the quick start's first command changed: {command!r}")
    busy = [port for port in PORTS if port_open(port)]
    check(not busy, f"ports {busy} are taken before the test: stop what runs there")

    print(f"quickstart: running the README's first command: {command}", flush=True)
    started = time.monotonic()
    up = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    print(up.stdout[-3000:], flush=True)
    check(up.returncode == 0, f"`{command}` exited {up.returncode}:\n{up.stderr[-3000:]}")
    print(f"quickstart: up in {time.monotonic() - started:.0f} s", flush=True)

    try:
        urls = dict(re.findall(r"^  (order API|Prometheus|Alertmanager)\s+(http://\S+)", up.stdout, re.M))
        check(set(urls) == {"order API", "Prometheus", "Alertmanager"}, f"the table lacks URLs: {urls}")
        check("Grafana" in up.stdout and "not available without Docker" in up.stdout,
              "the table does not say once that Grafana is not available")

        order = json.dumps({"customer_id": "quickstart", "lines": [{"sku": "SNEAKER-42", "quantity": 1}]})
        request = urllib.request.Request(f"{urls['order API']}/v1/orders", data=order.encode(),
                                         headers={"content-type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.load(response)
            check(response.status == 201 and body.get("status") == "CONFIRMED",
                  f"the order was answered {response.status} {body}")
        print(f"quickstart: order {body.get('order_id')} CONFIRMED", flush=True)

        deadline = time.monotonic() + 60
        while True:
            targets = get_json(f"{urls['Prometheus']}/api/v1/targets")["data"]["activeTargets"]
            up_jobs = {t["labels"]["job"] for t in targets if t["health"] == "up"}
            managers = get_json(f"{urls['Prometheus']}/api/v1/alertmanagers")["data"]["activeAlertmanagers"]
            if {"order", "payment"} <= up_jobs and managers:
                break
            check(time.monotonic() < deadline,
                  f"after 60 s Prometheus has {up_jobs} up and alertmanagers {managers}")
            time.sleep(1)
        print(f"quickstart: Prometheus scrapes {sorted(up_jobs)} and sends to {managers[0]['url']}", flush=True)
        rules = get_json(f"{urls['Prometheus']}/api/v1/rules")["data"]["groups"]
        check(len(rules) >= 5, f"Prometheus loaded {len(rules)} rule groups")
    finally:
        pids = {}
        for pid_file in (ROOT / ".stormproof" / "run").glob("*.pid"):
            pids[pid_file.stem] = int(pid_file.read_text().split()[0])
        down = subprocess.run([str(ROOT / "taskw"), "down"], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
        print(down.stdout, flush=True)

    check(down.returncode == 0, f"task down exited {down.returncode}: {down.stderr}")
    check(set(pids) == {"payment", "order", "prometheus", "alertmanager"}, f"pid files: {pids}")
    left = {name: pid for name, pid in pids.items() if alive(pid)}
    check(not left, f"still running after task down: {left}")
    busy = [port for port in PORTS if port_open(port)]
    check(not busy, f"ports still open after task down: {busy}")
    print("quickstart: PASSED (stack up, order placed, targets up, everything stopped)", flush=True)


if __name__ == "__main__":
    main()
