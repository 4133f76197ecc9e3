"""Hostile and malformed RustCanaries on the real apiserver (issue 14): refused naming the field, or harmless.

What this proves, with the cases of ``hostile_cases.py``:

* 164 specs a tenant could write (``../`` and ``%2F`` in every object name, another namespace's
  objects by name or by an invented ``namespace`` field, PromQL ``}`` / ``or`` / quotes / newlines /
  escape sequences in the selectors, huge strings and arrays, addresses with userinfo or non-http
  schemes, bad durations, lag >= minDwell, weights out of range or unsorted, empty or duplicated KPI
  lists, unknown fields, wrong types) are each refused by ``kubectl apply --dry-run=server``, and the
  refusal names the offending field. So are a KPI and a guard of the same name, and an address
  with control characters or an unclosed ``[``.
* 13 specs the CRD accepts on purpose (names of objects that exist only in a victim namespace and in
  kube-system, a promotion that would scale "coredns" down, a Secret key ``..``, an address the
  platform does not let the token go to, escaped PromQL, hostile text in the action annotation, a
  millennium-long duration, ...) run at once under the real operator (kopf's
  KopfRunner, the platform's token policy set in its environment). Each ends Invalid or holds in the
  expected phase with a status that names the spec field; nothing in
  the victim namespace or kube-system changes (their Deployments keep their replicas); the listener
  standing in for an attacker's endpoint never sees the token, and its answer never reaches status
  or Events; ``kubectl ferrocanary get`` and ``get -A -o wide`` exit 0 and print the hostile
  decisionReason literally, control characters escaped; every query the operator sends for a spec's
  own selectors is confined to the canary's namespace.

180 specs in all: 167 refused, 13 accepted and kept harmless. A case that finds a new weakness is
marked ``finding`` (an xfail(strict) with the reason) until the code is fixed.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from kopf.testing import KopfRunner

from ferrocanary.kube import canaries, rest
from ferrocanary.local.sandbox import Sandbox, SandboxError
from tests.integration import hostile_cases
from tests.integration.hostile_cases import ACCEPTED, HOSTILE_TEXT, REFUSED, VICTIM_SECRET, Accepted, Case
from tests.support.canary import deployment, drop_finalizers, http_route, install_crd, service
from tests.support.cli import kubectl_ferrocanary

pytestmark = pytest.mark.integration

#: What a Prometheus-lookalike answers: if any of it reaches status or an Event, the answer was echoed.
LEAK = "LEAKED-BODY-7f3a"


def _kubectl(sandbox: Sandbox, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(sandbox.bin_dir / "kubectl"), *args],
        input=stdin,
        env=sandbox.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _shown(text: str) -> str:
    """``text`` as the plugin prints it: control and format characters escaped, the rest literal."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)


@pytest.fixture(scope="module")
def crd(sandbox: Sandbox) -> None:
    # On a sandbox just started, `kubectl wait --for=condition=Established` can run before the new
    # CRD has any status and fail at once ("<nil> is of the type <nil>"): try again, briefly.
    for attempt in range(5):
        try:
            install_crd(sandbox)
            return
        except SandboxError:
            if attempt == 4:
                raise
            time.sleep(1)


def _new_namespace(api: rest.Rest, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    api.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


@pytest.fixture(scope="module")
def dry_run_namespace(api: rest.Rest, crd: None) -> Iterator[str]:
    name = _new_namespace(api, "dry")
    yield name
    api.delete(f"/api/v1/namespaces/{name}")


# --- refused --------------------------------------------------------------------------------------

KPI_AND_GUARD_SAME_NAME = Case(
    "kpi-and-guard-same-name", (("spec.analysis.guards[0].name", "p99-latency"),), "spec.analysis.guards"
)
ADDRESS_CONTROL_CHARACTERS = Case(
    "address-control-characters",
    (("spec.analysis.prometheus.address", "http://prometheus:9090/" + HOSTILE_TEXT),),
    "spec.analysis.prometheus.address",
)
ADDRESS_UNCLOSED_BRACKET = Case(
    "address-unclosed-bracket",
    (("spec.analysis.prometheus.address", "http://evil[x:1/a"),),
    "spec.analysis.prometheus.address",
)
REFUSED_PARAMS = [
    pytest.param(case, id=case.id)
    for case in (*REFUSED, KPI_AND_GUARD_SAME_NAME, ADDRESS_CONTROL_CHARACTERS, ADDRESS_UNCLOSED_BRACKET)
]


@pytest.mark.parametrize("case", REFUSED_PARAMS)
def test_the_apiserver_refuses_a_hostile_spec_naming_the_field(
    sandbox: Sandbox, dry_run_namespace: str, case: Case
) -> None:
    body = case.body(dry_run_namespace, "hostile")
    refused = _kubectl(
        sandbox, "-n", dry_run_namespace, "apply", "--dry-run=server", "-f", "-", stdin=json.dumps(body)
    )
    assert refused.returncode != 0, f"accepted: {case.changes} {case.annotations}"
    assert case.field in refused.stderr, refused.stderr


def test_there_are_at_least_100_refused_cases_each_with_its_own_id() -> None:
    ids = [case.id for case in REFUSED]
    assert len(ids) >= 100
    assert len(set(ids)) == len(ids)


def test_the_dry_runs_left_nothing_behind(sandbox: Sandbox, api: rest.Rest, dry_run_namespace: str) -> None:
    assert api.get(canaries.path(dry_run_namespace)).get("items") == []


# --- accepted, and harmless -----------------------------------------------------------------------


class _Trap(BaseHTTPRequestHandler):
    """Stands in for an attacker's endpoint: records every request, answers 500 with ``LEAK``."""

    seen: list[dict[str, str]] = []  # noqa: RUF012  (one listener per module run)

    def do_GET(self) -> None:
        self._record()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._record(self.rfile.read(length).decode("utf-8", "replace"))

    def _record(self, body: str = "") -> None:
        type(self).seen.append(
            {"path": self.path, "body": body, "authorization": self.headers.get("Authorization") or ""}
        )
        answer = f"{LEAK} [/x] \x1b[31m".encode()
        self.send_response(500)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_: Any) -> None:
        return


def _victim_objects(api: rest.Rest, namespace: str) -> None:
    """A coredns-like Deployment, a shop behind an HTTPRoute and an Ingress, and a token Secret."""
    apps = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    core = f"/api/v1/namespaces/{namespace}"
    api.post(apps, deployment(namespace, "coredns", "python", 2))
    api.post(apps, deployment(namespace, "coredns-rust", "rust", 1))
    for name in ("shop-python", "shop-rust", "scorer-python", "scorer-rust"):
        api.post(f"{core}/services", service(namespace, name, {"app": name}))
    api.post(
        f"/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/httproutes",
        http_route(namespace, "shop", "scorer-python"),
    )
    api.post(
        f"/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses",
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "shop", "namespace": namespace},
            "spec": {
                "rules": [
                    {
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {
                                        "service": {"name": "scorer-python", "port": {"number": 8080}}
                                    },
                                }
                            ]
                        }
                    }
                ]
            },
        },
    )
    api.post(
        f"{core}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": VICTIM_SECRET, "namespace": namespace},
            "stringData": {"token": "victim-token-do-not-send"},
        },
    )


SNAPSHOT_KINDS = {
    "deployments": "/apis/apps/v1/namespaces/{ns}/deployments",
    "services": "/api/v1/namespaces/{ns}/services",
    "secrets": "/api/v1/namespaces/{ns}/secrets",
    "ingresses": "/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses",
    "httproutes": "/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes",
}


def _snapshot(api: rest.Rest, namespaces: tuple[str, ...]) -> dict[str, Any]:
    """What a tenant must not change: every object's identity, spec (or data), labels and annotations.

    Secrets also by resourceVersion (nothing else writes them); the others by generation, because
    controllers legitimately write a Deployment's status.
    """
    seen: dict[str, Any] = {}
    for ns in namespaces:
        for kind, path in SNAPSHOT_KINDS.items():
            for item in api.get(path.format(ns=ns)).get("items", []):
                meta = item["metadata"]
                seen[f"{kind}/{ns}/{meta['name']}"] = {
                    "uid": meta["uid"],
                    "generation": meta.get("generation"),
                    "resourceVersion": meta["resourceVersion"] if kind == "secrets" else None,
                    "labels": meta.get("labels"),
                    "annotations": meta.get("annotations"),
                    "spec": item.get("spec"),
                    "data": item.get("data"),
                }
    return seen


@dataclass
class Outcome:
    """What the run left: each accepted canary's object and Events, the listener's log, the snapshots."""

    tenant: str
    victim: str
    trap: str
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, list[str]] = field(default_factory=dict)
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    trapped: list[dict[str, str]] = field(default_factory=list)
    views: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)


def _status_text(obj: dict[str, Any]) -> str:
    status = obj.get("status") or {}
    parts = [str(status.get("verdictReason", "")), str(status.get("decisionReason", ""))]
    parts += [str(c.get("message", "")) for c in status.get("conditions") or []]
    parts.append(str((status.get("lastAction") or {}).get("result", "")))
    return "\n".join(parts)


def _expected(case: Accepted, outcome: Outcome, prometheus: str) -> list[str]:
    return [
        e.replace("{ns}", outcome.tenant).replace("{prometheus}", prometheus).replace("{trap}", outcome.trap)
        for e in case.expect
    ]


def _settled(case: Accepted, obj: dict[str, Any] | None, outcome: Outcome, prometheus: str) -> bool:
    if obj is None:
        return False
    phase = (obj.get("status") or {}).get("phase")
    text = _status_text(obj)
    return phase in case.phases and all(e in text for e in _expected(case, outcome, prometheus))


def _run_operator(sandbox: Sandbox, api: rest.Rest, outcome: Outcome) -> None:
    """All accepted canaries at once under one operator; wait until each has settled (or 90 s)."""
    for case in ACCEPTED:
        api.post(
            canaries.path(outcome.tenant), case.body(outcome.tenant, sandbox.prometheus_url, outcome.trap)
        )
    promoted: set[str] = set()
    started = time.monotonic()
    deadline = started + 90
    # Findings do not settle today; the rest must. Run 20 s at least (10 ticks), so that a complaint
    # repeated every tick, or a late write outside the namespace, has the time to show.
    pending = {case.id for case in ACCEPTED if not case.finding}
    while (pending or time.monotonic() < started + 20) and time.monotonic() < deadline:
        for case in ACCEPTED:
            obj = canaries.get(api, outcome.tenant, case.id)
            phase = ((obj or {}).get("status") or {}).get("phase")
            if case.promote and case.id not in promoted and phase == "Progressing":
                _kubectl(
                    sandbox,
                    "-n",
                    outcome.tenant,
                    "annotate",
                    f"rustcanary/{case.id}",
                    f"{canaries.ACTION_ANNOTATION}=promote",
                )
                promoted.add(case.id)
            if _settled(case, obj, outcome, sandbox.prometheus_url) and (
                not case.promote or case.id in promoted
            ):
                pending.discard(case.id)
        time.sleep(1)


@pytest.fixture(scope="module")
def outcome(sandbox: Sandbox, api: rest.Rest, crd: None) -> Iterator[Outcome]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Trap)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    tenant, victim = _new_namespace(api, "tenant"), _new_namespace(api, "victim")
    result = Outcome(tenant, victim, f"http://127.0.0.1:{server.server_address[1]}")
    kube_system_objects = ("coredns", "coredns-rust", "kube-dns")
    try:
        _victim_objects(api, victim)
        apps = "/apis/apps/v1/namespaces/kube-system/deployments"
        api.post(apps, deployment("kube-system", "coredns", "python", 2))
        api.post(apps, deployment("kube-system", "coredns-rust", "rust", 1))
        api.post(apps, deployment("kube-system", "kube-dns", "python", 2))
        api.post(
            f"/api/v1/namespaces/{tenant}/secrets",
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "tenant-token", "namespace": tenant},
                "stringData": {"token": "tenant-token-value"},
            },
        )
        result.before = _snapshot(api, (victim, "kube-system"))
        with pytest.MonkeyPatch.context() as env:
            env.setenv("KUBECONFIG", str(sandbox.kubeconfig))
            env.delenv("FERROCANARY_METRICS_PORT", raising=False)
            # The platform's policy, as the chart sets it: the token goes to its own Prometheus only.
            env.setenv("FERROCANARY_PROMETHEUS_TOKEN_ADDRESSES", sandbox.prometheus_url)
            env.setenv("FERROCANARY_PROMETHEUS_ALLOW_INSECURE_TLS", "false")
            args = ["run", "--standalone", "--namespace", tenant, "-m", "ferrocanary.handlers"]
            with KopfRunner(args, timeout=60):
                _run_operator(sandbox, api, result)
                result.after = _snapshot(api, (victim, "kube-system"))
        for case in ACCEPTED:
            result.objects[case.id] = canaries.get(api, tenant, case.id) or {}
            listing = api.get(
                f"/api/v1/namespaces/{tenant}/events?fieldSelector=involvedObject.name%3D{case.id}"
            )
            result.events[case.id] = [str(e.get("message", "")) for e in listing.get("items", [])]
        result.trapped = list(_Trap.seen)
        if os.environ.get("HOSTILE_DEBUG"):  # a path: what each canary, its Events and the listener saw
            Path(os.environ["HOSTILE_DEBUG"]).write_text(
                json.dumps(
                    {"objects": result.objects, "events": result.events, "trapped": result.trapped}, indent=1
                )
            )
        hostile = "hostile-action-annotation"
        result.views = {
            "get": kubectl_ferrocanary(sandbox, "get", hostile, "-n", tenant),
            "get -o wide": kubectl_ferrocanary(sandbox, "get", hostile, "-n", tenant, "-o", "wide"),
            "get -A": kubectl_ferrocanary(sandbox, "get", "-A"),
            "get -A -o wide": kubectl_ferrocanary(sandbox, "get", "-A", "-o", "wide"),
            "get action": kubectl_ferrocanary(sandbox, "get", "hostile-action-annotation", "-n", tenant),
        }
        yield result
    finally:
        server.shutdown()
        for case in ACCEPTED:
            drop_finalizers(api, tenant, case.id)
        for name in kube_system_objects:
            with contextlib.suppress(rest.KubeError):
                api.delete(f"/apis/apps/v1/namespaces/kube-system/deployments/{name}")
        for ns in (tenant, victim):
            api.delete(f"/api/v1/namespaces/{ns}")


def _accepted_param(case: Accepted, *, events: bool = False) -> Any:
    finding = case.finding if case.floods or not events else ""
    marks = [pytest.mark.xfail(strict=True, reason=f"finding: {finding}")] if finding else []
    return pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", [_accepted_param(case) for case in ACCEPTED])
def test_an_accepted_hostile_spec_ends_invalid_or_holds_naming_the_field(
    sandbox: Sandbox, outcome: Outcome, case: Accepted
) -> None:
    obj = outcome.objects[case.id]
    status = obj.get("status") or {}
    assert status.get("phase") in case.phases, status
    text = _status_text(obj)
    for expected in _expected(case, outcome, sandbox.prometheus_url):
        assert expected in text, text
    assert status.get("phase") != "Promoted"
    # Only a person's promotion may decide Promote (its end state is what is refused, outside).
    assert status.get("verdict") != "Promote" or case.promote
    assert obj["metadata"].get("annotations", {}).get(canaries.ACTION_ANNOTATION) is None


def _field_param(case_id: str) -> Any:
    if case_id in hostile_cases.FIELD_NOT_NAMED_TODAY:
        why = f"finding: {hostile_cases.FIELD_NOT_NAMED}"
        return pytest.param(case_id, id=case_id, marks=pytest.mark.xfail(strict=True, reason=why))
    finding = next(case.finding for case in ACCEPTED if case.id == case_id)
    marks = [pytest.mark.xfail(strict=True, reason=f"finding: {finding}")] if finding else []
    return pytest.param(case_id, id=case_id, marks=marks)


@pytest.mark.parametrize("case_id", [_field_param(case_id) for case_id in hostile_cases.FIELDS])
def test_an_accepted_hostile_spec_is_reported_by_its_field(outcome: Outcome, case_id: str) -> None:
    text = _status_text(outcome.objects[case_id])
    assert hostile_cases.FIELDS[case_id] in text, text


def test_nothing_outside_the_tenant_namespace_changed(outcome: Outcome) -> None:
    assert outcome.after == outcome.before
    for ns in (outcome.victim, "kube-system"):
        assert outcome.after[f"deployments/{ns}/coredns"]["spec"]["replicas"] == 2
        assert outcome.after[f"deployments/{ns}/coredns-rust"]["spec"]["replicas"] == 1
    # No canary Ingress (or anything else) was created in the victim namespace either.
    assert not [key for key in outcome.after if key not in outcome.before]


def test_the_token_never_left_for_an_address_the_platform_does_not_allow(outcome: Outcome) -> None:
    assert outcome.trapped, "the listener saw no query at all: the answer-not-echoed case did not run"
    assert all(not hit["authorization"] for hit in outcome.trapped), outcome.trapped
    paths = {hit["path"].split("/")[1] for hit in outcome.trapped}
    assert "token-to-other-address" not in paths
    assert paths <= {"answer-not-echoed", "selector-escaped-quotes"}, paths


def test_a_prometheus_answer_is_never_copied_into_status_or_events(outcome: Outcome) -> None:
    for name, obj in outcome.objects.items():
        assert LEAK not in json.dumps(obj.get("status") or {}), name
        assert not [m for m in outcome.events[name] if LEAK in m], name


def _queries(outcome: Outcome, case_id: str) -> list[str]:
    """The PromQL the operator sent to the listener for one canary (the case id is the address path)."""
    found: list[str] = []
    for hit in outcome.trapped:
        if hit["path"].startswith(f"/{case_id}/"):
            params = parse_qs(urlsplit(hit["path"]).query)
            found += params.get("query", []) + parse_qs(hit["body"]).get("query", [])
    return found


def test_an_escaped_selector_stays_one_quoted_label_value_in_every_query(outcome: Outcome) -> None:
    queries = _queries(outcome, "selector-escaped-quotes")
    assert queries
    for query in queries:
        # the operator puts the canary's namespace in front; the tenant's matcher stays one quoted value
        spliced = "," + hostile_cases.ESCAPED_SELECTOR + "}" in query or 'track="\u202e[/x]"}' in query
        assert spliced or 'track="\u202e[/x]"' in query, query


def test_every_query_is_confined_to_the_canarys_own_namespace(outcome: Outcome) -> None:
    queries = _queries(outcome, "selector-escaped-quotes")
    assert queries
    for query in queries:
        assert f'namespace="{outcome.tenant}"' in query, query


@pytest.mark.parametrize("case", [_accepted_param(case, events=True) for case in ACCEPTED])
def test_an_accepted_hostile_spec_posts_a_bounded_number_of_events(outcome: Outcome, case: Accepted) -> None:
    # A condition change is one Event; the same complaint every tick (2 s) would flood the namespace.
    assert len(outcome.events[case.id]) <= 6, outcome.events[case.id][:3]


def test_the_plugin_prints_the_hostile_reasons_literally_and_exits_0(outcome: Outcome) -> None:
    for view, shown in outcome.views.items():
        assert shown.returncode == 0, f"{view}: {shown.stderr}"
        assert "Traceback" not in shown.stderr, view
        assert not {"\x1b", "\x07", "\u202e"} & set(shown.stdout), view
    mine = [
        ln
        for ln in outcome.views["get -A -o wide"].stdout.splitlines()
        if ln.split()[:2] == [outcome.tenant, "hostile-action-annotation"]
    ]
    assert len(mine) == 1  # one row, however hostile the text in its status
    listed = {tuple(ln.split()[:2]) for ln in outcome.views["get -A"].stdout.splitlines()}
    assert {(outcome.tenant, case.id) for case in ACCEPTED} <= listed
    action = outcome.objects["hostile-action-annotation"]["status"]["lastAction"]
    assert action["action"] == HOSTILE_TEXT
    assert _shown(action["result"]) in outcome.views["get action"].stdout
