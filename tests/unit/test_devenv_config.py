"""devenv's broker configuration, without starting a broker."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

import kafka_bridge_devenv as devenv
from kafka_bridge_devenv import kafka
from kafka_bridge_devenv.tls import BrokerTLS


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


def test_single_node_binds_loopback_and_needs_no_replicas(tmp_path: Path) -> None:
    nodes = kafka.plan_nodes(1)
    props = _props(kafka.server_properties(nodes[0], nodes, tmp_path, None))
    assert all("127.0.0.1:" in part for part in props["listeners"].split(","))
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["listener.security.protocol.map"].startswith("CLIENT:PLAINTEXT")


def test_three_nodes_replicate_three_times_with_two_in_sync(tmp_path: Path) -> None:
    nodes = kafka.plan_nodes(3)
    props = _props(kafka.server_properties(nodes[1], nodes, tmp_path, None))
    assert props["default.replication.factor"] == "3"
    assert props["min.insync.replicas"] == "2"
    assert props["node.id"] == "2"
    assert len(props["controller.quorum.bootstrap.servers"].split(",")) == 3


def test_sasl_ssl_listener_uses_scram_and_the_pem_keystore(tmp_path: Path) -> None:
    nodes = kafka.plan_nodes(1)
    tls = BrokerTLS(ca_cert=tmp_path / "ca.pem", broker_keystore=tmp_path / "ks.pem")
    props = _props(kafka.server_properties(nodes[0], nodes, tmp_path, tls))
    assert props["listener.security.protocol.map"].startswith("CLIENT:SASL_SSL")
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["ssl.keystore.location"] == str(tmp_path / "ks.pem")


def test_exports_survive_shell_eval() -> None:
    exports = {"KAFKA_BRIDGE_KAFKA_URL": "kafka-notify://u:p@h:1/?a=1&b=2"}
    line = devenv.format_exports(exports).strip()
    assert shlex.split(line) == ["export", "KAFKA_BRIDGE_KAFKA_URL=kafka-notify://u:p@h:1/?a=1&b=2"]


@pytest.mark.parametrize("options, complaint", [
    ({"kafka_nodes": 2}, "--kafka-nodes must be 1 or 3"),
    ({"kafka_security": "ssl"}, "--kafka-security must be one of"),
    ({"rabbit": False, "kafka": False}, "nothing to start"),
])
def test_bad_start_options_are_named(options: dict, complaint: str) -> None:
    with pytest.raises(devenv.DevenvError, match=complaint):
        devenv.StartOptions(**options)


def test_scram_user_repr_hides_the_password() -> None:
    assert "s3cret" not in repr(kafka.ScramUser("u", "s3cret"))
