"""Writes the Stormproof Grafana dashboards (dashboards/json/*.json) from this one file.

Dashboards as code keep the three dashboards consistent (one datasource variable, the same
units, legends and descriptions everywhere) and reviewable. Panels, queries, variables and
layout are built with grafana-foundation-sdk's typed builders (generated from Grafana's own
schema, so a misspelt option fails here, not in Grafana); the JSON is committed once, in
dashboards/json/, which compose mounts and dashboards/kustomization.yaml turns into the
Kubernetes ConfigMaps, so users copy or provision it without running anything. After editing,
run (with the venv that `scripts/install-deps python` makes)

    python dashboards/generate.py          # rewrites dashboards/json/
    python dashboards/generate.py --check  # exits 1 if the committed JSON is stale (CI)

The JSON is checked against Grafana's schema (dashboards/test_dashboards.py) and every query
against a live Prometheus (e2e tests).

Every panel has a description saying what a healthy and a broken picture look like. A panel
whose emptiness is a designed state (no errors yet) sets `noValue` to say so; every other
panel must show data during a load test, which the e2e test asserts.
"""
import argparse
import json
import pathlib
import sys

from grafana_foundation_sdk.builders import (
    common,
    dashboard as board,
    heatmap as heatmap_panel,
    prometheus,
    stat as stat_panel,
    statetimeline,
    timeseries as timeseries_panel,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as models_common
from grafana_foundation_sdk.models import dashboard as models
from grafana_foundation_sdk.models import heatmap as models_heatmap
from grafana_foundation_sdk.models import prometheus as models_prometheus

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "prometheus"))
from stormproof_selectors import (  # noqa: E402  (shared with the rules' check)
    AVAILABILITY_OBJECTIVE,
    BURN_RATE_LINES,
    BURN_WINDOWS,
    FAST_BURN,
    LATENCY_SLO_SECONDS,
    LOADGEN,
    ORDER_JOB,
    PAYMENT_JOB,
)

OUT = pathlib.Path(__file__).resolve().parent / "json"
DS = models.DataSourceRef(type_val="prometheus", uid="${datasource}")
ORDER = f'{ORDER_JOB}, instance=~"$instance"'
PAYMENT = f'{PAYMENT_JOB}, instance=~"$instance"'
DEP = 'instance=~"$instance", dependency=~"$dependency"'
PLACE_ORDER = f'{ORDER}, http_route="/v1/orders", http_request_method="POST"'
RATE = "$__rate_interval"
SLO_MS = int(LATENCY_SLO_SECONDS * 1000)


# === building blocks ===


def target(expr, legend="__auto", ref="A", heatmap=False):
    query = prometheus.Dataquery().datasource(DS).ref_id(ref).expr(expr).legend_format(legend)
    return query.format(models_prometheus.PromQueryFormat.HEATMAP) if heatmap else query


def targets(*pairs):
    return [target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(pairs)]


def thresholds(*steps):
    """steps: a base colour, then (value, colour) pairs."""
    base, *rest = steps
    return (board.ThresholdsConfig()
            .mode(models.ThresholdsMode.ABSOLUTE)
            .steps([models.Threshold(value=None, color=base)]
                   + [models.Threshold(value=value, color=colour) for value, colour in rest]))


def override(matcher_id, options, *properties):
    return (matcher_id, options, [models.DynamicConfigValue(id_val=k, value=v) for k, v in properties])


def right_axis(regex, unit):
    """An override moving the series whose name matches `regex` to a right axis in `unit`."""
    return override("byRegexp", regex, ("custom.axisPlacement", "right"), ("unit", unit))


def dashed_red(matcher_id, options):
    """An override drawing the series the matcher picks as a dashed red line: a threshold or
    an objective beside the measured series."""
    return override(matcher_id, options,
                    ("custom.lineStyle", {"fill": "dash", "dash": [10, 10]}),
                    ("color", {"mode": "fixed", "fixedColor": "red"}),
                    ("custom.fillOpacity", 0))


def fixed_colour(name, colour):
    return override("byName", name, ("color", {"mode": "fixed", "fixedColor": colour}))


def with_overrides(panel, overrides):
    for matcher_id, options, properties in overrides:
        panel = panel.with_override(models.MatcherConfig(id_val=matcher_id, options=options),
                                    properties)
    return panel


def with_targets(panel, tgts):
    for tgt in tgts:
        panel = panel.with_target(tgt)
    return panel


def timeseries(title, description, tgts, unit, *, stack=False, min_=0, max_=None,
               threshold=None, overrides=(), no_value=None, fill=10):
    panel = (timeseries_panel.Panel()
             .title(title).description(description).datasource(DS).unit(unit)
             .color_scheme(board.FieldColor().mode(models.FieldColorModeId.PALETTE_CLASSIC))
             .draw_style(models_common.GraphDrawStyle.LINE).line_width(1).fill_opacity(fill)
             .show_points(models_common.VisibilityMode.NEVER).span_nulls(False)
             .stacking(common.StackingConfig()
                       .mode(models_common.StackingMode.NORMAL if stack
                             else models_common.StackingMode.NONE)
                       .group("A"))
             .thresholds_style(common.GraphThresholdsStyleConfig().mode(
                 models_common.GraphThresholdsStyleMode.LINE_AND_AREA if threshold
                 else models_common.GraphThresholdsStyleMode.OFF))
             .thresholds(threshold or thresholds("green"))
             .legend(common.VizLegendOptions()
                     .display_mode(models_common.LegendDisplayMode.TABLE)
                     .placement(models_common.LegendPlacement.RIGHT).show_legend(True)
                     .calcs(["lastNotNull", "max"]))
             .tooltip(common.VizTooltipOptions().mode(models_common.TooltipDisplayMode.MULTI)
                      .sort(models_common.SortOrder.DESCENDING)))
    if min_ is not None:
        panel = panel.min(min_)
    if max_ is not None:
        panel = panel.max(max_)
    if no_value is not None:
        panel = panel.no_value(no_value)
    return with_overrides(with_targets(panel, tgts), overrides)


def stat(title, description, tgts, unit, threshold, *, decimals=None):
    panel = (stat_panel.Panel()
             .title(title).description(description).datasource(DS).unit(unit)
             .thresholds(threshold)
             .color_scheme(board.FieldColor().mode(models.FieldColorModeId.THRESHOLDS))
             .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).fields("")
                             .values(False))
             .color_mode(models_common.BigValueColorMode.BACKGROUND)
             .graph_mode(models_common.BigValueGraphMode.AREA)
             .justify_mode(models_common.BigValueJustifyMode.AUTO)
             .orientation(models_common.VizOrientation.AUTO)
             .text_mode(models_common.BigValueTextMode.AUTO))
    if decimals is not None:
        panel = panel.decimals(decimals)
    return with_targets(panel, tgts)


def heatmap(title, description, expr):
    return (heatmap_panel.Panel()
            .title(title).description(description).datasource(DS).unit("s")
            .with_target(target(expr, "{{le}}", heatmap=True))
            .calculate(False)
            .y_axis(heatmap_panel.YAxisConfig().unit("s")
                    .axis_placement(models_common.AxisPlacement.LEFT))
            .rows_frame(heatmap_panel.RowsHeatmapOptions().layout(models_common.HeatmapCellLayout.LE))
            .color(heatmap_panel.HeatmapColorOptions()
                   .mode(models_heatmap.HeatmapColorMode.SCHEME).scheme("Oranges")
                   .scale(models_heatmap.HeatmapColorScale.EXPONENTIAL).exponent(0.5).steps(64)
                   .reverse(False))
            .cell_gap(1)
            .filter_values(heatmap_panel.FilterValueRange().le(1e-9))
            .mode(models_common.TooltipDisplayMode.SINGLE)
            .show_y_histogram()
            .show_legend())


def row(title):
    return board.Row(title).collapsed(False)


def query_variable(name, label, description, query):
    """A multi-value variable from a label_values() query, "All" (`.*`) by default."""
    return (board.QueryVariable(name).label(label).description(description).datasource(DS)
            .query(query).refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .include_all(True).multi(True).all_value(".*")
            .current(models.VariableOption(text="All", value="$__all"))
            .sort(models.VariableSort.ALPHABETICAL_ASC)
            .hide(models.VariableHide.DONT_HIDE))


DATASOURCE_VARIABLE = (board.DatasourceVariable("datasource").label("Data source")
                       .type("prometheus").hide(models.VariableHide.DONT_HIDE).regex(""))
INSTANCE_VARIABLE = query_variable(
    "instance", "Instance", "order and payment processes (host:ops port)",
    'label_values(up{job=~"order|payment"}, instance)')
DEPENDENCY_VARIABLE = query_variable(
    "dependency", "Dependency",
    "the protected call (the breaker, retry and bulkhead's `dependency` label)",
    "label_values(circuit_breaker_state, dependency)",
)

# What the SDK's generic annotation has no field for: Prometheus annotations' own options.
CHAOS_ANNOTATION_EXTRA = {"step": "5s", "titleFormat": "chaos: {{step}}", "tagKeys": "step",
                          "useValueForTime": False}
CHAOS_ANNOTATION = (board.AnnotationQuery().name("Chaos steps").datasource(DS).enable(True)
                    .hide(False).icon_color("red")
                    .expr("max by (step) (loadgen_chaos_step) == 1"))
BUILT_IN_ANNOTATION = (board.AnnotationQuery().built_in(1)
                       .datasource(models.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
                       .enable(True).hide(True).icon_color("rgba(0, 211, 255, 1)")
                       .name("Annotations & Alerts").type("dashboard"))


def dashboard(uid, title, description, tags, items, variables, *, time_from="now-30m"):
    builder = (board.Dashboard(title).uid(uid).description(description)
               .tags(["stormproof", *tags]).timezone("browser").editable()
               .tooltip(models.DashboardCursorSync.CROSSHAIR).refresh("5s")
               .time(time_from, "now")
               .timepicker(board.TimePicker().refresh_intervals(["5s", "10s", "30s", "1m", "5m"]))
               .fiscal_year_start_month(0).live_now(False).week_start("")
               .link(board.DashboardLink("Stormproof").type(models.DashboardLinkType.DASHBOARDS)
                     .tags(["stormproof"]).as_dropdown(True).include_vars(True).keep_time(True)
                     .icon("external link").target_blank(False).tooltip("").url(""))
               .annotation(BUILT_IN_ANNOTATION).annotation(CHAOS_ANNOTATION))
    for variable in variables:
        builder = builder.with_variable(variable)
    for number, (panel, width, height) in enumerate(items, start=1):
        if isinstance(panel, board.Row):
            builder = builder.with_row(panel.id(number))
        else:
            builder = builder.with_panel(panel.id(number).span(width).height(height))
    built = json.loads(JSONEncoder(sort_keys=False, indent=2).encode(builder.build()))
    for annotation in built["annotations"]["list"]:
        if annotation.get("name") == "Chaos steps":
            annotation.update(CHAOS_ANNOTATION_EXTRA)
    return built


def quantiles(metric, selector, by, label):
    """p50/p95/p99 of a histogram, one target each."""
    return [
        (f"histogram_quantile({q}, sum by ({by}le) (rate({metric}_bucket{{{selector}}}[{RATE}])))",
         f"p{int(q * 100)}{label}")
        for q in (0.5, 0.95, 0.99)
    ]


# === Resilience overview ===

BREAKER_STATE = f"""max by (instance, dependency) (
    circuit_breaker_state{{{DEP}, state="half_open"}}
  + ignoring (state) (2 * circuit_breaker_state{{{DEP}, state="open"}})
  + ignoring (state) (3 * circuit_breaker_state{{{DEP}, state="forced_open"}})
  + ignoring (state) (4 * circuit_breaker_state{{{DEP}, state="disabled"}})
)"""

STATE_COLOURS = {
    "0": ("closed", "green"),
    "1": ("half_open", "yellow"),
    "2": ("open", "red"),
    "3": ("forced_open", "purple"),
    "4": ("disabled", "blue"),
}


def breaker_timeline():
    return (statetimeline.Panel()
            .title("Breaker state")
            .description(
                "The circuit breaker of each caller, per dependency. Healthy: one green band "
                "(closed). An outage: red (open: calls fail fast and orders fall back to "
                "PAYMENT_PENDING) with yellow slivers (half_open: a few trial calls) every "
                "--breaker-wait, then green again once a trial succeeds. Purple (forced_open) "
                "and blue (disabled) are operator overrides from order's /admin/breaker.")
            .datasource(DS)
            .with_target(target(BREAKER_STATE, "{{dependency}} @ {{instance}}"))
            .color_scheme(board.FieldColor().mode(models.FieldColorModeId.THRESHOLDS))
            .thresholds(thresholds("green"))
            .mappings([models.ValueMap(options={
                value: models.ValueMappingResult(text=text, color=colour, index=index)
                for index, (value, (text, colour)) in enumerate(STATE_COLOURS.items())
            })])
            .fill_opacity(80).line_width(0)
            .merge_values(True).show_value(models_common.VisibilityMode.AUTO)
            .align_value(models_common.TimelineValueAlignment.LEFT).row_height(0.9)
            .legend(common.VizLegendOptions().display_mode(models_common.LegendDisplayMode.LIST)
                    .placement(models_common.LegendPlacement.BOTTOM).show_legend(True))
            .tooltip(common.VizTooltipOptions().mode(models_common.TooltipDisplayMode.SINGLE)
                     .sort(models_common.SortOrder.NONE)))


RESILIENCE = dashboard(
    "stormproof-resilience",
    "Stormproof / Resilience overview",
    "Order's defences around its payment dependency, payment's injected faults, and what "
    "customers get meanwhile. Open it while a load test runs and payment is broken.",
    ["resilience"],
    [
        (row("Circuit breaker"), 24, 1),
        (breaker_timeline(), 24, 6),
        (timeseries(
            "Failure rate against the trip threshold",
            "The breaker's failure rate over its window (--breaker-window) and the rate at "
            "which it trips (--breaker-failure-rate, exported as "
            "circuit_breaker_failure_rate_threshold). Healthy: near 0. Broken payment: the "
            "rate climbs to the threshold line and the breaker opens; it stays high while "
            "half-open trials fail.",
            targets(
                (f"max by (instance, dependency) (circuit_breaker_failure_rate{{{DEP}}})",
                 "failure rate {{dependency}} @ {{instance}}"),
                (f"max by (dependency) (circuit_breaker_failure_rate_threshold{{{DEP}}})",
                 "trip threshold {{dependency}}"),
            ),
            "percentunit", max_=1,
            overrides=[dashed_red("byRegexp", "trip threshold.*")],
        ), 12, 8),
        (timeseries(
            "Calls through the breaker by outcome",
            "Per second. Healthy: nearly all success. Broken payment: failure and slow rise, "
            "then rejected takes over while the breaker is open (calls that never reach "
            "payment).",
            targets((f"sum by (dependency, outcome) (rate(circuit_breaker_calls_total{{{DEP}}}[{RATE}]))",
                     "{{dependency}} {{outcome}}")),
            "reqps", stack=True,
        ), 12, 8),
        (timeseries(
            "Breaker transitions",
            "State changes per window. Healthy: none. An outage: closed→open once, then "
            "open→half_open→open every --breaker-wait until payment heals, then "
            "half_open→closed. Repeated closed→open is flapping (alert "
            "CircuitBreakerFlapping).",
            targets((f"sum by (dependency, from, to) (increase(circuit_breaker_transitions_total{{{DEP}}}[{RATE}]))",
                     "{{dependency}} {{from}}→{{to}}")),
            "short", no_value="no transitions yet", fill=40,
        ), 12, 7),
        (timeseries(
            "Fallbacks by reason",
            "Charges that fell back to PAYMENT_PENDING, per second, by why. Healthy: none. "
            "breaker_open during an outage is the fallback working as designed; deadline or "
            "unavailable without breaker_open means the breaker is not tripping.",
            targets((f"sum by (dependency, reason) (rate(fallback_total{{{DEP}}}[{RATE}]))",
                     "{{dependency}} {{reason}}")),
            "reqps", stack=True,
        ), 12, 7),
        (row("Retries, bulkhead and load shedding"), 24, 1),
        (timeseries(
            "Retries and budget",
            "Attempts per second by what followed each, and retries the budget refused. "
            "Healthy: success only. Flaky payment: retried rises and most retries succeed. "
            "An outage: budget_exhausted and the refused-retries line rise — the budget "
            "keeps retries from multiplying the load on a failing payment.",
            targets(
                (f"sum by (dependency, outcome) (rate(retry_attempts_total{{{DEP}}}[{RATE}]))",
                 "{{dependency}} {{outcome}}"),
                (f"sum by (dependency) (rate(retry_budget_exhausted_total{{{DEP}}}[{RATE}]))",
                 "{{dependency}} retries refused by the budget"),
            ),
            "reqps",
        ), 8, 8),
        (timeseries(
            "Bulkhead",
            "Calls to payment in flight (left) and calls refused by a full bulkhead per second "
            "(right). Healthy: a few in flight, none refused. Slow payment: in flight climbs "
            "to --bulkhead-max-concurrent and refusals start instead of a growing queue.",
            targets(
                (f"sum by (dependency) (bulkhead_in_flight{{{DEP}}})", "{{dependency}} in flight"),
                (f"sum by (dependency) (rate(bulkhead_rejected_total{{{DEP}}}[{RATE}]))",
                 "{{dependency}} refused/s"),
            ),
            "short", overrides=[right_axis(".*refused/s", "reqps")],
        ), 8, 8),
        (timeseries(
            "Load shedding",
            "The adaptive concurrency limit in front of order's APIs (left) and requests it "
            "shed per second, answered 503 / RESOURCE_EXHAUSTED with Retry-After (right). "
            "Healthy: the limit sits high and nothing is shed. Overload: the limit falls as "
            "latency rises and shedding starts, keeping admitted requests fast.",
            targets(
                (f"max by (instance, service) (concurrency_limit{{{ORDER}}})",
                 "limit {{service}} @ {{instance}}"),
                (f"sum by (service) (rate(load_shed_total{{{ORDER}}}[{RATE}]))", "shed/s {{service}}"),
            ),
            "short", overrides=[right_axis("shed/s.*", "reqps")],
        ), 8, 8),
        (row("Payment faults (chaos)"), 24, 1),
        (timeseries(
            "Payment fault settings",
            "The knobs in force on payment, drawn as they change (PUT/PATCH /admin/faults, "
            "loadgen's chaos steps). Healthy: all 0. Rates and outage (0/1) on the left, "
            "latency and jitter in ms on the right.",
            targets((f"max by (knob) (payment_fault_setting{{{PAYMENT}}})", "{{knob}}")),
            "percentunit", max_=1, fill=0,
            overrides=[right_axis(".*_ms", "ms")],
        ), 12, 8),
        (timeseries(
            "Faults injected",
            "Faults payment applied per second, by kind. Healthy: none. Each chaos step shows "
            "up here first, then in order's panels above.",
            targets((f"sum by (kind) (rate(payment_fault_injected_total{{{PAYMENT}}}[{RATE}]))", "{{kind}}")),
            "reqps", stack=True,
        ), 12, 8),
        (row("Orders"), 24, 1),
        (timeseries(
            "Order outcomes",
            "PlaceOrder outcomes per second. Healthy: confirmed. Payment broken: "
            "payment_pending replaces confirmed (accepted, charged later) while failed stays "
            "at 0 — that is the fallback doing its job. failed means the order store failed.",
            targets((f"sum by (status) (rate(orders_total{{{ORDER}}}[{RATE}]))", "{{status}}")),
            "reqps", stack=True,
            overrides=[fixed_colour(name, colour)
                       for name, colour in (("confirmed", "green"), ("payment_pending", "orange"),
                                            ("rejected", "blue"), ("failed", "red"))],
        ), 8, 8),
        (timeseries(
            "Payment backlog",
            "Orders not yet charged (left) and the age of the oldest (right); every order "
            "replica on a shared store reports the same backlog, hence max. Healthy: 0. An "
            "outage: both grow; after the heal the reconciler drains the backlog (as fast as "
            "payment answers, up to --reconcile-max-concurrency charges at once, as the "
            "breaker allows) and both fall back to 0.",
            targets(
                (f"max(order_payment_backlog{{{ORDER}}})", "orders waiting"),
                (f"max(order_payment_oldest_pending_seconds{{{ORDER}}})", "oldest waiting"),
            ),
            "short", overrides=[right_axis("oldest waiting", "s")],
        ), 8, 8),
        (timeseries(
            "Reconciler",
            "Reconciliation attempts per second by outcome. Healthy: nothing to do. During an "
            "outage: deferred (the open breaker refused) and retry; after the heal: confirmed "
            "until the backlog is empty.",
            targets((f"sum by (outcome) (rate(order_reconcile_total{{{ORDER}}}[{RATE}]))", "{{outcome}}")),
            "reqps", stack=True,
        ), 8, 8),
        (row("Latency"), 24, 1),
        (timeseries(
            "PlaceOrder latency (HTTP)",
            "p50/p95/p99 of POST /v1/orders, as order served it. Healthy: milliseconds. Slow "
            "payment: p99 rises to the injected latency; the deadline (--payment-timeout) and "
            "the open breaker cap it. The dashed line is the 300 ms SLO.",
            targets(*quantiles("http_server_request_duration_seconds", PLACE_ORDER, "", "")),
            "s", threshold=thresholds("transparent", (LATENCY_SLO_SECONDS, "red")),
        ), 12, 8),
        (timeseries(
            "ProcessPayment latency",
            "p50/p95/p99 of ProcessPayment as payment served it, and p99 of each attempt as "
            "order saw it. Healthy: both low and close. Injected latency moves both; a gap "
            "means time lost on the network or in connection set-up.",
            targets(
                *quantiles("rpc_server_call_duration_seconds",
                           f'{PAYMENT}, rpc_method="ProcessPayment"', "", " payment"),
                (f'histogram_quantile(0.99, sum by (le) (rate(rpc_client_call_duration_seconds_bucket{{{ORDER}, rpc_method="ProcessPayment"}}[{RATE}])))',
                 "p99 as order saw it"),
            ),
            "s",
        ), 12, 8),
        (heatmap(
            "PlaceOrder latency heatmap",
            "Where PlaceOrder answers fall, by bucket over time. Healthy: one dark band at a "
            "few ms. Chaos shows as a second band (the injected latency or the deadline) that "
            "moves back down when the breaker opens.",
            f"sum by (le) (increase(http_server_request_duration_seconds_bucket{{{PLACE_ORDER}}}[{RATE}]))",
        ), 12, 8),
        (heatmap(
            "ProcessPayment latency heatmap",
            "Where payment's answers fall, by bucket over time. Healthy: one band at a few ms; "
            "injected latency and jitter move it up and widen it.",
            f'sum by (le) (increase(rpc_server_call_duration_seconds_bucket{{{PAYMENT}, rpc_method="ProcessPayment"}}[{RATE}]))',
        ), 12, 8),
    ],
    [DATASOURCE_VARIABLE, INSTANCE_VARIABLE, DEPENDENCY_VARIABLE],
)


# === Load test ===

LOAD_TEST = dashboard(
    "stormproof-load-test",
    "Stormproof / Load test",
    "What the load generator sends and what it gets back, with its chaos steps as "
    "annotations. loadgen serves these series only while a test runs (`task load`).",
    ["loadgen"],
    [
        (stat("Requests per second",
              "All requests loadgen sends, per second, now. Follows the profile's ramp; a drop "
              "while users hold steady means answers got slower.",
              [target(f"sum(rate(loadgen_requests_total{{{LOADGEN}}}[{RATE}]))", "requests/s")],
              "reqps", thresholds("blue")), 6, 4),
        (stat("Users",
              "Simulated users running now: the closed model's profile shape (times --scale), "
              "or the open model's pool serving arrivals (--max-users).",
              [target(f"sum(loadgen_users{{{LOADGEN}}})", "users")],
              "short", thresholds("blue"), decimals=0), 6, 4),
        (stat("Orders accepted",
              "Share of PlaceOrder answered 201 CONFIRMED or 202 PAYMENT_PENDING over the "
              "last minute. Healthy, and through a payment outage: 100 %. Below 99.9 % the "
              "run's SLO fails.",
              [target(f'sum(rate(loadgen_requests_total{{{LOADGEN}, request="PlaceOrder", status=~"201|202"}}[1m])) / sum(rate(loadgen_requests_total{{{LOADGEN}, request="PlaceOrder"}}[1m]))',
                      "accepted")],
              "percentunit", thresholds("red", (0.99, "orange"), (AVAILABILITY_OBJECTIVE, "green")),
              decimals=2), 6, 4),
        (stat("PlaceOrder p99",
              "p99 of PlaceOrder as loadgen saw it over the last minute. The run's SLO is "
              "300 ms.",
              [target(f'histogram_quantile(0.99, sum by (le) (rate(loadgen_request_duration_seconds_bucket{{{LOADGEN}, request="PlaceOrder"}}[1m])))',
                      "p99")],
              "s", thresholds("green", (0.2, "orange"), (LATENCY_SLO_SECONDS, "red"))), 6, 4),
        (timeseries(
            "Requests per second by request",
            "Browse (GetProducts), buy (PlaceOrder) and the follow-up GetOrder, per second. "
            "Healthy: rises and falls with the users; PlaceOrder keeps its share through chaos.",
            targets((f"sum by (request) (rate(loadgen_requests_total{{{LOADGEN}}}[{RATE}]))", "{{request}}")),
            "reqps", stack=True,
        ), 12, 8),
        (timeseries(
            "Users",
            "Simulated users over time: the load profile (ramp, plateau, spike, cool-down).",
            targets((f"sum(loadgen_users{{{LOADGEN}}})", "users")),
            "short",
        ), 12, 8),
        (timeseries(
            "Arrivals: offered, achieved, dropped",
            "Open model: shoppers per second that the schedule brought (offered), that a "
            "simulated user served (achieved), and that found no user free and were dropped. "
            "Healthy: achieved on offered, dropped at 0. Dropped arrivals mean the answers got "
            "slower than the pool could absorb (--max-users): the run offered less than it "
            "meant to, and its SLO fails.",
            targets(
                (f"sum(rate(loadgen_arrivals_total{{{LOADGEN}}}[{RATE}]))", "offered"),
                (f"sum(rate(loadgen_arrivals_total{{{LOADGEN}}}[{RATE}])) - sum(rate(loadgen_dropped_arrivals_total{{{LOADGEN}}}[{RATE}]))",
                 "achieved"),
                (f"sum(rate(loadgen_dropped_arrivals_total{{{LOADGEN}}}[{RATE}]))", "dropped"),
            ),
            "reqps", no_value="closed-model run: no arrival schedule",
        ), 12, 8),
        (timeseries(
            "Answers by status",
            "Answers per second by request and HTTP status. Healthy: 200 and 201. A payment "
            "outage turns PlaceOrder's 201 into 202 (PAYMENT_PENDING), not into errors.",
            targets((f"sum by (request, status) (rate(loadgen_requests_total{{{LOADGEN}}}[{RATE}]))",
                     "{{request}} {{status}}")),
            "reqps", stack=True,
        ), 12, 8),
        (timeseries(
            "Errors by status",
            "Answers that are not 2xx (402, a declined card, is a correct answer and left "
            "out) and transport errors, per second. Healthy: empty. 503 with Retry-After "
            "means order shed load; 5xx otherwise or `error` is a failure the SLO counts.",
            targets((f'sum by (request, status) (rate(loadgen_requests_total{{{LOADGEN}, status!~"2..|402"}}[{RATE}]))',
                     "{{request}} {{status}}")),
            "reqps", stack=True, no_value="no errors",
        ), 12, 8),
        (timeseries(
            "Latency percentiles",
            "p50/p95/p99 per request as loadgen saw it (network and queueing included). The "
            "dashed line is the 300 ms PlaceOrder SLO.",
            targets(*quantiles("loadgen_request_duration_seconds", LOADGEN, "request, ", " {{request}}")),
            "s", threshold=thresholds("transparent", (LATENCY_SLO_SECONDS, "red")),
        ), 12, 8),
        (timeseries(
            "Chaos steps",
            "1 while a chaos step is in force (payment faults or breaker overrides from the "
            "timeline), 0 after. The same steps are the red annotations on every panel.",
            targets((f"max by (step) (loadgen_chaos_step{{{LOADGEN}}})", "{{step}}")),
            "short", max_=1, no_value="no chaos timeline in this run", fill=30,
        ), 12, 8),
    ],
    [DATASOURCE_VARIABLE],
    time_from="now-15m",
)


# === SLO ===




def sli_panels(sli, title, description, burn_title, burn_description):
    """An SLI over 5m and 1h against its objective, and its burn rate per alert window."""
    return [
        (timeseries(
            title, description,
            targets(
                (f"job:{sli}:ratio_rate5m", "5m"),
                (f"job:{sli}:ratio_rate1h", "1h"),
                (f"job:{sli}:objective", "objective"),
            ),
            "percentunit", min_=None, max_=1, fill=0,
            overrides=[dashed_red("byName", "objective")],
        ), 12, 8),
        (timeseries(
            burn_title, burn_description,
            targets(*[(f"job:{sli}:burn_rate{w}", w) for w in BURN_WINDOWS]),
            "short", fill=0,
            threshold=thresholds("transparent", *BURN_RATE_LINES),
        ), 12, 8),
    ]


SLO = dashboard(
    "stormproof-slo",
    "Stormproof / Order SLOs",
    "Order availability (99.9 %: PlaceOrder answered 201/202, client errors aside) and "
    "latency (99 % within 300 ms) over 30 days, with the burn rates the "
    "OrderAvailabilitySLOBurn and OrderLatencySLOBurn alerts page and ticket on. The "
    "recording rules are in prometheus/rules/recording.yml.",
    ["slo"],
    [
        (stat("Availability, 30 days",
              "PlaceOrder answered 201/202 over every answer that was not a client error, "
              "over the last 30 days (or since the stack started). Green at or above the 99.9 % "
              "objective.",
              [target("job:order_availability:ratio_rate30d", "availability")],
              "percentunit", thresholds("red", (AVAILABILITY_OBJECTIVE, "green")), decimals=3), 8, 5),
        (stat("Error budget left",
              "Share of the 30-day error budget (0.1 % of orders) not yet spent. 100 %: "
              "untouched. 0 %: spent, the SLO is met no more; below 0 it is broken.",
              [target("job:order_availability:error_budget_remaining", "budget left")],
              "percentunit", thresholds("red", (0.25, "orange"), (0.5, "green")), decimals=1), 8, 5),
        (stat("Burn rate, last hour",
              "How fast the budget burns now: 1 spends it in exactly 30 days. The fast-burn "
              "page fires above 14.4 over both the last hour and the last 5 minutes, when "
              "the hour held at least 0.1 orders/s.",
              [target("job:order_availability:burn_rate1h", "burn rate 1h")],
              "short", thresholds("green", (1, "orange"), (FAST_BURN, "red")), decimals=1), 8, 5),
        *sli_panels(
            "order_availability",
            "Availability against the objective",
            "Availability over 5 minutes and 1 hour against the 99.9 % objective (dashed). "
            "Healthy: at 100 %, through a payment outage too (orders are accepted as "
            "PAYMENT_PENDING). Dips mean 5xx answers: shed load or a failing store.",
            "Availability burn rate per window",
            "Burn rate over each alert window. The 14.4 line pages when both 1h and 5m are "
            "above it, the 6 line when both 6h and 30m are (either only with at least 0.1 "
            "orders/s over the long window); the 3 line opens a ticket when both 1d and 2h "
            "are above it, the 1 line when both 3d and 6h are. Healthy: near 0.",
        ),
        *sli_panels(
            "order_latency",
            "Latency SLI against the objective",
            "Share of PlaceOrder answered within 300 ms, over 5 minutes and 1 hour, against "
            "the 99 % objective (dashed). Slow payment pulls it down until the deadline or the "
            "breaker cuts the wait.",
            "Latency burn rate per window",
            "How fast slow answers spend the latency budget (1 % of orders may take over "
            "300 ms), per window. OrderLatencySLOBurn pages and tickets on the same window "
            "pairs and lines as availability. Healthy: below 1.",
        ),
    ],
    [DATASOURCE_VARIABLE],
    time_from="now-6h",
)

DASHBOARDS = {
    "resilience-overview.json": RESILIENCE,
    "load-test.json": LOAD_TEST,
    "slo.json": SLO,
}


def render(board):
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if dashboards/json/ differs from what this file generates")
    args = parser.parse_args()
    stale = []
    for name, board in DASHBOARDS.items():
        path = OUT / name
        text = render(board)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            OUT.mkdir(exist_ok=True)
            path.write_text(text)
    if stale:
        print("stale, run `python3 dashboards/generate.py`: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
