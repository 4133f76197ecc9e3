"""A verdict report a person can read: Markdown plus PNG plots, from the blocks and the judge's looks.

Input is what the controller saw (a Recording) and what the judge said at every look (one
Judgement per block, replayed); nothing here talks to a cluster. The plots: the candidate's
traffic weight over time; each KPI's estimate with its anytime-valid interval over time against
its target, with the decision marked; both arms' latency distributions with p50 and p99; the
projected monthly bill of each build. The Markdown says the verdict first, then why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and in CI

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from ferrocanary.model import analysis, decisions, recording

_BASELINE, _CANDIDATE = "#3b6ea5", "#d9622b"  # Python blue, Rust orange


@dataclass(frozen=True)
class ReportInput:
    name: str
    namespace: str
    verdict: str  # the phase or verdict the canary ended in ("Promoted", "RolledBack", ...)
    reason: str
    started_at: datetime | None
    decided_at: datetime | None
    recording: recording.Recording
    looks: Sequence[decisions.Judgement]  # one per block, in order
    settings: analysis.AnalysisSettings
    decided_at_block: int | None = None


def _minutes(rec: recording.Recording) -> np.ndarray:
    start = rec.blocks[0].start
    return np.array([(b.start - start).total_seconds() / 60 + rec.interval_seconds / 60 for b in rec.blocks])


def plot_weight(data: ReportInput, path: Path) -> None:
    rec = data.recording
    fig, ax = plt.subplots(figsize=(8, 2.8), dpi=110)
    minutes = _minutes(rec)
    ax.step(minutes, [b.weight for b in rec.blocks], where="pre", color=_CANDIDATE, linewidth=2)
    ax.set_ylim(0, 105)
    ax.set_ylabel("candidate traffic (%)")
    ax.set_xlabel("minutes since the canary started")
    ax.set_title("Traffic on the Rust build")
    _mark_decision(ax, data, minutes)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _mark_decision(ax: Axes, data: ReportInput, minutes: np.ndarray) -> None:
    if data.decided_at_block is not None and data.decided_at_block < len(minutes):
        ax.axvline(minutes[data.decided_at_block], color="black", linestyle="--", linewidth=1)
        ax.annotate(
            data.verdict,
            (minutes[data.decided_at_block], 0.02),
            xycoords=("data", "axes fraction"),
            xytext=(-4, 2),
            textcoords="offset points",
            fontsize=8,
            ha="right",
        )


def plot_kpis(data: ReportInput, path: Path) -> None:
    """One panel per KPI and guard rail: estimate, interval band and target, as plain ratios."""
    final = data.looks[-1]
    names = [k.name for k in (*final.kpis, *final.guards) if k.name != "memory-faults"]
    if not names:
        return
    minutes = _minutes(data.recording)[: len(data.looks)]
    fig, axes = plt.subplots(
        len(names), 1, figsize=(8, 2.3 * len(names)), dpi=110, sharex=True, squeeze=False
    )
    for ax, name in zip(axes[:, 0], names, strict=True):
        series = [_result(look, name) for look in data.looks]
        est = np.array([_num(r.estimate) if r else np.nan for r in series])
        lo = np.array([_num(r.lower) if r else np.nan for r in series])
        hi = np.array([_num(r.upper) if r else np.nan for r in series])
        target = next((r.target for r in reversed(series) if r), math.nan)
        ax.plot(minutes, est, color=_CANDIDATE, linewidth=1.8, label="estimate (Rust / Python)")
        if math.isfinite(target):
            ax.axhline(target, color="black", linewidth=1.2, linestyle=":", label=f"target {target:g}")
        ax.axhline(1.0, color="grey", linewidth=0.8, alpha=0.6)
        # The view follows the estimates and the final interval; the first looks' intervals are far
        # wider (that is what anytime-valid costs early on) and simply run off the chart.
        final_band = [v for v in (lo[-1], hi[-1]) if np.isfinite(v)]
        anchors = np.array([*est[np.isfinite(est)], *final_band, target, 1.0])
        anchors = anchors[np.isfinite(anchors)]
        low, high = float(anchors.min()), float(anchors.max())
        pad = 0.15 * (high - low) or 0.05 * max(abs(high), 1.0)
        bottom, top = max(low - pad, 0.0), high + pad
        ax.set_ylim(bottom, top)
        band_low, band_high = band(est, lo, hi, bottom, top)
        ax.fill_between(
            minutes,
            band_low,
            band_high,
            color=_CANDIDATE,
            alpha=0.25,
            linewidth=0,
            label="anytime-valid interval",
        )
        if last_with_direction := next((r for r in reversed(series) if r), None):
            # Shade the side of the target that counts as success, so the reading is visible at a glance
            # (the limits are fixed above, so neither the band nor the shading moves them).
            good = (
                (bottom, target)
                if last_with_direction.direction == analysis.Direction.LOWER
                else (target, top)
            )
            ax.axhspan(*good, color="#4caf50", alpha=0.07, linewidth=0)
        last = series[-1]
        if not np.isfinite(est).any() and last is not None:
            # e.g. no errors in either arm: say so rather than leave an empty panel.
            ax.text(0.5, 0.5, last.detail or "no estimate", transform=ax.transAxes, ha="center", fontsize=9)
        ax.set_title(f"{name}: {last.decision.value if last else 'no data'}", fontsize=10, loc="left")
        _mark_decision(ax, data, minutes)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="best", framealpha=0.85)
    axes[-1, 0].set_xlabel("minutes since the canary started")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def band(
    estimate: np.ndarray, lower: np.ndarray, upper: np.ndarray, bottom: float, top: float
) -> tuple[np.ndarray, np.ndarray]:
    """The interval as drawn in a panel from ``bottom`` to ``top``, NaN where there is nothing to draw.

    An unbounded side (too little evidence yet: few blocks behind the long-run variance) and an
    estimate without an interval (its variance cannot be estimated yet) fill
    to the panel's edges: "anything is possible" must not look like a gap. No estimate stays a gap.
    """
    without_interval = np.isfinite(estimate) & np.isnan(lower) & np.isnan(upper)
    low = np.where(without_interval, -np.inf, lower)
    high = np.where(without_interval, np.inf, upper)
    return np.clip(low, bottom, top), np.clip(high, bottom, top)


def _result(look: decisions.Judgement, name: str) -> decisions.KpiResult | None:
    return next((k for k in (*look.kpis, *look.guards) if k.name == name), None)


def _num(value: float | None) -> float:
    return math.nan if value is None else float(value)


def plot_latency(data: ReportInput, path: Path) -> None:
    """Both arms' pooled latency histograms as densities over log-spaced buckets, p50 and p99 marked."""
    rec = data.recording
    bounds = np.array(rec.latency_bucket_bounds)
    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=110)
    for arm, colour, label in (
        ("baseline", _BASELINE, "Python (baseline)"),
        ("candidate", _CANDIDATE, "Rust (candidate)"),
    ):
        counts = np.sum([getattr(b, arm).latency_counts for b in rec.blocks], axis=0)[: len(bounds)]
        total = counts.sum()
        if total <= 0:
            continue
        lower = np.concatenate([[bounds[0] / 1.1], bounds[:-1]])
        density = counts / total / np.log(bounds / lower)
        ax.stairs(
            density, np.concatenate([[lower[0]], bounds]) * 1000, color=colour, label=label, linewidth=1.6
        )
        cumulative = np.cumsum(counts) / total
        for q, style in ((0.5, "--"), (0.99, "-")):
            idx = int(np.searchsorted(cumulative, q))
            if idx < len(bounds):
                ax.axvline(bounds[idx] * 1000, color=colour, linestyle=style, linewidth=0.9, alpha=0.8)
    ax.set_xscale("log")
    seen = [
        i
        for b in rec.blocks
        for arm in (b.baseline, b.candidate)
        for i, c in enumerate(arm.latency_counts)
        if c
    ]
    if seen:
        edges = np.concatenate([[bounds[0] / 1.1], bounds, [bounds[-1] * 1.1]]) * 1000
        ax.set_xlim(edges[max(min(seen) - 2, 0)], edges[min(max(seen) + 3, len(edges) - 1)])
    ax.set_xlabel("request latency (ms), dashed p50, solid p99 (bucket upper edges)")
    ax.set_ylabel("density per log-ms")
    ax.set_title("Latency of both builds over the whole canary")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def pricing_sentence(pricing: analysis.Pricing) -> str:
    """Which prices the cost figures use, and what they are."""

    def prices(arm: str) -> str:
        cpu_hour, memory_gib_hour = pricing.of(arm)
        return f"${cpu_hour:.4g} per vCPU-hour and ${memory_gib_hour:.4g} per GiB-hour"

    if pricing.source == "opencost":
        return (
            f"Priced from OpenCost's node prices where each build's pods ran: Python {prices('baseline')}, "
            f"Rust {prices('candidate')}."
        )
    return f"Priced at the static prices (spec.analysis.pricing): {prices('baseline')}."


def plot_cost(data: ReportInput, path: Path) -> bool:
    cost = data.looks[-1].cost if data.looks else None
    if cost is None or not (math.isfinite(cost.baseline_monthly) and math.isfinite(cost.candidate_monthly)):
        return False
    fig, ax = plt.subplots(figsize=(6, 2.6), dpi=110)
    values = [cost.baseline_monthly, cost.candidate_monthly]
    bars = ax.barh(["Python build", "Rust build"], values, color=[_BASELINE, _CANDIDATE])
    for bar, value in zip(bars, values, strict=True):
        ax.annotate(
            f"${value:,.2f}",
            (bar.get_width(), bar.get_y() + bar.get_height() / 2),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=9,
        )
    ax.set_xlim(0, max(values) * 1.3)
    ax.set_xlabel("projected monthly cost at 100% of the traffic (USD)")
    ax.set_title(f"Projected saving: {cost.saving_fraction:.0%}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def _interval(r: decisions.KpiResult) -> str:
    if r.lower is None or r.upper is None:
        return "n/a"
    return f"[{r.lower:.3g}, {r.upper:.3g}]"


def _eta(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.0f} min"


def markdown(data: ReportInput, images: dict[str, str]) -> str:
    final = data.looks[-1] if data.looks else None
    lines = [
        f"# Canary report: {data.namespace}/{data.name}",
        "",
        f"**Verdict: {data.verdict}.** {data.reason}",
        "",
        f"- started {data.started_at or 'n/a'}, decided {data.decided_at or 'not yet'}",
        f"- {len(data.recording.blocks)} blocks of {data.recording.interval_seconds:g} s"
        + (f"; decided after block {data.decided_at_block + 1}" if data.decided_at_block is not None else ""),
        f"- confidence {data.settings.confidence:.0%} per KPI; promotion needs every KPI to pass, so "
        "the chance of a false promotion stays below 1 - confidence however often the controller looked",
        "",
    ]
    if final is not None:
        lines += [
            "## KPIs (Rust / Python)",
            "",
            "| KPI | estimate | interval | target | reading | ETA50 | ETA80 |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in (*final.kpis, *final.guards):
            sign = "<=" if r.direction == analysis.Direction.LOWER else ">="
            estimate = "n/a" if r.estimate is None else f"{r.estimate:.3g}"
            lines.append(
                f"| {r.name} | {estimate} | {_interval(r)} | {sign} {r.target:g} | {r.decision.value} | "
                f"{_eta(r.eta50_seconds)} | {_eta(r.eta80_seconds)} |"
            )
        if final.fault_rate_upper_bound is not None:
            lines += [
                "",
                f"Memory faults: the candidate's fault rate is at most {final.fault_rate_upper_bound:.3g} "
                'per pod-hour (upper bound at the analysis confidence; "none seen" is not "none possible").',
            ]
        if final.cost is not None:
            c = final.cost
            lines += [
                "",
                f"Projected monthly cost at 100% of the traffic: Python ${c.baseline_monthly:,.2f}, "
                f"Rust ${c.candidate_monthly:,.2f}, saving {c.saving_fraction:.0%}. "
                + pricing_sentence(data.settings.pricing),
            ]
    captions = {
        "weight": "Traffic on the Rust build",
        "kpis": "Each KPI's estimate and anytime-valid interval over time, against its target",
        "latency": "Latency distributions of both builds",
        "cost": "Projected monthly cost of each build",
    }
    lines += ["", "## Plots", ""]
    for key, caption in captions.items():
        if key in images:
            lines += [f"### {caption}", "", f"![{caption}]({images[key]})", ""]
    return "\n".join(lines) + "\n"


def write(data: ReportInput, out: Path) -> Path:
    """Write report.md and its PNGs into ``out``; return the Markdown file's path."""
    out.mkdir(parents=True, exist_ok=True)
    images: dict[str, str] = {}
    if data.recording.blocks:
        plot_weight(data, out / "weight.png")
        images["weight"] = "weight.png"
        plot_latency(data, out / "latency.png")
        images["latency"] = "latency.png"
    if data.looks:
        plot_kpis(data, out / "kpis.png")
        if (out / "kpis.png").exists():
            images["kpis"] = "kpis.png"
        if plot_cost(data, out / "cost.png"):
            images["cost"] = "cost.png"
    path = out / "report.md"
    path.write_text(markdown(data, images))
    return path
