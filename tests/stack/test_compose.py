"""compose.yaml as Docker Compose reads it, and our conventions for it.

No Docker engine runs on the CI machine, so the file is checked by the Compose client alone:
`docker compose config` where the compose plugin is installed, else Debian's `docker-compose`
(v1.29, the same Compose file schema and checks: unknown keys, services that do not exist,
bad depends_on conditions). Then: every image pinned by version, every port on 127.0.0.1,
every read-only bind mount present, a health check on every long-running service that can run one.

    python3 -m unittest discover -s tests/stack -p 'test_compose.py'
"""
import json
import os
import pathlib
import re
import shutil
import subprocess
import unittest

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
    env = {k: v for k, v in os.environ.items() if k != "ADMIN_TOKEN"}
    if admin_token is not None:
        env["ADMIN_TOKEN"] = admin_token
    return subprocess.run([*compose_command(), "--file", str(ROOT / "compose.yaml"), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True)


class ComposeTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        checked = compose("config", "--quiet")
        assert checked.returncode == 0, f"compose refuses compose.yaml:\n{checked.stderr}"
        # v1 prints YAML only; JSON through the YAML module would need PyYAML, so ask for the
        # services one by one where JSON is not offered.
        rendered = compose("config")
        cls.rendered = rendered.stdout
        cls.services = compose("config", "--services").stdout.split()

    def test_compose_accepts_the_file_and_needs_the_admin_token(self):
        self.assertEqual(sorted(self.services), sorted([
            "payment", "order", "loadgen", "prometheus", "alertmanager", "grafana",
            "otel-collector", "jaeger"]))
        refused = compose("config", "--quiet", admin_token=None)
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("ADMIN_TOKEN", refused.stderr)

    def test_every_image_is_pinned_by_version(self):
        images = [line.split("image:", 1)[1].strip() for line in self.rendered.splitlines()
                  if line.strip().startswith("image:")]
        self.assertEqual(len(images), 8, images)
        for image in images:
            with self.subTest(image=image):
                name, _, tag = image.rpartition(":")
                self.assertTrue(name and tag, f"{image} has no tag")
                self.assertNotIn(tag, {"latest", "main", "master", "nightly"})
                self.assertRegex(tag, r"\d+\.\d+")

    def test_every_published_port_is_on_loopback(self):
        published = [line.strip() for line in self.rendered.splitlines()
                     if line.strip().startswith("- ") and line.strip().count(":") >= 2 and "/tcp" in line]
        self.assertTrue(published)
        for port in published:
            with self.subTest(port=port):
                self.assertTrue(port.startswith("- 127.0.0.1:"), port)

    def test_bind_mounts_exist_and_long_running_services_have_health_checks(self):
        text = (ROOT / "compose.yaml").read_text()
        for line in text.splitlines():
            line = line.strip()
            # Read-only mounts are the configs the services need; a writable one (./reports)
            # is an output folder that Docker makes when missing.
            if line.startswith("- ./") and line.endswith(":ro"):
                path = line[2:].split(":", 1)[0]
                with self.subTest(mount=path):
                    self.assertTrue((ROOT / path).exists(), f"{path} is mounted but missing")
        for service in self.services:
            if service in NO_HEALTH_CHECK or service == "loadgen":
                continue
            block = re.search(rf"^  {re.escape(service)}:\n((?:    .*\n|\n)*)", text, re.M)
            with self.subTest(service=service):
                self.assertIsNotNone(block)
                self.assertIn("    healthcheck:", block.group(1))


if __name__ == "__main__":
    unittest.main()
