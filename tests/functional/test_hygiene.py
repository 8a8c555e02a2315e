"""What the daemon tells its operator: configuration mistakes named, quiet logs, no secrets."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from kafka_bridge_devenv.brokers import Brokers
from kafka_bridge_devenv.traffic import BridgeProcess, local_transport, publish, wait_until

#: a line kafka-python logged (its loggers are named kafka.*): at any level, below WARNING
LIBRARY_LINE = re.compile(r"^\S+ \S+ \d+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) kafka\.", re.M)
LIBRARY_INFO = re.compile(r"^\S+ \S+ \d+ (DEBUG|INFO) kafka\.", re.M)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_misplaced_options_are_named_and_the_start_is_quiet(
        tmp_path, brokers, bridges, unique) -> None:
    bridge = BridgeProcess(tmp_path / "bridge", brokers, {
        "kafka_bridge": {"mode": "forward"},
        "forward": {"topics": unique, "pool": f"{unique}-bridge",
                    "record_key_field": "/payload/nova_object.data/uuid"},
        "reverse": {"kafka_topic": "notifications.info"}}, python_warnings=None)
    bridges.append(bridge)  # before start: stopped by the fixture even if it never got ready
    bridge.start()
    local = local_transport(brokers)
    try:
        publish(local, unique, range(20))
        wait_until(lambda: bridge.metric("kafka_bridge_notifications_total",
                                         direction="forward", event="confirmed") >= 20, 30,
                   "20 notifications forwarded")
    finally:
        local.cleanup()
    assert bridge.terminate() < 10
    output = bridge.output()
    assert output.count(f"{bridge.config}: [forward] record_key_field is ignored: it belongs "
                        f"in [oslo_messaging_kafka_notify]") == 1, output[-3000:]
    assert output.count(f"{bridge.config}: [reverse] kafka_topic is ignored: did you mean "
                        f"kafka_topics?") == 1
    # Python's default warning filters, as an operator runs it: no deprecation
    # warning (eventlet's, or any other), no kafka-python INFO lines (its
    # warnings, such as a new topic's leader not elected yet, stay)
    assert "Warning" not in output, output[:3000]
    assert not LIBRARY_INFO.findall(output), output[-3000:]


@pytest.mark.parametrize("section, line, expected", [
    ("kafka_bridge", "mode = sideways",
     "[kafka_bridge] mode = sideways is not valid: choose one of forward, reverse, both"),
    ("kafka_bridge", "batch_size = many",
     "[kafka_bridge] batch_size = many is not valid: use an integer of at least 1"),
    ("forward", "output_format = xml",
     "[forward] output_format = xml is not valid: choose one of oslo, plain"),
])
def test_a_value_of_the_wrong_type_exits_2_with_one_line_naming_it(
        tmp_path, section, line, expected) -> None:
    config = tmp_path / "bad.conf"
    config.write_text(f"[kafka_bridge]\nkafka_url = kafka-notify://h:1/\n[{section}]\n{line}\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    result = subprocess.run([sys.executable, "-m", "kafka_bridge.daemon.cli", "--config-file",
                             str(config)], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"kafka-bridge: configuration error: {config}: {expected}\n"
    assert result.stdout == ""


def test_waiting_for_kafka_is_one_line_without_library_errors(tmp_path, brokers,
                                                              bridges) -> None:
    bridge = BridgeProcess(tmp_path / "bridge", brokers, {"kafka_bridge": {
        "kafka_url": f"kafka-notify://127.0.0.1:{_closed_port()}/?connect_timeout=1"}},
        python_warnings=None)
    bridges.append(bridge.start_without_waiting())
    wait_until(lambda: "waiting for Kafka" in bridge.output(), 30, "the bridge to wait")
    # The connection is retried with backoff (0.2 s doubling): over 4 s it is
    # attempted five times, each of which kafka-python logged as errors before.
    time.sleep(4)
    assert bridge.terminate() < 10
    output = bridge.output()
    assert output.count("waiting for Kafka") == 1
    assert not LIBRARY_LINE.findall(output), output[-3000:]
    assert "Warning" not in output


def _sasl_url(brokers: Brokers, password: str, cafile: str | None = None,
              bootstrap: str | None = None) -> str:
    return (f"kafka-notify://{quote(brokers.kafka_user or '', safe='')}:"
            f"{quote(password, safe='')}@{bootstrap or brokers.kafka_bootstrap}/"
            f"?security_protocol=SASL_SSL&sasl_mechanism=SCRAM-SHA-512"
            f"&ssl_cafile={quote(cafile or brokers.kafka_ca or '')}&connect_timeout=2")


@pytest.mark.parametrize("failure", ["wrong password", "unreachable broker", "bad CA", "none"])
def test_secrets_never_appear_in_logs_or_metrics(tmp_path, brokers, secure_kafka, bridges,
                                                 unique, failure) -> None:
    password = secure_kafka.kafka_password or ""
    if failure == "wrong password":
        password = f"Wr0ng-{unique}"
    url = _sasl_url(secure_kafka, password,
                    cafile=_other_ca(tmp_path) if failure == "bad CA" else None,
                    bootstrap=(f"127.0.0.1:{_closed_port()}" if failure == "unreachable broker"
                               else None))
    bridge = BridgeProcess(tmp_path / "bridge", brokers, {
        "DEFAULT": {"debug": "true"},
        "kafka_bridge": {"mode": "both", "kafka_url": url},
        "forward": {"topics": unique, "pool": f"{unique}-bridge"},
        "reverse": {"kafka_topics": f"{unique}.info", "group": unique}})
    bridges.append(bridge)
    if failure == "none":
        bridge.start()
        local = local_transport(brokers)
        try:
            publish(local, unique, range(10))
            wait_until(lambda: bridge.metric("kafka_bridge_notifications_total",
                                             direction="forward", event="confirmed") >= 10,
                       60, "10 notifications forwarded over SASL_SSL")
        finally:
            local.cleanup()
    else:
        bridge.start_without_waiting()
        wait_until(lambda: "waiting for Kafka" in bridge.output(), 60,
                   lambda: f"the bridge to report the {failure}:\n{bridge.output()[-2000:]}")
    _, metrics = bridge.http_get("/metrics")
    bridge.terminate()
    output = bridge.output()
    rabbit_password = (brokers.rabbit_url or "").rsplit("@", 1)[0].rsplit(":", 1)[1]
    for secret in (password, quote(password, safe=""), rabbit_password):
        assert secret not in output, f"a secret in the log ({failure})"
        assert secret not in metrics, f"a secret in /metrics ({failure})"
    expected = {"wrong password": "rejected the SASL credentials",
                "unreachable broker": "accepted a connection",
                "bad CA": "is not trusted", "none": "kafka-bridge running"}[failure]
    assert expected in output


def _other_ca(tmp_path: Path) -> str:
    """A CA certificate that did not sign the brokers' certificates."""
    key, cert = tmp_path / "other-ca.key", tmp_path / "other-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=not the brokers' CA", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True, timeout=60)
    return str(cert)
