"""A private RabbitMQ node from Debian's ``rabbitmq-server`` package.

The node gets its own name, ports, data directory, cookie and epmd, so it
never touches a system RabbitMQ. It is started through the package's
``/usr/lib/rabbitmq/bin/rabbitmq-server`` script rather than the
``/usr/sbin`` wrapper: the wrapper switches to the ``rabbitmq`` user and
writes to /var/log, which a private node must not do.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

import amqp

from kafka_bridge_devenv import processes
from kafka_bridge_devenv.processes import DevenvError, ProcessRecord

SERVER_SCRIPT = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
START_TIMEOUT = 60.0


@dataclasses.dataclass(frozen=True)
class RabbitNode:
    """Where the private node listens and who may log in."""

    port: int
    user: str
    password: str = dataclasses.field(repr=False)

    @property
    def transport_url(self) -> str:
        """The oslo.messaging transport URL of the node."""
        return f"rabbit://{self.user}:{self.password}@127.0.0.1:{self.port}/"


def ensure_installed() -> None:
    """Install rabbitmq-server with apt when it is missing and we are root.

    Raises DevenvError naming the command to run otherwise.
    """
    if SERVER_SCRIPT.exists():
        return
    apt = shutil.which("apt-get")
    if os.geteuid() != 0 or apt is None:
        raise DevenvError(f"{SERVER_SCRIPT} not found: install Debian's rabbitmq-server "
                          "(sudo apt-get install rabbitmq-server)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", "rabbitmq-server"]):
        result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise DevenvError(f"'{' '.join(argv)}' failed: {result.stderr.strip()[-2000:]}")
    # Debian starts the system service on install; this node does not need it.
    subprocess.run(["service", "rabbitmq-server", "stop"], capture_output=True, check=False)


def start_node(directory: Path, password: str) -> tuple[RabbitNode, list[ProcessRecord]]:
    """Start a private node under directory and wait until AMQP logins work.

    On failure everything started is stopped and DevenvError names the
    cause and the log file.
    """
    ensure_installed()
    epmd = shutil.which("epmd")
    if epmd is None:
        raise DevenvError("epmd not found; it comes with Debian's erlang-base, a "
                          "dependency of rabbitmq-server: reinstall rabbitmq-server")
    home, mnesia, logs = directory / "home", directory / "mnesia", directory / "log"
    for path in (home, mnesia, logs):
        path.mkdir(parents=True, exist_ok=True)
    cookie = home / ".erlang.cookie"
    cookie.write_text(os.urandom(16).hex())
    cookie.chmod(0o400)
    node = RabbitNode(port=processes.free_port(), user="kafka-bridge", password=password)
    epmd_port, dist_port = processes.free_port(), processes.free_port()
    config = directory / "rabbitmq.conf"
    config.write_text(
        f"listeners.tcp.default = 127.0.0.1:{node.port}\n"
        f"default_user = {node.user}\n"
        f"default_pass = {node.password}\n"
        "loopback_users = none\n"
        "log.console = false\n"
        "log.file.level = info\n")
    config.chmod(0o600)
    plugins = directory / "enabled_plugins"
    plugins.write_text("[].\n")
    name = f"kafka-bridge-{node.port}@localhost"
    env = dict(
        HOME=str(home), ERL_EPMD_PORT=str(epmd_port),
        ERL_EPMD_ADDRESS="127.0.0.1", RABBITMQ_NODENAME=name,
        RABBITMQ_NODE_IP_ADDRESS="127.0.0.1", RABBITMQ_NODE_PORT=str(node.port),
        RABBITMQ_DIST_PORT=str(dist_port), RABBITMQ_MNESIA_BASE=str(mnesia),
        RABBITMQ_LOG_BASE=str(logs), RABBITMQ_CONFIG_FILE=str(config),
        RABBITMQ_ENABLED_PLUGINS_FILE=str(plugins),
        RABBITMQ_ADVANCED_CONFIG_FILE=str(directory / "advanced.config"),
        RABBITMQ_CONF_ENV_FILE=str(directory / "rabbitmq-env.conf"),
        RABBITMQ_PID_FILE=str(directory / "rabbitmq.pid"),
        # exec the Erlang VM directly, so the recorded pid is the broker's
        RUNNING_UNDER_SYSTEMD="1")
    records = [processes.launch("epmd", [epmd, "-port", str(epmd_port)],
                                directory / "epmd.log", env=env)]
    try:
        processes.wait_until(lambda: processes.port_accepts(epmd_port), 10,
                             lambda: _exited(records[0]))
        records.append(processes.launch("rabbitmq", [str(SERVER_SCRIPT)],
                                        directory / "stdout.log", env=env, cwd=directory))
        log = logs / f"{name}.log"
        try:
            processes.wait_until(lambda: _accepts_login(node), START_TIMEOUT,
                                 lambda: _exited(records[1], log), interval=0.25)
        except DevenvError as exc:
            if "timed out" in str(exc):
                raise DevenvError(f"RabbitMQ did not accept AMQP logins on port {node.port} "
                                  f"within {START_TIMEOUT:.0f}s; see {log}") from exc
            raise
    except BaseException:
        for record in reversed(records):
            processes.stop(record)
        raise
    return node, records


def _accepts_login(node: RabbitNode) -> bool:
    conn = amqp.Connection(host=f"127.0.0.1:{node.port}", userid=node.user,
                           password=node.password, connect_timeout=1)
    try:
        conn.connect()
    except Exception:  # noqa: BLE001 - any failure means "not ready yet"
        return False
    conn.close()
    return True


def _exited(record: ProcessRecord, *more_logs: Path) -> str | None:
    if record.is_running():
        return None
    logs = [record.log, *map(str, more_logs)]
    tails = "\n".join(processes.log_tail(log, 10) for log in logs)
    return f"{record.name} exited during start-up; see {', '.join(logs)}:\n{tails}"
