"""The runtime wheel is the product alone: no devenv, no test tooling.

Builds `pip wheel .` (needs PyPI, or the configured index, for setuptools).
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_runtime_wheel_carries_no_dev_tooling(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                             "--disable-pip-version-check", "-w", str(tmp_path), str(REPO)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    (wheel,) = tmp_path.glob("kafka_bridge-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "kafka_bridge/pump/core.py" in names
    tooling = [n for n in names if n.startswith(("kafka_bridge_devenv", "tests/", "tools/"))
               or "devenv" in n]
    assert tooling == []
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "kafka-bridge-devenv" not in zipfile.ZipFile(wheel).read(entry_points).decode()
