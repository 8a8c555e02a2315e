"""The OpenStack release matrix: every tox environment labelled ``matrix`` on one devenv.

Installs the environments side by side (pip downloads, no brokers), starts
one devenv, runs the environments one after the other against it (their
functional tests are timing-sensitive, and two environments publishing to
the same brokers at once would measure each other), stops the devenv and
prints one line per environment: result, pytest summaries, minutes.
Exits 0 only if every environment passed. Run with ``make matrix``; name
environments to run only those (``tools/matrix.py py-2025.2``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kafka_bridge_devenv import environment

ROOT = Path(__file__).resolve().parents[1]
TOX = [sys.executable, "-m", "tox"]
SUMMARY = re.compile(r"^=+ (.*(?:passed|failed|error).*) in [\d.]+s")


def _matrix_environments() -> list[str]:
    """The environments of tox.ini's label ``matrix``."""
    listed = subprocess.run([*TOX, "list", "-q", "-m", "matrix"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    return [line.split()[0] for line in listed.splitlines() if " -> " in line]


def _run(env_name: str, exports: dict[str, str]) -> tuple[int, list[str], float]:
    """Run one environment, echoing its output; (exit status, pytest summaries, seconds)."""
    began = time.monotonic()
    proc = subprocess.Popen([*TOX, "run", "-e", env_name], cwd=ROOT, text=True,
                            env={**os.environ, **exports}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    summaries = []
    for line in proc.stdout:
        sys.stdout.write(line)
        found = SUMMARY.match(line.strip())
        if found:
            summaries.append(found.group(1))
    return proc.wait(), summaries, time.monotonic() - began


def main(argv: list[str]) -> int:
    names = argv or _matrix_environments()
    began = time.monotonic()
    subprocess.run([*TOX, "run-parallel", "--notest", "--parallel-no-spinner", "-e",
                    ",".join(names)], cwd=ROOT, check=True)
    installed = time.monotonic() - began
    results = []
    with tempfile.TemporaryDirectory(prefix="kafka-bridge-matrix-") as tmp:
        directory = Path(tmp) / "devenv"
        exports = environment.start(directory, environment.StartOptions())
        try:
            for name in names:
                results.append((name, *_run(name, exports)))
        finally:
            environment.stop(directory)
    print(f"\nmatrix: environments installed in {installed / 60:.1f} min, "
          f"total {(time.monotonic() - began) / 60:.1f} min")
    for name, status, summaries, seconds in results:
        print(f"  {name:10} {'OK  ' if status == 0 else 'FAIL'} {seconds / 60:4.1f} min  "
              f"{' | '.join(summaries) or 'no pytest summary'}")
    return 0 if all(status == 0 for _, status, _, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
