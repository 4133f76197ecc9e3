"""The rules with the real Prometheus tools: ``promtool check rules``, ``promtool test rules`` on the
hand-written cases, and the rules loaded into the sandbox's running Prometheus, where every rule must
evaluate without error. Every dashboard query runs against the real Prometheus after a real canary in
test_chart_canary.py; here each one is parsed by Prometheus itself, with Grafana's variables filled in.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ferrocanary.local.sandbox import Sandbox
from ferrocanary.local.toolchain import Toolchain

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "dashboards" / "rules" / "ferrocanary.rules.yml"
RULE_TESTS = sorted((ROOT / "dashboards" / "rules" / "tests").glob("*.yml"))


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = Toolchain().path("prometheus", "promtool")
    if not promtool.exists():
        pytest.skip("promtool is not built: run `ferrocanary local build`")
    return subprocess.run([str(promtool), *args], capture_output=True, text=True, timeout=120, check=False)


def test_the_rules_file_is_valid() -> None:
    checked = _promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 7 rules found" in checked.stdout


@pytest.mark.parametrize("case", RULE_TESTS, ids=lambda p: p.name)
def test_the_alerts_fire_when_and_only_when_they_should(case: Path) -> None:
    tested = _promtool("test", "rules", str(case))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_the_rule_tests_can_fail(tmp_path: Path) -> None:
    """A rules file whose holding alert waits 30 minutes instead of 15 fails the same cases."""
    slow = tmp_path / "rules"
    slow.mkdir()
    (slow / RULES.name).write_text(RULES.read_text().replace("for: 15m", "for: 30m"))
    (slow / "tests").mkdir()
    for case in RULE_TESTS:
        shutil.copy(case, slow / "tests" / case.name)
    tested = _promtool("test", "rules", *(str(slow / "tests" / c.name) for c in RULE_TESTS))
    assert tested.returncode != 0
    assert "FerrocanaryCanaryHolding" in tested.stdout + tested.stderr


def _get(sandbox: Sandbox, path: str, **params: Any) -> Any:
    """A Prometheus API answer, also when it refuses the request (400 with its error)."""
    url = f"{sandbox.prometheus_url}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=30) as reply:
            return json.load(reply)
    except urllib.error.HTTPError as refused:
        return json.load(refused)


def _reload(sandbox: Sandbox) -> None:
    request = urllib.request.Request(f"{sandbox.prometheus_url}/-/reload", method="POST")
    with urllib.request.urlopen(request, timeout=30):
        pass


def test_the_running_prometheus_loads_and_evaluates_every_rule(sandbox: Sandbox) -> None:
    loaded = sandbox.rules_dir / "ferrocanary-dashboards-test.yml"
    shutil.copy(RULES, loaded)
    try:
        _reload(sandbox)
        deadline = time.monotonic() + 30
        rules: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            groups = _get(sandbox, "/api/v1/rules")["data"]["groups"]
            rules = [r for g in groups if g["file"] == str(loaded) for r in g["rules"]]
            if len(rules) == 7 and not any(r["lastEvaluation"].startswith("0001") for r in rules):
                break
            time.sleep(1)
        assert len(rules) == 7
        assert {r["health"] for r in rules} == {"ok"}, [(r["name"], r.get("lastError")) for r in rules]
    finally:
        loaded.unlink(missing_ok=True)
        _reload(sandbox)


GRAFANA = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "namespace": "shop",
    "canary": "scorer",
    "kpi": "p99-latency",
    "baseline_deployment": "scorer-python",
    "candidate_deployment": "scorer-rust",
    "cpu_hour": "0.04048",
    "memory_gib_hour": "0.004445",
}


@pytest.mark.parametrize("board", sorted((ROOT / "dashboards").glob("*.json")), ids=lambda p: p.name)
def test_prometheus_parses_every_dashboard_query(sandbox: Sandbox, board: Path) -> None:
    data = json.loads(board.read_text())
    exprs = [t["expr"] for p in data["panels"] for t in p.get("targets", [])]
    exprs += [a["expr"] for a in data["annotations"]["list"] if "expr" in a]
    for template in exprs:
        expr = template
        for name in sorted(GRAFANA, key=len, reverse=True):  # $__rate_interval before $__interval
            expr = expr.replace(f"${name}", GRAFANA[name])
        answer = _get(sandbox, "/api/v1/query", query=expr)
        assert answer["status"] == "success", f"{expr}: {answer}"
