"""The start-up check of the library internals kafka_bridge.compat relies on.

Run in every environment of the release matrix, the first test proves the
touchpoints are there on each OpenStack release's libraries; the others take a
touchpoint away and expect the check, the configuration validation and the
daemon itself to refuse, naming the library, its version and the piece.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from kafka_bridge.compat import verify as verify_mod
from kafka_bridge.compat.verify import LibraryMismatch, Missing, resolve, verify
from kafka_bridge.daemon.config import BridgeConfigError, make_conf, validate

DRIVER_BASE = "oslo_messaging._drivers.base"

#: (library, owner of the attribute, attribute removed, text the refusal must contain)
REMOVALS = [
    ("oslo.messaging", DRIVER_BASE, "PollStyleListenerAdapter", "PollStyleListenerAdapter"),
    ("oslo.messaging", DRIVER_BASE, "IncomingMessage", "IncomingMessage"),
    ("oslo.messaging", "oslo_messaging._drivers.common", "deserialize_msg", "deserialize_msg"),
    ("kafka-python", "kafka.net", "NetworkSelector", "NetworkSelector"),
    ("kafka-python", "kafka.net.KafkaConnectionManager", "get_connection", "get_connection"),
    ("amqp", "amqp.transport.TCPTransport", "_setup_transport", "_setup_transport"),
    ("amqp", "amqp.connection.Connection", "on_inbound_frame", "on_inbound_frame"),
]


def refusal(monkeypatch: pytest.MonkeyPatch, owner: str, attribute: str) -> str:
    monkeypatch.delattr(resolve(owner), attribute)
    with pytest.raises(LibraryMismatch) as refused:
        verify()
    return str(refused.value)


def test_the_installed_libraries_provide_every_touchpoint() -> None:
    verify()


@pytest.mark.parametrize(("library", "owner", "attribute", "named"), REMOVALS,
                         ids=[f"{owner}.{attribute}" for _, owner, attribute, _ in REMOVALS])
def test_a_missing_touchpoint_is_named_with_its_library_and_version(
        monkeypatch: pytest.MonkeyPatch, library: str, owner: str, attribute: str,
        named: str) -> None:
    message = refusal(monkeypatch, owner, attribute)
    assert f"{library} {importlib.metadata.version(library)}" in message
    assert named in message
    assert "docs/supported-versions.md" in message


def test_a_touchpoint_that_behaves_otherwise_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    common = importlib.import_module("oslo_messaging._drivers.common")
    monkeypatch.setattr(common, "deserialize_msg", lambda envelope: envelope)
    with pytest.raises(LibraryMismatch, match="deserialize_msg does not unwrap"):
        verify()


def test_a_changed_signature_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    base = importlib.import_module(DRIVER_BASE)

    class Adapter:
        def __init__(self, listener: Any, batch_size: int, batch_timeout: float) -> None:
            pass
    monkeypatch.setattr(base, "PollStyleListenerAdapter", Adapter)
    with pytest.raises(LibraryMismatch, match="takes no parameter 'poll_style_listener'"):
        verify()


def test_an_attribute_instances_no_longer_have_is_named(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(resolve("kafka.net.connection.KafkaConnection"), "init_future")
    with pytest.raises(LibraryMismatch, match="KafkaConnection instances have no init_future"):
        verify()


def test_a_transport_that_no_longer_keeps_what_it_read_ahead_is_named(
        monkeypatch: pytest.MonkeyPatch) -> None:
    transport = resolve("amqp.transport.TCPTransport")

    def read_exactly(self: Any, n: int, initial: bool = False) -> bytes:
        return self._quick_recv(n)[:n]  # drops whatever was read beyond n
    monkeypatch.setattr(transport, "_read", read_exactly)
    with pytest.raises(LibraryMismatch, match=r"amqp .*read_frame\(\) read"):
        verify()


def test_every_failing_touchpoint_is_named_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(resolve("oslo_messaging._drivers.common"), "deserialize_msg")
    message = refusal(monkeypatch, "kafka.net", "NetworkSelector")
    assert "deserialize_msg" in message and "NetworkSelector" in message


def test_resolve_names_the_first_missing_part() -> None:
    with pytest.raises(Missing, match=r"oslo_messaging._drivers.base has no Nope"):
        resolve(f"{DRIVER_BASE}.Nope.deeper")
    with pytest.raises(Missing, match="module no_such_module_kb cannot be imported"):
        resolve("no_such_module_kb.x")


def test_every_seam_function_has_its_touchpoints_checked() -> None:
    """The check follows the seam: a compat function added or removed without its
    touchpoint entry fails here."""
    checked = {user for point in verify_mod.TOUCHPOINTS for user in point.used_by}
    for name in checked:
        module, attribute = name.split(".", 1)
        seam = importlib.import_module(f"kafka_bridge.compat.{module}")
        assert hasattr(seam, attribute), f"verify checks for kafka_bridge.compat.{name}, " \
                                         f"which no longer exists"
    for module in ("oslo_messaging", "kafka_python", "amqp"):
        seam = importlib.import_module(f"kafka_bridge.compat.{module}")
        functions = {name for name, value in vars(seam).items()
                     if inspect.isfunction(value) and value.__module__ == seam.__name__
                     and not name.startswith("_")}
        unchecked = {f"{module}.{name}" for name in functions} - checked
        assert not unchecked, f"no touchpoint check covers {sorted(unchecked)}"


def test_validation_refuses_a_configuration_when_a_touchpoint_is_missing(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "kafka-bridge.conf"
    path.write_text("[kafka_bridge]\nkafka_url = kafka-notify://h:1/\n")
    conf = make_conf(["--config-file", str(path)])
    monkeypatch.delattr(resolve("kafka.net"), "KafkaConnectionManager")
    with pytest.raises(BridgeConfigError, match="kafka.net has no KafkaConnectionManager"):
        validate(conf)


#: the daemon's command, with one touchpoint taken away first (after choosing the
#: threading backend, as main() does, since importing oslo.messaging fixes it)
DAEMON_WITHOUT = textwrap.dedent("""
    import sys
    from oslo_service import backend
    backend.init_backend(backend.BackendType.THREADING)
    from kafka_bridge.compat.verify import resolve
    owner, attribute = sys.argv[1:3]
    delattr(resolve(owner), attribute)
    from kafka_bridge.daemon.cli import main
    sys.exit(main(sys.argv[3:]))
""")


@pytest.mark.parametrize(("library", "owner", "attribute"), [
    ("oslo.messaging", DRIVER_BASE, "PollStyleListenerAdapter"),
    ("oslo.messaging", "oslo_messaging._drivers.common", "deserialize_msg"),
    ("kafka-python", "kafka.net", "KafkaConnectionManager"),
])
def test_the_daemon_refuses_to_start_naming_the_missing_touchpoint(
        tmp_path: Path, library: str, owner: str, attribute: str) -> None:
    path = tmp_path / "kafka-bridge.conf"
    path.write_text("[DEFAULT]\ntransport_url = rabbit://u:p@127.0.0.1:9/\n"
                    "[kafka_bridge]\nkafka_url = kafka-notify://127.0.0.1:9/\n")
    result = subprocess.run([sys.executable, "-c", DAEMON_WITHOUT, owner, attribute,
                             "--config-file", str(path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"{library} {importlib.metadata.version(library)}" in result.stderr
    assert attribute in result.stderr
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
