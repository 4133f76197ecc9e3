"""Starting, probing and stopping the sandbox's server processes, each by its own pid.

Processes are started in their own session (so Ctrl-C in the terminal that ran ``local up`` does
not kill them) with output to a log file. Stopping checks that the pid still runs the executable
that was started before signalling it, so a recycled pid is never killed by mistake.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


class ComponentError(RuntimeError):
    """A component failed to start or to become healthy; names the component and its log."""


@dataclass(frozen=True)
class Started:
    name: str
    pid: int
    executable: str
    log: Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def start(name: str, argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> Started:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    return Started(name=name, pid=proc.pid, executable=str(argv[0]), log=log)


def is_running(pid: int, executable: str) -> bool:
    """True if ``pid`` is alive, not a zombie, and (where the kernel lets us see it) runs ``executable``.

    /proc/<pid>/cmdline reads as empty while a big binary is still being paged in, so identity is
    checked through the /proc/<pid>/exe link instead, and an unreadable link counts as "ours".
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    # The state letter follows the command name in parentheses, which may itself contain spaces.
    if stat[stat.rindex(")") + 2 :].startswith(("Z", "X")):
        return False
    try:
        running = os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")
    except OSError:
        return True
    # A venv's python is a symlink: compare resolved paths too, not only names.
    return Path(running).name == Path(executable).name or Path(running) == Path(executable).resolve()


def children(pid: int) -> set[int]:
    """The live (non-zombie) processes whose parent is ``pid``, read from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # After the parenthesised command name: state, then the parent's pid.
        state, parent = stat[stat.rindex(")") + 2 :].split(" ", 2)[:2]
        if int(parent) == pid and state not in ("Z", "X"):
            found.add(int(entry.name))
    return found


def stop(pid: int, executable: str, timeout: float = 10.0) -> None:
    """SIGTERM, wait, then SIGKILL; harmless if the process is already gone."""
    if not is_running(pid, executable):
        _reap(pid)
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not is_running(pid, executable):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    for _ in range(50):
        _reap(pid)
        if not is_running(pid, executable):
            return
        time.sleep(0.1)


def _reap(pid: int) -> None:
    # Only our own children can be reaped; for anyone else's pid this is a harmless ChildProcessError.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def log_tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log written)"


def http_ok(url: str, context: ssl.SSLContext | None = None, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return bool(200 <= response.status < 300)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_until(started: Started, probe: Callable[[], bool], timeout: float, what: str = "healthy") -> None:
    """Poll ``probe`` until it holds; fail early, with the log's tail, if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        if not is_running(started.pid, started.executable):
            raise ComponentError(
                f"{started.name} exited during start-up; log {started.log}:\n{log_tail(started.log)}"
            )
        time.sleep(0.25)
    raise ComponentError(
        f"{started.name} did not become {what} within {timeout:.0f}s; "
        f"log {started.log}:\n{log_tail(started.log)}"
    )
