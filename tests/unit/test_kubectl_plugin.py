"""``kubectl ferrocanary`` without a cluster: how a status reads, how kubectl's flags parse, and how
``report``/``analyze`` reach the ferrocanary commands. The cluster round trips are in
tests/integration/test_kubectl_plugin.py."""

from __future__ import annotations

import argparse
import io
from datetime import UTC, datetime
from typing import Any

import pytest
from rich.console import Console

from ferrocanary.cli.plugin import delegate, main, view
from ferrocanary.cli.plugin.cluster import PluginError
from ferrocanary.model import formatting

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
KPIS: list[dict[str, Any]] = [
    {
        "name": "p99-latency",
        "estimate": 0.523,
        "lower": 0.47,
        "upper": 0.581,
        "target": 0.6,
        "direction": "lower",
        "decision": "Pass",
        "eta50Seconds": None,
        "eta80Seconds": None,
        "detail": "upper 0.58 <= 0.60",
    },
    {
        "name": "throughput-per-cpu",
        "estimate": 1.71,
        "lower": 1.32,
        "upper": None,
        "target": 1.5,
        "direction": "higher",
        "decision": "Open",
        "eta50Seconds": 250,
        "eta80Seconds": 3725,
    },
]
CANARY: dict[str, Any] = {
    "metadata": {
        "name": "scorer",
        "namespace": "shop",
        "creationTimestamp": "2025-03-01T10:30:00Z",
        "annotations": {"ferrocanary.io/action": "pause"},
    },
    "spec": {"steps": {"weights": [5, 10, 25, 50]}},
    "status": {
        "phase": "Progressing",
        "stepIndex": 2,
        "weight": 25,
        "decision": "Continue",
        "decisionReason": "throughput-per-cpu still open",
        "startedAt": "2025-03-01T11:18:00Z",
        "lastTickAt": "2025-03-01T11:59:40Z",
        "blocksUsed": 38,
        "p99Ratio": "0.52 [0.47, 0.58]",
        "kpis": KPIS,
        "cost": {"baselineMonthly": 1234.5, "candidateMonthly": 812.25, "savingFraction": 0.342},
    },
}


def _text(renderable: Any) -> str:
    out = io.StringIO()
    Console(file=out, width=250, color_system=None).print(renderable)
    return out.getvalue()


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "-"),
        (float("nan"), "-"),
        (-1, "-"),
        (45, "45s"),
        (119, "119s"),
        (250, "4m10s"),
        (300, "5m"),
        (2545, "42m"),
        (3725, "62m"),
        (5 * 3600 + 12 * 60, "5h12m"),
        (30 * 3600, "30h"),
        (3 * 86400 + 4 * 3600, "3d4h"),
        (20 * 86400, "20d"),
    ],
)
def test_durations_read_like_kubectl(seconds: Any, shown: str) -> None:
    assert formatting.duration(seconds) == shown


def test_an_interval_shows_its_open_side_as_infinity() -> None:
    assert view.interval(KPIS[0]) == "[0.47, 0.58]"
    assert view.interval(KPIS[1]) == "[1.32, inf]"
    assert view.interval({"lower": None, "upper": None}) == "-"


def test_a_target_says_which_side_is_better() -> None:
    assert view.target(KPIS[0]) == "<= 0.60"
    assert view.target(KPIS[1]) == ">= 1.50"
    assert view.target({"target": None}) == "-"


def test_the_kpi_table_has_every_kpis_estimate_interval_target_decision_and_eta() -> None:
    text = _text(view.kpi_table("KPI", KPIS, wide=False))
    header, first, second = text.splitlines()[:3]
    assert header.split() == ["KPI", "ESTIMATE", "INTERVAL", "TARGET", "DECISION", "ETA", "50%", "ETA", "80%"]
    assert first.split() == ["p99-latency", "0.52", "[0.47,", "0.58]", "<=", "0.60", "Pass", "-", "-"]
    assert second.split() == [
        "throughput-per-cpu",
        "1.71",
        "[1.32,",
        "inf]",
        ">=",
        "1.50",
        "Open",
        "4m10s",
        "62m",
    ]
    assert "DETAIL" not in text
    assert "upper 0.58 <= 0.60" in _text(view.kpi_table("KPI", KPIS, wide=True))


def test_the_header_says_where_the_canary_stands() -> None:
    lines = view.detail_lines(CANARY, NOW)
    text = "\n".join(lines)
    assert "Phase:       Progressing" in text
    assert "25% on the Rust build  (steps: 5 10 [25] 50)" in text
    assert "Decision:    Continue: throughput-per-cpu still open" in text
    assert "(42m ago)" in text
    assert "on 38 blocks" in text
    assert "Python $1,234.50/month, Rust $812.25/month (saving 34.2%)" in text
    assert "Pending:     pause (waiting for the operator)" in text


def test_the_list_is_kubectls_columns_plus_wide_ones() -> None:
    text = _text(view.list_table([CANARY], wide=True, all_namespaces=True))
    header, row = text.splitlines()[:2]
    assert header.split()[:7] == ["NAMESPACE", "NAME", "PHASE", "WEIGHT", "VERDICT", "P99", "RATIO"]
    assert row.split()[:6] == ["shop", "scorer", "Progressing", "25%", "-", "0.52"]
    assert "3/4" in row
    assert "Continue" in row


@pytest.mark.parametrize(
    ("argv", "namespace", "context"),
    [
        (["-n", "a", "get"], "a", None),
        (["get", "-n", "b"], "b", None),
        (["--context", "c", "get", "x", "--namespace=d"], "d", "c"),
        (["get", "x"], None, None),
    ],
)
def test_kubectl_flags_work_before_and_after_the_command(
    argv: list[str], namespace: str, context: str
) -> None:
    args = main.build_parser().parse_args(argv)
    assert (args.namespace, args.context) == (namespace, context)


def test_actions_take_a_name_and_an_optional_wait() -> None:
    parser = main.build_parser()
    assert parser.parse_args(["promote", "scorer"]).wait is None
    assert parser.parse_args(["abort", "scorer", "--wait"]).wait == 60.0
    assert parser.parse_args(["pause", "scorer", "--wait", "5"]).wait == 5.0
    with pytest.raises(SystemExit):
        parser.parse_args(["resume"])


def test_report_and_analyze_keep_their_own_arguments_verbatim() -> None:
    split = delegate.split_delegated(
        ["-n", "shop", "--kubeconfig=k", "report", "scorer", "--json", "-n", "x"]
    )
    assert split == (["-n", "shop", "--kubeconfig=k"], "report", ["scorer", "--json", "-n", "x"])
    assert delegate.split_delegated(["analyze", "--help"]) == ([], "analyze", ["--help"])
    assert delegate.split_delegated(["get", "report"]) is None


def test_analyze_help_is_ferrocanary_analyzes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main.main(["analyze", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: kubectl ferrocanary analyze")
    assert "--recording" in out


def test_a_missing_command_is_explained_not_a_traceback() -> None:
    args = argparse.Namespace(namespace=None, context=None, kubeconfig=None)
    with pytest.raises(PluginError, match=r"has no `ferrocanary nosuch` command: upgrade it"):
        delegate.cmd_delegate(args, "nosuch", [])


def test_a_flag_the_delegate_cannot_honour_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["--context", "prod", "report", "scorer"]) == 1
    assert "`ferrocanary report` has no --context" in capsys.readouterr().err


def test_a_missing_kubeconfig_is_a_one_line_error(capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    assert main.main(["--kubeconfig", str(tmp_path / "none"), "get"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no usable cluster configuration in ")
    assert "Traceback" not in err
