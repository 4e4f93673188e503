"""Structural checks of otel-collector/config.yaml (the collector itself is not needed).

From the repository root, either of:

    python -m unittest otel-collector/test_config.py
    python otel-collector/test_config.py

Needs PyYAML. What a running collector would check too (every component defined and used) is
checked here, and so is what it would not: the pipeline shape that keeps span metrics unbiased,
memory_limiter first everywhere, and the tail-sampling policies.
"""

import os
import re
import unittest

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.environ.get("OTELCOL_CONFIG", os.path.join(HERE, "config.yaml"))
METRICS_DOC = os.path.join(HERE, os.pardir, "docs", "metrics.md")

KINDS = ("receivers", "processors", "exporters", "connectors", "extensions")
# Component types under their current and their renamed (newer collector) names.
SPANMETRICS = {"spanmetrics", "span_metrics"}
OTLP_EXPORTER = {"otlp", "otlp_grpc"}
# Processors that drop spans: none may sit in front of the span metrics.
SAMPLERS = {"tail_sampling", "probabilistic_sampler", "filter"}


def kind_of(component_id):
    """`type[/name]` -> `type`."""
    return component_id.split("/", 1)[0]


def pipeline_signal(pipeline_id):
    return kind_of(pipeline_id)


def parse_duration(text):
    """`2.5ms`, `1s`, `500us` -> seconds (the Go duration forms the collector takes)."""
    match = re.fullmatch(r"([0-9]*\.?[0-9]+)(us|µs|ms|s|m)", str(text).strip())
    if not match:
        raise ValueError(f"not a duration: {text!r}")
    scale = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[match.group(2)]
    return float(match.group(1)) * scale


def load(path=CONFIG):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


class CollectorConfig(unittest.TestCase):
    def setUp(self):
        self.config = load()
        self.pipelines = self.config["service"]["pipelines"]
        self.assertTrue(self.pipelines, "service.pipelines is empty")

    def defined(self, kind):
        return set((self.config.get(kind) or {}).keys())

    def ids_of(self, kind_prefix, role):
        """Component ids of type set `kind_prefix` used as `role` in any pipeline."""
        return {
            component
            for pipeline in self.pipelines.values()
            for component in pipeline.get(role) or []
            if kind_of(component) in kind_prefix
        }

    def the_one(self, kind, types):
        ids = [c for c in self.defined(kind) if kind_of(c) in types]
        self.assertEqual(len(ids), 1, f"expected one {sorted(types)} in {kind}, found {ids}")
        return ids[0], self.config[kind][ids[0]] or {}

    # --- every component named in service is defined, and every one defined is used ---

    def test_every_component_in_service_is_defined(self):
        connectors = self.defined("connectors")
        for name, pipeline in self.pipelines.items():
            for role in ("receivers", "processors", "exporters"):
                allowed = self.defined(role) | (connectors if role != "processors" else set())
                for component in pipeline.get(role) or []:
                    self.assertIn(component, allowed, f"{name}: {role} {component} is not defined")
        for extension in self.config["service"].get("extensions") or []:
            self.assertIn(extension, self.defined("extensions"), f"extension {extension} is not defined")

    def test_every_defined_component_is_used(self):
        used = {kind: set() for kind in KINDS}
        for pipeline in self.pipelines.values():
            for role in ("receivers", "processors", "exporters"):
                used[role].update(pipeline.get(role) or [])
        used["connectors"] = used["receivers"] | used["exporters"]
        used["extensions"] = set(self.config["service"].get("extensions") or [])
        for kind in KINDS:
            unused = self.defined(kind) - used[kind]
            self.assertFalse(unused, f"{kind} defined but not used in service: {sorted(unused)}")

    def test_every_pipeline_has_receivers_and_exporters(self):
        for name, pipeline in self.pipelines.items():
            self.assertIn(pipeline_signal(name), {"traces", "metrics", "logs"}, name)
            self.assertTrue(pipeline.get("receivers"), f"{name} has no receivers")
            self.assertTrue(pipeline.get("exporters"), f"{name} has no exporters")

    # --- processors ---

    def test_memory_limiter_is_first_in_every_pipeline(self):
        for name, pipeline in self.pipelines.items():
            processors = pipeline.get("processors") or []
            self.assertTrue(processors, f"{name} has no processors")
            self.assertEqual(kind_of(processors[0]), "memory_limiter", f"{name}: {processors}")

    def test_batch_is_in_every_pipeline(self):
        for name, pipeline in self.pipelines.items():
            kinds = [kind_of(p) for p in pipeline.get("processors") or []]
            self.assertIn("batch", kinds, f"{name}: {kinds}")

    def test_tail_sampling_keeps_errors_slow_traces_and_a_tenth(self):
        _, tail = self.the_one("processors", {"tail_sampling"})
        policies = {policy["type"]: policy for policy in tail.get("policies") or []}
        # Top-level policies only: the processor keeps a trace when ANY of them samples it.
        # Wrapped in `and`/`composite`, or next to a `drop`, errors could be lost.
        self.assertEqual(set(policies), {"status_code", "latency", "probabilistic"}, tail.get("policies"))
        self.assertEqual(policies["status_code"]["status_code"]["status_codes"], ["ERROR"])
        latency = policies["latency"]["latency"]
        self.assertEqual(latency["threshold_ms"], 500)
        self.assertNotIn("upper_threshold_ms", latency, "an upper bound would drop the slowest traces")
        self.assertEqual(policies["probabilistic"]["probabilistic"]["sampling_percentage"], 10)

    def test_tail_sampling_feeds_the_trace_backend(self):
        jaeger, settings = self.the_one("exporters", OTLP_EXPORTER)
        self.assertEqual(settings.get("endpoint"), "jaeger:4317")
        self.assertIs((settings.get("tls") or {}).get("insecure"), True)
        for name, pipeline in self.pipelines.items():
            if jaeger in (pipeline.get("exporters") or []):
                self.assertEqual(pipeline_signal(name), "traces", name)
                kinds = [kind_of(p) for p in pipeline.get("processors") or []]
                self.assertIn("tail_sampling", kinds, f"{name} exports unsampled traces")
                self.assertLess(kinds.index("tail_sampling"), kinds.index("batch"), f"{name}: {kinds}")

    # --- span metrics see every span ---

    def test_spanmetrics_joins_a_traces_pipeline_to_a_metrics_pipeline(self):
        connector, _ = self.the_one("connectors", SPANMETRICS)
        feeding = [n for n, p in self.pipelines.items() if connector in (p.get("exporters") or [])]
        fed = [n for n, p in self.pipelines.items() if connector in (p.get("receivers") or [])]
        self.assertTrue(feeding, f"no pipeline exports to {connector}")
        self.assertTrue(fed, f"no pipeline receives from {connector}")
        for name in feeding:
            self.assertEqual(pipeline_signal(name), "traces", name)
        for name in fed:
            self.assertEqual(pipeline_signal(name), "metrics", name)
            exporters = [kind_of(e) for e in self.pipelines[name]["exporters"]]
            self.assertIn("prometheus", exporters, name)

    def test_spanmetrics_is_fed_before_any_sampling(self):
        connector, _ = self.the_one("connectors", SPANMETRICS)
        feeding = {n: p for n, p in self.pipelines.items() if connector in (p.get("exporters") or [])}
        self.assertTrue(feeding, f"no pipeline exports to {connector}")
        for name, pipeline in feeding.items():
            kinds = {kind_of(p) for p in pipeline.get("processors") or []}
            self.assertFalse(kinds & SAMPLERS, f"{name} samples before {connector}: {sorted(kinds & SAMPLERS)}")
        # ...and from every receiver any traces pipeline takes spans from.
        fed_from = {r for p in feeding.values() for r in p["receivers"]}
        for name, pipeline in self.pipelines.items():
            if pipeline_signal(name) == "traces":
                missing = set(pipeline["receivers"]) - fed_from
                self.assertFalse(missing, f"spans from {sorted(missing)} ({name}) bypass {connector}")

    def test_spanmetrics_buckets_are_the_services_buckets(self):
        _, settings = self.the_one("connectors", SPANMETRICS)
        histogram = settings.get("histogram") or {}
        self.assertEqual(histogram.get("unit"), "s", "seconds, like every *_seconds histogram")
        buckets = [parse_duration(b) for b in histogram["explicit"]["buckets"]]
        self.assertEqual(buckets, sorted(buckets), "buckets must increase")
        self.assertAlmostEqual(buckets[0], 0.001)
        self.assertAlmostEqual(buckets[-1], 10.0)
        try:
            with open(METRICS_DOC, encoding="utf-8") as handle:
                doc = handle.read()
        except OSError:
            self.skipTest("docs/metrics.md not found")
        match = re.search(r"same buckets, in seconds:\s*([0-9.,\s]+?)\.\s", doc)
        if not match:
            self.skipTest("the bucket sentence of docs/metrics.md was not found")
        documented = [float(x) for x in re.split(r"[,\s]+", match.group(1).strip()) if x]
        self.assertEqual(len(buckets), len(documented), f"{buckets} vs {documented}")
        for ours, theirs in zip(buckets, documented):
            self.assertAlmostEqual(ours, theirs, places=6)

    def test_spanmetrics_dimensions_include_the_rpc_and_http_attributes(self):
        _, settings = self.the_one("connectors", SPANMETRICS)
        names = {d["name"] for d in settings.get("dimensions") or []}
        for attribute in ("rpc.grpc.status_code", "http.route", "http.response.status_code"):
            self.assertIn(attribute, names)

    # --- network ---

    def test_otlp_receiver_listens_on_4317_and_4318_on_all_interfaces(self):
        _, otlp = self.the_one("receivers", {"otlp"})
        protocols = otlp.get("protocols") or {}
        self.assertEqual((protocols.get("grpc") or {}).get("endpoint"), "0.0.0.0:4317")
        self.assertEqual((protocols.get("http") or {}).get("endpoint"), "0.0.0.0:4318")

    def test_prometheus_exporter_serves_8889_and_health_check_13133(self):
        _, prometheus = self.the_one("exporters", {"prometheus"})
        self.assertEqual(prometheus.get("endpoint"), "0.0.0.0:8889")
        _, health = self.the_one("extensions", {"health_check"})
        self.assertEqual(health.get("endpoint"), "0.0.0.0:13133")


if __name__ == "__main__":
    unittest.main()
