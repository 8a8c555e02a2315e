"""The monitoring kit: Prometheus alert rules and the Grafana dashboard under etc/.

Held to the metrics the daemon exports (names, label values), checked and
unit-tested by promtool. tests/functional/test_prometheus.py evaluates the same
queries on a real Prometheus scraping a bridge.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest

from kafka_bridge.daemon.metrics import EVENTS, BridgeMetrics

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "etc" / "prometheus" / "kafka-bridge-rules.yml"
RULES_TESTS = REPO / "etc" / "prometheus" / "kafka-bridge-rules.test.yml"
DASHBOARD = REPO / "etc" / "grafana" / "kafka-bridge-dashboard.json"

#: the job name the rules expect (KafkaBridgeDown)
JOB = "kafka-bridge"
DIRECTIONS = ("forward", "reverse")

#: a name, optionally followed by label matchers in braces
_SELECTOR = re.compile(r"(?<![\w:$])([a-zA-Z_:][\w:]*)(\s*\{[^}]*\})?")
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')


# -- helpers (also used by tests/functional/test_prometheus.py) ----------------

def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of the shipped rules file."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def dashboard_queries(substitutions: dict[str, str]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every dashboard target, Grafana variables substituted."""
    queries = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in substitutions.items():
                expr = expr.replace(f"${variable}", value)
            queries.append((panel["title"], expr))
    return queries


def selectors(expr: str) -> list[tuple[str, str, dict[str, str]]]:
    """(metric name, selector as written, {label: matched value}) of each series selector."""
    found = []
    for match in _SELECTOR.finditer(expr):
        name, braces = match.groups()
        if braces is None and not (name.startswith("kafka_bridge_") or name == "up"):
            continue  # a function, an operator or a label name
        labels = {key: value for key, _, value in _MATCHER.findall(braces or "")}
        found.append((name, match.group(0), labels))
    return found


def exported_series_names() -> set[str]:
    """Names of the series the daemon's /metrics can carry."""
    registry = BridgeMetrics(pumps=dict, lag=dict).registry
    names = set()
    for line in generate_latest(registry).decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names |= {"counter": {name.removesuffix("_total") + "_total"},
                      "histogram": {f"{name}_bucket", f"{name}_sum", f"{name}_count"},
                      "gauge": {name}}[kind]
    return names


# -- names and labels ------------------------------------------------------------

def all_queries() -> list[tuple[str, str]]:
    return ([(rule["alert"], rule["expr"]) for rule in alert_rules()]
            + dashboard_queries({"job": JOB, "instance": ".*", "__rate_interval": "5m"}))


@pytest.mark.parametrize(("where", "expr"), all_queries())
def test_every_query_names_metrics_and_labels_the_daemon_exports(where: str, expr: str) -> None:
    exported = exported_series_names() | {"up"}
    found = selectors(expr)
    assert found, f"{where}: no series selector in {expr!r}"
    for name, _, labels in found:
        assert name in exported, f"{where}: {name} is not exported ({sorted(exported)})"
        if "event" in labels:
            events = re.fullmatch(r"[\w|]+", labels["event"])
            assert events and set(labels["event"].split("|")) <= set(EVENTS), (where, labels)
        if "direction" in labels:
            assert labels["direction"] in DIRECTIONS, (where, labels)


def test_the_rules_cover_the_conditions_operators_watch() -> None:
    names = {rule["alert"] for rule in alert_rules()}
    assert {"KafkaBridgeDown", "KafkaBridgeBackpressure", "KafkaBridgeDeadLetters",
            "KafkaBridgeReverseLagGrowing", "KafkaBridgeReverseNotConsuming",
            "KafkaBridgeStalled", "KafkaBridgeRestarted"} <= names
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
    down = next(rule for rule in alert_rules() if rule["alert"] == "KafkaBridgeDown")
    assert f'job="{JOB}"' in down["expr"]


def test_the_dashboard_panels_cover_what_the_bridge_measures() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels), "panel ids repeat"
    exprs = " ".join(expr for _, expr in dashboard_queries({}))
    for metric in ("kafka_bridge_notifications_total", "kafka_bridge_latency_seconds_bucket",
                   "kafka_bridge_in_flight", "kafka_bridge_backpressure",
                   "kafka_bridge_consumer_lag", 'event="dead_lettered"'):
        assert metric in exprs, f"no panel shows {metric}"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used = set(re.findall(r"\$(\w+)", target["expr"])) - {"__rate_interval"}
            assert used <= variables, f"{panel['title']}: undefined variables {used - variables}"


# -- promtool --------------------------------------------------------------------

@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    return path


def test_promtool_check_rules_accepts_the_rules(promtool: str) -> None:
    result = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_promtool_rule_unit_tests_pass(promtool: str) -> None:
    result = subprocess.run([promtool, "test", "rules", RULES_TESTS.name], capture_output=True,
                            text=True, timeout=120, cwd=RULES_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", RULES_TESTS.read_text()))
    assert tested == {rule["alert"] for rule in alert_rules()}, "an alert has no promtool test"
