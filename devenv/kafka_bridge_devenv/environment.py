"""Start, stop and describe one devenv directory.

A devenv directory holds the brokers' data and logs, ``state.json`` (the
processes started, by pid) and ``env`` (the shell ``export`` lines).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import secrets
import shlex
import time
from pathlib import Path
from urllib.parse import quote

from kafka_bridge_devenv import kafka, processes, rabbit
from kafka_bridge_devenv.processes import DevenvError, ProcessRecord
from kafka_bridge_devenv.tls import make_broker_tls

SECURITY_MODES = ("plaintext", "sasl_ssl")


@dataclasses.dataclass(frozen=True)
class StartOptions:
    """What to start."""

    kafka_nodes: int = 1
    kafka_security: str = "plaintext"
    rabbit: bool = True
    kafka: bool = True

    def __post_init__(self) -> None:
        if self.kafka_nodes not in (1, 3):
            raise DevenvError(f"--kafka-nodes must be 1 or 3, not {self.kafka_nodes}")
        if self.kafka_security not in SECURITY_MODES:
            raise DevenvError(f"--kafka-security must be one of {', '.join(SECURITY_MODES)}, "
                              f"not {self.kafka_security!r}")
        if not (self.rabbit or self.kafka):
            raise DevenvError("--no-rabbit and --no-kafka together leave nothing to start")


def start(directory: Path, options: StartOptions) -> dict[str, str]:
    """Start the brokers, write DIR/env and DIR/state.json, return the exports.

    Raises DevenvError if DIR already runs an environment or a broker fails;
    a failed start leaves nothing running.
    """
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    running = [r for r in _load_state(directory) if r.is_running()]
    if running:
        raise DevenvError(f"{directory} already runs {', '.join(r.name for r in running)}; "
                          f"run 'kafka-bridge-devenv stop --dir {directory}' first")
    # RabbitMQ and Kafka start side by side: each waits mostly on a JVM or
    # an Erlang VM booting, so together they take as long as the slower one.
    tasks = []
    if options.rabbit:
        tasks.append(_start_rabbit)
    if options.kafka:
        tasks.append(_start_kafka)
    with concurrent.futures.ThreadPoolExecutor(len(tasks)) as pool:
        futures = [pool.submit(task, directory, options) for task in tasks]
        concurrent.futures.wait(futures)
    records: list[ProcessRecord] = []
    exports: dict[str, str] = {}
    errors: list[BaseException] = []
    for future in futures:
        error = future.exception()
        if error is not None:
            errors.append(error)
        else:
            started, named = future.result()
            records += started
            exports.update(named)
    if errors:
        for record in reversed(records):
            processes.stop(record)
        raise errors[0]
    _save_state(directory, records)
    env_file = directory / "env"
    env_file.write_text(format_exports(exports))
    env_file.chmod(0o600)
    return exports


def _start_rabbit(directory: Path,
                  options: StartOptions) -> tuple[list[ProcessRecord], dict[str, str]]:
    node, started = rabbit.start_node(directory / "rabbitmq", password=secrets.token_hex(12))
    return started, {"KAFKA_BRIDGE_RABBIT_URL": node.transport_url}


def _start_kafka(directory: Path,
                 options: StartOptions) -> tuple[list[ProcessRecord], dict[str, str]]:
    secure = options.kafka_security == "sasl_ssl"
    tls = make_broker_tls(directory / "tls") if secure else None
    user = kafka.ScramUser("kafka-bridge", secrets.token_hex(12)) if secure else None
    nodes, started = kafka.start_cluster(directory / "kafka", options.kafka_nodes, tls, user)
    bootstrap = ",".join(f"127.0.0.1:{n.client_port}" for n in nodes)
    exports = {"KAFKA_BRIDGE_KAFKA_BOOTSTRAP": bootstrap}
    if tls and user:
        exports["KAFKA_BRIDGE_KAFKA_URL"] = (
            f"kafka-notify://{quote(user.name, safe='')}:{quote(user.password, safe='')}"
            f"@{bootstrap}/?security_protocol=SASL_SSL&sasl_mechanism=SCRAM-SHA-512"
            f"&ssl_cafile={quote(str(tls.ca_cert))}")
        exports["KAFKA_BRIDGE_KAFKA_CA"] = str(tls.ca_cert)
        exports["KAFKA_BRIDGE_KAFKA_USER"] = user.name
        exports["KAFKA_BRIDGE_KAFKA_PASSWORD"] = user.password
    else:
        exports["KAFKA_BRIDGE_KAFKA_URL"] = f"kafka-notify://{bootstrap}/"
    return started, exports


def stop(directory: Path) -> list[ProcessRecord]:
    """Stop the processes DIR's start launched, newest first; return them.

    Only recorded pids are signalled. Safe to run twice.
    """
    directory = directory.resolve()
    records = _load_state(directory)
    for record in reversed(records):
        processes.stop(record)
    _save_state(directory, [])
    return records


def stop_one(directory: Path, name: str) -> None:
    """Stop one recorded process (a broker outage, for fault tests)."""
    processes.stop(_find(directory, name))


def restart_one(directory: Path, name: str) -> None:
    """Start a stopped recorded process again with its command, environment and
    working directory; record the new pid. Does not wait for readiness: callers
    poll for what they need.
    """
    record = _find(directory, name)
    if record.is_running():
        raise DevenvError(f"{name} is still running")
    records = [processes.launch(name, record.argv, Path(record.log), dict(record.env),
                                record.cwd) if r.name == name else r
               for r in _load_state(directory.resolve())]
    _save_state(directory.resolve(), records)


def _find(directory: Path, name: str) -> ProcessRecord:
    for record in _load_state(directory.resolve()):
        if record.name == name:
            return record
    raise DevenvError(f"{directory} started no process named {name}")


def status(directory: Path) -> list[tuple[ProcessRecord, bool]]:
    """Each recorded process with whether it is running."""
    return [(r, r.is_running()) for r in _load_state(directory.resolve())]


def format_exports(exports: dict[str, str]) -> str:
    """Shell export lines, values quoted for eval."""
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in exports.items())


def _state_file(directory: Path) -> Path:
    return directory / "state.json"


def _load_state(directory: Path) -> list[ProcessRecord]:
    try:
        raw = json.loads(_state_file(directory).read_text())
    except FileNotFoundError:
        return []
    except ValueError as exc:
        raise DevenvError(f"{_state_file(directory)} is not valid JSON ({exc}); "
                          "remove it after checking no broker from it still runs") from exc
    return [ProcessRecord(**dict(entry, argv=tuple(entry.get("argv", ())),
                                 env=tuple(tuple(pair) for pair in entry.get("env", ()))))
            for entry in raw.get("processes", [])]


def _save_state(directory: Path, records: list[ProcessRecord]) -> None:
    state = {"updated": time.time(),
             "processes": [dataclasses.asdict(r) for r in records]}
    tmp = _state_file(directory).with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(_state_file(directory))
