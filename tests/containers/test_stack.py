"""compose.yaml run as its users run it, in containers: `task up`, a short `task load`, `task
status`, `task logs` and `task down`, with Compose speaking Docker's API.

No Docker engine runs on the CI machine and no image registry can be reached, but Debian's
podman runs containers: `podman system service` serves Docker's API on a socket, and Debian's
Compose v1 (docker-compose 1.29; Compose v2 cannot be installed here) drives compose.yaml
through it, with compose.override.yaml beside this file changing only what cannot be had here
(base images, Grafana, the collector, Jaeger; it says what and why). Podman's settings are
containers.conf beside this file (CONTAINERS_CONF; /etc is not touched).

Podman starts health checks with systemd timers, and no systemd runs here: while the stack
runs, this test runs `podman healthcheck run` on every container of the stack every two
seconds, which is what those timers would do. Nothing else stands in for an engine.

It needs root (rootful podman), podman, runc, netavark, aardvark-dns, iptables, mmdebstrap and
docker-compose (.ci/run installs them), and the release binaries of order, payment, loadgen
and probe (`task test` builds them first). Without podman it is skipped, except in CI.
It binds the stack's fixed ports (8080, 9090, ...): don't run it beside a stack of your own.

    python3 -m unittest discover -s tests/containers -p 'test_*.py'
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PROJECT = "stormproof-test"
BASE_IMAGE = "localhost/stormproof-test/base:bookworm"
# The base of every image: what the services need (CA certificates), what compose.yaml's
# health checks run (wget), and Prometheus and Alertmanager from Debian.
BASE_PACKAGES = ["ca-certificates", "wget", "prometheus", "prometheus-alertmanager"]
BINARIES = ["order", "payment", "loadgen", "probe"]
PROMETHEUS = "http://127.0.0.1:9090"
NEEDS = ["podman", "runc", "mmdebstrap", "docker", "docker-compose", "iptables"]


def target_dir() -> Path:
    configured = os.environ.get("CARGO_TARGET_DIR")
    return Path(configured) if configured else ROOT / "target"


def get_json(url: str, timeout: float = 10):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def prometheus_query(expr: str, start: float, end: float) -> list:
    query = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": 5})
    return get_json(f"{PROMETHEUS}/api/v1/query_range?{query}")["data"]["result"]


class Podman:
    """Podman with this folder's settings, and its Docker API on a socket of its own."""

    def __init__(self, folder: Path):
        self.socket = folder / "podman.sock"
        self.env = {**os.environ, "CONTAINERS_CONF": str(HERE / "containers.conf")}
        with open(folder / "podman-service.log", "wb") as log:
            self.service = subprocess.Popen(
                ["podman", "system", "service", "--time=0", f"unix://{self.socket}"],
                env=self.env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            if self.service.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"podman system service did not start:\n"
                                     f"{(folder / 'podman-service.log').read_text()}")
            time.sleep(0.2)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)}: {result.stderr}")
        return result

    def containers(self) -> list[str]:
        return self.run("ps", "--all", "--quiet", "--filter", f"label=com.docker.compose.project={PROJECT}").stdout.split()

    def stop(self) -> None:
        os.killpg(self.service.pid, signal.SIGTERM)
        self.service.wait(timeout=30)


class HealthTicker(threading.Thread):
    """What podman's systemd timers would do: run each container's health check every 2 s."""

    def __init__(self, podman: Podman):
        super().__init__(daemon=True)
        self.podman, self.done = podman, threading.Event()

    def run(self) -> None:
        while not self.done.wait(2):
            for container in self.podman.containers():
                # A container without a health check, or not running, answers an error: fine.
                self.podman.run("healthcheck", "run", container, check=False)


@unittest.skipUnless(all(shutil.which(tool) for tool in NEEDS) or os.environ.get("CI"),
                     f"the containerised stack needs {', '.join(NEEDS)} (.ci/run installs them)")
class ComposeStackTests(unittest.TestCase):
    def setUp(self):
        missing = [tool for tool in NEEDS if not shutil.which(tool)]
        self.assertEqual(missing, [], "CI must install these (.ci/run)")
        self.assertEqual(os.getuid(), 0, "rootful podman: run as root")
        self.folder = Path(tempfile.mkdtemp(prefix="stormproof-containers-"))
        self.podman = Podman(self.folder)
        self.env = {**self.podman.env,
                    "DOCKER_HOST": f"unix://{self.podman.socket}",
                    "COMPOSE_FILE": f"compose.yaml:{(HERE / 'compose.override.yaml').relative_to(ROOT)}",
                    "COMPOSE_PROJECT_NAME": PROJECT,
                    # docker-compose 1.29 builds through the API; no BuildKit there.
                    "DOCKER_BUILDKIT": "0", "COMPOSE_DOCKER_CLI_BUILD": "0"}
        self.env.pop("STORMPROOF_NO_DOCKER", None)
        self.ticker = HealthTicker(self.podman)
        self.figures = {}

    def tearDown(self):
        self.ticker.done.set()
        # Whatever happened, leave nothing running (volumes too: a fresh stack next time).
        subprocess.run(["docker-compose", "down", "--volumes", "--remove-orphans", "--timeout", "5"],
                       cwd=ROOT, env={**self.env, "ADMIN_TOKEN": "teardown"}, capture_output=True)
        self.podman.run("image", "prune", "--force", check=False)
        self.podman.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
        print("\ncontainerised stack:", json.dumps(self.figures), flush=True)

    def task(self, *args: str, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run([str(ROOT / "taskw"), *args], cwd=ROOT, env=self.env, timeout=timeout,
                              capture_output=True, text=True, **kwargs)

    def make_base_image(self) -> None:
        """Debian bookworm from Debian's packages (mmdebstrap), imported as the base image;
        kept between runs, made again when the package list changes."""
        label = ",".join(BASE_PACKAGES)
        found = self.podman.run("image", "inspect", "--format", "{{index .Labels \"packages\"}}",
                                BASE_IMAGE, check=False)
        if found.returncode == 0 and found.stdout.strip() == label:
            self.figures["base_image"] = "reused"
            return
        started = time.monotonic()
        rootfs = self.folder / "rootfs.tar"
        made = subprocess.run(["mmdebstrap", "--variant=minbase", f"--include={label}",
                               "--aptopt=APT::Install-Recommends \"false\"", "bookworm", str(rootfs)],
                              capture_output=True, text=True)
        self.assertEqual(made.returncode, 0, f"mmdebstrap failed:\n{made.stderr[-3000:]}")
        self.podman.run("import", "--change", f"LABEL packages={label}", str(rootfs), BASE_IMAGE)
        rootfs.unlink()
        self.figures["base_image_s"] = round(time.monotonic() - started, 1)

    def stage_binaries(self) -> None:
        """The Dockerfile's BINARIES=prebuilt stage copies .stormproof/image-bin/ (stripped)."""
        staged = ROOT / ".stormproof" / "image-bin"
        shutil.rmtree(staged, ignore_errors=True)
        (staged / "data").mkdir(parents=True)
        for name in BINARIES:
            binary = target_dir() / "release" / name
            self.assertTrue(binary.exists(), f"{binary}: run cargo build --release first")
            subprocess.run(["strip", "-o", str(staged / name), str(binary)], check=True)

    def test_task_up_load_status_logs_and_down_run_the_compose_stack(self):
        self.make_base_image()
        self.stage_binaries()
        self.ticker.start()

        # task up: builds the five images and starts compose.yaml; it returns once every
        # container runs and every health check passes.
        started = time.monotonic()
        up = self.task("up")
        self.assertEqual(up.returncode, 0, f"task up failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}")
        self.figures["up_s"] = round(time.monotonic() - started, 1)
        self.assertIn("Stormproof is up (compose.yaml)", up.stdout)
        images = self.podman.run("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
        built = sorted(image for image in images if "/stormproof" in image and image != BASE_IMAGE)
        self.figures["images"] = built
        for name in ["order", "payment", "prometheus", "alertmanager"]:
            with self.subTest(service=name):
                state = self.podman.run("inspect", "--format", "{{.State.Status}} {{.State.Health.Status}}",
                                        f"{PROJECT}_{name}_1").stdout.split()
                self.assertEqual(state, ["running", "healthy"])

        # An order through the published API port.
        order = urllib.request.Request(
            "http://127.0.0.1:8080/v1/orders", method="POST",
            data=json.dumps({"customer_id": "containers", "lines": [{"sku": "SNEAKER-42", "quantity": 1}]}).encode(),
            headers={"content-type": "application/json", "idempotency-key": f"containers-{time.time()}"})
        with urllib.request.urlopen(order, timeout=10) as response:
            self.assertIn(response.status, (201, 202))

        # task load, short: smoke stretched to a minute with the seed chaos timeline, as the
        # container user writing into ./reports. Prometheus must scrape loadgen meanwhile.
        reports_before = set((ROOT / "reports").iterdir()) if (ROOT / "reports").exists() else set()
        load_started = time.time()
        load = subprocess.Popen(
            [str(ROOT / "taskw"), "load", "--", "--profile", "smoke", "--time-scale", "20", "--chaos", "seed"],
            cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        up_jobs: set[str] = set()
        deadline = time.monotonic() + 120
        while load.poll() is None and time.monotonic() < deadline:
            targets = get_json(f"{PROMETHEUS}/api/v1/targets")["data"]["activeTargets"]
            up_jobs |= {target["labels"]["job"] for target in targets if target["health"] == "up"}
            time.sleep(2)
        try:
            output, _ = load.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            load.kill()
            raise
        load_ended = time.time()
        # 0: every SLO held; 1: the verdict says one broke. Anything else is a failed run.
        self.assertIn(load.returncode, (0, 1), f"task load failed:\n{output[-4000:]}")
        self.figures["targets_up_during_load"] = sorted(up_jobs)
        self.assertTrue({"order", "payment", "loadgen"} <= up_jobs, up_jobs)
        alertmanagers = get_json(f"{PROMETHEUS}/api/v1/alertmanagers")["data"]["activeAlertmanagers"]
        self.assertEqual([item["url"] for item in alertmanagers], ["http://alertmanager:9093/api/v2/alerts"])

        # The report: written by the container's user into the bind-mounted folder.
        new = set((ROOT / "reports").iterdir()) - reports_before
        self.assertEqual(len(new), 1, f"reports: {new}\n{output[-2000:]}")
        report = new.pop()
        summary = report / "summary.json"
        self.assertTrue(summary.exists(), list(report.iterdir()))
        self.assertEqual(summary.stat().st_uid, os.getuid())
        # loadgen asked the compose Prometheus for the server's view (LOADGEN_PROMETHEUS_URL).
        server = json.loads(summary.read_text())["server"]
        self.assertTrue(server["available"], server)
        self.figures["server_alerts_fired"] = server["view"]["alerts_fired"]
        sent = json.loads(summary.read_text())["requests"]
        self.figures["requests"] = {name: counts["total"] for name, counts in sent.items()}
        self.assertGreater(sent["PlaceOrder"]["total"], 0)

        # Every query of the Load test dashboard, and the chaos annotations of all three
        # dashboards, return data over the run (a panel that says what its emptiness means
        # may be empty).
        time.sleep(6)  # one more scrape and rule evaluation
        queries = []
        for file in ["load-test.json", "resilience-overview.json", "slo.json"]:
            board = json.loads((ROOT / "dashboards" / "json" / file).read_text())
            queries += [(f"{file}: annotation {item['name']}", item["expr"], True)
                        for item in board["annotations"]["list"] if item.get("expr")]
            if file == "load-test.json":
                for panel in board["panels"]:
                    designed_empty = "noValue" in panel.get("fieldConfig", {}).get("defaults", {})
                    queries += [(f"{file}: panel {panel['title']} ({target['refId']})", target["expr"], not designed_empty)
                                for target in panel.get("targets", [])]
        empty = [place for place, expr, needs_data in queries if needs_data
                 and not prometheus_query(expr.replace("$__rate_interval", "1m"), load_started, load_ended + 5)]
        self.figures["dashboard_queries_checked"] = len(queries)
        self.assertEqual(empty, [])

        # task status and task logs work in this mode.
        status = self.task("status", timeout=60)
        self.assertEqual(status.returncode, 0, status.stderr)
        for name in ["order", "payment", "prometheus", "alertmanager"]:
            self.assertIn(f"{PROJECT}_{name}_1", status.stdout)
        logs = subprocess.Popen([str(ROOT / "taskw"), "logs", "--", "order"], cwd=ROOT, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        time.sleep(5)
        os.killpg(logs.pid, signal.SIGTERM)
        logged, _ = logs.communicate(timeout=30)
        self.assertIn('"level":"INFO"', logged.replace(" ", ""), logged[-2000:])

        # task down stops and removes every container of the stack and forgets the mode.
        down = self.task("down", timeout=180)
        self.assertEqual(down.returncode, 0, f"{down.stdout}\n{down.stderr}")
        self.assertEqual(self.podman.containers(), [])
        self.assertFalse((ROOT / ".stormproof" / "run" / "mode").exists())


if __name__ == "__main__":
    unittest.main()
