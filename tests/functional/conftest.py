"""Fixtures the functional tests share: the bridges a test started, the local transport."""

from __future__ import annotations

from collections.abc import Iterator

import oslo_messaging
import pytest

from kafka_bridge_devenv.brokers import Brokers
from kafka_bridge_devenv.traffic import BridgeProcess, local_transport


@pytest.fixture
def bridges() -> Iterator[list[BridgeProcess]]:
    """Bridges a test appends here are closed (stopped) after it, whatever happened."""
    started: list[BridgeProcess] = []
    yield started
    for bridge in started:
        bridge.close()


@pytest.fixture
def local(brokers: Brokers) -> Iterator[oslo_messaging.Transport]:
    """An oslo notification transport on the test RabbitMQ."""
    transport = local_transport(brokers)
    yield transport
    transport.cleanup()
