"""A quick connection check that says *why* the brokers cannot be used.

kafka-python 3.0's clients report a wrong password, an untrusted CA or a
closed port alike, as "Unable to bootstrap" after their bootstrap timeout
(and 3.0.12 drops the broker's SASL error response that arrives together
with the close). This check opens one connection per bootstrap broker and
turns the outcome into an error that names the cause, in well under a
second for a refused password, a bad certificate or a closed port.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any, TypeVar

import kafka.errors as kafka_errors

from kafka_bridge.compat.kafka_python import probe_bootstrap_brokers
from kafka_bridge.kafka import settings as settings_mod
from kafka_bridge.kafka.errors import (AuthenticationError, KafkaUnavailableError,
                                       kafka_errors_mapped, scrub)
from kafka_bridge.kafka.library_logs import silenced_on_this_thread
from kafka_bridge.kafka.settings import KafkaSettings


def check_connection(settings: KafkaSettings) -> None:
    """Return once one bootstrap broker accepts a connection (TLS and SASL included).

    Raises AuthenticationError if credentials or certificates are refused,
    KafkaUnavailableError if no broker answers within connect_timeout. What
    kafka-python logs meanwhile is dropped: the error says it, once.
    """
    with silenced_on_this_thread():
        _check(settings)


def _check(settings: KafkaSettings) -> None:
    sasl = settings.security_protocol.startswith("SASL_")
    failures = []
    for probe in probe_bootstrap_brokers(settings_mod.admin_config(settings),
                                         int(settings.connect_timeout * 1000)):
        if probe.succeeded:
            return
        exc, where = probe.error, probe.where
        if isinstance(exc, kafka_errors.SaslAuthenticationFailedError) or (
                sasl and probe.answered and exc is not None):
            # The broker answered ApiVersions, then hung up during SASL:
            # it refused the credentials.
            raise AuthenticationError(
                f"Kafka broker {where} rejected the SASL credentials of user "
                f"{settings.sasl_username!r} (mechanism {settings.sasl_mechanism}); "
                f"check the user name, password and sasl_mechanism")
        tls = _tls_error(exc)
        if isinstance(tls, ssl.SSLCertVerificationError):
            raise AuthenticationError(
                f"TLS certificate of Kafka broker {where} is not trusted "
                f"({_described(tls, settings)}); set ssl_cafile to the CA that signed the "
                f"brokers' certificates and check they name the host")
        if tls is not None:
            raise AuthenticationError(f"TLS handshake with Kafka broker {where} failed "
                                      f"({_described(tls, settings)}); check security_protocol "
                                      f"and the TLS settings")
        failures.append(f"{where}: {_described(exc, settings) if exc else 'timed out'}")
    raise KafkaUnavailableError(
        f"no Kafka broker of {','.join(settings.bootstrap_servers)} accepted a connection "
        f"within {settings.connect_timeout:g}s ({'; '.join(failures)}); check the addresses, "
        f"that the brokers run, and security_protocol")


def _tls_error(exc: BaseException | None) -> ssl.SSLError | None:
    """The ssl error behind exc (itself, or its cause or context), if any."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, ssl.SSLError):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


Client = TypeVar("Client")


def open_client(factory: Callable[..., Client], config: dict[str, Any],
                settings: KafkaSettings, action: str) -> Client:
    """factory(**config) after check_connection, with errors mapped to ours."""
    check_connection(settings)
    with kafka_errors_mapped(action, settings.secret_values):
        return factory(**config)


def _described(exc: BaseException, settings: KafkaSettings) -> str:
    return scrub(f"{type(exc).__name__}: {exc}", settings.secret_values)
