"""Which series a canary reads: the defaults, the spec's own selectors, and never another namespace's."""

from __future__ import annotations

from ferrocanary.metrics import protocol
from ferrocanary.model import spec as canary_spec

SPEC = {"baseline": {"deployment": "scorer-python"}, "candidate": {"deployment": "scorer-rust"}}


def test_the_defaults_read_each_arm_by_track_and_by_its_own_deployments_pods() -> None:
    selectors = protocol.ArmSelectors.of("shop", canary_spec.parse(SPEC))
    assert selectors == protocol.ArmSelectors(
        'namespace="shop",track="baseline",pod=~"scorer-python-[a-z0-9]+-[a-z0-9]+"',
        'namespace="shop",track="candidate",pod=~"scorer-rust-[a-z0-9]+-[a-z0-9]+"',
        'namespace="shop",pod=~"scorer-python-[a-z0-9]+-[a-z0-9]+"',
        'namespace="shop",pod=~"scorer-rust-[a-z0-9]+-[a-z0-9]+"',
    )


def test_a_selector_the_spec_gives_is_kept_but_narrowed_to_the_canarys_namespace() -> None:
    hostile = {
        **SPEC,
        "analysis": {
            "selectors": {"baseline": 'namespace="payments",app="ledger"', "candidatePods": 'pod="x"'}
        },
    }
    selectors = protocol.ArmSelectors.of("shop", canary_spec.parse(hostile))
    # namespace="shop",namespace="payments" matches nothing: no series of another namespace is read
    assert selectors.baseline == 'namespace="shop",namespace="payments",app="ledger"'
    assert selectors.candidate_pods == 'namespace="shop",pod="x"'
    assert selectors.candidate == 'namespace="shop",track="candidate",pod=~"scorer-rust-[a-z0-9]+-[a-z0-9]+"'
