"""CPU per notification of the bridge draining a pre-loaded queue or topic (issue 12).

    eval "$(kafka-bridge-devenv start --dir /tmp/d)"
    .venv/bin/python tools/profile_bridge.py forward --count 20000 --runs 3
    .venv/bin/python tools/profile_bridge.py reverse --count 20000 --runs 3 --py-spy /tmp/rev

Each run starts a bridge on its own queue/topic, freezes its worker (SIGSTOP)
while N notifications of about --size bytes are pre-loaded (RabbitMQ queue
for forward, Kafka topic for reverse), reads the CPU time (utime + stime from
/proc/<pid>/stat) of the bridge's processes and of the brokers, lets the
worker go (SIGCONT) and reads them again once all N arrived. The start-up of
the bridge and the pre-loading are outside the window; CPU time, not wall
time, so other load on the machine moves the figures little. Prints, per
process, microseconds of CPU per notification: median (min-max) over runs.

With --py-spy PREFIX (``pip install py-spy`` first), py-spy samples the
worker during each drain, writes PREFIX-<direction>-<run>.txt (collapsed
stacks) and prints the frames with the most samples (own time) and the most
inclusive time; with --gil only the thread holding the GIL is sampled, which
shows where the Python CPU time goes. --set SECTION.OPTION=VALUE sets a bridge
option (e.g. to compare linger_ms values). Besides the bridge (all its
processes), the worker process is reported alone.

The bridge runs as ``python -m kafka_bridge.daemon.cli`` from the current
directory, so running this script from a checkout of another revision (e.g.
``git worktree add --detach /tmp/before main``, then ``cd /tmp/before``)
measures that revision under the same conditions.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Union
from urllib.parse import unquote, urlsplit

import amqp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kafka import KafkaConsumer, TopicPartition  # noqa: E402

from bench import probes  # noqa: E402
from kafka_bridge_devenv.brokers import Brokers, brokers_from_environment  # noqa: E402
from kafka_bridge_devenv.traffic import (BridgeProcess, create_topic, local_transport,  # noqa
                                         publish, wait_until)


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of pids and their descendants, in seconds."""
    return sum(probes.usage(pid)[1] for pid in pids)


def broker_pids(devenv_dir: Path | None) -> dict[str, int]:
    """RabbitMQ's and Kafka's pids, from the devenv's state.json, if known."""
    if devenv_dir is None:
        return {}
    state = json.loads((devenv_dir / "state.json").read_text())
    return {("kafka" if record["name"].startswith("kafka") else record["name"]): record["pid"]
            for record in state["processes"] if record["name"] != "epmd"}


class KafkaCount:
    """Records in a topic (sum of end offsets), read over one open consumer."""

    def __init__(self, brokers: Brokers, topic: str) -> None:
        self._consumer = KafkaConsumer(**brokers.kafka_client_config())
        self._partitions = [TopicPartition(topic, p)
                            for p in self._consumer.partitions_for_topic(topic)]

    def __call__(self) -> int:
        return sum(self._consumer.end_offsets(self._partitions).values())

    def close(self) -> None:
        self._consumer.close()


class QueueCount:
    """Messages ready in a RabbitMQ queue, read over one open connection (0 if undeclared)."""

    def __init__(self, brokers: Brokers, queue: str) -> None:
        url = urlsplit(brokers.rabbit_url)
        self._queue = queue
        self._connection = amqp.Connection(f"{url.hostname}:{url.port}",
                                           userid=unquote(url.username or ""),
                                           password=unquote(url.password or ""))
        self._connection.connect()
        self._channel = self._connection.channel()

    def __call__(self) -> int:
        try:
            return self._channel.queue_declare(self._queue, passive=True).message_count
        except amqp.exceptions.NotFound:
            self._channel = self._connection.channel()
            return 0

    def close(self) -> None:
        self._connection.close()


def worker_of(bridge: BridgeProcess) -> int:
    """The bridge's worker process (the launcher's child)."""
    children = probes.process_tree(bridge.proc.pid)[1:]
    if not children:
        raise RuntimeError("the bridge has no worker process")
    return children[0]


class Sampler:
    """py-spy record on one pid, raw (collapsed) output."""

    def __init__(self, pid: int, out: Path, gil: bool) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("py-spy")), "record", "-p", str(pid),
             "--format", "raw", "-o", str(out), "--rate", "250", "--nonblocking",
             *(["--gil"] if gil else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(30)


def top_frames(collapsed: Path, count: int = 15) -> str:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        frames = stack.split(";")
        n = int(samples)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    lines = [f"  {total} samples; own time:"]
    lines += [f"    {100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(count)]
    lines.append("  inclusive (bridge frames):")
    ours = [(f, n) for f, n in inclusive.most_common() if "kafka_bridge" in f]
    lines += [f"    {100 * n / total:5.1f}%  {frame}" for frame, n in ours[:count]]
    return "\n".join(lines)


Counter = Union[KafkaCount, QueueCount]


Sections = dict[str, dict[str, str]]


def merged(sections: Sections, extra: Sections) -> Sections:
    out = {name: dict(values) for name, values in sections.items()}
    for name, values in extra.items():
        out.setdefault(name, {}).update(values)
    return out


def forward_run(brokers: Brokers, work: Path, count: int, size: int,
                extra: Sections) -> tuple[BridgeProcess, Callable[[], None], Counter]:
    topic = f"prof-fwd-{uuid.uuid4().hex[:8]}"
    create_topic(brokers, f"{topic}.info")
    bridge = BridgeProcess(work / topic, brokers, merged({
        "kafka_bridge": {"mode": "forward"},
        "forward": {"topics": topic, "pool": f"{topic}-pool", "exchanges": "openstack",
                    "priorities": "info"}}, extra)).start()
    local = local_transport(brokers)

    def preload() -> None:
        try:
            publish(local, topic, range(count), text=probes.text_of(size))
        finally:
            local.cleanup()

    return bridge, preload, KafkaCount(brokers, f"{topic}.info")


def reverse_run(brokers: Brokers, work: Path, count: int, size: int,
                extra: Sections) -> tuple[BridgeProcess, Callable[[], None], Counter]:
    topic = f"prof-rev-{uuid.uuid4().hex[:8]}"
    create_topic(brokers, f"{topic}.info")
    bridge = BridgeProcess(work / topic, brokers, merged({
        "kafka_bridge": {"mode": "reverse"},
        "reverse": {"kafka_topics": f"{topic}.info", "group": topic,
                    "start_from": "earliest"}}, extra)).start()
    # the sink declares the queue with its first publish; the count waits for it
    return (bridge, lambda: probes.preload_kafka(brokers, f"{topic}.info", count, size),
            QueueCount(brokers, f"{topic}.info"))


def one_run(direction: str, brokers: Brokers, work: Path, count: int, size: int,
            pids: dict[str, int], spy: Path | None, gil: bool,
            extra: Sections) -> dict[str, float]:
    bridge, preload, counted = (forward_run if direction == "forward" else reverse_run)(
        brokers, work, count, size, extra)
    try:
        worker = worker_of(bridge)

        def readings() -> dict[str, float]:
            return {"bridge": cpu_seconds([bridge.proc.pid]), "worker": cpu_seconds([worker]),
                    **{name: cpu_seconds([pid]) for name, pid in pids.items()}}
        os.kill(worker, signal.SIGSTOP)
        try:
            preload()
        finally:
            before = readings()
            sampler = Sampler(worker, spy, gil) if spy is not None else None
            began = time.monotonic()
            os.kill(worker, signal.SIGCONT)
        wait_until(lambda: counted() >= count, 600, f"{count} notifications through the bridge",
                   interval=0.2)
        wall = time.monotonic() - began
        after = readings()
        if sampler is not None:
            sampler.stop()
    finally:
        counted.close()
        bridge.close()
    result = {name: 1e6 * (after[name] - before[name]) / count for name in before}
    result["rate"] = count / wall
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("direction", choices=("forward", "reverse"))
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--devenv-dir", type=Path,
                        help="the devenv directory, to measure its brokers' CPU too")
    parser.add_argument("--py-spy", type=Path, metavar="PREFIX")
    parser.add_argument("--gil", action="store_true",
                        help="py-spy samples only the thread holding the GIL: where the "
                             "Python CPU time goes, without threads waiting in a call")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.OPTION=VALUE",
                        help="a bridge option, e.g. oslo_messaging_kafka_notify.linger_ms=5")
    args = parser.parse_args()
    extra: Sections = {}
    for setting in args.set:
        name, _, value = setting.partition("=")
        section, _, option = name.rpartition(".")
        extra.setdefault(section, {})[option] = value
    brokers = brokers_from_environment()
    if brokers is None:
        parser.error("no brokers: eval \"$(kafka-bridge-devenv start --dir D)\" first")
    pids = broker_pids(args.devenv_dir)
    results = []
    with tempfile.TemporaryDirectory(prefix="profile-bridge-") as work:
        for run in range(args.runs):
            spy = (Path(f"{args.py_spy}-{args.direction}-{run + 1}.txt")
                   if args.py_spy else None)
            result = one_run(args.direction, brokers, Path(work), args.count, args.size, pids,
                             spy, args.gil, extra)
            results.append(result)
            print(f"run {run + 1}: " + ", ".join(
                f"{name} {value:,.1f}" for name, value in result.items()), flush=True)
            if spy is not None:
                print(top_frames(spy), flush=True)
    print(f"{args.direction}, {args.count} x {args.size} B, {args.runs} runs"
          f"{', ' + ' '.join(args.set) if args.set else ''}: "
          f"CPU us per notification, median (min-max)")
    for name in results[0]:
        values = [r[name] for r in results]
        unit = "/s" if name == "rate" else " us"
        print(f"  {name:9} {statistics.median(values):9,.1f}{unit} "
              f"({min(values):,.1f}-{max(values):,.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
