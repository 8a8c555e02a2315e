"""kafka-notify:// against real brokers: SASL_SSL, refused credentials and
certificates, unreachable brokers, oversized records, RPC refusal, bad URLs,
and secrets kept out of errors and logs."""

from __future__ import annotations

import logging
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import oslo_messaging
import pytest
from oslo_config import cfg

from kafka_bridge_devenv.brokers import Brokers

#: seconds a failure that no retry can fix may take to be reported
PROMPT = 15.0
#: seconds a notification may take to reach a listener
DELIVERY_WAIT = 60.0

WRONG_PASSWORD = "wr0ng-Pa55-7f3e9c1d2b"


def make_conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([], project="kafka-bridge-tests")
    return conf


def secure_url(brokers: Brokers, password: str | None = None, cafile: str | None = None,
               extra: str = "") -> str:
    """A SASL_SSL kafka-notify:// URL for brokers with the given password and CA."""
    user = quote(brokers.kafka_user or "", safe="")
    secret = quote(password if password is not None else brokers.kafka_password or "", safe="")
    ca = quote(cafile or brokers.kafka_ca or "")
    return (f"kafka-notify://{user}:{secret}@{brokers.kafka_bootstrap}/"
            f"?security_protocol=SASL_SSL&sasl_mechanism=SCRAM-SHA-512&ssl_cafile={ca}{extra}")


def notification(unique: str, payload: Any = None) -> dict[str, Any]:
    return {"message_id": f"id-{unique}", "publisher_id": "test.host", "event_type":
            "test.event", "priority": "INFO",
            "payload": payload if payload is not None else {"n": 1},
            "timestamp": "2024-01-01 00:00:00.000000"}


def bounded(fn: Callable[[], Any], limit: float) -> tuple[BaseException | None, float]:
    """Run fn in a thread; (exception it raised or None, seconds taken).

    Fails the test if fn has not returned within limit seconds, instead of
    hanging the session.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["exc"] = exc

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    took = time.monotonic() - started
    assert not thread.is_alive(), f"did not return within {limit}s"
    return outcome.get("exc"), took


@pytest.fixture
def transports() -> Iterator[list[oslo_messaging.Transport]]:
    """Transports to clean up after the test."""
    made: list[oslo_messaging.Transport] = []
    yield made
    for transport in made:
        transport.cleanup()


@pytest.fixture
def all_loggers_debug(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every logger, including those with a level of their own, at DEBUG into caplog."""
    caplog.set_level(logging.DEBUG)
    saved = {}
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            saved[name] = logger.level
            logger.setLevel(logging.DEBUG)
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def notification_transport(transports: list, url: str) -> oslo_messaging.Transport:
    transport = oslo_messaging.get_notification_transport(make_conf(), url=url)
    transports.append(transport)
    return transport


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Collector:
    """A notification endpoint that records what it receives."""

    def __init__(self, expected: int) -> None:
        self.received: list[tuple[str, str, dict]] = []
        self._expected = expected
        self.done = threading.Event()
        self._lock = threading.Lock()

    def info(self, ctxt: dict, publisher_id: str, event_type: str, payload: dict,
             metadata: dict) -> None:
        with self._lock:
            self.received.append((publisher_id, event_type, payload))
            if len(self.received) >= self._expected:
                self.done.set()


# SASL_SSL --------------------------------------------------------------------------------


def test_sasl_ssl_notifier_listener_round_trip(secure_kafka: Brokers, unique: str,
                                               transports: list) -> None:
    assert secure_kafka.kafka_url and "security_protocol=SASL_SSL" in secure_kafka.kafka_url
    transport = notification_transport(transports, secure_kafka.kafka_url)
    collector = Collector(expected=3)
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=unique)], [collector], executor="threading",
        pool=unique)
    listener.start()
    try:
        notifier = oslo_messaging.Notifier(transport, publisher_id="compute.secure",
                                           driver="messaging", topics=[unique], retry=3)
        for n in range(3):
            notifier.info({"user": "u"}, "secure.event", {"n": n})
        assert collector.done.wait(DELIVERY_WAIT), collector.received
    finally:
        listener.stop()
        listener.wait()
    assert sorted(p["n"] for _, _, p in collector.received) == [0, 1, 2]
    assert {(pub, ev) for pub, ev, _ in collector.received} == {
        ("compute.secure", "secure.event")}


def test_sasl_ssl_send_notification_confirms(secure_kafka: Brokers, unique: str,
                                             transports: list) -> None:
    transport = notification_transport(transports, secure_kafka.kafka_url)
    exc, _ = bounded(lambda: transport._send_notification(
        oslo_messaging.Target(topic=f"{unique}.info"), {}, notification(unique), "2.0",
        retry=0), DELIVERY_WAIT)
    assert exc is None, exc


def test_wrong_password_fails_promptly_without_leaking_it(
        secure_kafka: Brokers, unique: str, transports: list,
        caplog: pytest.LogCaptureFixture, all_loggers_debug: None) -> None:
    transport = notification_transport(transports,
                                       secure_url(secure_kafka, password=WRONG_PASSWORD))
    # retry=None means "forever" for retriable errors; refused credentials are not
    exc, took = bounded(lambda: transport._send_notification(
        oslo_messaging.Target(topic=f"{unique}.info"), {}, notification(unique), "2.0",
        retry=None), PROMPT)
    assert isinstance(exc, oslo_messaging.MessageDeliveryFailure), repr(exc)
    assert took < PROMPT
    text = str(exc)
    assert "rejected" in text and "credentials" in text, text
    assert secure_kafka.kafka_user in text
    chain = []
    cause: BaseException | None = exc
    while cause is not None:
        chain.append(f"{type(cause).__name__}: {cause} {cause.args!r}")
        cause = cause.__cause__ or cause.__context__
    assert WRONG_PASSWORD not in " ".join(chain)
    assert secure_kafka.kafka_password not in " ".join(chain)

    # and a listener with the wrong password fails when it starts, saying why
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=unique)], [Collector(1)],
        executor="threading", pool=unique)
    listen_exc, took = bounded(listener.start, PROMPT)
    assert listen_exc is not None, "listener started with a wrong password"
    assert isinstance(listen_exc, oslo_messaging.MessagingException), repr(listen_exc)
    assert "rejected" in str(listen_exc) and "credentials" in str(listen_exc), listen_exc
    assert WRONG_PASSWORD not in str(listen_exc)

    logged = [caplog.text]
    for record in caplog.records:
        logged.append(record.getMessage())
        logged.append(repr(record.args))
        logged.append(record.exc_text or "")
        if record.exc_info:
            logged.append(logging.Formatter().formatException(record.exc_info))
    everything = "\n".join(logged)
    assert caplog.records, "nothing was logged at DEBUG: the capture does not work"
    assert WRONG_PASSWORD not in everything
    assert quote(WRONG_PASSWORD, safe="") not in everything


def test_listener_with_right_password_after_refusal_is_unaffected(
        secure_kafka: Brokers, unique: str, transports: list) -> None:
    """A refused transport does not poison others in the same process."""
    bad = notification_transport(transports, secure_url(secure_kafka, password=WRONG_PASSWORD))
    exc, _ = bounded(lambda: bad._send_notification(
        oslo_messaging.Target(topic=f"{unique}.info"), {}, notification(unique), "2.0",
        retry=0), PROMPT)
    assert isinstance(exc, oslo_messaging.MessageDeliveryFailure)
    good = notification_transport(transports, secure_kafka.kafka_url)
    exc, _ = bounded(lambda: good._send_notification(
        oslo_messaging.Target(topic=f"{unique}.info"), {}, notification(unique), "2.0",
        retry=0), DELIVERY_WAIT)
    assert exc is None, exc


def make_untrusted_ca(directory: Path) -> Path:
    key, cert = directory / "ca.key", directory / "ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=untrusted-test-ca", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert


def test_untrusted_ca_fails_promptly_naming_the_certificate(
        secure_kafka: Brokers, unique: str, transports: list, tmp_path: Path) -> None:
    ca = make_untrusted_ca(tmp_path)
    transport = notification_transport(transports, secure_url(secure_kafka, cafile=str(ca)))
    exc, took = bounded(lambda: transport._send_notification(
        oslo_messaging.Target(topic=f"{unique}.info"), {}, notification(unique), "2.0",
        retry=None), PROMPT)
    assert isinstance(exc, oslo_messaging.MessageDeliveryFailure), repr(exc)
    text = str(exc)
    assert "certificate" in text.lower(), text
    assert "ssl_cafile" in text or "CA" in text, text
    assert secure_kafka.kafka_password not in text

    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=unique)], [Collector(1)],
        executor="threading", pool=unique)
    listen_exc, _ = bounded(listener.start, PROMPT)
    assert listen_exc is not None, "listener started with an untrusted CA"
    assert "certificate" in str(listen_exc).lower(), listen_exc


def test_plaintext_client_against_sasl_ssl_broker_fails_promptly(
        secure_kafka: Brokers, unique: str, transports: list) -> None:
    transport = notification_transport(
        transports, f"kafka-notify://{secure_kafka.kafka_bootstrap}/?connect_timeout=2"
                    f"&delivery_timeout=2")
    exc, _ = bounded(lambda: transport._send_notification(
        oslo_messaging.Target(topic=f"{unique}.info"), {}, notification(unique), "2.0",
        retry=1), PROMPT)
    assert isinstance(exc, oslo_messaging.MessageDeliveryFailure), repr(exc)


# availability and limits -----------------------------------------------------------------


def test_unreachable_broker_gives_up_after_retries(unique: str, transports: list) -> None:
    port = closed_port()
    transport = notification_transport(
        transports, f"kafka-notify://127.0.0.1:{port}/?delivery_timeout=1&connect_timeout=1")
    exc, took = bounded(lambda: transport._send_notification(
        oslo_messaging.Target(topic=f"{unique}.info"), {}, notification(unique), "2.0",
        retry=2), 30.0)
    assert isinstance(exc, oslo_messaging.MessageDeliveryFailure), repr(exc)
    text = str(exc)
    assert "3 attempt(s)" in text, text
    assert f"127.0.0.1:{port}" in text, text
    assert took < 20.0


def test_silent_broker_gives_up_after_connect_timeout(unique: str, transports: list) -> None:
    """A port that accepts TCP but never answers: bounded by connect_timeout per attempt."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes handshakes; nobody ever replies
        port = silent.getsockname()[1]
        transport = notification_transport(
            transports,
            f"kafka-notify://127.0.0.1:{port}/?delivery_timeout=1&connect_timeout=1")
        exc, took = bounded(lambda: transport._send_notification(
            oslo_messaging.Target(topic=f"{unique}.info"), {}, notification(unique), "2.0",
            retry=1), 30.0)
    assert isinstance(exc, oslo_messaging.MessageDeliveryFailure), repr(exc)
    assert "2 attempt(s)" in str(exc), exc
    assert f"127.0.0.1:{port}" in str(exc), exc
    assert took >= 1.0  # it did wait for an answer
    assert took < 12.0, took


def test_unreachable_broker_retry_zero_is_one_attempt(unique: str, transports: list) -> None:
    port = closed_port()
    transport = notification_transport(
        transports, f"kafka-notify://127.0.0.1:{port}/?delivery_timeout=1&connect_timeout=1")
    exc, _ = bounded(lambda: transport._send_notification(
        oslo_messaging.Target(topic=f"{unique}.info"), {}, notification(unique), "2.0",
        retry=0), PROMPT)
    assert isinstance(exc, oslo_messaging.MessageDeliveryFailure), repr(exc)
    assert "1 attempt(s)" in str(exc), exc


def test_oversized_record_fails_at_once_with_size_and_limit(
        brokers: Brokers, unique: str, transports: list) -> None:
    transport = notification_transport(
        transports, f"kafka-notify://{brokers.kafka_bootstrap}/?max_request_size=10000")
    target = oslo_messaging.Target(topic=f"{unique}.info")
    big = notification(unique, payload={"blob": "x" * 20000})
    exc, took = bounded(lambda: transport._send_notification(target, {}, big, "2.0",
                                                             retry=None), PROMPT)
    assert isinstance(exc, oslo_messaging.MessageDeliveryFailure), repr(exc)
    text = str(exc)
    assert "10000" in text, text
    assert "max_request_size" in text, text
    size = int(text.split(" bytes")[0].rsplit(" ", 1)[-1])
    assert size > 20000
    assert "attempt" not in text  # not retried
    # the same transport still delivers a record within the limit
    small = notification(unique, payload={"blob": "x" * 100})
    exc, _ = bounded(lambda: transport._send_notification(target, {}, small, "2.0", retry=0),
                     DELIVERY_WAIT)
    assert exc is None, exc


# RPC and configuration -------------------------------------------------------------------


def rpc_conf() -> cfg.ConfigOpts:
    conf = make_conf()
    from oslo_messaging._metrics import client as metrics_client
    from oslo_messaging._tracing import client as tracing_client
    conf.register_opts(metrics_client.oslo_messaging_metrics, group="oslo_messaging_metrics")
    conf.register_opts(tracing_client.oslo_messaging_tracing, group="oslo_messaging_tracing")
    return conf


def test_rpc_is_refused(brokers: Brokers, unique: str) -> None:
    conf = rpc_conf()
    transport = oslo_messaging.get_rpc_transport(conf, url=brokers.kafka_url)
    try:
        target = oslo_messaging.Target(topic=unique, server="s1")
        client = oslo_messaging.get_rpc_client(transport, target)
        for invoke in (lambda: client.cast({}, "ping"), lambda: client.call({}, "ping")):
            exc, _ = bounded(invoke, PROMPT)
            assert isinstance(exc, NotImplementedError), repr(exc)
            assert "notifications only" in str(exc)
            assert "RPC is not supported" in str(exc)
        server = oslo_messaging.get_rpc_server(transport, target, [], executor="threading")
        exc, _ = bounded(server.start, PROMPT)
        assert isinstance(exc, NotImplementedError), repr(exc)
        assert "notifications only" in str(exc)
        with pytest.raises(NotImplementedError, match="notifications only"):
            transport._driver.send(target, {}, {"method": "ping"})
        with pytest.raises(NotImplementedError, match="notifications only"):
            transport._driver.listen(target, 1, None)
    finally:
        transport.cleanup()


@pytest.mark.parametrize("query, option", [
    ("compression_codec=bogus", "compression_codec"),
    ("linger_ms=x", "linger_ms"),
    ("no_such_option=1", "no_such_option"),
])
def test_bad_url_option_fails_when_transport_is_created(brokers: Brokers, query: str,
                                                        option: str) -> None:
    with pytest.raises(oslo_messaging.InvalidTransportURL) as info:
        oslo_messaging.get_notification_transport(
            make_conf(), url=f"kafka-notify://{brokers.kafka_bootstrap}/?{query}")
    assert option in str(info.value)


def test_bad_url_option_error_hides_password(secure_kafka: Brokers) -> None:
    with pytest.raises(oslo_messaging.InvalidTransportURL) as info:
        oslo_messaging.get_notification_transport(
            make_conf(), url=secure_url(secure_kafka, extra="&linger_ms=x"))
    assert "linger_ms" in str(info.value)
    assert secure_kafka.kafka_password not in str(info.value)
    assert secure_kafka.kafka_password not in str(info.value.url)
