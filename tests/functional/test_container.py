"""The image, built and run by a real container engine against real brokers.

An engine that answers is reused; otherwise tools/container-engine.sh starts
Debian's dockerd (vfs storage, no bridge: containers use the host's network)
and this session stops it at its end. With no registry reachable, the image is
built on a local Debian base (tools/build-test-base-image.sh, kept in the
engine between runs) through the Dockerfile's BASE_IMAGE argument.

No engine: the tests are skipped with the reason, or fail where
KAFKA_BRIDGE_REQUIRE_ENGINE=1 (CI) says an engine must be there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from kafka_bridge_devenv.brokers import Brokers
from kafka_bridge_devenv.traffic import (READY_LINE, BridgeProcess, KafkaCollector,
                                         LocalCollector, create_topic, kafka_transport,
                                         publish, wait_until)
from kafka_bridge.daemon import options
from kafka_bridge.kafka.envelope import OutgoingRecord, encode
from tests.unit.test_deployment_files import REPO

IMAGE = "kafka-bridge:test"
#: the image's user (Dockerfile USER)
IMAGE_UID = 10001
SHUTDOWN_TIMEOUT = next(opt.default for opt in options.BRIDGE_OPTS
                        if opt.name == "shutdown_timeout")
TEXT = "x" * 900


def docker(*args: str, timeout: float = 120,
           check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True,
                            timeout=timeout, stdin=subprocess.DEVNULL)
    if check:
        assert result.returncode == 0, (f"docker {' '.join(args)} exited "
                                        f"{result.returncode}:\n{result.stderr[-3000:]}")
    return result


def unavailable(reason: str) -> None:
    """Skip, saying why; fail instead where the environment requires an engine."""
    if os.environ.get("KAFKA_BRIDGE_REQUIRE_ENGINE") == "1":
        pytest.fail(f"KAFKA_BRIDGE_REQUIRE_ENGINE=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def engine() -> Iterator[None]:
    """A container engine answering `docker` commands for this session."""
    try:
        started = subprocess.run([str(REPO / "tools" / "container-engine.sh")],
                                 capture_output=True, text=True, timeout=120)
    except FileNotFoundError as exc:
        unavailable(f"no container engine: {exc}")
    if started.returncode != 0:
        unavailable(f"no container engine: {started.stderr.strip()}")
    pid = int(started.stdout) if started.stdout.strip() else None
    yield
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not _running(pid), 60, "the dockerd this session started to exit")


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(scope="session")
def image(engine: None) -> str:
    """The product image built on the local test base; its tag."""
    began = time.monotonic()
    base = subprocess.run([str(REPO / "tools" / "build-test-base-image.sh")],
                          capture_output=True, text=True, timeout=1200)
    if base.returncode != 0:
        unavailable(f"the test base image could not be built: {base.stderr.strip()[-2000:]}")
    base_image = base.stdout.strip()
    based = time.monotonic()
    # The classic builder: the Debian engine has no BuildKit client plugin.
    # Host networking: the engine runs without a bridge.
    build = subprocess.run(
        ["docker", "build", "--network", "host", "--build-arg", f"BASE_IMAGE={base_image}",
         "-t", IMAGE, str(REPO)], capture_output=True, text=True, timeout=1800,
        env=dict(os.environ, DOCKER_BUILDKIT="0"), stdin=subprocess.DEVNULL)
    assert build.returncode == 0, build.stdout[-5000:] + build.stderr[-3000:]
    built = time.monotonic()
    # what earlier builds of this test tagged and this one untagged
    docker("image", "prune", "--force", "--filter",
           "label=org.opencontainers.image.title=kafka-bridge")
    size = int(docker("image", "inspect", "-f", "{{.Size}}", IMAGE).stdout)
    print(f"\nbase image {base_image}: {based - began:.1f} s; product image {IMAGE}: "
          f"{built - based:.1f} s, {size / 1e6:.0f} MB")
    return IMAGE


class BridgeContainer(BridgeProcess):
    """The daemon in a container of the image: host network, configuration and root
    file system read-only, no capabilities.

    The configuration directory is mounted at /etc/kafka-bridge, so the image's
    default command reads kafka-bridge.conf from it.
    """

    def __init__(self, directory: Path, brokers: Brokers, image: str,
                 sections: Mapping[str, Mapping[str, object]]) -> None:
        super().__init__(directory, brokers, sections)
        directory.chmod(0o755)  # readable by the image's user
        self.image = image
        self.name = f"kafka-bridge-test-{directory.parent.name}-{directory.name}"[:120]
        self.started_at = 0.0
        self.create_seconds = 0.0
        self.runs = 0  # starts that reached the readiness log line

    def start_without_waiting(self) -> BridgeContainer:
        if not self.state():
            created = time.monotonic()
            docker("create", "--name", self.name, "--network", "host",
                   "--volume", f"{self.config.parent}:/etc/kafka-bridge:ro",
                   # as etc/kubernetes/kafka-bridge-sidecar.yaml runs it
                   "--read-only", "--cap-drop", "ALL",
                   "--security-opt", "no-new-privileges",
                   # the image's HEALTHCHECK, probed every second instead of 30
                   "--health-interval", "1s", "--health-start-period", "60s", self.image)
            # the engine copies the image's file system (vfs): part of a first start
            self.create_seconds = time.monotonic() - created
        self.started_at = time.monotonic()
        docker("start", self.name)
        return self

    def start(self, ready_timeout: float = 120) -> BridgeContainer:
        self.start_without_waiting()
        wait_until(lambda: self.output().count(READY_LINE) > self.runs
                   or not self.state()["Running"], ready_timeout,
                   "the bridge in the container to report it is running")
        assert self.state()["Running"], f"the container exited:\n{self.output()[-4000:]}"
        self.runs += 1
        return self

    def state(self) -> dict:
        """docker inspect's State of the container ({} if there is none)."""
        result = docker("inspect", "-f", "{{json .State}}", self.name, check=False)
        return json.loads(result.stdout) if result.returncode == 0 else {}

    def health(self) -> str:
        return self.state().get("Health", {}).get("Status", "none")

    def output(self) -> str:
        """Everything the container wrote, across its starts."""
        result = docker("logs", self.name, check=False)
        return result.stdout + result.stderr

    def stop_container(self, timeout: float = 30) -> float:
        """docker stop (SIGTERM, SIGKILL after timeout): the seconds it took."""
        began = time.monotonic()
        docker("stop", "--time", str(int(timeout)), self.name, timeout=timeout + 30)
        return time.monotonic() - began

    def process_uids(self) -> dict[int, set[int]]:
        """pid -> the real, effective, saved and file-system UIDs of the container's processes."""
        top = docker("top", self.name, "-o", "pid").stdout.split()[1:]
        uids = {}
        for pid in map(int, top):
            status = Path(f"/proc/{pid}/status").read_text()
            line = next(line for line in status.splitlines() if line.startswith("Uid:"))
            uids[pid] = {int(uid) for uid in line.split()[1:]}
        return uids

    def close(self) -> None:
        docker("rm", "--force", self.name, check=False)


@pytest.fixture
def containers() -> Iterator[list[BridgeContainer]]:
    started: list[BridgeContainer] = []
    yield started
    for container in started:
        container.close()


def kafka_records(topic: str, ids: range) -> list[OutgoingRecord]:
    return [OutgoingRecord(topic, encode({"request_id": f"req-{n}"}, {
        "message_id": f"m-{n}", "publisher_id": "test.publisher", "event_type": "test.event",
        "priority": "INFO", "payload": {"n": n, "text": TEXT},
        "timestamp": "2026-11-25 00:00:00.000000"})) for n in ids]


def test_container_bridges_both_directions_healthy_as_its_non_root_user(
        tmp_path, brokers, local, image, containers, unique) -> None:
    reverse_topic = f"{unique}-rev.info"
    create_topic(brokers, reverse_topic)
    container = BridgeContainer(tmp_path / "bridge", brokers, image, {
        "kafka_bridge": {"mode": "both"},
        "forward": {"topics": f"{unique}-fwd", "pool": f"{unique}-bridge"},
        "reverse": {"kafka_topics": reverse_topic, "group": unique}})
    assert container.metrics_port != 9464, "the test must prove the HEALTHCHECK follows the port"
    containers.append(container.start())
    ready = time.monotonic() - container.started_at
    wait_until(lambda: container.http_get("/readyz")[0] == 200, 60, "/readyz to answer 200")
    ready_probe = time.monotonic() - container.started_at
    wait_until(lambda: container.health() == "healthy", 60,
               lambda: f"the HEALTHCHECK to report healthy (now {container.health()}: "
                       f"{container.state().get('Health', {}).get('Log', [])[-1:]})")
    print(f"\ncontainer created in {container.create_seconds:.1f} s; from docker start to the "
          f"'running' log line {ready:.1f} s, to /readyz 200 {ready_probe:.1f} s")

    uids = container.process_uids()
    assert len(uids) >= 2, f"expected the master and its worker: {uids}"
    assert all(ids == {IMAGE_UID} for ids in uids.values()), uids

    kafka = KafkaCollector(brokers, f"{unique}-fwd.info")
    collector = LocalCollector(local, f"{unique}-rev")
    driver = kafka_transport(brokers)._driver
    total = 3000
    try:
        sender = threading.Thread(target=publish, args=(local, f"{unique}-fwd", range(total)))
        sender.start()
        assert driver.publisher.publish(kafka_records(reverse_topic, range(total))) == (
            [None] * total)
        sender.join()
        wait_until(lambda: set(kafka.ids()) == set(range(total)), 120,
                   lambda: f"all {total} forwarded to Kafka (have {len(set(kafka.ids()))})")
        wait_until(lambda: set(collector.ids()) == set(range(total)), 120,
                   lambda: f"all {total} reversed to RabbitMQ "
                           f"(have {len(set(collector.ids()))})")
        assert all(m["payload"]["text"] == TEXT for m in kafka.notifications())
        assert all(payload["text"] == TEXT and ctxt["request_id"] == f"req-{payload['n']}"
                   for ctxt, payload in collector.received)
    finally:
        kafka.close()
        collector.close()
        driver.cleanup()
    assert container.health() == "healthy"
    assert container.stop_container() < SHUTDOWN_TIMEOUT + 2
    assert container.state()["ExitCode"] == 0, container.output()[-3000:]
    stats = container.stats()
    assert stats["forward"]["confirmed"] >= total and stats["reverse"]["confirmed"] >= total


def test_docker_stop_mid_stream_exits_cleanly_and_loses_nothing(
        tmp_path, brokers, local, image, containers, unique) -> None:
    container = BridgeContainer(tmp_path / "bridge", brokers, image, {
        "kafka_bridge": {"mode": "forward", "batch_size": 100},
        "forward": {"topics": unique, "pool": f"{unique}-bridge"}})
    containers.append(container.start())
    kafka = KafkaCollector(brokers, f"{unique}.info")
    total = 6000
    sender = threading.Thread(target=publish, args=(local, unique, range(total)))
    try:
        sender.start()
        wait_until(lambda: len(kafka.records) >= 500, 60, "the first 500 in Kafka")
        stopped_in = container.stop_container()
        assert stopped_in < SHUTDOWN_TIMEOUT + 2, f"docker stop took {stopped_in:.1f} s"
        state = container.state()
        assert state["ExitCode"] == 0 and not state["OOMKilled"], container.output()[-3000:]
        before = len(set(kafka.ids()))
        assert before < total, "the stream was over before the container stopped"
        assert "forward" in container.stats(), "no stop report: the daemon did not settle"
        sender.join()
        container.start()
        wait_until(lambda: set(kafka.ids()) == set(range(total)), 120,
                   lambda: f"all {total} after the container started again "
                           f"(have {len(set(kafka.ids()))})")
        print(f"\n{before} delivered before docker stop ({stopped_in:.1f} s), "
              f"{len(kafka.ids()) - total} duplicates")
        assert all(m["payload"]["text"] == TEXT for m in kafka.notifications())
    finally:
        sender.join()
        kafka.close()


def test_bad_configuration_exits_2_with_the_reason_in_docker_logs(
        tmp_path, brokers, image, containers) -> None:
    container = BridgeContainer(tmp_path / "bridge", brokers, image,
                                {"kafka_bridge": {"mode": "forward"}})
    container.config.write_text(container.config.read_text().replace(
        f"kafka_url = {brokers.kafka_url}\n", ""))
    containers.append(container.start_without_waiting())
    wait_until(lambda: not container.state()["Running"], 60, "the container to exit")
    assert container.state()["ExitCode"] == 2, container.output()[-3000:]
    logs = container.output()
    assert "configuration error: [kafka_bridge] kafka_url is not set" in logs, logs[-3000:]
    assert "Traceback" not in logs
