"""Running brokers as the ``KAFKA_BRIDGE_*`` variables describe them.

Built from those variables (brokers someone else started) or from a devenv
started here; used by the test suite and the demo.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from kafka_bridge_devenv import environment


@dataclasses.dataclass(frozen=True)
class Brokers:
    """One set of running brokers as the KAFKA_BRIDGE_* variables describe them."""

    rabbit_url: str | None
    kafka_bootstrap: str | None
    kafka_url: str | None
    kafka_ca: str | None = None
    kafka_user: str | None = None
    kafka_password: str | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def from_exports(cls, env: Mapping[str, str]) -> Brokers:
        return cls(rabbit_url=env.get("KAFKA_BRIDGE_RABBIT_URL"),
                   kafka_bootstrap=env.get("KAFKA_BRIDGE_KAFKA_BOOTSTRAP"),
                   kafka_url=env.get("KAFKA_BRIDGE_KAFKA_URL"),
                   kafka_ca=env.get("KAFKA_BRIDGE_KAFKA_CA"),
                   kafka_user=env.get("KAFKA_BRIDGE_KAFKA_USER"),
                   kafka_password=env.get("KAFKA_BRIDGE_KAFKA_PASSWORD"))

    @property
    def secure(self) -> bool:
        return self.kafka_ca is not None

    @property
    def kafka_nodes(self) -> int:
        return len((self.kafka_bootstrap or "").split(","))

    def kafka_client_config(self, password: str | None = None) -> dict[str, object]:
        """kafka-python keyword arguments for this cluster."""
        assert self.kafka_bootstrap, "no Kafka in these brokers"
        config: dict[str, object] = {"bootstrap_servers": self.kafka_bootstrap.split(",")}
        if self.secure:
            config.update(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                          sasl_plain_username=self.kafka_user,
                          sasl_plain_password=password or self.kafka_password,
                          ssl_cafile=self.kafka_ca)
        return config


class DevenvBrokers:
    """A devenv this test session started, stopped by close()."""

    def __init__(self, directory: Path, options: environment.StartOptions) -> None:
        self.directory = directory
        self.brokers = Brokers.from_exports(environment.start(directory, options))

    def close(self) -> None:
        environment.stop(self.directory)


def brokers_from_environment() -> Brokers | None:
    """The brokers named by KAFKA_BRIDGE_* variables, if they are set."""
    if not os.environ.get("KAFKA_BRIDGE_KAFKA_BOOTSTRAP"):
        return None
    return Brokers.from_exports(os.environ)
