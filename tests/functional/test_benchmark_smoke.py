"""The benchmark suite in its quick mode against the session's brokers.

Runs ``tools/benchmark.py --quick`` (N=200, one run, no chart) and checks that
the JSON it writes has every section with positive numbers, and that it left
no bridge running.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: counts that are rightly zero: what was left in a queue, probes sent before a
#: listener was ready, the CPU of an idle bridge; with N=200 a broker's CPU over a
#: drain can be below /proc's 10 ms resolution (so can a ratio of two of them)
MAY_BE_ZERO = {"left_in_queue", "probes_lost", "cpu_percent", "rabbitmq", "kafka",
               "cpu_us_rabbitmq", "cpu_us_kafka"}


def _positive_numbers(value: object, where: str) -> list[str]:
    """Where value holds a number that is not positive (NaN included)."""
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [] if value > 0 else [f"{where} = {value}"]
    if isinstance(value, dict):
        return [bad for k, v in value.items() if k not in MAY_BE_ZERO
                for bad in _positive_numbers(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [bad for i, v in enumerate(value) for bad in _positive_numbers(v, f"{where}[{i}]")]
    return []


@pytest.mark.timeout(300)
def test_quick_benchmark_writes_every_section(brokers, tmp_path: Path) -> None:
    if brokers.secure:
        pytest.skip("the naive kafka:// bridge of the benchmark needs a plaintext cluster")
    output, markdown = tmp_path / "results.json", tmp_path / "benchmarks.md"
    env = dict(os.environ, PYTHONWARNINGS="ignore",
               KAFKA_BRIDGE_RABBIT_URL=brokers.rabbit_url,
               KAFKA_BRIDGE_KAFKA_BOOTSTRAP=brokers.kafka_bootstrap,
               KAFKA_BRIDGE_KAFKA_URL=brokers.kafka_url)
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "benchmark.py"), "--quick", "--use-env-brokers",
         "--output", str(output), "--markdown", str(markdown)],
        env=env, capture_output=True, text=True, timeout=290, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    results = json.loads(output.read_text())
    for section in ("machine", "settings", "parameters", "forward", "reverse", "latency",
                    "driver", "listener_ready", "resources", "targets"):
        assert results.get(section), f"no {section} in {output}"
    for direction in ("forward", "reverse"):
        assert set(results[direction]["1024"]) == {
            "kafka-bridge", "kafka-bridge workers=2", "naive", "ratio", "ratio_workers2",
            "workers2_vs_1"}
        for side in ("kafka-bridge", "kafka-bridge workers=2", "naive"):
            assert set(results[direction]["1024"][side]["cpu_us"]) == {
                "bridge", "rabbitmq", "kafka"}, f"{direction} {side}: CPU not measured"
    assert set(results["driver"]["1024"]["publish"]) >= {"kafka-notify", "kafka", "fake"}
    assert set(results["listener_ready"]) >= {"kafka-notify", "kafka"}
    assert set(results["resources"]) == {"idle", "load_1000", "max_throughput",
                                         "naive_max_throughput"}
    assert len(results["targets"]) == 15 and all("met" in t for t in results["targets"])
    figures = {k: results[k] for k in ("forward", "reverse", "latency", "driver",
                                       "listener_ready", "resources")}
    assert not _positive_numbers(figures, "results"), _positive_numbers(figures, "results")
    assert all(s["cpu_percent"]["median"] >= 0 for s in results["resources"].values())
    latency = results["latency"]
    # a record is readable in Kafka (appended) before a consumer can read it
    assert latency["p50_ms"]["median"] <= latency["read_here"]["p50_ms"]["median"], latency
    forwarded = results["forward"]["1024"]
    assert all(run["left_in_queue"] == 0 for side in ("kafka-bridge", "kafka-bridge workers=2",
                                                      "naive")
               for run in forwarded[side]["runs"]), "a forward run left unacknowledged messages"
    assert "## Targets" in markdown.read_text()
