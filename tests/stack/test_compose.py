"""compose.yaml as Docker Compose reads it, and our conventions for it.

The file is checked by the Compose client alone (tests/containers/ runs it): `docker compose
config` where the compose plugin (v2) is installed, else Debian's `docker-compose` (v1.29, the
same Compose file schema and checks: unknown keys, services that do not exist, bad depends_on
conditions). The rendered file is read as YAML, in either version's form: v2 leaves out services
behind a profile unless the profile is named, and prints ports in the long form. Then: every
image pinned by version, every port on 127.0.0.1, every read-only bind mount present, a health
check on every long-running service that can run one, built images never pulled, and every
Prometheus target of compose/targets/ a service and port of the file.

    python3 -m unittest discover -s tests/stack -p 'test_compose.py'
"""
import json
import os
import pathlib
from pathlib import Path
import re
import shutil
import subprocess
import unittest

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Images without a shell or HTTP client, whose health is probed from outside instead.
NO_HEALTH_CHECK = {"otel-collector"}


def compose_command():
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"],
                                                  capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise AssertionError("neither `docker compose` nor `docker-compose` is installed "
                         "(apt-get install docker-compose; scripts/install-deps test does)")


def compose(*args, admin_token="compose-config-check"):
    """Compose on compose.yaml alone (not a COMPOSE_FILE of the caller's), with the load profile."""
    env = {k: v for k, v in os.environ.items() if k not in {"ADMIN_TOKEN", "COMPOSE_FILE", "COMPOSE_PROFILES"}}
    if admin_token is not None:
        env["ADMIN_TOKEN"] = admin_token
    return subprocess.run([*compose_command(), "--file", str(ROOT / "compose.yaml"), "--profile", "load", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True)


def published_ports(service: dict) -> list[tuple[str, str, str]]:
    """(host address, host port, container port) of each published port, from either form
    Compose prints: v1's short "127.0.0.1:8080:8080/tcp" or v2's long mapping."""
    ports = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            ports.append((port.get("host_ip", ""), str(port.get("published", "")), str(port["target"])))
        else:
            spec = str(port).split("/", 1)[0]
            parts = spec.rsplit(":", 2)
            host_ip, published, target = ([""] * (3 - len(parts)) + parts)
            ports.append((host_ip, published, target))
    return ports


class PortFormTests(unittest.TestCase):
    def test_both_forms_compose_prints_read_the_same(self):
        short = {"ports": ["127.0.0.1:8080:8080/tcp", "9464"]}
        long = {"ports": [{"mode": "ingress", "host_ip": "127.0.0.1", "target": 8080, "published": "8080",
                           "protocol": "tcp"}, {"mode": "ingress", "target": 9464, "protocol": "tcp"}]}
        self.assertEqual(published_ports(short), [("127.0.0.1", "8080", "8080"), ("", "", "9464")])
        self.assertEqual(published_ports(long), published_ports(short))


class ComposeTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        checked = compose("config", "--quiet")
        assert checked.returncode == 0, f"compose refuses compose.yaml:\n{checked.stderr}"
        rendered = compose("config")
        assert rendered.returncode == 0, rendered.stderr
        cls.config = yaml.safe_load(rendered.stdout)
        cls.services = compose("config", "--services").stdout.split()

    def test_compose_accepts_the_file_and_needs_the_admin_token(self):
        expected = ["payment", "order", "loadgen", "prometheus", "alertmanager", "grafana",
                    "otel-collector", "jaeger"]
        self.assertEqual(sorted(self.services), sorted(expected))
        self.assertEqual(sorted(self.config["services"]), sorted(expected))
        refused = compose("config", "--quiet", admin_token=None)
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("ADMIN_TOKEN", refused.stderr)

    def test_every_image_is_pinned_by_version(self):
        images = [service["image"] for service in self.config["services"].values()]
        self.assertEqual(len(images), 8, images)
        for image in images:
            with self.subTest(image=image):
                name, _, tag = image.rpartition(":")
                self.assertTrue(name and tag, f"{image} has no tag")
                self.assertNotIn(tag, {"latest", "main", "master", "nightly"})
                self.assertRegex(tag, r"\d+\.\d+")

    def test_prometheus_and_alertmanager_are_the_versions_the_checks_run(self):
        """promtool and amtool check the rules and configs in the tests: the images run the
        same versions (the first two parts)."""
        services = self.config["services"]
        for service, tool in [("prometheus", "promtool"), ("alertmanager", "amtool")]:
            with self.subTest(service=service):
                if not shutil.which(tool):
                    self.fail(f"{tool} is not installed (scripts/install-deps test)")
                printed = subprocess.run([tool, "--version"], capture_output=True, text=True)
                version = re.search(r"version (\d+\.\d+)\.", printed.stdout + printed.stderr).group(1)
                tag = services[service]["image"].rpartition(":")[2].lstrip("v")
                self.assertEqual(".".join(tag.split(".")[:2]), version, services[service]["image"])

    def test_every_published_port_is_on_loopback(self):
        published = [(name, port) for name, service in self.config["services"].items()
                     for port in published_ports(service)]
        self.assertGreaterEqual(len(published), 10)
        for name, (host_ip, host_port, _) in published:
            with self.subTest(service=name, port=host_port):
                self.assertEqual(host_ip, "127.0.0.1")

    def test_built_images_are_built_never_pulled(self):
        built = {name: service for name, service in self.config["services"].items() if "build" in service}
        self.assertEqual(sorted(built), ["loadgen", "order", "payment"])
        for name, service in built.items():
            with self.subTest(service=name):
                self.assertEqual(service.get("pull_policy"), "build")

    def test_every_compose_prometheus_target_is_a_service_port(self):
        """prometheus/compose/targets/ names services and ports that compose.yaml has."""
        exposed = {"order": "9464", "payment": "9465", "loadgen": "9466", "alertmanager": "9093",
                   "otel-collector": "8889"}
        files = sorted((ROOT / "prometheus" / "compose" / "targets").glob("*.yml"))
        self.assertEqual([path.stem for path in files], sorted(exposed))
        for path in files:
            groups = yaml.safe_load(path.read_text())
            targets = [target for group in groups for target in group["targets"]]
            with self.subTest(file=path.name):
                self.assertEqual(targets, [f"{path.stem}:{exposed[path.stem]}"])
                self.assertIn(path.stem, self.config["services"])

    def test_bind_mounts_exist_and_long_running_services_have_health_checks(self):
        for name, service in self.config["services"].items():
            for volume in service.get("volumes", []):
                source = volume["source"] if isinstance(volume, dict) else str(volume).split(":", 1)[0]
                read_only = volume.get("read_only", False) if isinstance(volume, dict) else str(volume).endswith(":ro")
                # Read-only mounts are the configs the services need; a writable one (./reports)
                # is an output folder that `task load` makes.
                if read_only:
                    with self.subTest(service=name, mount=source):
                        self.assertTrue(Path(source).exists(), f"{source} is mounted but missing")
            if name in NO_HEALTH_CHECK or name == "loadgen":
                continue
            with self.subTest(service=name):
                self.assertIn("test", service.get("healthcheck", {}))

    def test_alertmanager_webhooks_reach_the_host(self):
        """compose.yaml's Alertmanager sends to the Docker host, not its own loopback."""
        alertmanager = self.config["services"]["alertmanager"]
        config_mount = [volume for volume in alertmanager["volumes"]
                        if "/etc/alertmanager/alertmanager.yml" in str(volume)]
        self.assertEqual(len(config_mount), 1)
        source = config_mount[0]["source"] if isinstance(config_mount[0], dict) else config_mount[0].split(":", 1)[0]
        urls = [receiver_config["url"]
                for receiver in yaml.safe_load(Path(source).read_text())["receivers"]
                for receiver_config in receiver.get("webhook_configs", [])]
        self.assertTrue(urls)
        for url in urls:
            with self.subTest(url=url):
                self.assertNotRegex(url, r"//(127\.|localhost)")
        extra_hosts = alertmanager.get("extra_hosts")
        hosts = extra_hosts if isinstance(extra_hosts, list) else [f"{k}:{v}" for k, v in (extra_hosts or {}).items()]
        self.assertIn("host.docker.internal:host-gateway", [host.replace("=", ":") for host in hosts])


if __name__ == "__main__":
    unittest.main()
