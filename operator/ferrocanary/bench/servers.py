"""Starting textscore servers for the benchmark, reading their CPU and memory, stopping them by pid.

Each build runs as a real process (``python -m textscore --build ...``) on 127.0.0.1 and a port
the kernel picks; the server prints its address on its first line of output. CPU seconds and
peak RSS come from /proc/<pid> (utime + stime, VmHWM), the hot-path split from the service's
GET /debug/hotpath.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_LISTENING = re.compile(r"listening on http://([\d.]+):(\d+)")


class ServerError(RuntimeError):
    """A server did not start; the message holds the end of its log."""


@dataclass(frozen=True)
class Server:
    build: str
    pid: int
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def start(build: str, log: Path, extra_env: dict[str, str] | None = None, timeout: float = 60.0) -> Server:
    """Starts one build on a free loopback port and waits until it listens."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTSCORE_")}
    env.update(extra_env or {})
    cmd = [sys.executable, "-m", "textscore", "--build", build, "--host", "127.0.0.1", "--port", "0"]
    with log.open("wb") as err:
        process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env, start_new_session=True)
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    line = b""
    while time.monotonic() < deadline and not line.endswith(b"\n"):
        if not selector.select(timeout=0.2):
            if process.poll() is not None:
                break
            continue
        chunk = os.read(process.stdout.fileno(), 4096)
        if not chunk:
            break
        line += chunk
    selector.close()
    match = _LISTENING.search(line.decode(errors="replace"))
    if match is None:
        stop_process(process)
        raise ServerError(f"the {build} build did not start: {line!r}\n{tail(log)}")
    return Server(build, process.pid, int(match.group(2)), process, log)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads, live and exited)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def memory_bytes(pid: int, key: str = "VmHWM") -> int:
    """A /proc/<pid>/status memory line in bytes: VmHWM (peak RSS) or VmRSS (current)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def get_json(url: str, timeout: float = 10.0) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        doc = json.loads(response.read())
    if not isinstance(doc, dict):
        raise ValueError(f"{url} did not answer a JSON object")
    return doc


def stop_process(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(grace)
    if process.stdout is not None:
        process.stdout.close()


def stop(server: Server) -> None:
    stop_process(server.process)
