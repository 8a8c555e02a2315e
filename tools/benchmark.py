"""The benchmark suite (issue 6): kafka-bridge against the obvious alternatives, in one run.

Starts a devenv (RabbitMQ + one Kafka node) in a temporary directory, or uses
the brokers of the KAFKA_BRIDGE_* variables with --use-env-brokers, and
measures on those same brokers:

1. forward drain rate, kafka-bridge (1 and 2 worker processes) vs a naive oslo
   listener -> kafka:// bridge, with the CPU per notification of the bridge and of
   each broker (RabbitMQ, Kafka), from /proc;
2. the same for reverse, vs a naive kafka:// listener -> rabbit:// bridge;
3. added latency p50/p99 of kafka-bridge forward at 1,000/s offered;
4. the driver: Notifier publish and listener consumption, kafka-notify:// vs
   kafka:// and fake://;
5. listener start-to-ready, and the bridge's CPU and RSS at idle and under load.

Writes benchmarks/results.json, docs/benchmarks.md and docs/benchmarks.png.
Run with ``make benchmark``; ``--quick`` is the smoke mode (N=200, 1 run,
no chart). Every bridge and broker started here is stopped before it exits.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import report, scenarios  # noqa: E402

from kafka_bridge.daemon import options as daemon_options  # noqa: E402
from kafka_bridge_devenv import environment  # noqa: E402
from kafka_bridge_devenv.brokers import DevenvBrokers, brokers_from_environment  # noqa: E402
from kafka_bridge.kafka import options as kafka_options  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SIZES = (200, 1024, 4096)
#: the processes whose CPU per notification is measured in the throughput runs
PROCESSES = ("bridge", "rabbitmq", "kafka")
#: the size at which kafka-bridge also runs with two worker processes
WORKERS_SIZE = 1024


def settings() -> dict[str, dict[str, str]]:
    """The producer settings in use: every side runs with its defaults."""
    bridge = {o.name: o.default for o in daemon_options.BRIDGE_OPTS}
    layer = {o.name: o.default for o in kafka_options.all_opts()}
    from oslo_messaging._drivers.kafka_driver import kafka_options as upstream
    up = {o.name: o.default for o in upstream.KAFKA_OPTS}
    producer = (f"producer batch_size {layer['batch_size']:,} B, idempotent "
                f"{layer['enable_idempotence']}")
    return {
        "kafka-bridge daemon": {
            "compression": layer["compression_codec"],
            "batch": f"up to {bridge['batch_size']} notifications per confirmation, what "
                     f"arrived meanwhile (batch_timeout {bridge['batch_timeout']} s); {producer}",
            "linger": f"linger_ms {layer['linger_ms']}", "acks": layer["producer_acks"]},
        "kafka-notify:// driver": {
            "compression": layer["compression_codec"], "batch": producer,
            "linger": f"linger_ms {layer['linger_ms']}", "acks": layer["producer_acks"]},
        "kafka:// (oslo.messaging, confluent-kafka)": {
            "compression": up["compression_codec"],
            "batch": f"batch.num.messages {up['producer_batch_size']:,}",
            "linger": f"linger.ms {up['producer_batch_timeout'] * 1000:g}",
            "acks": "librdkafka default (all)"},
    }


def _throughput(sides: dict[str, list[dict]]) -> dict:
    """Rate and CPU per notification of each side, its ratio to the naive bridge, and
    workers=2 against workers=1: the rate run by run, the CPU per notification of each
    process as the ratio of the medians (min-max: run by run), since a broker's share of
    a single run is a few hundred milliseconds of CPU, noisy on a shared machine."""
    out: dict = {}
    for side, runs in sides.items():
        out[side] = {"rate": report.stats([r["rate"] for r in runs]),
                     "cpu_us": {proc: report.stats([r["cpu_us"][proc] for r in runs])
                                for proc in runs[0]["cpu_us"]},
                     "runs": runs}
    out["ratio"] = report.ratio(sides[scenarios.BRIDGE], sides[scenarios.NAIVE])
    if scenarios.BRIDGE_2W in sides:
        two, one = sides[scenarios.BRIDGE_2W], sides[scenarios.BRIDGE]
        out["ratio_workers2"] = report.ratio(two, sides[scenarios.NAIVE])
        out["workers2_vs_1"] = {"rate": report.ratio(two, one)}
        for proc in one[0]["cpu_us"]:
            out["workers2_vs_1"][f"cpu_us_{proc}"] = report.ratio_of_medians(
                [r["cpu_us"][proc] for r in two], [r["cpu_us"][proc] for r in one])
    return out


def resummarise(results: dict) -> dict:
    """results (a results.json) with its throughput summaries and targets computed again
    from the runs it holds (after a change to how they are summarised)."""
    for direction in ("forward", "reverse"):
        for size, entry in results[direction].items():
            results[direction][size] = _throughput(
                {side: data["runs"] for side, data in entry.items()
                 if isinstance(data, dict) and "cpu_us" in data})
    results["targets"] = targets(results)
    return results


def summarise(raw: dict, bench: scenarios.Bench) -> dict:
    out: dict = {}
    for direction in ("forward", "reverse"):
        out[direction] = {str(size): _throughput(sides)
                          for size, sides in raw[direction].items()}
    lat = raw["latency"]
    out["latency"] = {"rate": bench.latency_rate, "seconds": bench.latency_seconds,
                      **{k: report.stats([r[k] for r in lat["runs"]])
                         for k in ("p50_ms", "p99_ms", "max_ms", "offered_rate")},
                      **{path: {k: report.stats([r[path][k] for r in lat["runs"]])
                                for k in ("p50_ms", "p99_ms", "max_ms")}
                         for path in ("read_here", "rabbitmq_alone")},
                      "runs": lat["runs"]}
    out["driver"] = {}
    for size, drivers in raw["driver"].items():
        entry: dict = {}
        for op in ("publish", "consume"):
            entry[op] = {d: report.stats([r["rate"] for r in drivers[d][op]])
                         for d in scenarios.DRIVERS}
            entry[op]["ratio_vs_kafka"] = report.ratio(drivers["kafka-notify"][op],
                                                       drivers["kafka"][op])
            entry[op]["ratio_vs_fake"] = report.ratio(drivers["kafka-notify"][op],
                                                      drivers["fake"][op])
            entry[op]["runs"] = {d: drivers[d][op] for d in scenarios.DRIVERS}
        acked = drivers[scenarios.ACKED_CEILING]["publish"]
        entry["publish"][scenarios.ACKED_CEILING] = report.stats([r["rate"] for r in acked])
        entry["publish"]["ratio_vs_acked"] = report.ratio(drivers["kafka-notify"]["publish"],
                                                          acked)
        entry["publish"]["runs"][scenarios.ACKED_CEILING] = acked
        out["driver"][str(size)] = entry
    out["listener_ready"] = {d: report.stats([r["seconds"] for r in runs])
                             for d, runs in raw["listener_ready"].items()}
    out["listener_ready"]["runs"] = raw["listener_ready"]
    fwd = raw["forward"][1024]
    out["resources"] = {
        "idle": {k: report.stats([r[k] for r in lat["idle"]]) for k in ("cpu_percent", "rss_mb")},
        "load_1000": {k: report.stats([r[k] for r in lat["load"]])
                      for k in ("cpu_percent", "rss_mb")},
        "max_throughput": {k: report.stats([r[k] for r in fwd[scenarios.BRIDGE]])
                           for k in ("cpu_percent", "rss_mb")},
        "naive_max_throughput": {k: report.stats([r[k] for r in fwd[scenarios.NAIVE]])
                                 for k in ("cpu_percent", "rss_mb")}}
    return out


def targets(out: dict) -> list[dict]:
    kb = "1024"
    d = out["driver"][kb]
    checks = [
        ("forward vs naive (1 KB)", ">= 3x", out["forward"][kb]["ratio"], 3.0, True, "x"),
        ("reverse vs naive reverse (1 KB)", ">= 3x", out["reverse"][kb]["ratio"], 3.0, True,
         "x"),
        (f"added latency p99 at {out['latency']['rate']:,}/s", "<= 10 ms",
         out["latency"]["p99_ms"], 10.0, False, " ms"),
        ("driver publish, kafka-notify:// vs kafka:// (1 KB)", ">= 1.0x",
         d["publish"]["ratio_vs_kafka"], 1.0, True, "x"),
        ("driver consume, kafka-notify:// vs kafka:// (1 KB)", ">= 2x",
         d["consume"]["ratio_vs_kafka"], 2.0, True, "x"),
        ("driver consume, kafka-notify:// vs fake:// listener (1 KB)", ">= 0.8x",
         d["consume"]["ratio_vs_fake"], 0.8, True, "x"),
        ("listener ready, kafka-notify://", "<= 1 s", out["listener_ready"]["kafka-notify"],
         1.0, False, " s"),
        ("forward bridge CPU per 1 KB notification", "<= 80 us",
         out["forward"][kb][scenarios.BRIDGE]["cpu_us"]["bridge"], 80.0, False, " us"),
        # the same cut for reverse: both directions measured the same when it was set
        ("reverse bridge CPU per 1 KB notification", "<= 80 us",
         out["reverse"][kb][scenarios.BRIDGE]["cpu_us"]["bridge"], 80.0, False, " us"),
    ]
    for direction in ("forward", "reverse"):
        versus = out[direction][kb].get("workers2_vs_1", {})
        for proc in PROCESSES:
            if f"cpu_us_{proc}" in versus:
                checks.append((f"{direction} CPU per notification of {proc}, workers=2 vs 1 "
                               f"(1 KB)", "<= 1.10x", versus[f"cpu_us_{proc}"], 1.10, False,
                               "x"))
    result = []
    for name, target, summary, bound, higher, unit in checks:
        median = summary["median"]
        result.append({"name": name, "target": target, "bound": bound,
                       "median": median, "min": summary["min"], "max": summary["max"],
                       "measured": report.fmt(summary, 2, unit),
                       "met": median >= bound if higher else median <= bound})
    return result


def run(args: argparse.Namespace) -> dict:
    began = time.monotonic()
    load_at_start = report.load()
    sizes = (1024,) if args.quick else SIZES
    driver_sizes = (1024,) if args.quick else tuple(args.driver_sizes)

    def log(message: str) -> None:
        print(f"[{time.monotonic() - began:6.1f}s] {message}", flush=True)

    with tempfile.TemporaryDirectory(prefix="kafka-bridge-bench-") as tmp:
        directory = Path(tmp)
        env = None
        brokers = brokers_from_environment() if args.use_env_brokers else None
        if brokers is None:
            env = DevenvBrokers(directory / "devenv", environment.StartOptions())
            brokers = env.brokers
            log(f"devenv started (Kafka {brokers.kafka_bootstrap})")
        bench = scenarios.Bench(brokers, directory, count=args.count, runs=args.runs,
                                latency_seconds=args.latency_seconds, log=log)
        raw: dict = {"forward": {}, "reverse": {}, "driver": {}}
        try:
            for direction, measure in (("forward", scenarios.forward),
                                       ("reverse", scenarios.reverse)):
                for size in sizes:
                    sides = (scenarios.BRIDGE, scenarios.NAIVE) if size != WORKERS_SIZE else (
                        scenarios.BRIDGE, scenarios.BRIDGE_2W, scenarios.NAIVE)
                    log(f"{direction} throughput, {size} B: {', '.join(sides)}")
                    raw[direction][size] = measure(bench, size, sides)
            log("added latency and resources")
            raw["latency"] = scenarios.latency(bench)
            for size in driver_sizes:
                log(f"driver publish and consume, {size} B")
                raw["driver"][size] = scenarios.driver(bench, size)
            log("listener start-to-ready")
            raw["listener_ready"] = scenarios.listener_ready(bench)
        finally:
            bench.close()
            if env is not None:
                env.close()
                log("devenv stopped")
    results = {"date": datetime.datetime.now(datetime.timezone.utc).strftime(
                   "%Y-%m-%d %H:%M UTC"),
               "machine": report.machine(), "settings": settings(),
               "load": report.load(since=load_at_start),
               "broker_processes": sorted(bench.broker_pids),
               "parameters": {"count": args.count, "runs": args.runs, "sizes": list(sizes),
                              "driver_sizes": list(driver_sizes),
                              "latency_rate": bench.latency_rate,
                              "latency_seconds": args.latency_seconds,
                              "quick": args.quick},
               **summarise(raw, bench)}
    results["targets"] = targets(results)
    results["notes"] = args.note
    results["elapsed_seconds"] = time.monotonic() - began
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20000,
                        help="notifications per throughput run (default 20000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (default 3)")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--driver-sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--quick", action="store_true",
                        help="smoke mode: N=200, 1 run, 1 KB only, 2 s latency, no chart")
    parser.add_argument("--use-env-brokers", action="store_true",
                        help="use the brokers named by KAFKA_BRIDGE_* instead of a devenv")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results.json")
    parser.add_argument("--markdown", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--chart", type=Path, default=ROOT / "docs" / "benchmarks.png")
    parser.add_argument("--no-chart", action="store_true")
    parser.add_argument("--note", action="append", default=[],
                        help="a line for the Notes section of the Markdown report")
    parser.add_argument("--report-only", action="store_true",
                        help="measure nothing: summarise the runs in --output again and "
                             "rewrite it, the Markdown and the chart")
    args = parser.parse_args(argv)
    if args.quick:
        args.count, args.runs, args.latency_seconds, args.no_chart = 200, 1, 2.0, True
    if args.report_only:
        results = resummarise(json.loads(args.output.read_text()))
        results["notes"] = results.get("notes", []) + args.note
    else:
        results = run(args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(report.markdown(results))
    if not args.no_chart:
        report.chart(results, args.chart)
    for t in results["targets"]:
        print(f"{'MET   ' if t['met'] else 'MISSED'} {t['name']} {t['target']}: {t['measured']}")
    print(f"results: {args.output}; total {results['elapsed_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
