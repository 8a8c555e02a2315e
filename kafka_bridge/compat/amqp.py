"""py-amqp internals kafka-bridge relies on: reading a consumer's frames in bulk.

py-amqp reads each frame in three exact-size parts (header, payload, end
octet), each with its own ``recv``, and sets the socket's timeout around
every frame: a delivered message (three frames) costs a dozen system calls
and as many Python-level context managers. Its transports keep what a
receive returned beyond the bytes asked for in ``_read_buffer`` and serve
later reads from it (the TLS transport relies on that already), and every
frame read goes to the connection's frame handler, ``on_inbound_frame``.

``read_ahead`` makes py-amqp's own reads ask for at least READ_AHEAD bytes.
``read_available`` hands the complete frames already received to the frame
handler itself, as py-amqp's ``blocking_read`` does one by one. Measured on
a queue of 20,000 pre-loaded 1 KB notifications: 53 µs of CPU per consumed
message with py-amqp's reads, 23 µs reading ahead, 15 µs with
read_available. There is no public way to size py-amqp's reads or to read
what is there without a timeout per frame.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import Any

import amqp.exceptions
import amqp.transport

#: bytes asked of the socket at least; more costs copying in py-amqp's buffer slicing
READ_AHEAD = 8192

#: an AMQP 0-9-1 frame: type, channel, payload size; then the payload and FRAME_END
_FRAME_HEADER = struct.Struct(">BHI")
_FRAME_END = 0xCE


def read_ahead(connection: Any, size: int = READ_AHEAD) -> None:
    """Make an open ``amqp.Connection`` read its socket at least size bytes at a time.

    Only for a connection whose socket nothing else reads (a consumer
    draining events): what was read ahead is in py-amqp's buffer, not the
    socket, so a poll on the socket would not see it.
    """
    transport = connection.transport
    transport._quick_recv = _at_least(transport._quick_recv, size)


def _at_least(receive: Callable[[int], bytes], size: int) -> Callable[[int], bytes]:
    def receive_ahead(wanted: int) -> bytes:
        return receive(wanted if wanted > size else size)
    return receive_ahead


def read_available(connection: Any, enough: Callable[[], bool]) -> None:
    """Hand the frames an open ``amqp.Connection`` has received to its frame handler,
    without waiting, until enough() or no complete frame is left.

    The connection's socket must be non-blocking (timeout 0). A frame
    received in part stays in py-amqp's buffer, where its next read
    continues. Raises what py-amqp raises: UnexpectedFrame for a malformed
    frame, OSError if the connection was closed, the handler's exceptions.
    On a TLS connection this is py-amqp's own reading, frame by frame.
    """
    transport = connection.transport
    if not isinstance(transport, amqp.transport.TCPTransport):
        while not enough():
            try:
                connection.drain_events(timeout=0)
            except socket.timeout:
                return
        return
    handle = connection.on_inbound_frame
    receive = transport.sock.recv
    unpack = _FRAME_HEADER.unpack_from
    buffer, start = transport._read_buffer, 0
    try:
        while not enough():
            missing = start + 7 - len(buffer)  # bytes of this frame not received yet
            if missing <= 0:
                kind, channel, size = unpack(buffer, start)
                end = start + 7 + size
                missing = end + 1 - len(buffer)
                if missing <= 0:
                    if buffer[end] != _FRAME_END:
                        raise amqp.exceptions.UnexpectedFrame(
                            f"Received frame_end {buffer[end]:#04x} while expecting 0xce")
                    payload = buffer[start + 7:end]
                    start = end + 1
                    handle((kind, channel, payload))
                    continue
            try:
                received = receive(max(READ_AHEAD, missing))
            except BlockingIOError:
                return
            if not received:
                raise OSError("Server unexpectedly closed connection")
            buffer, start = buffer[start:] + received, 0
    finally:
        transport._read_buffer = buffer[start:]
