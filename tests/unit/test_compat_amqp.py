"""Reading a consumer's frames in bulk (kafka_bridge.compat.amqp), against py-amqp's own
framing: py-amqp's frame writer makes the bytes, its frame handler assembles what
read_available hands it, over a real socket pair."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import amqp.exceptions
import pytest
from amqp.basic_message import Message
from amqp.method_framing import frame_handler, frame_writer
from amqp.serialization import dumps
from amqp.transport import TCPTransport

from kafka_bridge.compat.amqp import READ_AHEAD, read_ahead, read_available

FRAME_MAX = 131072


class Connection:
    """The parts of an amqp.Connection that its framing and kafka_bridge.compat.amqp use."""

    frame_max = FRAME_MAX
    bytes_recv = bytes_sent = 0

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.delivered: list[tuple[int, str, bytes]] = []
        self.on_inbound_frame = frame_handler(self, self._delivered)

    def _delivered(self, channel: int, method: tuple[int, int], args: bytes,
                   content: Any) -> None:
        assert method == (60, 60), "basic.deliver"
        # py-amqp leaves an empty body as its default, the text ''
        self.delivered.append((channel, content.properties["content_type"],
                               content.body or b""))


class Wire:
    """py-amqp's frame writer on one end of a socket pair."""

    def __init__(self, sock: socket.socket) -> None:
        self.write = sock.sendall
        self.frame_max = FRAME_MAX
        self.bytes_sent = 0
        self.buffer = bytearray()

    def delivery(self, number: int, body: bytes) -> bytes:
        """The bytes of a basic.deliver of body on channel 1."""
        self.buffer.clear()
        self.write = self.buffer.extend
        frame_writer(self, self)(1, 1, (60, 60),
                                 dumps("sLbss", ["ctag", number, False, "nova", "n.info"]),
                                 Message(body, content_type="application/json"))
        return bytes(self.buffer)


@pytest.fixture
def pair() -> Iterator[tuple[Connection, socket.socket]]:
    ours, theirs = socket.socketpair()
    transport = TCPTransport("127.0.0.1:9")
    transport.sock = ours
    transport._setup_transport()
    ours.settimeout(0)
    yield Connection(transport), theirs
    ours.close()
    theirs.close()


def bodies(count: int, size: int = 1000) -> list[bytes]:
    return [bytes([n % 256]) * size + str(n).encode() for n in range(count)]


def test_frames_split_across_receives_are_handed_over_once_complete(
        pair: tuple[Connection, socket.socket]) -> None:
    connection, theirs = pair
    sent = bodies(5)
    data = b"".join(Wire(theirs).delivery(n, body) for n, body in enumerate(sent))
    for start in range(0, len(data), 5):  # five bytes at a time: every cut of a frame
        theirs.sendall(data[start:start + 5])
        read_available(connection, lambda: False)
    assert [body for _, _, body in connection.delivered] == sent
    assert connection.transport._read_buffer == b""


def test_it_stops_when_enough_and_py_amqp_reads_on_from_its_buffer(
        pair: tuple[Connection, socket.socket]) -> None:
    connection, theirs = pair
    sent = bodies(3)
    theirs.sendall(b"".join(Wire(theirs).delivery(n, body) for n, body in enumerate(sent)))
    read_available(connection, lambda: len(connection.delivered) >= 1)
    assert [body for _, _, body in connection.delivered] == sent[:1]
    for _ in range(3):  # py-amqp's own read of the next delivery's frames
        connection.on_inbound_frame(connection.transport.read_frame())
    read_available(connection, lambda: False)
    assert [body for _, _, body in connection.delivered] == sent


def test_bodies_larger_than_a_read_and_a_frame_arrive_whole(
        pair: tuple[Connection, socket.socket]) -> None:
    connection, theirs = pair
    sent = [b"x" * (FRAME_MAX * 2 + 17), b"y" * (READ_AHEAD + 1), b""]
    data = b"".join(Wire(theirs).delivery(n, body) for n, body in enumerate(sent))
    theirs.setblocking(False)
    offset = 0
    deadline = time.monotonic() + 10
    while len(connection.delivered) < len(sent):
        assert time.monotonic() < deadline, f"{len(connection.delivered)} of 3 delivered"
        if offset < len(data):
            try:
                offset += theirs.send(data[offset:])
            except BlockingIOError:
                pass
        read_available(connection, lambda: False)
    assert [body for _, _, body in connection.delivered] == sent


def test_a_frame_without_its_end_octet_is_refused(
        pair: tuple[Connection, socket.socket]) -> None:
    connection, theirs = pair
    theirs.sendall(struct.pack(">BHI", 8, 0, 0) + b"\x00")
    with pytest.raises(amqp.exceptions.UnexpectedFrame, match="frame_end 0x00"):
        read_available(connection, lambda: False)


def test_a_closed_connection_is_an_error(pair: tuple[Connection, socket.socket]) -> None:
    connection, theirs = pair
    theirs.sendall(Wire(theirs).delivery(1, b"partial")[:20])
    theirs.close()
    with pytest.raises(OSError, match="closed"):
        read_available(connection, lambda: False)
    assert connection.delivered == []


def test_read_ahead_reads_several_frames_at_once(
        pair: tuple[Connection, socket.socket]) -> None:
    connection, theirs = pair
    read_ahead(connection)
    sent = bodies(3, 100)
    theirs.sendall(b"".join(Wire(theirs).delivery(n, body) for n, body in enumerate(sent)))
    connection.transport.sock.settimeout(2.0)
    first = connection.transport.read_frame()
    assert first[0] == 1 and len(connection.transport._read_buffer) > 500


def test_other_transports_are_read_by_py_amqp_frame_by_frame() -> None:
    class TLSConnection:
        transport = object()
        events = 3

        def __init__(self) -> None:
            self.timeouts: list[float] = []

        def drain_events(self, timeout: float) -> None:
            self.timeouts.append(timeout)
            if len(self.timeouts) > self.events:
                raise socket.timeout()

    drained = TLSConnection()
    read_available(drained, lambda: False)
    assert drained.timeouts == [0, 0, 0, 0]
    enough = TLSConnection()
    read_available(enough, lambda: len(enough.timeouts) >= 2)
    assert enough.timeouts == [0, 0]
