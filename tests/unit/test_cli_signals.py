"""A command stopped by SIGTERM unwinds: its clean-up runs and it exits 143, as after Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

# A command whose work waits and whose clean-up leaves a mark, run through the real entry point.
_COMMAND = """
import argparse, sys, time
from pathlib import Path
from ferrocanary.cli import main as cli

mark = Path(sys.argv[1])

def work(args):
    try:
        mark.with_suffix(".started").touch()
        time.sleep(60)
    finally:
        mark.touch()
    return 0

def parser():
    p = argparse.ArgumentParser(prog="ferrocanary")
    p.set_defaults(func=work)
    return p

cli.build_parser = parser
sys.exit(cli.main([]))
"""


def test_sigterm_runs_the_commands_clean_up_and_exits_143(tmp_path: Path) -> None:
    mark = tmp_path / "cleaned"
    proc = subprocess.Popen([sys.executable, "-c", _COMMAND, str(mark)])
    try:
        deadline = time.monotonic() + 30
        while not mark.with_suffix(".started").exists():
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()
    assert mark.exists()  # the finally ran: a benchmark's sandbox would have been stopped
