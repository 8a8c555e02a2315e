"""Apache Kafka in KRaft mode, assembled from Maven Central jars.

The broker classpath is resolved once per machine with ``mvn`` into a cache
directory outside the repository; later starts only read that cache.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

from kafka_bridge_devenv import processes
from kafka_bridge_devenv.processes import DevenvError, ProcessRecord
from kafka_bridge_devenv.tls import BrokerTLS

KAFKA_VERSION = "4.1.1"
#: the log4j2 release Kafka 4.1.1 is built against
LOG4J_VERSION = "2.24.3"
HEAP = "-Xmx384m"
START_TIMEOUT = 60.0

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>kafka-bridge.devenv</groupId>
  <artifactId>kafka-classpath</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-api</artifactId>
      <version>{log4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>{log4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId><version>{log4j}</version></dependency>
  </dependencies>
</project>
"""

_LOG4J2 = """status = error
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.request.name = kafka.request.logger
logger.request.level = warn
"""


def cache_dir() -> Path:
    """Where the jars are kept: $KAFKA_BRIDGE_CACHE_DIR, else the XDG cache."""
    explicit = os.environ.get("KAFKA_BRIDGE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "kafka-bridge"


def java_executable() -> str:
    """The java to run the broker with; raises DevenvError naming the fix."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not os.access(java, os.X_OK):
        raise DevenvError("java not found: install a JDK 17 or newer "
                          "(apt-get install default-jre-headless) or set JAVA_HOME")
    return java


def kafka_classpath() -> Path:
    """Return the directory of Kafka's jars, resolving them with mvn once.

    A directory that holds a finished resolution is reused without any
    network access. Raises DevenvError if mvn is missing or fails.
    """
    lib = cache_dir() / f"kafka-{KAFKA_VERSION}" / "lib"
    done = lib / ".complete"
    if done.exists():
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise DevenvError("mvn not found: install Maven (apt-get install maven); "
                          "devenv assembles Kafka from Maven Central with it")
    work = lib.parent / "resolve"
    shutil.rmtree(lib, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    (work / "pom.xml").write_text(_POM.format(kafka=KAFKA_VERSION, log4j=LOG4J_VERSION))
    log = work / "mvn.log"
    with open(log, "w") as out:
        result = subprocess.run(
            [mvn, "-B", "-q", "dependency:copy-dependencies", f"-DoutputDirectory={lib}",
             "-DincludeScope=runtime"], cwd=work, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, check=False)
    if result.returncode != 0:
        raise DevenvError(f"mvn could not fetch Kafka {KAFKA_VERSION} from Maven Central "
                          f"(exit {result.returncode}); see {log}:\n"
                          f"{processes.log_tail(log)}")
    done.write_text(KAFKA_VERSION + "\n")
    return lib


@dataclasses.dataclass(frozen=True)
class KafkaNode:
    """Ports of one combined broker+controller node."""

    node_id: int
    client_port: int
    internal_port: int
    controller_port: int


@dataclasses.dataclass(frozen=True)
class ScramUser:
    """The one SASL/SCRAM-SHA-512 user a sasl_ssl cluster is formatted with."""

    name: str
    password: str = dataclasses.field(repr=False)


def plan_nodes(count: int) -> list[KafkaNode]:
    """Pick free ports for count nodes."""
    return [KafkaNode(node_id=i + 1, client_port=processes.free_port(),
                      internal_port=processes.free_port(),
                      controller_port=processes.free_port())
            for i in range(count)]


def server_properties(node: KafkaNode, nodes: list[KafkaNode], data_dir: Path,
                      tls: BrokerTLS | None) -> str:
    """The server.properties of one node (pure, for unit tests)."""
    replicas = len(nodes)
    client_protocol = "SASL_SSL" if tls else "PLAINTEXT"
    voters = ",".join(f"127.0.0.1:{n.controller_port}" for n in nodes)
    props = {
        "process.roles": "broker,controller",
        "node.id": node.node_id,
        "controller.quorum.bootstrap.servers": voters,
        "listeners": (f"CLIENT://127.0.0.1:{node.client_port},"
                      f"INTERNAL://127.0.0.1:{node.internal_port},"
                      f"CONTROLLER://127.0.0.1:{node.controller_port}"),
        "advertised.listeners": (f"CLIENT://127.0.0.1:{node.client_port},"
                                 f"INTERNAL://127.0.0.1:{node.internal_port},"
                                 f"CONTROLLER://127.0.0.1:{node.controller_port}"),
        "listener.security.protocol.map": (f"CLIENT:{client_protocol},INTERNAL:PLAINTEXT,"
                                           "CONTROLLER:PLAINTEXT"),
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "INTERNAL",
        "log.dirs": data_dir,
        "num.partitions": 1,
        "default.replication.factor": replicas,
        "min.insync.replicas": 2 if replicas >= 3 else 1,
        "offsets.topic.replication.factor": replicas,
        "offsets.topic.num.partitions": 10,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": 2 if replicas >= 3 else 1,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": 2 if replicas >= 3 else 1,
        "group.initial.rebalance.delay.ms": 0,
        # Clients must create their topics: kafka-bridge has to work on
        # clusters that disable auto-creation, so the tests run that way.
        "auto.create.topics.enable": "false",
        "log.segment.bytes": 64 * 1024 * 1024,
    }
    if tls:
        props.update({
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.client.scram-sha-512.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": tls.broker_keystore,
        })
    return "".join(f"{key}={value}\n" for key, value in props.items())


def start_cluster(directory: Path, count: int, tls: BrokerTLS | None,
                  user: ScramUser | None) -> tuple[list[KafkaNode], list[ProcessRecord]]:
    """Format and start count KRaft nodes under directory; wait until all serve.

    On failure every node started so far is stopped and DevenvError names
    the cause and the log file.
    """
    java = java_executable()
    lib = kafka_classpath()
    classpath = str(lib / "*")
    nodes = plan_nodes(count)
    cluster_id = _run_storage_tool(java, classpath, ["random-uuid"], directory / "format.log")
    controllers = None
    if count > 1:
        dir_ids = [_run_storage_tool(java, classpath, ["random-uuid"],
                                     directory / "format.log") for _ in nodes]
        controllers = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}:{d}"
                               for n, d in zip(nodes, dir_ids))
    records: list[ProcessRecord] = []
    try:
        for node in nodes:
            node_dir = directory / f"kafka-{node.node_id}"
            data = node_dir / "data"
            # Every start formats a new cluster: data left by an earlier one
            # in the same directory carries another cluster id.
            shutil.rmtree(data, ignore_errors=True)
            data.mkdir(parents=True)
            config = node_dir / "server.properties"
            config.write_text(server_properties(node, nodes, data, tls))
            log_config = node_dir / "log4j2.properties"
            log = node_dir / "server.log"
            if log.exists():
                # The start is recognised by its log line: the previous run's
                # 'Kafka Server started' must not count for this one.
                log.replace(node_dir / "server.log.previous")
            log_config.write_text(_LOG4J2.format(log=log))
            fmt = ["format", "-t", cluster_id, "-c", str(config)]
            fmt += ["--initial-controllers", controllers] if controllers else ["--standalone"]
            if user:
                fmt += ["--add-scram",
                        f"SCRAM-SHA-512=[name={user.name},password={user.password}]"]
            _run_storage_tool(java, classpath, fmt, node_dir / "format.log")
            records.append(processes.launch(
                f"kafka-{node.node_id}",
                [java, HEAP, "-Xms128m", "-XX:+ExitOnOutOfMemoryError",
                 "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={log_config}",
                 "-cp", classpath, "kafka.Kafka", str(config)],
                node_dir / "stdout.log"))
        for node, record in zip(nodes, records):
            _wait_started(node, record, Path(record.log).parent / "server.log")
    except BaseException:
        for record in records:
            processes.stop(record)
        raise
    return nodes, records


def _run_storage_tool(java: str, classpath: str, args: list[str], log: Path) -> str:
    log.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([java, "-cp", classpath, "kafka.tools.StorageTool", *args],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            check=False)
    with open(log, "a") as out:
        out.write(result.stdout + result.stderr)
    if result.returncode != 0:
        # The SCRAM password is part of the arguments: name the step, not argv.
        raise DevenvError(f"kafka StorageTool {args[0]} failed (exit {result.returncode}); "
                          f"see {log}:\n{processes.log_tail(log)}")
    return result.stdout.strip()


def _wait_started(node: KafkaNode, record: ProcessRecord, log: Path) -> None:
    def started() -> bool:
        try:
            return "Kafka Server started" in log.read_text(errors="replace")
        except FileNotFoundError:
            return False

    def failed() -> str | None:
        if record.is_running():
            return None
        return (f"Kafka node {node.node_id} exited during start-up; see {log} and "
                f"{record.log}:\n{_failure_summary(log, Path(record.log))}")

    try:
        processes.wait_until(started, START_TIMEOUT, failed)
    except DevenvError as exc:
        if "timed out" in str(exc):
            raise DevenvError(f"Kafka node {node.node_id} did not report 'Kafka Server "
                              f"started' within {START_TIMEOUT:.0f}s; see {log}") from exc
        raise
    processes.wait_until(lambda: processes.port_accepts(node.client_port), 10, failed)


def _failure_summary(*logs: Path) -> str:
    for log in logs:
        text = processes.log_tail(log, 200).splitlines()
        causes = [line for line in text
                  if "Exception" in line or "ERROR" in line or "Address already in use" in line]
        if causes:
            return "\n".join(causes[-5:])
    return processes.log_tail(logs[-1])
