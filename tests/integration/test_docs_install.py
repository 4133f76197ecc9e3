"""The sandbox section of docs/install.md works as written.

Its shell blocks marked ``<!-- tested -->`` are run in order, in one bash session from the
repository root (as a reader types them into one terminal), against a real sandbox. The sandbox
name of the page is replaced by one unique to this process, so the test never touches a reader's
sandbox, and the sandbox is stopped in a ``finally`` whatever happens.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from ferrocanary.local.sandbox import Sandbox

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "docs" / "install.md"
SECTION = "## The one-machine sandbox"
MARKER = "<!-- tested -->"
PAGE_NAME = "--name try"
BLOCK = re.compile(re.escape(MARKER) + r"\s*\n```(?:bash|sh)\n(.*?)```", re.DOTALL)


def sandbox_section(text: str) -> str:
    """From the sandbox heading to the next heading of the same level."""
    start = text.index(SECTION)
    following = text.find("\n## ", start + len(SECTION))
    return text[start : following if following != -1 else len(text)]


def marked_blocks(text: str) -> list[str]:
    return [match.group(1) for match in BLOCK.finditer(sandbox_section(text))]


def test_the_tested_blocks_are_the_whole_sandbox_walkthrough() -> None:
    blocks = marked_blocks(INSTALL.read_text())
    assert len(blocks) >= 2
    assert "local up" in blocks[0]
    assert "local down" in blocks[-1]
    assert all(PAGE_NAME in block for block in blocks if "ferrocanary local" in block)


def test_the_sandbox_section_runs_as_written() -> None:
    name = f"docs-{os.getpid()}"
    script = "\n".join(
        block.replace(PAGE_NAME, f"--name {name}") for block in marked_blocks(INSTALL.read_text())
    )
    assert PAGE_NAME not in script
    env = {key: value for key, value in os.environ.items() if key not in ("KUBECONFIG", "PROMETHEUS_URL")}
    try:
        run = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert run.returncode == 0, (
            f"exit {run.returncode}\n--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}"
        )
        assert "kwok-node-0" in run.stdout  # kubectl get nodes
        assert "customresourcedefinition.apiextensions.k8s.io/rustcanaries.ferrocanary.io" in run.stdout
        examples = list((ROOT / "crds" / "examples").glob("*.yaml"))
        documents = sum(len([d for d in yaml.safe_load_all(e.read_text()) if d]) for e in examples)
        # every example is a valid RustCanary (or the MetricTemplate one references)
        assert run.stdout.count("(server dry run)") == documents
        assert not Sandbox(name).is_up(), "the page's last block did not stop the sandbox"
    finally:
        Sandbox(name).down()
