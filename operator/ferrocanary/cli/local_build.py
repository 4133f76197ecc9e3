"""How ``ferrocanary local build`` (and ``up``, when it must build) shows what it is doing.

A first run compiles the control plane for 10-20 minutes; without this it is silent. Two views of
the same ``BuildReporter`` events from ``Toolchain.ensure``:

- on a terminal, a live table: one row per component (name, version, cached/building/built,
  seconds), a spinner, a running clock and a count of the packages compiled so far (read from
  the build's log, where ``go build -v`` names each one) on the one being built;
- anywhere else (CI logs, ``make setup 2>&1 | tee``), plain lines, one when a component is found
  cached, one when its build starts and one when it ends, with a "still running" line (and the
  package count) every minute in between, because a log that stops for ten minutes looks hung
  (and some CI systems kill a job that prints nothing for that long).

Both write to stderr, so ``--json`` on stdout stays machine-readable.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from rich.console import Console, RenderableType
from rich.progress import Progress, ProgressColumn, SpinnerColumn, Task, TaskID, TextColumn
from rich.table import Column
from rich.text import Text

from ferrocanary.local.toolchain import BuildRecord, BuildReporter, Component

HEARTBEAT_SECONDS = 60.0


def duration(seconds: float) -> str:
    """``12.3s`` under a minute, ``10m 05s`` above: a Go build is read in minutes."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m {rest:02d}s"


def summary(records: Sequence[BuildRecord], directory: Path) -> str:
    """The last line of a build: what was built and how long each took, what was cached."""
    built = [r for r in records if not r.cached]
    cached = len(records) - len(built)
    if not built:
        return f"toolchain ready in {directory}: all {cached} components cached"
    each = ", ".join(f"{r.name} in {duration(r.seconds)}" for r in built)
    total = f" ({duration(sum(r.seconds for r in built))} in all)" if len(built) > 1 else ""
    return f"toolchain ready in {directory}: built {each}{total}; {cached} cached"


class LogWatch:
    """Counts, from a component's log, what its build has done since it started.

    ``go build -v`` writes one import path per compiled package; ``go: downloading`` lines are
    modules fetched from the proxy. The log is read incrementally from where it stood when the
    build began (earlier runs append to the same file). Called from rich's refresh thread and the
    main thread, hence the lock.
    """

    _PACKAGE = re.compile(r"[\w.~-]+(/[\w.~-]+)*")

    def __init__(self, log: Path) -> None:
        self._log = log
        self._offset = log.stat().st_size if log.exists() else 0
        self._partial = ""
        self._lock = threading.Lock()
        self.packages = 0
        self.downloads = 0

    def poll(self) -> str:
        """What the log says so far: "" or e.g. "1234 packages compiled, 3 modules downloaded"."""
        with self._lock:
            try:
                with self._log.open("rb") as log:
                    log.seek(self._offset)
                    chunk = log.read()
            except FileNotFoundError:
                chunk = b""
            self._offset += len(chunk)
            *lines, self._partial = (self._partial + chunk.decode(errors="replace")).split("\n")
            for line in lines:
                if line.startswith("go: downloading "):
                    self.downloads += 1
                elif self._PACKAGE.fullmatch(line):
                    self.packages += 1
            return self._describe()

    def _describe(self) -> str:
        parts = []
        if self.packages:
            parts.append(f"{self.packages} package{'s' if self.packages != 1 else ''} compiled")
        if self.downloads:
            parts.append(f"{self.downloads} module{'s' if self.downloads != 1 else ''} downloaded")
        return ", ".join(parts)


# ---------------------------------------------------------------------------------- live view
class _StateColumn(SpinnerColumn):
    """A spinner while building; a mark once the component is there (or failed); blank waiting."""

    def render(self, task: Task) -> RenderableType:
        state = task.fields["state"]
        if state == "failed":
            return Text("✗", style="red")
        if state in {"cached", "built"}:
            return Text("✓", style="green")
        if state == "waiting":
            return Text(" ")
        return super().render(task)


class _SecondsColumn(ProgressColumn):
    """The build's running clock, frozen when it ends; nothing for a cached component."""

    def render(self, task: Task) -> Text:
        if task.fields["state"] in {"cached", "waiting"}:
            return Text("")
        elapsed = task.finished_time if task.finished else task.elapsed
        return Text(duration(elapsed or 0.0), style="progress.elapsed")


class _StatusColumn(ProgressColumn):
    """What the component is doing; while it builds, led by what its log says is done."""

    def render(self, task: Task) -> Text:
        status: str = task.fields["status"]
        watch: LogWatch | None = task.fields.get("watch")
        if task.fields["state"] == "building" and watch is not None:
            done = watch.poll()
            if done:
                status = f"{done} · {status}"
        return Text.from_markup(status)


class LiveReport:
    """The terminal's view: a row per component, updated in place by rich's refresh thread."""

    def __init__(self, console: Console) -> None:
        # The build blocks the main thread in subprocess.run; rich's own refresh thread keeps
        # the spinner and the clock moving meanwhile. Four refreshes a second is smooth enough
        # and costs nothing next to a compiler on a two-core machine.
        # Only the status (the long "what is happening" hint) gives way on a narrow terminal;
        # the mark, name, version and clock are what the row is for and are never cut, and the
        # clock sits before the status so that it stays next to the name on a wide one.
        self._progress = Progress(
            _StateColumn(table_column=Column(no_wrap=True)),
            TextColumn("[bold]{task.description}", table_column=Column(no_wrap=True)),
            TextColumn("{task.fields[version]}", table_column=Column(no_wrap=True)),
            _SecondsColumn(table_column=Column(no_wrap=True, justify="right", min_width=7)),
            _StatusColumn(table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1)),
            console=console,
            refresh_per_second=4,
            expand=True,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> LiveReport:
        self._progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._progress.stop()

    def plan(self, components: Sequence[Component], missing: Sequence[Component]) -> None:
        to_build = {c.name for c in missing}
        for c in components:
            self._tasks[c.name] = self._progress.add_task(
                c.name,
                start=False,
                total=1,
                version=c.version,
                state="waiting",
                status="[dim]to build" if c.name in to_build else "",
            )

    def cached(self, component: Component) -> None:
        task = self._tasks[component.name]
        self._progress.update(task, completed=1, state="cached", status="[dim]cached")

    def started(self, component: Component, log: Path) -> None:
        task = self._tasks[component.name]
        self._progress.start_task(task)
        self._progress.update(
            task, state="building", status=f"building: {component.hint}", watch=LogWatch(log)
        )

    def finished(self, record: BuildRecord) -> None:
        task = self._tasks[record.name]
        watch: LogWatch | None = self._progress.tasks[task].fields.get("watch")
        done = watch.poll() if watch is not None else ""
        status = f"[green]built[/green] ({done})" if done else "[green]built"
        self._progress.update(task, completed=1, state="built", status=status)

    def failed(self, component: Component, seconds: float, error: BaseException) -> None:
        task = self._tasks[component.name]
        self._progress.stop_task(task)
        self._progress.update(task, completed=1, state="failed", status="[red]failed")


# --------------------------------------------------------------------------------- plain lines
class _Heartbeat:
    """Calls ``say(elapsed)`` every ``interval`` seconds until stopped, from a daemon thread."""

    def __init__(self, interval: float, say: Callable[[float], None]) -> None:
        self._interval = interval
        self._say = say
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="build-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stopped.wait(self._interval):
            self._say(time.monotonic() - started)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()


class PlainReport:
    """Lines for logs: ``<verb> <name> <version> ...``, aligned, flushed as they happen."""

    def __init__(self, out: IO[str], heartbeat: float = HEARTBEAT_SECONDS) -> None:
        self._out = out
        self._interval = heartbeat
        self._heartbeat: _Heartbeat | None = None
        self._watch: LogWatch | None = None
        self._width = 0
        self._version_width = 0

    def __enter__(self) -> PlainReport:
        return self

    def __exit__(self, *_: object) -> None:
        self._stop_heartbeat()

    def _line(self, verb: str, name: str, version: str, rest: str = "") -> None:
        head = f"{verb:<8} {name:<{self._width}} {version:<{self._version_width}}"
        self._out.write(f"{head}  {rest}\n" if rest else f"{head.rstrip()}\n")
        self._out.flush()

    def _stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None

    def plan(self, components: Sequence[Component], missing: Sequence[Component]) -> None:
        self._width = max((len(c.name) for c in components), default=0)
        self._version_width = max((len(c.version) for c in components), default=0)
        where = components[0].directory.parent if components else ""
        self._out.write(
            f"toolchain: {len(components)} components in {where}: "
            f"{len(components) - len(missing)} cached, {len(missing)} to build\n"
        )
        self._out.flush()

    def cached(self, component: Component) -> None:
        self._line("cached", component.name, component.version)

    def started(self, component: Component, log: Path) -> None:
        self._line("building", component.name, component.version, f"{component.hint}; log {log}")
        watch = self._watch = LogWatch(log)

        def still(elapsed: float) -> None:
            done = watch.poll()
            rest = f"still running after {duration(elapsed)}" + (f": {done}" if done else "")
            self._line("building", component.name, component.version, rest)

        self._heartbeat = _Heartbeat(self._interval, still)

    def finished(self, record: BuildRecord) -> None:
        self._stop_heartbeat()
        done = self._watch.poll() if self._watch is not None else ""
        rest = f"in {duration(record.seconds)}" + (f" ({done})" if done else "")
        self._line("built", record.name, record.version, rest)

    def failed(self, component: Component, seconds: float, error: BaseException) -> None:
        self._stop_heartbeat()
        # Ctrl-C arrives as a KeyboardInterrupt with no message: name it rather than print nothing.
        why = str(error) or type(error).__name__
        self._line("FAILED", component.name, component.version, f"after {duration(seconds)}: {why}")


@contextmanager
def reporter_for(console: Console) -> Iterator[BuildReporter]:
    """The live view on a terminal, plain lines anywhere else (pipes, files, TERM=dumb)."""
    if console.is_terminal and not console.is_dumb_terminal:
        with LiveReport(console) as live:
            yield live
    else:
        with PlainReport(console.file) as plain:
            yield plain
