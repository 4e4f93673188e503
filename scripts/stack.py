#!/usr/bin/env python3
"""The local Stormproof stack: what `task up`, `task down`, `task status`, `task logs`,
`task load` and the `chaos:*` / `breaker:*` tasks run.

Where a Docker engine answers, the stack is compose.yaml (Grafana, the OTel Collector and
Jaeger included). Elsewhere it is local processes on 127.0.0.1: payment, order, Prometheus and
Alertmanager with the repo's configs. State, logs and pid files live in .stormproof/ (ignored
by git); `up` twice is harmless, and `down` stops exactly the processes `up` started, by pid.

Standard library only: it runs wherever python3 does.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".stormproof"
RUN = STATE / "run"
LOGS = STATE / "logs"
TOKEN_FILE = STATE / "admin-token"
MODE_FILE = RUN / "mode"

ORDER_API = "http://127.0.0.1:8080"
ORDER_OPS = "http://127.0.0.1:9464"
PAYMENT_OPS = "http://127.0.0.1:9465"
PROMETHEUS = "http://127.0.0.1:9090"
ALERTMANAGER = "http://127.0.0.1:9093"
GRAFANA = "http://127.0.0.1:3000"
JAEGER = "http://127.0.0.1:16686"
DRAIN_SECONDS = 15  # the services drain for 10 s (ORDER_/PAYMENT_SHUTDOWN_GRACE), plus margin


def say(text: str = "") -> None:
    print(text, flush=True)


def fail(text: str) -> "NoReturn":  # noqa: F821
    print(f"stack: {text}", file=sys.stderr, flush=True)
    sys.exit(1)


# === where things are ===


def target_dir() -> Path:
    configured = os.environ.get("CARGO_TARGET_DIR")
    return Path(configured) if configured else ROOT / "target"


def release_binary(name: str) -> Path:
    return target_dir() / "release" / name


def tool(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def compose_command() -> list[str] | None:
    """Compose v2 (the `docker compose` plugin) where it is installed, else Compose v1
    (`docker-compose`, Debian's package), else None. Both read compose.yaml and COMPOSE_FILE."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True,
                                                 timeout=20).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def docker_engine() -> bool:
    """True when a Docker engine answers (not only the client) and a compose is there."""
    if os.environ.get("STORMPROOF_NO_DOCKER") or not shutil.which("docker"):
        return False
    info = subprocess.run(["docker", "info"], capture_output=True, timeout=20)
    return info.returncode == 0 and compose_command() is not None


def mode() -> str:
    """How the running stack was started: "docker" or "local" (also when nothing runs)."""
    return MODE_FILE.read_text().strip() if MODE_FILE.exists() else "local"


def admin_token() -> str:
    """ADMIN_TOKEN from the environment, or one made once and kept in .stormproof/admin-token."""
    if os.environ.get("ADMIN_TOKEN"):
        return os.environ["ADMIN_TOKEN"]
    if TOKEN_FILE.exists():
        return TOKEN_FILE.read_text().strip()
    STATE.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    TOKEN_FILE.write_text(token + "\n")
    TOKEN_FILE.chmod(0o600)
    return token


# === processes ===


class Service:
    def __init__(self, name, argv, env, ready, port):
        self.name, self.argv, self.env, self.ready, self.port = name, argv, env, ready, port
        self.process: subprocess.Popen | None = None  # started by this run

    @property
    def pid_file(self) -> Path:
        return RUN / f"{self.name}.pid"

    @property
    def log(self) -> Path:
        return LOGS / f"{self.name}.log"

    def running_pid(self) -> int | None:
        """The pid from our pid file, if that process is alive and still the program we started
        (the file keeps the pid and the program's path: a recycled pid is not ours)."""
        try:
            pid_text, program = self.pid_file.read_text().splitlines()[:2]
            pid = int(pid_text)
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            return None
        return pid if cmdline.split(b"\0")[0].decode(errors="replace") == program else None

    def alive(self) -> bool:
        """Whether the service runs: the process this run started, asked directly (its
        /proc cmdline reads empty while it is still inside execve: Popen may return that
        early), else the one in the pid file."""
        if self.process is not None:
            return self.process.poll() is None
        return self.running_pid() is not None


def local_services(token: str) -> list[Service]:
    base = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/"),
            "LOG_FORMAT": "json", "RUST_LOG": os.environ.get("RUST_LOG", "info")}
    prometheus = tool("prometheus")
    alertmanager = tool("alertmanager", "prometheus-alertmanager")
    return [
        Service("payment", [str(release_binary("payment"))],
                {**base, "ADMIN_TOKEN": token, "OTEL_SERVICE_NAME": "payment",
                 "PAYMENT_DATABASE_URL": "sqlite://.stormproof/payment.db"},
                f"{PAYMENT_OPS}/readyz", 9465),
        Service("order", [str(release_binary("order"))],
                {**base, "ADMIN_TOKEN": token, "OTEL_SERVICE_NAME": "order",
                 "DATABASE_URL": "sqlite://.stormproof/order.db"},
                f"{ORDER_OPS}/readyz", 9464),
        Service("alertmanager", [alertmanager or "alertmanager",
                                 f"--config.file={ROOT}/prometheus/alertmanager.yml",
                                 f"--storage.path={STATE}/alertmanager",
                                 "--web.listen-address=127.0.0.1:9093",
                                 "--cluster.listen-address="],
                base, f"{ALERTMANAGER}/-/ready", 9093),
        Service("prometheus", [prometheus or "prometheus",
                               f"--config.file={ROOT}/prometheus/prometheus.yml",
                               f"--storage.tsdb.path={STATE}/prometheus",
                               "--web.listen-address=127.0.0.1:9090",
                               "--web.enable-lifecycle"],
                base, f"{PROMETHEUS}/-/ready", 9090),
    ]


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError):
        return False


def port_taken(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# === up ===


def install_monitoring() -> None:
    if tool("prometheus") and tool("alertmanager", "prometheus-alertmanager"):
        return
    say("Prometheus or Alertmanager is not installed: installing Debian's prometheus and "
        "prometheus-alertmanager (scripts/install-deps monitoring)...")
    result = subprocess.run([str(ROOT / "scripts" / "install-deps"), "monitoring"])
    if result.returncode != 0:
        fail("could not install Prometheus and Alertmanager; install them and run `task up` again")


def build() -> None:
    say("Building the release binaries (cargo build --release; the first build takes a few minutes)...")
    result = subprocess.run(
        ["cargo", "build", "--release", "--locked", "--bin", "payment", "--bin", "order", "--bin", "loadgen"],
        cwd=ROOT,
    )
    if result.returncode != 0:
        fail("the build failed")


def start(service: Service) -> str:
    pid = service.running_pid()
    if pid:
        return f"already running (pid {pid})"
    if port_taken(service.port):
        fail(f"port {service.port} ({service.name}) is taken by a process this stack did not start; "
             f"stop it (a system service? `systemctl stop prometheus prometheus-alertmanager`) "
             f"and run `task up` again")
    with open(service.log, "ab") as log:
        process = subprocess.Popen(service.argv, cwd=ROOT, env=service.env, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    service.pid_file.write_text(f"{process.pid}\n{service.argv[0]}\n")
    service.process = process
    return f"started (pid {process.pid})"


def wait_ready(services: list[Service], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    for service in services:
        while not http_ok(service.ready):
            if not service.alive():
                fail(f"{service.name} exited; the end of {service.log.relative_to(ROOT)}:\n{tail(service.log)}")
            if time.monotonic() > deadline:
                fail(f"{service.name} is not ready after {timeout:.0f} s ({service.ready}); "
                     f"the end of {service.log.relative_to(ROOT)}:\n{tail(service.log)}")
            time.sleep(0.3)


def up_local() -> None:
    install_monitoring()
    build()
    for folder in (RUN, LOGS, STATE / "prometheus", STATE / "alertmanager"):
        folder.mkdir(parents=True, exist_ok=True)
    MODE_FILE.write_text("local\n")
    token = admin_token()
    services = local_services(token)
    for service in services:
        say(f"  {service.name:<13} {start(service)}")
    say("Waiting for every health check...")
    wait_ready(services)
    table_local()


def table_local() -> None:
    rows = [
        ("order API", ORDER_API, "POST /v1/orders, GET /v1/products, GET /v1/orders/{id}"),
        ("order gRPC", "127.0.0.1:50051", "stormproof.order.v1.OrderService (reflection on)"),
        ("order ops", ORDER_OPS, "/metrics /readyz; admin: /admin/breaker"),
        ("payment gRPC", "127.0.0.1:50052", "stormproof.payment.v1.PaymentService"),
        ("payment ops", PAYMENT_OPS, "/metrics /readyz; admin: /admin/faults"),
        ("Prometheus", PROMETHEUS, "graphs, /alerts, /targets (rules from prometheus/rules/)"),
        ("Alertmanager", ALERTMANAGER, "alerts routed by severity (prometheus/alertmanager.yml)"),
        ("Grafana", "not available without Docker",
         "use Prometheus' /graph and /alerts; import dashboards/json/*.json into any Grafana"),
        ("traces", "OTLP to localhost:4317", "no collector runs without Docker; spans are dropped quietly"),
        ("admin token", ".stormproof/admin-token", 'curl -H "Authorization: Bearer $(cat .stormproof/admin-token)"'),
        ("state and logs", ".stormproof/", "task logs; task status; task down"),
    ]
    say("")
    say("Stormproof is up (local processes on 127.0.0.1; no Docker engine here)")
    say("")
    width = max(len(row[1]) for row in rows)
    for what, where, note in rows:
        say(f"  {what:<15} {where:<{width}}  {note}")
    next_steps()


def next_steps() -> None:
    say("")
    say("Next, place an order:")
    say(f"  curl -si -X POST {ORDER_API}/v1/orders -H 'content-type: application/json' \\")
    say('    -d \'{"customer_id": "alice", "lines": [{"sku": "SNEAKER-42", "quantity": 1}]}\'')
    say("then run a peak sale with chaos (task load), break payment (task chaos:outage) and watch the "
        "breaker open in Prometheus' /alerts.")


def compose(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """A compose command on compose.yaml, with the ADMIN_TOKEN it interpolates for every
    subcommand (down, ps and logs included)."""
    command = compose_command()
    if command is None:
        fail("the stack runs on compose.yaml but neither `docker compose` nor `docker-compose` is installed")
    env = {**os.environ, "ADMIN_TOKEN": admin_token()}
    return subprocess.run([*command, *args], cwd=ROOT, env=env, **kwargs)


def wait_healthy(timeout: float = 180) -> None:
    """Every container of the stack running, and healthy where it has a health check: what
    Compose v2's `up --wait` does, for Compose v1 too."""
    deadline = time.monotonic() + timeout
    while True:
        ids = compose("ps", "--quiet", capture_output=True, text=True).stdout.split()
        states = {}
        if ids:
            inspected = subprocess.run(
                ["docker", "inspect", "--format",
                 "{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}", *ids],
                capture_output=True, text=True)
            for line in inspected.stdout.splitlines():
                name, *state = line.split()
                states[name.lstrip("/")] = state
        waiting = [name for name, state in states.items() if state[:1] != ["running"] or state[1:] not in ([], ["healthy"])]
        if ids and not waiting:
            return
        if time.monotonic() > deadline:
            fail(f"not healthy after {timeout:.0f} s: {', '.join(sorted(waiting)) or 'no container'}; "
                 f"`task logs` says why")
        time.sleep(1)


def up_docker() -> None:
    RUN.mkdir(parents=True, exist_ok=True)
    MODE_FILE.write_text("docker\n")
    say("A Docker engine answers: starting compose.yaml (compose up --build)...")
    if compose("up", "--detach", "--build").returncode != 0:
        fail("compose up failed; `task logs` says why")
    say("Waiting for every health check...")
    wait_healthy()
    rows = [
        ("order API", ORDER_API), ("order ops", ORDER_OPS), ("payment ops", PAYMENT_OPS),
        ("Grafana", f"{GRAFANA}/d/stormproof-resilience (anonymous viewer)"),
        ("Prometheus", PROMETHEUS), ("Alertmanager", ALERTMANAGER), ("Jaeger", JAEGER),
        ("admin token", ".stormproof/admin-token"),
    ]
    say("")
    say("Stormproof is up (compose.yaml)")
    say("")
    for what, where in rows:
        say(f"  {what:<13} {where}")
    next_steps()


# === down, status, logs ===


def stop(service: Service) -> str:
    pid = service.running_pid()
    if not pid:
        service.pid_file.unlink(missing_ok=True)
        return "not running"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists() and service.running_pid():
        time.sleep(0.2)
    if service.running_pid():
        os.kill(pid, signal.SIGKILL)
        verdict = f"killed (pid {pid}: still running {DRAIN_SECONDS} s after SIGTERM)"
    else:
        verdict = f"stopped (pid {pid})"
    service.pid_file.unlink(missing_ok=True)
    return verdict


def down() -> None:
    if mode() == "docker":
        # The mode is forgotten only once compose has stopped everything: a failed `down`
        # leaves it (and the token the containers use) for the next try.
        if compose("down").returncode != 0:
            fail("compose down failed; the stack may still run (`task status`)")
    else:
        # Reverse order: Prometheus first (no TargetDown on the way), the services last.
        for service in reversed(local_services(admin_token())):
            say(f"  {service.name:<13} {stop(service)}")
    MODE_FILE.unlink(missing_ok=True)


def status() -> None:
    if mode() == "docker":
        sys.exit(compose("ps").returncode)
    for service in local_services(admin_token()):
        pid = service.running_pid()
        health = "ready" if pid and http_ok(service.ready) else ("not ready" if pid else "-")
        say(f"  {service.name:<13} {'pid ' + str(pid) if pid else 'stopped':<12} {health:<10} {service.ready}")


def logs(names: list[str]) -> None:
    if mode() == "docker":
        sys.exit(compose("logs", "--follow", *names).returncode)
    files = [str(LOGS / f"{name}.log") for name in (names or ["payment", "order", "prometheus", "alertmanager"])]
    os.execvp("tail", ["tail", "-n", "20", "-F", *files])


# === admin calls and load ===


def admin(url: str, body: dict) -> None:
    request = urllib.request.Request(
        url, method="PUT", data=json.dumps(body).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {admin_token()}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            say(response.read().decode())
    except urllib.error.HTTPError as error:
        fail(f"PUT {url}: {error.code} {error.read().decode(errors='replace')}")
    except (urllib.error.URLError, OSError) as error:
        fail(f"PUT {url}: {error} (is the stack up? `task up`)")


def load(args: list[str]) -> None:
    if mode() == "docker":
        sys.exit(load_docker(args))
    binary = release_binary("loadgen")
    if not binary.exists():
        build()
    env = {**os.environ, "ADMIN_TOKEN": admin_token()}
    defaults = ["--profile", "peak-sale", "--chaos", "seed"]
    os.execve(str(binary), [str(binary), *(args or defaults)], env)


def load_docker(args: list[str]) -> int:
    """compose.yaml's loadgen service, which knows the in-network addresses; flags given here
    replace its profile and chaos. It is built first (`run` never builds a stale image again),
    runs as the caller's user so that its report lands in ./reports owned by them, and joins
    the network under its service name (--use-aliases) so that Prometheus scrapes it."""
    reports = ROOT / "reports"
    reports.mkdir(exist_ok=True)
    if compose("--profile", "load", "build", "loadgen").returncode != 0:
        fail("building the loadgen image failed")
    user = f"{os.getuid()}:{os.getgid()}"
    # No TTY and no stdin: loadgen reads none, and `task load &` must not stop on SIGTTIN.
    return compose("--profile", "load", "run", "--rm", "-T", "--use-aliases", "--user", user, "loadgen", *args,
                   stdin=subprocess.DEVNULL).returncode


def main() -> None:
    if sys.argv[1:2] == ["load"]:
        # loadgen's own flags pass through untouched (argparse would take them for ours).
        return load([arg for arg in sys.argv[2:] if arg != "--"])
    parser = argparse.ArgumentParser(description="The local Stormproof stack")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="build and start the stack, wait for health, print where things are")
    commands.add_parser("down", help="stop what `up` started")
    commands.add_parser("status", help="what runs, and whether it is ready")
    logs_parser = commands.add_parser("logs", help="follow the logs")
    logs_parser.add_argument("names", nargs="*")
    faults = commands.add_parser("faults", help="PUT payment's /admin/faults")
    faults.add_argument("body", help='JSON, e.g. \'{"outage": true}\'; {} heals')
    breaker = commands.add_parser("breaker", help="PUT order's /admin/breaker")
    breaker.add_argument("state", choices=["closed", "forced_open", "disabled", "reset"])
    commands.add_parser("load", help="run loadgen with the flags given (default: --profile peak-sale --chaos seed)")
    args = parser.parse_args()

    if args.command == "up":
        up_docker() if docker_engine() else up_local()
    elif args.command == "down":
        down()
    elif args.command == "status":
        status()
    elif args.command == "logs":
        logs(args.names)
    elif args.command == "faults":
        try:
            body = json.loads(args.body)
        except json.JSONDecodeError as error:
            fail(f"faults: not JSON: {error}")
        admin(f"{PAYMENT_OPS}/admin/faults", body)
    elif args.command == "breaker":
        admin(f"{ORDER_OPS}/admin/breaker", {"state": args.state})


if __name__ == "__main__":
    main()
