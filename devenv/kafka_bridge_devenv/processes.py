"""Launching, tracking and stopping the local broker processes.

Every process devenv starts is recorded (name, pid, log file) so that
``stop`` ends exactly those processes and nothing else.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


class DevenvError(Exception):
    """A local broker could not be prepared, started or stopped.

    The message names the cause and, where there is one, the log file to read.
    """


@dataclasses.dataclass(frozen=True)
class ProcessRecord:
    """A process devenv launched: what it is, its pid and where it logs."""

    name: str
    pid: int
    log: str
    #: the command, to start the process again (fault-injection tests)
    argv: tuple[str, ...] = ()
    #: what the command's environment adds to devenv's own, and its working directory
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None

    def is_running(self) -> bool:
        """True while the pid is alive and not a zombie."""
        try:
            with open(f"/proc/{self.pid}/stat", encoding="ascii") as stat:
                state = stat.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return False
        return state not in ("Z", "X")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_accepts(port: int, timeout: float = 0.5) -> bool:
    """True if a TCP connection to 127.0.0.1:port succeeds."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def launch(name: str, argv: Sequence[str], log: Path,
           env: Mapping[str, str] | None = None,
           cwd: Path | str | None = None) -> ProcessRecord:
    """Start argv in its own session, stdout and stderr appended to log.

    env is added to this process's environment; it is recorded (with cwd)
    so that the process can be started again, and must hold no secret. The
    process outlives the caller (the CLI exits while the brokers run).
    Raises DevenvError if the executable cannot be started.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        try:
            proc = subprocess.Popen(
                list(argv), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=dict(os.environ, **env) if env else None,
                cwd=cwd, start_new_session=True)
        except OSError as exc:
            raise DevenvError(f"cannot start {name} ({argv[0]}): {exc}") from exc
    return ProcessRecord(name=name, pid=proc.pid, log=str(log), argv=tuple(argv),
                         env=tuple(sorted((env or {}).items())),
                         cwd=None if cwd is None else str(cwd))


def wait_until(condition: Callable[[], bool], timeout: float,
               failure: Callable[[], str | None] = lambda: None,
               interval: float = 0.1) -> None:
    """Poll condition until it holds.

    failure() is checked on every round; a message it returns ends the wait
    with DevenvError(message) (a broker that exited, for instance).
    Raises DevenvError when timeout seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        problem = failure()
        if problem:
            raise DevenvError(problem)
        if time.monotonic() > deadline:
            raise DevenvError(f"timed out after {timeout:.0f}s")
        time.sleep(interval)


def stop(record: ProcessRecord, timeout: float = 20.0) -> None:
    """End a recorded process: SIGTERM, then SIGKILL after timeout seconds.

    Safe to call for a process that is already gone. Children that share
    the process group (the Erlang VM's helpers) are signalled too.
    """
    if not record.is_running():
        return
    _signal_group(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while record.is_running() and time.monotonic() < deadline:
        _reap(record.pid)
        time.sleep(0.1)
    if record.is_running():
        _signal_group(record.pid, signal.SIGKILL)
        wait_until(lambda: not record.is_running() or _reap(record.pid), 10,
                   lambda: None)
    _reap(record.pid)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # launch() made each process the leader of its own session and group.
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def _reap(pid: int) -> bool:
    """Collect the exit status if pid is our child; True once it has exited."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == pid


def log_tail(path: str | Path, lines: int = 15) -> str:
    """The last lines of a log file, for error messages."""
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])
