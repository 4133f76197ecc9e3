"""A real canary run by the operator with nothing but the chart's permissions, then read the way an SRE
reads it: through ``kubectl ferrocanary`` and through every query of the Grafana dashboards.

Once per module: ``helm install`` of the chart (watching one namespace, the Prometheus token Secret
granted by name), then ``ferrocanary run`` as a local process logged in with a token of the chart's
ServiceAccount, the operator's /metrics scraped by the sandbox's Prometheus, and a Gateway API canary
of a Rust build that wins (tests/support: Deployments on kwok, a live two-arm exporter
whose traffic follows the real HTTPRoute).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from ferrocanary.kube import client as kube_client
from ferrocanary.kube import rest
from ferrocanary.local import processes
from ferrocanary.local.sandbox import Sandbox
from tests.support import arms
from tests.support.canary import Canary, install_crd, running

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = Path(sys.executable).parent / "kubectl-ferrocanary"
RATE, STEP = "15s", "5s"  # what Grafana's $__rate_interval and $__interval are with a 1 s scrape


@dataclass
class Run:
    """What the module's canary left behind for the tests to read."""

    sandbox: Sandbox
    namespace: str
    name: str
    started: float
    ended: float = 0.0
    status: dict[str, Any] = field(default_factory=dict)
    route: dict[str, int] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    plugin: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)
    operator_log: Path = Path()


def _sh(sandbox: Sandbox, tool: str, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(sandbox.bin_dir / tool), *args],
        env={**os.environ, **sandbox.env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, f"{tool} {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def _service_account_kubeconfig(sandbox: Sandbox, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig that logs in as the ServiceAccount, as the operator's pod would."""
    token = sandbox.kubectl("-n", namespace, "create", "token", account, "--duration=2h").strip()
    admin = yaml.safe_load(sandbox.kubeconfig.read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"][:1],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [
            {"name": account, "context": {"cluster": admin["clusters"][0]["name"], "user": account}}
        ],
        "current-context": account,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _plugin(sandbox: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PLUGIN), "--kubeconfig", str(sandbox.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _start_operator(
    sandbox: Sandbox, ns: str, kubeconfig: Path, port: int, log: Path
) -> subprocess.Popen[bytes]:
    """The operator as the chart runs it: its ServiceAccount's kubeconfig, the chart's token policy."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ferrocanary.cli.main",
                "run",
                "--namespace",
                ns,
                "--metrics-port",
                str(port),
                "--metrics-address",
                "127.0.0.1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "KUBECONFIG": str(kubeconfig),
                # as the chart sets them: the token goes to the sandbox's Prometheus only
                "FERROCANARY_PROMETHEUS_TOKEN_ADDRESSES": sandbox.prometheus_url,
                "FERROCANARY_PROMETHEUS_ALLOW_INSECURE_TLS": "false",
            },
            cwd=ROOT,
            start_new_session=True,
        )


@pytest.fixture(scope="module")
def run(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("chart-canary")
    install_crd(sandbox)
    release_ns, ns = f"fcrel-{uuid.uuid4().hex[:6]}", f"shop-{uuid.uuid4().hex[:6]}"
    release = "ferrocanary"
    helm_env = {
        f"HELM_{kind}_HOME": str(tmp / f"helm-{kind.lower()}") for kind in ("CACHE", "CONFIG", "DATA")
    }
    api = rest.Rest(kube_client.api_client(str(sandbox.kubeconfig)))
    operator: subprocess.Popen[bytes] | None = None
    job = f"ferrocanary-operator-{ns}"
    for name in (release_ns, ns):
        sandbox.kubectl("create", "namespace", name)
    try:
        settings = ("crd.create=false", f"watchNamespaces={{{ns}}}", "prometheus.tokenSecret.name=prom-token")
        flags = [a for s in settings for a in ("--set", s)]
        chart = str(ROOT / "charts" / "ferrocanary")
        _sh(sandbox, "helm", "install", release, chart, "-n", release_ns, *flags, "--wait", env=helm_env)
        sandbox.kubectl("-n", ns, "create", "secret", "generic", "prom-token", "--from-literal=token=sandbox")
        kubeconfig = _service_account_kubeconfig(sandbox, release_ns, release, tmp / "sa.kubeconfig")
        port = processes.free_port()
        log = tmp / "operator.log"
        operator = _start_operator(sandbox, ns, kubeconfig, port, log)
        sandbox.add_scrape_target(job, [f"127.0.0.1:{port}"], {"service": "ferrocanary"})
        prometheus = {
            "address": sandbox.prometheus_url,
            "lag": "2s",
            "timeout": "5s",
            "secretRef": {"name": "prom-token"},
        }
        overrides = {"analysis": {"prometheus": prometheus}}
        canary = Canary(sandbox, api, ns, "scorer", "gatewayAPI", arms.RUST_WIN, spec_overrides=overrides)
        result = Run(sandbox, ns, canary.name, started=time.time(), operator_log=log)
        with running(canary, tmp):
            canary.apply()
            result.status = canary.wait_terminal(300)
            # The range queries step every 5 s from `started`; end them more than a step after
            # Prometheus holds the final phase, so their last evaluation sees it (a fixed 5 s sleep
            # raced the scrape and the annotation queries came back empty).
            final_phase = (
                f'ferrocanary_canary_phase{{namespace="{ns}",name="{canary.name}",'
                f'phase="{result.status["phase"]}"}} == 1'
            )
            deadline = time.monotonic() + 60
            while not _prometheus(result, "/api/v1/query", query=final_phase)["result"]:
                assert time.monotonic() < deadline, f"Prometheus never saw {final_phase}"
                time.sleep(1)
            time.sleep(6)
            result.ended = time.time()
            result.route = canary.route_weights()
            result.reasons = canary.reasons()
            result.plugin["get-final"] = _plugin(sandbox, "get", canary.name, "-n", ns, "-o", "wide")
            yield result
    finally:
        # running() has deleted the RustCanary while the operator still ran (its finalizer released).
        sandbox.remove_scrape_target(job)
        if operator is not None:
            operator.terminate()
            try:
                operator.wait(timeout=20)
            except subprocess.TimeoutExpired:
                operator.kill()
        uninstall = [str(sandbox.bin_dir / "helm"), "uninstall", release, "-n", release_ns]
        subprocess.run(
            uninstall, env={**os.environ, **sandbox.env(), **helm_env}, capture_output=True, check=False
        )
        for name in (release_ns, ns):
            sandbox.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_the_operator_needs_nothing_beyond_the_charts_permissions(run: Run) -> None:
    assert run.status["phase"] == "Promoted", run.status.get("verdictReason")
    assert run.route == {"scorer-python": 0, "scorer-rust": 100}
    assert "Started" in run.reasons
    assert "Promoted" in run.reasons
    assert "token" not in str(run.status.get("decisionReason", "")), "the token Secret was not readable"
    log = run.operator_log.read_text()
    # The apiserver's refusals read "403" with "Forbidden"; a bare 403 also matches "0.403" in a verdict.
    refused = [ln for ln in log.splitlines() if re.search(r"forbidden", ln, re.IGNORECASE)]
    assert not refused, "the operator was refused:\n" + "\n".join(refused[:10])


def test_the_plugin_shows_the_verdict_with_every_kpi(run: Run) -> None:
    final = run.plugin["get-final"]
    assert final.returncode == 0, final.stderr
    text = final.stdout
    assert "Phase:       Promoted" in text
    assert "Weight:      100% on the Rust build" in text
    names = {k["name"] for k in run.status["kpis"]}
    rows = {ln.split()[0]: ln for ln in text.splitlines() if ln.split() and ln.split()[0] in names}
    p99 = next(k for k in run.status["kpis"] if k["name"] == "p99-latency")
    assert rows["p99-latency"].split()[1] == f"{p99['estimate']:.2f}"
    assert f"[{p99['lower']:.2f}, {p99['upper']:.2f}]" in rows["p99-latency"]
    assert "<= 0.60" in rows["p99-latency"]
    assert " Pass " in rows["p99-latency"]


# ----------------------------------------------------------------------------------------- dashboards


def _prometheus(run: Run, path: str, **params: Any) -> Any:
    url = f"{run.sandbox.prometheus_url}{path}?{urllib.parse.urlencode(params, doseq=True)}"
    with urllib.request.urlopen(url, timeout=30) as reply:
        body = json.load(reply)
    assert body["status"] == "success", body
    return body["data"]


def _substitute(expr: str, variables: dict[str, str]) -> str:
    for name in sorted(variables, key=len, reverse=True):  # $__rate_interval before $__interval
        expr = expr.replace("${" + name + "}", variables[name]).replace("$" + name, variables[name])
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


def _variables(board: dict[str, Any], run: Run, kpi: str = "p99-latency") -> dict[str, str]:
    values = {"__rate_interval": RATE, "__interval": STEP, "namespace": run.namespace, "canary": run.name}
    values.update(kpi=kpi, baseline_deployment=f"{run.name}-python", candidate_deployment=f"{run.name}-rust")
    for variable in board["templating"]["list"]:
        if variable["type"] == "textbox":  # the dashboard's own defaults (prices)
            values.setdefault(variable["name"], variable["query"])
    return values


# Queries whose emptiness is the truth after this canary, and why.
EMPTY = {
    "Container faults": "no container terminated, so kube-state-metrics has no last-terminated series",
    "Rollbacks": "the canary was promoted",
}


@pytest.mark.parametrize("board_file", ["canary-verdicts.json", "python-vs-rust.json"])
def test_every_dashboard_query_returns_data_with_the_expected_labels(run: Run, board_file: str) -> None:
    board = json.loads((ROOT / "dashboards" / board_file).read_text())
    variables = _variables(board, run)
    start, end = run.started, run.ended
    queries = [(p["title"], t) for p in board["panels"] for t in p.get("targets", [])]
    queries += [
        (a["name"], {"expr": a["expr"], "range": True}) for a in board["annotations"]["list"] if "expr" in a
    ]
    checked = 0
    for title, target in queries:
        expr = _substitute(target["expr"], variables)
        if target.get("instant"):
            result = _prometheus(run, "/api/v1/query", query=expr, time=end)["result"]
        else:
            result = _prometheus(run, "/api/v1/query_range", query=expr, start=start, end=end, step=5)[
                "result"
            ]
        if title in EMPTY:
            assert result == [], f"{title}: expected nothing ({EMPTY[title]}), got {result[:2]}"
            continue
        assert result, f"{title}: no data for {expr}"
        checked += 1
        for series in result:
            labels = series["metric"]
            if 'name=~"' in expr:
                assert (labels.get("namespace"), labels.get("name")) == (run.namespace, run.name), (
                    title,
                    labels,
                )
            if 'kpi="p99-latency"' in expr:
                assert labels.get("kpi") == "p99-latency", (title, labels)
            if "ferrocanary_" not in expr:
                assert labels == {}, (
                    f"{title}: an arm's series aggregates to one unlabelled value, got {labels}"
                )
    assert checked >= (13 if board_file.startswith("canary") else 20)


def test_the_dashboards_tell_the_canarys_story(run: Run) -> None:
    """The values an SRE reads at the end: Promoted, 100% on Rust, the p99 estimate inside its interval."""
    board = json.loads((ROOT / "dashboards" / "canary-verdicts.json").read_text())
    variables = _variables(board, run)
    panels = {p["title"]: p for p in board["panels"]}

    def instant(title: str) -> list[dict[str, Any]]:
        every_kpi = _variables(board, run, kpi=".*")
        expr = _substitute(panels[title]["targets"][0]["expr"], every_kpi)
        return list(_prometheus(run, "/api/v1/query", query=expr, time=run.ended)["result"])

    (phase,) = instant("Phase")
    mapping = panels["Phase"]["fieldConfig"]["defaults"]["mappings"][0]["options"]
    assert mapping[phase["value"][1]]["text"] == "Promoted"
    (weight,) = instant("Traffic on the Rust build")
    assert float(weight["value"][1]) == 100.0
    readings = {s["metric"]["kpi"]: s["metric"]["decision"] for s in instant("Readings now")}
    assert readings == {k["name"]: k["decision"] for k in run.status["kpis"] + run.status.get("guards", [])}
    p99 = next(k for k in run.status["kpis"] if k["name"] == "p99-latency")
    kpi_panel = panels["$kpi (Rust / Python)"]
    for target in kpi_panel["targets"]:
        expr = _substitute(target["expr"], variables)
        (series,) = _prometheus(run, "/api/v1/query", query=expr, time=run.ended)["result"]
        field_name = target["legendFormat"].split()[-1]
        assert float(series["value"][1]) == pytest.approx(p99[field_name]), field_name
    selector = f'ferrocanary_canary_phase{{namespace="{run.namespace}"}}'
    canaries = _prometheus(run, "/api/v1/label/name/values", **{"match[]": selector})
    assert canaries == [run.name], "the dashboard's canary variable lists it"
