"""kafka-bridge's Kafka errors, and the one place kafka-python's are mapped to them.

Callers decide on ``KafkaBridgeError.retriable``, never on message text.
Messages say what went wrong and what to do, and never contain a secret.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterable, Iterator

import kafka.errors as kafka_errors

from kafka_bridge.errors import DeliveryFailure


class KafkaBridgeError(DeliveryFailure):
    """Base class. ``retriable`` says whether trying again may succeed."""


class ConfigurationError(KafkaBridgeError):
    """An option or transport URL value is invalid; the message names it."""


class KafkaUnavailableError(KafkaBridgeError):
    """No broker answered in time, or the cluster cannot take the record now."""

    retriable = True


class AuthenticationError(KafkaBridgeError):
    """The brokers refused the credentials or the TLS handshake failed."""


class AuthorizationError(KafkaBridgeError):
    """The user may not do this (topic, group or cluster ACL)."""


class RecordTooLargeError(KafkaBridgeError):
    """A record is larger than the producer or the topic accepts."""


class TopicError(KafkaBridgeError):
    """A topic cannot be created or used as configured."""


class DeliveryError(KafkaBridgeError):
    """Kafka did not confirm a record; see ``__cause__`` and ``retriable``."""


def scrub(text: str, secrets: Iterable[str]) -> str:
    """text with every secret replaced by ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


#: kafka-python (and ssl) exceptions -> (our error, what to tell the operator), first match
#: wins; {action} is what was being done, {detail} the scrubbed original.
_MAPPING: tuple[tuple[tuple[type[BaseException], ...], type[KafkaBridgeError], str], ...] = (
    ((kafka_errors.SaslAuthenticationFailedError,), AuthenticationError,
     "{action}: the brokers rejected the SASL credentials ({detail}); check the user name, "
     "password and sasl_mechanism"),
    ((kafka_errors.UnsupportedSaslMechanismError, kafka_errors.IllegalSaslStateError),
     AuthenticationError,
     "{action}: SASL handshake failed ({detail}); check sasl_mechanism against the brokers' "
     "sasl.enabled.mechanisms"),
    ((ssl.SSLError,), AuthenticationError,
     "{action}: TLS handshake failed ({detail}); check ssl_cafile (the CA that signed the "
     "brokers' certificates) and that the certificates name the host"),
    ((kafka_errors.AuthorizationError,), AuthorizationError,
     "{action}: not authorized ({detail}); grant the user the needed ACLs"),
    ((kafka_errors.MessageSizeTooLargeError, kafka_errors.RecordListTooLargeError),
     RecordTooLargeError, "{action}: {detail}"),
    ((kafka_errors.InvalidTopicError, kafka_errors.InvalidPartitionsError,
      kafka_errors.InvalidReplicationFactorError, kafka_errors.PolicyViolationError),
     TopicError, "{action}: {detail}"),
    ((ConnectionError, TimeoutError), KafkaUnavailableError,
     "{action}: Kafka unavailable ({detail})"),
)


def translate(exc: BaseException, action: str, secrets: Iterable[str] = ()) -> KafkaBridgeError:
    """The kafka-bridge error for a kafka-python (or ssl) exception raised doing action.

    Decided on the exception's type (and kafka-python's own ``retriable``
    flag), never on its text.
    """
    if isinstance(exc, KafkaBridgeError):
        return exc
    detail = scrub(f"{type(exc).__name__}: {exc}", secrets)
    for types, ours, text in _MAPPING:
        if isinstance(exc, types):
            return ours(text.format(action=action, detail=detail))
    if isinstance(exc, kafka_errors.KafkaError) and exc.retriable:
        return KafkaUnavailableError(f"{action}: Kafka unavailable ({detail})")
    return DeliveryError(f"{action}: {detail}")


@contextlib.contextmanager
def kafka_errors_mapped(action: str, secrets: Iterable[str] = ()) -> Iterator[None]:
    """Raise kafka-python and ssl errors inside the block as KafkaBridgeError.

    The original exception is kept as ``__cause__``; secrets are scrubbed
    from the message.
    """
    try:
        yield
    except KafkaBridgeError:
        raise
    except (kafka_errors.KafkaError, ssl.SSLError, ConnectionError, TimeoutError) as exc:
        raise translate(exc, action, secrets) from exc
