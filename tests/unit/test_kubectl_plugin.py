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

from ferrocanary.cli import tables
from ferrocanary.cli.plugin import actions, delegate, main, view
from ferrocanary.cli.plugin.cluster import Cluster, PluginError
from ferrocanary.kube import canaries, rest
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


# ------------------------------------------------------------------ status text is data, never markup

# Rich markup (a stray closing tag crashed every view), an emoji code, a colour escape, a terminal
# title sequence, a C1 CSI, a bidi override and a newline: what an echoed Prometheus answer or a
# tenant's edit could put into a status field.
HOSTILE = "[/x] [bold]b[/bold] :smile: \x1b[31mred\x1b]0;pwn\x07 \x9b2J \u202eevil\nnext"
HOSTILE_SHOWN = "[/x] [bold]b[/bold] :smile: \\x1b[31mred\\x1b]0;pwn\\x07 \\x9b2J \\u202eevil\\nnext"


def _hostile_canary() -> dict[str, Any]:
    kpi = {**KPIS[0], "name": "p99[/x]", "detail": HOSTILE}
    condition = {"type": "Ready", "status": "False", "reason": "[/y]", "message": HOSTILE}
    status = {
        **CANARY["status"],
        "decisionReason": HOSTILE,
        "verdictReason": HOSTILE,
        "kpis": [kpi],
        "guards": [kpi],
        "conditions": [condition],
        "lastAction": {"action": "pause", "at": "now", "result": HOSTILE},
    }
    return {**CANARY, "status": status}


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain text, [25] and ünïcode ✓", "plain text, [25] and ünïcode ✓"),
        ("a\tb\r\n", "a\\tb\\r\\n"),
        ("\x1b[2J\x07\x7f", "\\x1b[2J\\x07\\x7f"),
        ("\x9b31m", "\\x9b31m"),
        ("\u202e\u2066\u2028", "\\u202e\\u2066\\u2028"),
    ],
)
def test_printable_escapes_control_and_format_characters_only(raw: str, shown: str) -> None:
    assert tables.printable(raw) == shown


def test_markup_in_a_cell_prints_as_written() -> None:
    assert _text(tables.cell("[/x] [red]no[/red] :smile:")).strip() == "[/x] [red]no[/red] :smile:"


class _FakeCluster:
    """``Cluster`` without a cluster: hands out one object, by name or in a list."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj, self.namespace = obj, "shop"

    def get(self, name: str) -> dict[str, Any]:
        return self.obj

    def list_all(self, all_namespaces: bool) -> list[dict[str, Any]]:
        return [self.obj]


@pytest.mark.parametrize(
    "argv",
    [
        ["get", "scorer"],
        ["get", "scorer", "-o", "wide"],
        ["get"],
        ["get", "-A"],
        ["get", "-A", "-o", "wide"],
    ],
)
def test_every_view_prints_hostile_status_text_literally(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    obj = _hostile_canary()
    monkeypatch.setattr(main, "Cluster", lambda *_: _FakeCluster(obj))
    assert main.main(argv) == 0
    out, err = capsys.readouterr()
    assert not err
    for raw in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert raw not in out
    if argv[1:2] == ["scorer"]:  # the object's own view has every field
        assert f"Decision:    Continue: {HOSTILE_SHOWN}" in out.splitlines()
        assert f"Verdict:     -: {HOSTILE_SHOWN}" in out.splitlines()
        assert f"Last action: pause at now: {HOSTILE_SHOWN}" in out.splitlines()
        assert "p99[/x]" in out
        assert "[/y]" in out
        assert out.count(HOSTILE_SHOWN) == (6 if "wide" in argv else 4)
    elif "wide" in argv:  # the list shows the reason only when wide
        assert out.splitlines()[1].endswith(HOSTILE_SHOWN)
    else:
        assert "Progressing" in out


def test_an_actions_result_from_status_is_printed_literally(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    obj = _hostile_canary()
    handled = {**obj, "metadata": {**obj["metadata"], "annotations": {}}}
    cluster = _FakeCluster(handled)
    monkeypatch.setattr(cluster, "annotate", lambda *_: handled, raising=False)
    monkeypatch.setattr(actions, "_POLL_SECONDS", 0.0)
    args = argparse.Namespace(name="scorer", command="pause", wait=5.0)
    assert actions.cmd_action(args, cluster) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"rustcanaries.ferrocanary.io/scorer pause: {HOSTILE_SHOWN}; phase Progressing"
    )


# ------------------------------------------------------------------ API errors, as kube/ reports them


def _cluster(api: Any) -> Cluster:
    cluster = Cluster.__new__(Cluster)  # no kubeconfig: only the error mapping is under test
    cluster.api, cluster.namespace, cluster.host = api, "shop", "https://10.0.0.1:6443"
    return cluster


class _Refusing:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def get(self, path: str) -> dict[str, Any]:
        raise self.error


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            rest.NotFoundError(404, "gone", "/x", body={"message": "gone", "details": {"name": "scorer"}}),
            'rustcanary "scorer" not found in namespace "shop" '
            "(`kubectl ferrocanary get -n shop` lists them)",
        ),
        (
            rest.NotFoundError(404, "404 page not found", "/x", reason="Not Found"),
            'the server doesn\'t have a resource type "rustcanaries": install the RustCanary CRD',
        ),
        (
            rest.KubeError(403, "", "/x", reason="Forbidden", body={"message": "user cannot get"}),
            "not allowed: user cannot get",
        ),
        (rest.KubeError(401, "", "/x", reason="Unauthorized"), "not allowed: Unauthorized"),
        (
            rest.KubeError(500, "boom", "/x", body={"message": "boom"}),
            "the API server refused the request (HTTP 500): boom",
        ),
        (
            rest.UnreachableError("/x", "connection refused"),
            "cannot reach the cluster at https://10.0.0.1:6443: connection refused. Is it running",
        ),
    ],
)
def test_api_errors_say_what_is_wrong(error: Exception, message: str) -> None:
    with pytest.raises(PluginError) as raised:
        _cluster(_Refusing(error)).get("scorer")
    assert str(raised.value).startswith(message)


def test_a_name_is_one_path_segment() -> None:
    assert canaries.path("shop", "../../kube-system/x") == (
        "/apis/ferrocanary.io/v1alpha1/namespaces/shop/rustcanaries/..%2F..%2Fkube-system%2Fx"
    )
