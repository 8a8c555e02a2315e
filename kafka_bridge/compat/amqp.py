"""py-amqp internals kafka-bridge relies on: publisher confirms without a wait per message.

py-amqp's public confirm mode (``confirm_select`` then ``basic_publish``)
waits for each message's confirm before the next publish. The reverse sink
publishes a whole batch, then reads the confirms once, as events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def publish_without_waiting(channel: Any, on_confirm: Callable[[int, bool, bool], None]) -> None:
    """Put channel in confirm mode with publishes that do not wait for their confirm.

    on_confirm(delivery_tag, multiple, ok) is called for every basic.ack (ok)
    and basic.nack RabbitMQ sends, while the connection's events are drained.
    Relies on ``Channel._confirm_selected`` (set by the public confirm_select
    with wait, which this replaces), ``Channel._basic_publish`` (the publish
    without the confirm wait) and ``Channel.events`` (the handlers py-amqp
    calls for basic_ack and basic_nack).
    """
    if not channel._confirm_selected:
        channel._confirm_selected = True
        channel.confirm_select()
    channel.basic_publish = channel._basic_publish
    channel.events["basic_ack"].add(
        lambda tag, multiple: on_confirm(tag, multiple, True))
    channel.events["basic_nack"].add(
        lambda tag, multiple, *_: on_confirm(tag, multiple, False))
