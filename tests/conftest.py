"""Session-wide real brokers and per-test names.

``brokers``: RabbitMQ plus a Kafka node. When ``KAFKA_BRIDGE_KAFKA_BOOTSTRAP``
(and ``KAFKA_BRIDGE_RABBIT_URL``) are set, for instance after
``eval "$(kafka-bridge-devenv start --dir D)"``, the tests use those;
otherwise one devenv is started for the whole session and stopped at its end.
``secure_kafka`` and ``kafka_cluster3`` start their own Kafka (only when a
test asks for them) unless the environment's cluster already has that shape.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest

import kafka_bridge_devenv as devenv
from kafka_bridge_devenv.brokers import Brokers, DevenvBrokers, brokers_from_environment


def _session_devenv(tmp_path_factory: pytest.TempPathFactory, name: str,
                    options: devenv.StartOptions) -> Iterator[Brokers]:
    started = DevenvBrokers(tmp_path_factory.mktemp(name), options)
    try:
        yield started.brokers
    finally:
        started.close()


@pytest.fixture(scope="session")
def brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Brokers]:
    existing = brokers_from_environment()
    if existing is not None:
        yield existing
        return
    yield from _session_devenv(tmp_path_factory, "devenv", devenv.StartOptions())


@pytest.fixture(scope="session")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory,
                 brokers: Brokers) -> Iterator[Brokers]:
    if brokers.secure:
        yield brokers
        return
    yield from _session_devenv(tmp_path_factory, "devenv-sasl",
                               devenv.StartOptions(rabbit=False, kafka_security="sasl_ssl"))


@pytest.fixture(scope="session")
def kafka_cluster3(tmp_path_factory: pytest.TempPathFactory,
                   brokers: Brokers) -> Iterator[Brokers]:
    if brokers.kafka_nodes == 3:
        yield brokers
        return
    yield from _session_devenv(tmp_path_factory, "devenv-3", devenv.StartOptions(
        rabbit=False, kafka_nodes=3))


@pytest.fixture
def unique(request: pytest.FixtureRequest) -> str:
    """A name no other test uses: for topics, groups, queues and pools."""
    base = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name)[:60].strip("-")
    return f"{base}-{uuid.uuid4().hex[:8]}"
