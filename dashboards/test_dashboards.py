"""Checks the dashboards against Grafana's published dashboard schema and our conventions.

Grafana cannot run on the CI machine, so each dashboard is decoded with the types of
grafana-foundation-sdk (generated from Grafana's own schema: the dashboard kind, every panel
plugin's options and field config, the Prometheus query) and encoded again: a key the schema
does not know is dropped on the way, and the test names it. The queries themselves are proven
against a live Prometheus by the e2e tests (e2e/tests/observability.rs).

    scripts/install-deps python   # the venv with grafana-foundation-sdk
    python3 -m unittest discover -s dashboards -p 'test_*.py'
"""
import json
import pathlib
import sys
import unittest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generate  # noqa: E402
from grafana_foundation_sdk.cog import plugins, runtime  # noqa: E402
from grafana_foundation_sdk.cog.encoder import JSONEncoder  # noqa: E402
from grafana_foundation_sdk.models.dashboard import Dashboard  # noqa: E402

plugins.register_default_plugins()

BOARDS = {path.name: json.loads(path.read_text()) for path in sorted((HERE / "json").glob("*.json"))}

# Prometheus annotation queries keep their query at the top level (Grafana migrates it into
# `target` on load); the schema's AnnotationQuery is open to such datasource-specific keys.
ANNOTATION_EXTRAS = {"expr", "step", "titleFormat", "tagKeys", "useValueForTime"}


def without_nulls(value):
    """The SDK omits null members when encoding; `{"value": null}` means the same."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def lost(original, round_tripped, path="$"):
    """Paths present in `original` that the schema round trip dropped or changed."""
    problems = []
    if isinstance(original, dict):
        if not isinstance(round_tripped, dict):
            return [f"{path}: became {type(round_tripped).__name__}"]
        for key, value in original.items():
            if path.startswith("$.annotations.list[") and path.count(".") == 2 and key in ANNOTATION_EXTRAS:
                continue
            if key not in round_tripped:
                problems.append(f"{path}.{key}: not in Grafana's schema")
            else:
                problems += lost(value, round_tripped[key], f"{path}.{key}")
    elif isinstance(original, list):
        if not isinstance(round_tripped, list) or len(round_tripped) != len(original):
            return [f"{path}: list changed"]
        for index, (a, b) in enumerate(zip(original, round_tripped)):
            problems += lost(a, b, f"{path}[{index}]")
    elif original != round_tripped:
        problems.append(f"{path}: {original!r} became {round_tripped!r}")
    return problems


def panels(board):
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


class DashboardTests(unittest.TestCase):
    def test_the_committed_json_is_what_generate_py_writes(self):
        for name, board in generate.DASHBOARDS.items():
            with self.subTest(dashboard=name):
                path = HERE / "json" / name
                self.assertTrue(path.exists(), f"{path} missing: run python3 dashboards/generate.py")
                self.assertEqual(path.read_text(), generate.render(board),
                                 f"{path} is stale: run python3 dashboards/generate.py")

    def test_every_dashboard_survives_grafanas_schema(self):
        self.assertEqual(set(BOARDS), {"resilience-overview.json", "load-test.json", "slo.json"})
        for name, board in BOARDS.items():
            with self.subTest(dashboard=name):
                decoded = Dashboard.from_json(board)
                encoded = json.loads(json.dumps(decoded, cls=JSONEncoder))
                self.assertEqual(lost(without_nulls(board), without_nulls(encoded)), [])

    def test_every_panel_type_and_query_is_one_the_schema_knows(self):
        for name, board in BOARDS.items():
            for panel in panels(board):
                with self.subTest(dashboard=name, panel=panel["title"]):
                    if panel["type"] == "row":
                        continue
                    self.assertIsNotNone(runtime.panelcfg_config(panel["type"]),
                                         f"unknown panel type {panel['type']}")
                    self.assertEqual(panel["datasource"], {"type": "prometheus", "uid": "${datasource}"})
                    for target in panel["targets"]:
                        query = runtime.dataquery_from_json(target, "prometheus")
                        self.assertEqual(type(query).__module__,
                                         "grafana_foundation_sdk.models.prometheus")
                        self.assertTrue(target["expr"].strip())

    def test_uids_are_fixed_and_panels_are_described_with_units(self):
        uids = {board["uid"] for board in BOARDS.values()}
        self.assertEqual(uids, {"stormproof-resilience", "stormproof-load-test", "stormproof-slo"})
        for name, board in BOARDS.items():
            ids = [panel["id"] for panel in panels(board)]
            self.assertEqual(len(ids), len(set(ids)), f"{name}: panel ids repeat")
            for panel in panels(board):
                with self.subTest(dashboard=name, panel=panel["title"]):
                    grid = panel["gridPos"]
                    self.assertLessEqual(grid["x"] + grid["w"], 24)
                    if panel["type"] == "row":
                        continue
                    self.assertGreater(len(panel.get("description", "")), 60,
                                       "say what healthy and broken look like")
                    if panel["type"] != "state-timeline":
                        self.assertTrue(panel["fieldConfig"]["defaults"].get("unit"), "no unit")

    def test_the_resilience_overview_filters_by_instance_and_dependency(self):
        board = BOARDS["resilience-overview.json"]
        names = [variable["name"] for variable in board["templating"]["list"]]
        self.assertEqual(names, ["datasource", "instance", "dependency"])
        for panel in panels(board):
            for target in panel.get("targets", []):
                with self.subTest(panel=panel["title"], expr=target["expr"]):
                    self.assertIn('instance=~"$instance"', target["expr"])


if __name__ == "__main__":
    unittest.main()
