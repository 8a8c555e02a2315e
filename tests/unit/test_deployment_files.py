"""The deployment files: systemd/kafka-bridge.service, Dockerfile and .dockerignore.

They are not Python, so nothing else checks them: these tests hold them to the
package they deploy (console scripts, option defaults, files in the tree).
"""

from __future__ import annotations

import configparser
import fnmatch
import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kafka_bridge.daemon import healthcheck, options

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "kafka-bridge.service"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
CONFIG_FILE = "/etc/kafka-bridge/kafka-bridge.conf"


# -- helpers (also used by tests/functional/test_container_entrypoint.py) -----

def console_scripts() -> dict[str, str]:
    """setup.cfg [options.entry_points] console_scripts: name -> module:function."""
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(REPO / "setup.cfg")
    scripts = {}
    for line in cfg["options.entry_points"]["console_scripts"].splitlines():
        if line.strip():
            name, _, target = line.partition("=")
            scripts[name.strip()] = target.strip()
    return scripts


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file: section -> key -> every value, in order.

    Keys may repeat (After=, ...), which configparser cannot keep; lines ending
    in a backslash continue on the next line.
    """
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            assert line.endswith("]"), f"bad section header: {line!r}"
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"assignment outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not key=value: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined."""
    instructions = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        line = pending + stripped
        pending = ""
        word, _, args = line.partition(" ")
        instructions.append((word.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a continued instruction"
    return instructions


def dockerfile_copies(text: str) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY/ADD from the build context."""
    copies = []
    for word, args in dockerfile_instructions(text):
        if word not in ("COPY", "ADD"):
            continue
        parts = json.loads(args) if args.startswith("[") else shlex.split(args)
        flags = [p for p in parts if p.startswith("--")]
        if any(f.startswith("--from=") for f in flags):
            continue  # from another stage, not from the build context
        paths = [p for p in parts if not p.startswith("--")]
        copies.append((paths[:-1], paths[-1]))
    return copies


def exec_form(args: str) -> list[str]:
    """The JSON (exec) form of ENTRYPOINT/CMD; shell form is refused."""
    assert args.startswith("["), f"use the exec form (JSON array), not a shell string: {args}"
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


def option_default(opts: list, name: str):  # type: ignore[no-untyped-def]
    return next(opt.default for opt in opts if opt.name == name)


# -- the systemd unit ----------------------------------------------------------

@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return parse_unit(UNIT.read_text())


def one(unit: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    values = unit.get(section, {}).get(key)
    assert values, f"[{section}] {key}= is missing"
    assert len(values) == 1, f"[{section}] {key}= is set {len(values)} times: {values}"
    return values[0]


def test_unit_parses_with_configparser() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(UNIT.read_text())
    assert {"Unit", "Service", "Install"} <= set(parser.sections())


@pytest.mark.parametrize(("key", "expected"), [
    ("Type", "notify"),
    # cotyledon's worker, not the main PID, sends READY=1
    ("NotifyAccess", "main"),
    ("User", "kafka-bridge"),
    ("Group", "kafka-bridge"),
    ("Restart", "on-failure"),
    # SIGTERM to the master only; it stops the worker itself
    ("KillMode", "mixed"),
    ("NoNewPrivileges", "true"),
    ("ProtectSystem", "strict"),
    ("ProtectHome", "true"),
    ("PrivateTmp", "true"),
    ("PrivateDevices", "true"),
    ("MemoryDenyWriteExecute", "true"),
    ("CapabilityBoundingSet", ""),
])
def test_unit_service_settings(unit: dict[str, dict[str, list[str]]], key: str,
                               expected: str) -> None:
    assert one(unit, "Service", key) == expected


def test_unit_reload_sends_hup_to_main_pid(unit: dict[str, dict[str, list[str]]]) -> None:
    reload = shlex.split(one(unit, "Service", "ExecReload"))
    assert Path(reload[0]).name == "kill"
    assert reload[1:] == ["-HUP", "$MAINPID"]


def test_unit_address_families_allow_tcp_and_sd_notify(
        unit: dict[str, dict[str, list[str]]]) -> None:
    families = one(unit, "Service", "RestrictAddressFamilies").split()
    assert set(families) == {"AF_INET", "AF_INET6", "AF_UNIX"}


def test_unit_execstart_is_a_console_script(unit: dict[str, dict[str, list[str]]]) -> None:
    command = shlex.split(one(unit, "Service", "ExecStart").lstrip("@-:+!"))
    assert command[0] == "/usr/bin/kafka-bridge"
    assert Path(command[0]).name in console_scripts()
    assert command[command.index("--config-file") + 1] == CONFIG_FILE


def test_unit_config_dirs_exist_when_the_daemon_starts(
        unit: dict[str, dict[str, list[str]]]) -> None:
    """oslo.config exits on a --config-dir that does not exist: systemd creates it."""
    command = shlex.split(one(unit, "Service", "ExecStart"))
    config_dirs = [command[i + 1] for i, arg in enumerate(command) if arg == "--config-dir"]
    assert config_dirs == ["/etc/kafka-bridge/kafka-bridge.conf.d"]
    created = {"/etc/" + d for d in one(unit, "Service", "ConfigurationDirectory").split()}
    assert set(config_dirs) <= created


def test_unit_stop_timeout_exceeds_the_daemon_shutdown_timeout(
        unit: dict[str, dict[str, list[str]]]) -> None:
    stop = float(one(unit, "Service", "TimeoutStopSec"))
    shutdown = option_default(options.BRIDGE_OPTS, "shutdown_timeout")
    # the worker settles in shutdown_timeout, then it and the master must still exit
    assert stop >= shutdown + 5


def test_unit_is_installed_in_multi_user_target(unit: dict[str, dict[str, list[str]]]) -> None:
    assert one(unit, "Install", "WantedBy") == "multi-user.target"


@pytest.fixture(scope="module")
def analyzable_unit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The unit with ExecStart pointing at this virtualenv's kafka-bridge."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    script = shutil.which("kafka-bridge", path=str(Path(sys.executable).parent))
    if script is None:
        script = shutil.which("kafka-bridge")
    assert script, "the kafka-bridge console script is not installed next to " + sys.executable
    text = UNIT.read_text()
    rewritten, count = re.subn(r"^ExecStart=/usr/bin/kafka-bridge ",
                               f"ExecStart={script} ", text, flags=re.M)
    assert count == 1
    path = tmp_path_factory.mktemp("unit") / UNIT.name
    path.write_text(rewritten)
    return path


def test_systemd_analyze_verify_accepts_the_unit(analyzable_unit: Path) -> None:
    result = subprocess.run(["systemd-analyze", "verify", str(analyzable_unit)],
                            capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # Unknown keys and unparsable values are only warnings ("<path>:<line>: ...,
    # ignoring"): any message about the unit is a mistake in it.
    complaints = [line for line in output.splitlines() if UNIT.name in line]
    assert not complaints, "\n".join(complaints)


def test_systemd_analyze_security_exposure_is_low(analyzable_unit: Path) -> None:
    # systemd >= 250 scores a unit file offline; 4.5 keeps it in the "OK" band
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", "--threshold=45",
                             "--no-pager", str(analyzable_unit)],
                            capture_output=True, text=True, timeout=60)
    if "--offline" in result.stderr and "unrecognized" in result.stderr:
        pytest.skip("systemd-analyze is older than systemd 250 (no security --offline)")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr


# -- the container image -----------------------------------------------------

@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return dockerfile_instructions(DOCKERFILE.read_text())


def instruction(dockerfile: list[tuple[str, str]], word: str) -> str:
    """The arguments of the last `word` instruction (the one that takes effect)."""
    found = [args for w, args in dockerfile if w == word]
    assert found, f"the Dockerfile has no {word}"
    return found[-1]


def build_args(dockerfile: list[tuple[str, str]]) -> dict[str, str]:
    """ARG name -> default value (the last one of each name)."""
    args = {}
    for word, rest in dockerfile:
        if word == "ARG":
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip().strip('"')
    return args


def test_dockerfile_base_image_is_a_build_argument_defaulting_to_slim_python(
        dockerfile: list[tuple[str, str]]) -> None:
    default = build_args(dockerfile).get("BASE_IMAGE")
    assert default, "no ARG BASE_IMAGE=<default> before the first FROM"
    assert re.fullmatch(r"(docker\.io/(library/)?)?python:3\.\d+-slim(-[a-z]+)?(@sha256:\w+)?",
                        default), default
    # every stage starts from it: the tests build on a local Debian base through it
    images = [args.split()[0] for word, args in dockerfile if word == "FROM"]
    assert set(images) == {"${BASE_IMAGE}"}, images


def test_dockerfile_installs_into_a_virtualenv_first_on_path(
        dockerfile: list[tuple[str, str]]) -> None:
    runs = " ".join(args for word, args in dockerfile if word == "RUN")
    venv = re.search(r"python3 -m venv (/\S+)", runs)
    assert venv, "no `python3 -m venv <dir>` in a RUN"
    assert f"{venv.group(1)}/bin/pip install" in runs
    path = [args for word, args in dockerfile if word == "ENV" and "PATH=" in args]
    assert path and f"PATH={venv.group(1)}/bin:" in path[-1], "the virtualenv is not on PATH"
    # the sources copied for the install do not stay in the image
    source = next(dest for sources, dest in dockerfile_copies(DOCKERFILE.read_text())
                  if "setup.cfg" in sources)
    assert f"rm -rf {source.rstrip('/')}" in runs


def test_dockerfile_has_the_oci_labels_and_the_package_version(
        dockerfile: list[tuple[str, str]]) -> None:
    labels = dict(re.findall(r'(org\.opencontainers\.image\.\w+)="([^"]*)"',
                             " ".join(args for word, args in dockerfile if word == "LABEL")))
    assert {"title", "description", "version", "licenses"} <= {
        key.rsplit(".", 1)[1] for key in labels}
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(REPO / "setup.cfg")
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert build_args(dockerfile)["VERSION"] == cfg["metadata"]["version"]
    assert labels["org.opencontainers.image.licenses"] == cfg["metadata"]["license"]


def dockerignore_patterns() -> list[str]:
    return [line.strip().rstrip("/") for line in DOCKERIGNORE.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def is_dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether path, or a directory above it, matches a .dockerignore pattern (no ! rules)."""
    parts = Path(path).parts
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pattern in patterns:
        assert not pattern.startswith("!"), "exceptions are not handled by this check"
        pattern = pattern.lstrip("/")
        if pattern.startswith("**/"):
            tail = pattern[3:]
            if any(fnmatch.fnmatchcase(part, tail) for part in parts):
                return True
        if any(fnmatch.fnmatchcase(candidate, pattern) for candidate in candidates):
            return True
    return False


def test_dockerfile_copies_existing_files_not_dockerignored() -> None:
    copies = dockerfile_copies(DOCKERFILE.read_text())
    assert copies
    patterns = dockerignore_patterns()
    for sources, _destination in copies:
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"
            assert not is_dockerignored(source, patterns), f"COPY {source}: .dockerignore drops it"


def test_dockerfile_copies_what_the_package_build_reads() -> None:
    copied = {source.rstrip("/") for sources, _ in dockerfile_copies(DOCKERFILE.read_text())
              for source in sources}
    needed = {"pyproject.toml", "setup.cfg", "kafka_bridge"}
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(REPO / "setup.cfg")
    for value in cfg["metadata"].values():
        if value.startswith("file:"):
            needed.update(f.strip() for f in value[len("file:"):].split(","))
    assert needed <= copied, f"not copied into the image: {sorted(needed - copied)}"


def test_dockerfile_installs_the_copied_tree_not_editable(
        dockerfile: list[tuple[str, str]]) -> None:
    destinations = {dest.rstrip("/") for sources, dest in dockerfile_copies(DOCKERFILE.read_text())
                    if "setup.cfg" in sources}
    runs = " ".join(args for word, args in dockerfile if word == "RUN")
    match = re.search(r"pip install (--no-cache-dir )(\S+)", runs)
    assert match, "no `pip install --no-cache-dir <dir>` in a RUN"
    assert match.group(2).rstrip("/") in destinations | {"."}
    assert " -e " not in runs and "--editable" not in runs


def test_dockerfile_runs_as_non_root(dockerfile: list[tuple[str, str]]) -> None:
    user = instruction(dockerfile, "USER").split(":")[0]
    assert user not in ("root", "0", "")
    # nothing runs as root after it
    last_user = max(i for i, (word, _) in enumerate(dockerfile) if word == "USER")
    assert all(word != "RUN" for word, _ in dockerfile[last_user:])


def test_dockerfile_entrypoint_is_the_console_script(dockerfile: list[tuple[str, str]]) -> None:
    entrypoint = exec_form(instruction(dockerfile, "ENTRYPOINT"))
    assert entrypoint == ["kafka-bridge"]
    assert entrypoint[0] in console_scripts()
    assert exec_form(instruction(dockerfile, "CMD")) == ["--config-file", CONFIG_FILE]


def test_dockerfile_exposes_the_default_metrics_port(
        dockerfile: list[tuple[str, str]]) -> None:
    port = option_default(options.METRICS_OPTS, "port")
    assert str(port) in instruction(dockerfile, "EXPOSE").split()


def healthcheck_command(dockerfile: list[tuple[str, str]]) -> list[str]:
    healthcheck = instruction(dockerfile, "HEALTHCHECK")
    return exec_form(healthcheck[healthcheck.index("CMD ") + 4:].strip())


def test_dockerfile_healthcheck_reads_the_configuration_the_daemon_reads(
        dockerfile: list[tuple[str, str]]) -> None:
    command = healthcheck_command(dockerfile)
    assert command[:3] == ["python", "-m", "kafka_bridge.daemon.healthcheck"]
    assert command[3:] == exec_form(instruction(dockerfile, "CMD"))
    # slim images have no curl or wget
    assert not re.search(r"\b(curl|wget)\b", instruction(dockerfile, "HEALTHCHECK"))


class _Probe(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def probe_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Probe)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def run_healthcheck(dockerfile: list[tuple[str, str]], config: Path,
                    env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The image's HEALTHCHECK command with this interpreter and config standing in."""
    command = [sys.executable] + [str(config) if arg == CONFIG_FILE else arg
                                  for arg in healthcheck_command(dockerfile)[1:]]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    return subprocess.run(command, capture_output=True, text=True, timeout=30,
                          env=environment | (env or {}), cwd=config.parent)


def metrics_config(tmp_path: Path, text: str) -> Path:
    config = tmp_path / "kafka-bridge.conf"
    config.write_text(text)
    return config


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_healthcheck_follows_the_status_on_the_configured_port(
        dockerfile: list[tuple[str, str]], probe_server: http.server.HTTPServer,
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, status: int, healthy: bool) -> None:
    monkeypatch.setattr(_Probe, "status", status)
    port = probe_server.server_address[1]
    assert port != option_default(options.METRICS_OPTS, "port")
    # a wildcard listen address is probed on the loopback
    config = metrics_config(tmp_path, f"[metrics]\nhost = 0.0.0.0\nport = {port}\n")
    result = run_healthcheck(dockerfile, config)
    assert (result.returncode == 0) is healthy, result.stderr
    if not healthy:
        assert f"http://127.0.0.1:{port}/healthz" in result.stderr
        assert "503" in result.stderr


def test_healthcheck_follows_a_port_set_in_the_environment(
        dockerfile: list[tuple[str, str]], probe_server: http.server.HTTPServer,
        tmp_path: Path) -> None:
    config = metrics_config(tmp_path, "[metrics]\nport = 1\n")
    port = str(probe_server.server_address[1])
    assert run_healthcheck(dockerfile, config, {"OS_METRICS__PORT": port}).returncode == 0


def test_healthcheck_fails_when_nothing_listens(
        dockerfile: list[tuple[str, str]], probe_server: http.server.HTTPServer,
        tmp_path: Path) -> None:
    port = probe_server.server_address[1]
    probe_server.shutdown()
    probe_server.server_close()
    result = run_healthcheck(dockerfile, metrics_config(tmp_path, f"[metrics]\nport = {port}\n"))
    assert result.returncode == 1
    assert f"127.0.0.1:{port}/healthz" in result.stderr


def test_healthcheck_fails_with_the_reason_when_metrics_are_disabled(
        dockerfile: list[tuple[str, str]], tmp_path: Path) -> None:
    result = run_healthcheck(dockerfile, metrics_config(tmp_path, "[metrics]\nenabled = false\n"))
    assert result.returncode == 1
    assert "[metrics] enabled = false" in result.stderr


def test_healthcheck_fails_with_the_reason_on_a_bad_configuration(
        dockerfile: list[tuple[str, str]], tmp_path: Path) -> None:
    result = run_healthcheck(dockerfile, metrics_config(tmp_path, "[metrics]\nport = nine\n"))
    assert result.returncode == 1
    assert "port" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(("host", "url"), [
    ("0.0.0.0", "http://127.0.0.1:9464/healthz"),
    ("::", "http://[::1]:9464/healthz"),
    ("10.1.2.3", "http://10.1.2.3:9464/healthz"),
    ("fd00::5", "http://[fd00::5]:9464/healthz"),
])
def test_healthcheck_probes_a_wildcard_address_on_the_loopback(host: str, url: str) -> None:
    assert healthcheck.healthz_url(host, 9464) == url


def test_dockerignore_drops_local_state() -> None:
    patterns = dockerignore_patterns()
    for path in (".git", ".venv", ".tox", ".pytest_cache", "kafka_bridge/__pycache__",
                 "kafka_bridge/daemon/cli.pyc", "kafka_bridge.egg-info", "build", "dist",
                 # development and test tooling stays out of the image
                 "devenv", "tests", "tools", "benchmarks"):
        assert is_dockerignored(path, patterns), path
