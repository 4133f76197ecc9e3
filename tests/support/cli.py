"""Running the real kubectl and the ``kubectl ferrocanary`` plugin against a sandbox, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ferrocanary.local.sandbox import Sandbox

PLUGIN_DIR = Path(sys.executable).parent  # where pip put the kubectl-ferrocanary console script


def kubectl_ferrocanary(
    sandbox: Sandbox, *args: str, kubeconfig: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``kubectl ferrocanary ...``: the real kubectl finds the plugin on PATH and runs it."""
    env = {**os.environ, **sandbox.env()}
    env["PATH"] = f"{sandbox.bin_dir}{os.pathsep}{PLUGIN_DIR}{os.pathsep}{os.environ.get('PATH', '')}"
    if kubeconfig:
        env["KUBECONFIG"] = kubeconfig
    return subprocess.run(
        [str(sandbox.bin_dir / "kubectl"), "ferrocanary", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
