"""The monitoring kit on a real Prometheus (Debian's) scraping a bridge under traffic.

Every dashboard query and every alert expression is evaluated through
Prometheus' HTTP API: each must run, each dashboard query and each series
selector of an alert must return series (a typo'd metric or label value
returns none). The dead-letter alert fires after a poison message and the
backpressure alert during a Kafka outage.

Prometheus loads the shipped rules file with one change: every `for:` is 0s,
so an alert fires at its first evaluation (promtool's unit tests,
tests/unit/test_monitoring_kit.py, cover the durations).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kombu
import pytest

import kafka_bridge_devenv as devenv
from kafka_bridge_devenv.brokers import Brokers, DevenvBrokers
from kafka_bridge_devenv.processes import free_port
from kafka_bridge_devenv.traffic import (BridgeProcess, KafkaCollector, LocalCollector,
                                         create_topic, kafka_transport, local_transport,
                                         publish, wait_until)
from kafka_bridge.kafka.envelope import OutgoingRecord, encode
from tests.unit.test_monitoring_kit import (JOB, RULES, alert_rules, dashboard_queries,
                                            selectors)

#: Grafana's variables as a dashboard showing every bridge of the job would set them
DASHBOARD_VARIABLES = {"job": JOB, "instance": ".*", "__rate_interval": "1m"}


class PrometheusServer:
    """Debian's prometheus on a free port of 127.0.0.1, scraping targets every second."""

    def __init__(self, directory: Path, targets: list[str], rules: Path) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.skip("Prometheus is not installed (Debian: apt-get install prometheus)")
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "prometheus.yml"
        config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": targets}]}]}))
        self.port = free_port()
        self.log = directory / "prometheus.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_until(lambda: self._ready() or self.proc.poll() is not None, 60,
                   "Prometheus to be ready")
        assert self.proc.poll() is None, self.log.read_text()[-3000:]

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2):
                return True
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        """The data of a successful API answer; AssertionError naming Prometheus' error."""
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as error:
            answer = json.load(error)
        assert answer["status"] == "success", f"{path} {params}: {answer}"
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector expr evaluates to now."""
        return self.api("query", query=expr)["result"]

    def firing(self, alert: str) -> list[dict[str, str]]:
        """Labels of the firing instances of alert."""
        return [a["labels"] for a in self.api("alerts")["alerts"]
                if a["labels"]["alertname"] == alert and a["state"] == "firing"]

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


class Monitored:
    """A bridge in both directions, its brokers, and a Prometheus scraping it."""

    def __init__(self, directory: Path, brokers: Brokers, devenv_dir: Path,
                 rules: Path) -> None:
        self.brokers = brokers
        self.devenv_dir = devenv_dir
        self.forward_topic = "monitored"
        self.reverse_topic = "monitored-reverse.info"
        self.dead_letter_topic = "monitored.dead"
        create_topic(brokers, self.reverse_topic)
        self.bridge = BridgeProcess(directory / "bridge", brokers, {
            "kafka_bridge": {"mode": "both"},
            "forward": {"topics": self.forward_topic, "pool": "monitored-bridge",
                        "dead_letter_topic": self.dead_letter_topic},
            "reverse": {"kafka_topics": self.reverse_topic, "group": "monitored"}}).start()
        self.prometheus = PrometheusServer(directory / "prometheus",
                                           [f"127.0.0.1:{self.bridge.metrics_port}"], rules)
        # Counters must be seen at zero before the traffic: increase() does not count
        # what happened before a series' first sample (the first scrape comes up to 5 s
        # after Prometheus starts, when its target discovery first reports).
        wait_until(lambda: self.prometheus.query(f'up{{job="{JOB}"}} == 1'), 60,
                   "Prometheus' first scrape of the bridge")

    def close(self) -> None:
        self.prometheus.close()
        self.bridge.close()


def rules_firing_at_once(directory: Path) -> Path:
    """The shipped rules with every `for:` set to 0s; nothing else changed."""
    text, count = re.subn(r"(?m)^(\s+for:) \S+$", r"\1 0s", RULES.read_text())
    assert count == sum("for" in rule for rule in alert_rules())
    copy = directory / RULES.name
    copy.write_text(text)
    return copy


def kafka_records(topic: str, ids: range) -> list[OutgoingRecord]:
    return [OutgoingRecord(topic, encode({"request_id": f"req-{n}"}, {
        "message_id": f"m-{n}", "publisher_id": "test.publisher", "event_type": "test.event",
        "priority": "INFO", "payload": {"n": n}, "timestamp": "2026-11-25 00:00:00.000000"}))
        for n in ids]


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitored]:
    """Traffic both ways and one poison message, delivered and scraped."""
    if shutil.which("prometheus") is None:
        pytest.skip("Prometheus is not installed (Debian: apt-get install prometheus)")
    devenv_dir = tmp_path_factory.mktemp("devenv-monitored")
    started = DevenvBrokers(devenv_dir, devenv.StartOptions())  # its Kafka is stopped below
    directory = tmp_path_factory.mktemp("monitored")
    setup = None
    try:
        setup = Monitored(directory, started.brokers, devenv_dir, rules_firing_at_once(directory))
        drive_traffic(setup, range(2000))
        yield setup
    finally:
        if setup is not None:
            setup.close()
        started.close()


def drive_traffic(setup: Monitored, ids: range) -> None:
    """Notifications both ways and a poison message; return once all were delivered."""
    local = local_transport(setup.brokers)
    kafka = KafkaCollector(setup.brokers, f"{setup.forward_topic}.info")
    dead = KafkaCollector(setup.brokers, setup.dead_letter_topic)
    listener = LocalCollector(local, setup.reverse_topic.rsplit(".", 1)[0])
    driver = kafka_transport(setup.brokers)._driver
    try:
        publish(local, setup.forward_topic, ids)
        assert driver.publisher.publish(kafka_records(setup.reverse_topic, ids)) == (
            [None] * len(ids))
        with kombu.Connection(setup.brokers.rabbit_url.replace("rabbit://", "amqp://")) as conn:
            conn.Producer().publish(
                json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps({"foo": 1})}),
                exchange=kombu.Exchange("openstack", type="topic", durable=False),
                routing_key=f"{setup.forward_topic}.info", content_type="application/json")
        wait_until(lambda: set(kafka.ids()) >= set(ids), 120, "the forward traffic in Kafka")
        wait_until(lambda: set(listener.ids()) >= set(ids), 120,
                   "the reverse traffic on RabbitMQ")
        wait_until(lambda: len(dead.records) == 1, 60, "the poison message's dead letter")
    finally:
        driver.cleanup()
        listener.close()
        dead.close()
        kafka.close()
        local.cleanup()


@pytest.mark.parametrize(("panel", "expr"), dashboard_queries(DASHBOARD_VARIABLES))
def test_every_dashboard_query_returns_series(monitored: Monitored, panel: str,
                                              expr: str) -> None:
    # rate() and increase() need two scrapes of the traffic in their window
    wait_until(lambda: monitored.prometheus.query(expr), 60,
               lambda: f"panel {panel!r}: {expr} to return series")
    print(f"\n{panel}: {len(monitored.prometheus.query(expr))} series from {expr}")


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_every_alert_expression_runs_and_its_selectors_return_series(
        monitored: Monitored, rule: dict[str, Any]) -> None:
    result = monitored.prometheus.query(rule["expr"])  # asserts it evaluates
    print(f"\n{rule['alert']}: {len(result)} series now")
    for _, selector, _ in selectors(rule["expr"]):
        wait_until(lambda: monitored.prometheus.query(selector), 30,
                   f"{rule['alert']}: {selector} to return series")


def test_dead_letter_alert_fires_after_a_poison_message(monitored: Monitored) -> None:
    wait_until(lambda: monitored.prometheus.firing("KafkaBridgeDeadLetters"), 60,
               lambda: "KafkaBridgeDeadLetters to fire; dead letters scraped: " + json.dumps(
                   monitored.prometheus.query('kafka_bridge_notifications_total'
                                              '{event="dead_lettered"}[10m]'))[:3000])
    assert [a["direction"] for a in monitored.prometheus.firing("KafkaBridgeDeadLetters")] == [
        "forward"]


def test_backpressure_alert_fires_during_a_kafka_outage(monitored: Monitored) -> None:
    prometheus, bridge = monitored.prometheus, monitored.bridge
    assert not prometheus.firing("KafkaBridgeBackpressure")
    devenv.stop_one(monitored.devenv_dir, "kafka-1")
    local = local_transport(monitored.brokers)
    try:
        publish(local, monitored.forward_topic, range(5000, 5200))
        began = time.monotonic()
        wait_until(lambda: prometheus.firing("KafkaBridgeBackpressure"), 90,
                   lambda: f"KafkaBridgeBackpressure to fire during the outage (backpressure "
                           f"now {prometheus.query('kafka_bridge_backpressure')})")
        print(f"\nKafkaBridgeBackpressure fired {time.monotonic() - began:.1f} s after the "
              f"notifications met the outage")
        assert [a["direction"] for a in prometheus.firing("KafkaBridgeBackpressure")] == [
            "forward"]
    finally:
        devenv.restart_one(monitored.devenv_dir, "kafka-1")
        local.cleanup()
    wait_until(lambda: bridge.http_get("/readyz")[0] == 200, 120,
               "/readyz to turn ready again after the outage")
    wait_until(lambda: not prometheus.firing("KafkaBridgeBackpressure"), 60,
               "KafkaBridgeBackpressure to resolve once Kafka is back")
    kafka = KafkaCollector(monitored.brokers, f"{monitored.forward_topic}.info")
    try:
        wait_until(lambda: set(kafka.ids()) >= set(range(5000, 5200)), 120,
                   "the notifications sent during the outage in Kafka")
    finally:
        kafka.close()
