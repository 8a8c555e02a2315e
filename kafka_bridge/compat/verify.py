"""Checking, before the daemon starts, that every library internal it relies on is there.

The other modules of this package use private names of oslo.messaging and
kafka-python. A release that renames or changes one of them would not fail
at once: it would fail at the first message, or worse, ack what was never
confirmed. ``verify()`` checks each touchpoint (existence, signature, and a
behaviour that needs no broker) and names every one that is missing, with the
library and its installed version.

This module resolves the private names from strings and imports none of the
seam's modules, so that a name missing at their import time is reported
here as well.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.metadata
import inspect
import json
import socket
import struct
from collections.abc import Callable, Iterator
from typing import Any

from kafka_bridge.compat.amqp import read_ahead, read_available

SUPPORTED = "docs/supported-versions.md"


class LibraryMismatch(Exception):
    """An installed library lacks an internal kafka-bridge relies on; the message names
    each missing piece, its library and the library's version."""


class Missing(Exception):
    """One touchpoint check failed; the message says what is missing or different."""


@dataclasses.dataclass(frozen=True)
class Touchpoint:
    """Private names of a library, and the seam functions that rely on them."""

    #: the distribution, as pip names it
    library: str
    #: the private names, dotted from their module
    piece: str
    #: the kafka_bridge.compat names (module.name) that use them
    used_by: tuple[str, ...]
    #: raises Missing (or any exception) if the piece is absent or behaves otherwise
    check: Callable[[], None]


TOUCHPOINTS: list[Touchpoint] = []


def _touchpoint(library: str, piece: str,
                *used_by: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    def register(check: Callable[[], None]) -> Callable[[], None]:
        TOUCHPOINTS.append(Touchpoint(library, piece, used_by, check))
        return check
    return register


def resolve(dotted: str) -> Any:
    """The object a dotted name denotes (module, then attributes); Missing names the
    first part that does not exist."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        module_name = ".".join(parts[:split])
        try:
            found: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        for index, attribute in enumerate(parts[split:], start=split):
            try:
                found = getattr(found, attribute)
            except AttributeError:
                raise Missing(f"{'.'.join(parts[:index])} has no {attribute}") from None
        return found
    raise Missing(f"module {parts[0]} cannot be imported")


def _expect(condition: bool, problem: str) -> None:
    if not condition:
        raise Missing(problem)


def _set_by_init(cls_name: str, *attributes: str) -> None:
    """cls_name's __init__ sets (or reads) each attribute, or the class defines it."""
    cls = resolve(cls_name)
    names = cls.__init__.__code__.co_names
    for attribute in attributes:
        _expect(attribute in names or hasattr(cls, attribute),
                f"{cls_name} instances have no {attribute}")


def _parameters(dotted: str, *names: str) -> None:
    """The callable named by dotted accepts each parameter name."""
    accepted = inspect.signature(resolve(dotted)).parameters
    for name in names:
        _expect(name in accepted, f"{dotted} takes no parameter {name!r}")


# oslo.messaging ----------------------------------------------------------------------

DRIVER_BASE = "oslo_messaging._drivers.base"
COMMON = "oslo_messaging._drivers.common"


@_touchpoint("oslo.messaging", f"{DRIVER_BASE} (the driver interface)",
             "oslo_messaging.BaseDriver", "oslo_messaging.IncomingMessage",
             "oslo_messaging.Listener", "oslo_messaging.PollStyleListener",
             "oslo_messaging.PollStyleListenerAdapter")
def _driver_interface() -> None:
    for name in ("BaseDriver", "IncomingMessage", "Listener", "PollStyleListener",
                 "PollStyleListenerAdapter"):
        _expect(inspect.isclass(resolve(f"{DRIVER_BASE}.{name}")),
                f"{DRIVER_BASE}.{name} is not a class")
    # what kafka_bridge.driver passes to them
    _parameters(f"{DRIVER_BASE}.BaseDriver", "conf", "url", "default_exchange",
                "allowed_remote_exmods")
    _parameters(f"{DRIVER_BASE}.IncomingMessage", "ctxt", "message", "msg_id")
    _parameters(f"{DRIVER_BASE}.PollStyleListener", "prefetch_size")
    _parameters(f"{DRIVER_BASE}.PollStyleListenerAdapter", "poll_style_listener",
                "batch_size", "batch_timeout")


@_touchpoint("oslo.messaging", f"{COMMON}.deserialize_msg", "oslo_messaging.deserialize_msg")
def _deserialize_msg() -> None:
    deserialize = resolve(f"{COMMON}.deserialize_msg")
    message = {"event_type": "compat.check", "payload": {"n": 1}}
    envelope = {"oslo.version": "2.0", "oslo.message": json.dumps(message)}
    _expect(deserialize(envelope) == message,
            f"{COMMON}.deserialize_msg does not unwrap an oslo.version 2.0 envelope")
    _expect(deserialize(dict(message)) == message,
            f"{COMMON}.deserialize_msg does not pass an unversioned message through")


# kafka-python ------------------------------------------------------------------------


@_touchpoint("kafka-python", "kafka.net (NetworkSelector, KafkaConnectionManager, "
             "KafkaConnection.init_future, broker_version)",
             "kafka_python.probe_bootstrap_brokers")
def _kafka_net() -> None:
    net_cls = resolve("kafka.net.NetworkSelector")
    manager_cls = resolve("kafka.net.KafkaConnectionManager")
    _parameters("kafka.net.KafkaConnectionManager.get_connection", "node_id", "timeout_ms")
    _parameters("kafka.net.NetworkSelector.poll", "timeout_ms", "future")
    _set_by_init("kafka.net.connection.KafkaConnection", "init_future", "broker_version")
    config = {"bootstrap_servers": ["127.0.0.1:9"]}
    net = net_cls(**config)
    manager = manager_cls(net, **config)
    try:
        brokers = list(manager.cluster.bootstrap_brokers())
        _expect([(b.host, b.port) for b in brokers] == [("127.0.0.1", 9)],
                "KafkaConnectionManager.cluster.bootstrap_brokers() does not list the "
                "configured bootstrap servers")
    finally:
        manager.close()
        net.close()


# py-amqp -----------------------------------------------------------------------------


@_touchpoint("amqp", "amqp.transport.TCPTransport (_setup_transport, _quick_recv, "
             "_read_buffer kept by _read)", "amqp.read_ahead")
def _amqp_read_buffer() -> None:
    with _transport_on_a_socket_pair() as (transport, ours, theirs):
        _expect(callable(getattr(transport, "_quick_recv", None)),
                "TCPTransport._setup_transport() sets no _quick_recv")
        received: list[int] = []
        recv = transport._quick_recv

        def counted(n: int) -> bytes:
            received.append(n)
            return recv(n)
        transport._quick_recv = counted
        read_ahead(_Connection(transport), 4096)
        frames = [(1, 0, b"first"), (3, 1, b"second frame")]
        theirs.sendall(b"".join(struct.pack(">BHI", kind, channel, len(payload)) + payload
                                + b"\xce" for kind, channel, payload in frames))
        ours.settimeout(2.0)
        try:
            read = [transport.read_frame(), transport.read_frame()]
        except OSError as exc:  # timed out: it waits for bytes it already read
            read = [f"{type(exc).__name__}: {exc}"]
        _expect(read == frames, f"TCPTransport.read_frame() read {read!r} of {frames!r} "
                                f"when its receive function reads ahead")
        _expect(received == [4096], f"TCPTransport read two frames with receives of "
                                    f"{received} bytes, not one read ahead of 4096")


@_touchpoint("amqp", "amqp.Connection.on_inbound_frame, amqp.method_framing.frame_handler "
             "(the frames it takes), TCPTransport._read_buffer", "amqp.read_available")
def _amqp_frame_handler() -> None:
    _expect(isinstance(inspect.getattr_static(resolve("amqp.connection.Connection"),
                                              "on_inbound_frame", None), property),
            "amqp.Connection has no on_inbound_frame property")
    with _transport_on_a_socket_pair() as (transport, ours, theirs):
        _expect(getattr(transport, "_read_buffer", None) == b"",
                "TCPTransport._setup_transport() sets no empty _read_buffer")
        delivered: list[tuple[Any, ...]] = []
        connection = _Connection(transport)
        connection.on_inbound_frame = resolve("amqp.method_framing.frame_handler")(
            connection, lambda *args: delivered.append(args))
        body = bytes(range(256)) * 40  # several body frames of at most frame_max
        sender = _Connection(_Writer(theirs))
        write = resolve("amqp.method_framing.frame_writer")(sender, sender.transport)
        arguments = resolve("amqp.serialization.dumps")("sLbss", ["tag", 7, False, "x", "k"])
        message = resolve("amqp.basic_message.Message")(body, content_type="application/json")
        write(1, 1, (60, 60), arguments, message)
        ours.settimeout(0)
        read_available(connection, lambda: bool(delivered))
        _expect(len(delivered) == 1, f"frame_handler assembled {len(delivered)} deliveries "
                                     f"of the frames read_available handed it, not 1")
        channel, method, args, content = delivered[0]
        _expect((channel, method, bytes(args)[4:]) == (1, (60, 60), arguments),
                f"frame_handler delivered method {method} on channel {channel}, not "
                f"basic.deliver on 1")
        _expect(content.body == body and content.properties.get("content_type")
                == "application/json", "frame_handler assembled another message body "
                                       "or properties than were sent")


@contextlib.contextmanager
def _transport_on_a_socket_pair() -> Iterator[tuple[Any, socket.socket, socket.socket]]:
    """(py-amqp's TCPTransport set up on one end of a socket pair, that end, the other)."""
    transport = resolve("amqp.transport.TCPTransport")("127.0.0.1:9")
    ours, theirs = socket.socketpair()
    try:
        transport.sock = ours
        transport._setup_transport()
        yield transport, ours, theirs
    finally:
        ours.close()
        theirs.close()


class _Connection:
    """What read_ahead, read_available and py-amqp's framing need of an amqp.Connection."""

    frame_max = 4096
    bytes_recv = bytes_sent = 0
    on_inbound_frame: Callable[[tuple[int, int, bytes]], Any]

    def __init__(self, transport: Any) -> None:
        self.transport = transport


class _Writer:
    """A transport that writes to a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.write = sock.sendall


def _version(library: str) -> str:
    try:
        return importlib.metadata.version(library)
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def verify() -> None:
    """Return if every touchpoint is there and behaves as assumed.

    Raises LibraryMismatch naming each failing touchpoint: the library, its
    installed version, the missing piece and what is different. Opens no
    connection.
    """
    problems = []
    for point in TOUCHPOINTS:
        try:
            point.check()
        except Missing as exc:  # names the missing piece itself
            problems.append(f"{point.library} {_version(point.library)}: {exc}")
        except Exception as exc:  # noqa: BLE001 - every failure is reported, named
            problems.append(f"{point.library} {_version(point.library)}: {point.piece}: "
                            f"{type(exc).__name__}: {exc}")
    if problems:
        raise LibraryMismatch(
            "the installed libraries lack internals kafka-bridge relies on, so it refuses "
            "to run: " + "; ".join(problems) + f". Install the versions it is tested with "
            f"(setup.cfg's ranges; {SUPPORTED}).")
