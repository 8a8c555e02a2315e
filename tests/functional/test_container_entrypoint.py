"""The image's entrypoint from a clean virtualenv installed the way the Dockerfile installs it.

No Docker needed: the files the Dockerfile COPYs (minus what .dockerignore
drops) are copied into a temporary tree, a fresh virtualenv gets a regular
(non-editable) `pip install --no-cache-dir` of it, and the ENTRYPOINT + CMD
run from there. Needs PyPI (or the configured index) for the dependencies.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_deployment_files import (CONFIG_FILE, DOCKERFILE, REPO,
                                              dockerfile_copies, dockerfile_instructions,
                                              dockerignore_patterns, exec_form, instruction,
                                              is_dockerignored)


def build_context_copy(image_root: Path) -> None:
    """Do the Dockerfile's COPY instructions with image_root standing for /."""
    patterns = dockerignore_patterns()

    def ignored(directory: str, names: list[str]) -> list[str]:
        base = Path(directory).relative_to(REPO)
        return [name for name in names if is_dockerignored(str(base / name), patterns)]

    for sources, destination in dockerfile_copies(DOCKERFILE.read_text()):
        target = image_root / destination.lstrip("/")
        for source in sources:
            path = REPO / source
            if path.is_dir():
                shutil.copytree(path, target, ignore=ignored, dirs_exist_ok=True)
            elif destination.endswith("/"):
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target / path.name)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with the package installed as the image installs it; its bin dir."""
    root = tmp_path_factory.mktemp("image")
    build_context_copy(root)
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    runs = " ".join(args for word, args in instructions if word == "RUN")
    match = re.search(r"pip install --no-cache-dir (/\S+)", runs)
    assert match, "the Dockerfile has no `pip install --no-cache-dir /<dir>`"
    source = root / match.group(1).lstrip("/")
    venv = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-cache-dir",
                             "--disable-pip-version-check", str(source)],
                            capture_output=True, text=True, timeout=900, env=env,
                            cwd=root)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return venv / "bin"


def run(bin_dir: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(args, capture_output=True, text=True, timeout=120, env=env, cwd=cwd)


def entrypoint(bin_dir: Path) -> list[str]:
    command = exec_form(instruction(dockerfile_instructions(DOCKERFILE.read_text()),
                                    "ENTRYPOINT"))
    return [str(bin_dir / command[0])] + command[1:]


def test_the_install_is_not_the_source_tree(installed: Path, tmp_path: Path) -> None:
    result = run(installed, [str(installed / "python"), "-c",
                             "import kafka_bridge.daemon.cli as m; print(m.__file__)"], tmp_path)
    assert result.returncode == 0, result.stderr
    module = Path(result.stdout.strip())
    assert installed.parent in module.parents, module
    assert REPO not in module.parents


def test_entrypoint_help(installed: Path, tmp_path: Path) -> None:
    result = run(installed, entrypoint(installed) + ["--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--config-file" in result.stdout


def test_entrypoint_with_the_image_cmd_refuses_a_config_without_kafka_url(
        installed: Path, tmp_path: Path) -> None:
    config = tmp_path / "kafka-bridge.conf"
    config.write_text("[DEFAULT]\ntransport_url = rabbit://guest:guest@127.0.0.1:5672/\n\n"
                      "[kafka_bridge]\nmode = forward\n")
    cmd = exec_form(instruction(dockerfile_instructions(DOCKERFILE.read_text()), "CMD"))
    assert CONFIG_FILE in cmd
    args = [str(config) if arg == CONFIG_FILE else arg for arg in cmd]
    result = run(installed, entrypoint(installed) + args, tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "kafka_url" in result.stderr
    assert "Traceback" not in result.stderr
