"""scripts/stack.py in Docker mode, against a stand-in compose: every compose call carries the
admin token compose.yaml interpolates, and a failed `down` keeps the stack recorded as
running. (tests/containers/ runs the real compose; this pins the failure paths it cannot.)

    python3 -m unittest discover -s tests/stack -p 'test_*.py'
"""
import importlib.util
import json
import os
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Records its arguments and ADMIN_TOKEN, fails like compose.yaml does without the token, and
# exits with $FAKE_COMPOSE_EXIT.
FAKE_COMPOSE = """#!/usr/bin/env python3
import json, os, sys
with open(os.environ["FAKE_COMPOSE_LOG"], "a") as log:
    log.write(json.dumps({"args": sys.argv[1:], "token": os.environ.get("ADMIN_TOKEN")}) + "\\n")
if not os.environ.get("ADMIN_TOKEN"):
    sys.exit("required variable ADMIN_TOKEN is missing a value")
sys.exit(int(os.environ.get("FAKE_COMPOSE_EXIT", "0")))
"""


def load_stack(state: Path):
    spec = importlib.util.spec_from_file_location("stack_under_test", ROOT / "scripts" / "stack.py")
    stack = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stack)
    stack.STATE, stack.RUN, stack.LOGS = state, state / "run", state / "logs"
    stack.TOKEN_FILE, stack.MODE_FILE = state / "admin-token", state / "run" / "mode"
    return stack


class DockerModeTests(unittest.TestCase):
    def setUp(self):
        self.folder = tempfile.TemporaryDirectory()
        folder = Path(self.folder.name)
        bin_dir = folder / "bin"
        bin_dir.mkdir()
        fake = bin_dir / "docker-compose"
        fake.write_text(FAKE_COMPOSE)
        fake.chmod(0o755)
        self.log = folder / "compose.log"
        self.saved = dict(os.environ)
        # Only the stand-in on PATH (no `docker`: Compose v1 is chosen), and no token in the
        # environment: stack.py must take it from its file.
        os.environ.update({"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE_COMPOSE_LOG": str(self.log)})
        for name in ("ADMIN_TOKEN", "FAKE_COMPOSE_EXIT"):
            os.environ.pop(name, None)
        self.stack = load_stack(folder / "state")
        self.stack.RUN.mkdir(parents=True)
        self.stack.MODE_FILE.write_text("docker\n")
        self.token = self.stack.admin_token()

    def tearDown(self):
        os.environ.clear()
        os.environ.update(self.saved)
        self.folder.cleanup()

    def calls(self):
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def test_down_status_and_logs_pass_the_admin_token(self):
        for command in (self.stack.status, lambda: self.stack.logs(["order"])):
            with self.assertRaises(SystemExit) as exited:
                command()
            self.assertEqual(exited.exception.code, 0)
        self.stack.down()
        calls = self.calls()
        self.assertEqual([call["args"] for call in calls], [["ps"], ["logs", "--follow", "order"], ["down"]])
        self.assertEqual({call["token"] for call in calls}, {self.token})
        self.assertFalse(self.stack.MODE_FILE.exists(), "a clean down forgets the mode")

    def test_a_failed_down_keeps_the_stack_recorded_as_running(self):
        os.environ["FAKE_COMPOSE_EXIT"] = "1"
        with self.assertRaises(SystemExit) as exited:
            self.stack.down()
        self.assertNotEqual(exited.exception.code, 0)
        self.assertEqual(self.stack.MODE_FILE.read_text(), "docker\n")
        self.assertTrue(self.stack.TOKEN_FILE.exists())

    def test_load_makes_the_reports_folder_builds_and_runs_as_the_caller_with_its_alias(self):
        reports = ROOT / "reports"
        existed = reports.exists()
        with self.assertRaises(SystemExit) as exited:
            self.stack.load(["--profile", "smoke"])
        self.assertEqual(exited.exception.code, 0)
        self.assertTrue(reports.is_dir())
        build, run = [call["args"] for call in self.calls()]
        self.assertEqual(build, ["--profile", "load", "build", "loadgen"])
        self.assertEqual(run[:3], ["--profile", "load", "run"])
        self.assertIn("--use-aliases", run)
        self.assertEqual(run[run.index("--user") + 1], f"{os.getuid()}:{os.getgid()}")
        self.assertEqual(run[-3:], ["loadgen", "--profile", "smoke"])
        if not existed:
            reports.rmdir()


if __name__ == "__main__":
    unittest.main()
