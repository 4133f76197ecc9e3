"""The few expressions only a person needs, composed from the operator's own PromQL and enums.

Everything else on the dashboards is a ``ferrocanary.metrics.queries`` template called as is. These
build on those templates, on the operator's series names and phase/reading enums and on the judge's
pricing, so a renamed series, phase or price breaks generation instead of leaving a panel empty:

- a phase or a KPI reading as one number per canary (timelines and stat panels map it back to text),
- "entered this phase within a window" (annotations at promotions and rollbacks; the rollback alert),
- dollars: cost per request and the projected monthly bill, priced exactly as the judge prices them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ferrocanary.judge.verdict import SECONDS_PER_MONTH
from ferrocanary.metrics import queries as q
from ferrocanary.model.decisions import Reading
from ferrocanary.policy.state import Phase

GIB = 1024**3

# Grafana's own range variables: rates over a window that fits the scrape, counts per point.
RATE = "$__rate_interval"
STEP = "$__interval"

# The canary dashboard selects canaries by the operator's labels; the workload one selects arms.
CANARY = 'namespace=~"$namespace",name=~"$canary"'
CANARY_KPI = f'{CANARY},kpi=~"$kpi"'
ARMS = q.default_selectors("$namespace", "$baseline_deployment", "$candidate_deployment")
CPU_HOUR = "$cpu_hour"
MEMORY_GIB_HOUR = "$memory_gib_hour"

#: The number each reading is shown as (a timeline row per KPI, coloured by reading).
READING_CODES: dict[Reading, int] = {Reading.NO_DATA: 0, Reading.MISS: 1, Reading.OPEN: 2, Reading.PASS: 3}


def _state_code(metric: str, selector: str, label: str, codes: Mapping[str, int]) -> str:
    """A state set (1 for the current state, 0 for the others) as one number per object.

    Each state's series times its code, unioned with ``or`` (the state label keeps them apart), then
    the largest: the current state's code, or 0 when the state with code 0 is current.
    """
    terms = []
    for state, code in codes.items():
        matcher = f'{label}="{state}"'
        terms.append(f"{metric}{q.matchers(selector, matcher)} * {code}")
    return f"max without ({label}) (" + " or ".join(terms) + ")"


def phase_code(canary_selector: str) -> str:
    """One series per canary whose value is the index of its phase in ``Phase``."""
    return _state_code(q.PHASE, canary_selector, "phase", {p.value: i for i, p in enumerate(Phase)})


def reading_code(kpi_selector: str) -> str:
    """One series per KPI (and guard rail) whose value is its reading's ``READING_CODES`` number."""
    codes = {r.value: c for r, c in READING_CODES.items()}
    return _state_code(q.KPI_DECISION, kpi_selector, "decision", codes)


def phase_entered(canary_selector: str, phases: Sequence[Phase], window: str) -> str:
    """Canaries now in one of ``phases`` that entered it within ``window``.

    The operator exports every phase of a canary from its first tick on (0 for the others), so
    entering a phase is a 0 -> 1 change of that phase's series.
    """
    regex = "|".join(p.value for p in phases)
    series = q.PHASE + q.matchers(canary_selector, f'phase=~"{regex}"')
    return f"({series} == 1) and on (namespace, name, phase) (changes({series}[{window}]) > 0)"


def cost_per_request(
    selector: str, rng: str, cpu_hour: str = CPU_HOUR, memory_gib_hour: str = MEMORY_GIB_HOUR
) -> str:
    """Dollars per request as the judge prices a block: CPU-seconds and memory GiB-seconds per request.

    Memory is a mean over the window (bytes); divided by the request rate it is byte-seconds per request.
    """
    cpu_per_request = f"({q.cpu_seconds(selector, rng)} / {q.requests(selector, rng)})"
    byte_seconds_per_request = f"({q.memory_bytes(selector, rng)} / {q.request_rate(selector, rng)})"
    return (
        f"{cpu_per_request} * {cpu_hour} / 3600"
        f" + {byte_seconds_per_request} * {memory_gib_hour} / 3600 / {GIB}"
    )


def monthly_cost(
    selector: str, rng: str, cpu_hour: str = CPU_HOUR, memory_gib_hour: str = MEMORY_GIB_HOUR
) -> str:
    """The arm's bill if it served all the traffic seen (both arms) for the judge's 730-hour month."""
    total_rate = " + ".join(q.request_rate(ARMS[arm], rng) for arm in q.ARMS)
    per_request = cost_per_request(selector, rng, cpu_hour, memory_gib_hour)
    return f"({per_request}) * ({total_rate}) * {SECONDS_PER_MONTH:g}"
