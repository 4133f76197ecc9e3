"""Panel, variable and layout helpers over grafana-foundation-sdk, shared by both dashboards.

Every query reads the datasource from the ``datasource`` variable (``${datasource}``), so the
dashboards work whatever the Prometheus datasource is called. Layout is done here, not by the SDK:
panels flow left to right in the order they are added and wrap at 24 columns, rows start a new line,
and ids are numbered in that order, so the JSON is stable and the grid never overlaps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from grafana_foundation_sdk.builders import common as gc
from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus, timeseries
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards import promql
from ferrocanary.metrics import queries as q
from ferrocanary.policy.state import Phase

TAG = "ferrocanary"
GRID_WIDTH = 24
DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
ARM_TITLES = {"baseline": "Python (baseline)", "candidate": "Rust (candidate)"}
ARM_COLORS = {"baseline": "blue", "candidate": "orange"}


def query(expr: str, legend: str, ref: str, *, instant: bool = False) -> prometheus.Dataquery:
    built = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DS)
    return built.instant() if instant else built.range()


def refs() -> Callable[[], str]:
    """A fresh A, B, C, ... sequence of query ref ids for one panel."""
    letters = iter("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    return lambda: next(letters)


def value_map(codes: Mapping[str, tuple[str, str]]) -> dm.ValueMap:
    """Numbers shown as text and colour: {"0": ("Pending", "text"), ...}."""
    return dm.ValueMap(
        options={
            value: dm.ValueMappingResult(text=text, color=color, index=i)
            for i, (value, (text, color)) in enumerate(codes.items())
        }
    )


def thresholds(*steps: tuple[float | None, str]) -> gd.ThresholdsConfig:
    return (
        gd.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


def target_line(panel: timeseries.Panel, target: float) -> timeseries.Panel:
    """A red line at a KPI's default target."""
    return panel.thresholds(thresholds((None, "green"), (target, "red"))).thresholds_style(
        gc.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.LINE)
    )


def graph(title: str, description: str, unit: str, w: int = 12, h: int = 8) -> timeseries.Panel:
    legend = (
        gc.VizLegendOptions()
        .display_mode(cm.LegendDisplayMode.TABLE)
        .placement(cm.LegendPlacement.BOTTOM)
        .show_legend(True)
        .calcs(["lastNotNull", "max"])
    )
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DS)
        .unit(unit)
        .span(w)
        .height(h)
        .legend(legend)
        .line_width(2)
        .fill_opacity(5)
    )


def per_arm(panel: timeseries.Panel, expr: Callable[[str], str], *, pods: bool = False) -> timeseries.Panel:
    """One query per arm (baseline first), named and coloured the same on every panel.

    ``pods`` selects the arm's pods (kube-state-metrics series) instead of its workload series.
    """
    ref = refs()
    for arm in q.ARMS:
        selector = promql.ARMS[f"{arm}Pods" if pods else arm]
        panel = panel.with_target(query(expr(selector), ARM_TITLES[arm], ref()))
        panel = panel.override_by_name(
            ARM_TITLES[arm],
            [dm.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": ARM_COLORS[arm]})],
        )
    return panel


def datasource_variable() -> gd.DatasourceVariable:
    return gd.DatasourceVariable("datasource").label("Prometheus").type("prometheus")


def query_variable(name: str, label: str, expr: str, *, include_all: bool = True) -> gd.QueryVariable:
    variable = (
        gd.QueryVariable(name)
        .label(label)
        .datasource(DS)
        .query(expr)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
    )
    if include_all:
        variable = variable.include_all(True).multi(True).all_value(".*")
    return variable


def textbox(name: str, label: str, default: str, description: str) -> gd.TextBoxVariable:
    option = dm.VariableOption(selected=True, text=default, value=default)
    return (
        gd.TextBoxVariable(name).label(label).description(description).default_value(default).current(option)
    )


def base(title: str, uid: str, description: str) -> gd.Dashboard:
    """Title, uid, tags, refresh and a link menu to the other ferrocanary dashboards."""
    return (
        gd.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .editable()
        .refresh("30s")
        .time("now-3h", "now")
        .timezone("browser")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .link(
            gd.DashboardLink("ferrocanary")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
        )
    )


def outcome_annotations(builder: gd.Dashboard, canary_selector: str) -> gd.Dashboard:
    """Marks where a canary was promoted (green) or ended without promotion (red)."""
    for name, phases, color in (
        ("Promotions", (Phase.PROMOTED,), "green"),
        ("Rollbacks", (Phase.ROLLED_BACK, Phase.INCONCLUSIVE, Phase.INVALID), "red"),
    ):
        builder = builder.annotation(
            gd.AnnotationQuery()
            .name(name)
            .datasource(DS)
            .enable(True)
            .icon_color(color)
            .expr(promql.phase_entered(canary_selector, phases, "2m"))
        )
    return builder


def laid_out(built: dm.Dashboard) -> dm.Dashboard:
    """Place every panel (rows on their own line) and number ids 1..n in that order."""
    x = y = line_height = 0
    for i, panel in enumerate(built.panels or [], start=1):
        panel.id_val = i
        pos = panel.grid_pos or dm.GridPos()
        is_row = isinstance(panel, dm.RowPanel)
        width = GRID_WIDTH if is_row else min(pos.w, GRID_WIDTH)
        height = 1 if is_row else pos.h
        if is_row or x + width > GRID_WIDTH:
            x, y, line_height = 0, y + line_height, 0
        panel.grid_pos = dm.GridPos(h=height, w=width, x=x, y=y)
        x += width
        line_height = max(line_height, height)
        if is_row:
            x, y, line_height = 0, y + 1, 0
    return built
