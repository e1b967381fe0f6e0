"""PNG charts of bench/report.py (matplotlib, no display needed).

- targets.png: every figure as a share of its target on one log axis, so milliseconds,
  jobs per second and queries per second fit together: below 1 is inside the target.
- api_load.png: the API load test's latency percentiles and throughput per group.
- ui_pages.png: the slowest web UI pages (p95) against the 300 ms target.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, NullFormatter
from report_figures import Figure

GREEN, RED, GREY, LIGHT = "#2e7d32", "#c62828", "#9e9e9e", "#d5d5d5"
TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50)
BOX = {"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 0.5}


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{text} {unit}".strip()


def share_of_target(fig: Figure) -> float | None:
    """How much of the target a figure uses: value/target for a maximum, target/value for
    a minimum (so 2 means twice too slow either way); None when it cannot be drawn."""
    if fig.value is None or fig.target <= 0:
        return None
    if fig.target_kind == "max":
        return max(fig.value / fig.target, 1e-3)
    return fig.target / fig.value if fig.value > 0 else None


def targets_chart(figures: list[Figure], path: Path, subtitle: str) -> None:
    rows = [(f, s) for f in figures if (s := share_of_target(f)) is not None]
    height = 1.6 + 0.34 * len(rows)
    fig, ax = plt.subplots(figsize=(11, height), dpi=110)
    labels = [f"{f.bench}: {f.name}" for f, _ in rows]
    y = range(len(rows))[::-1]
    ax.barh(list(y), [s for _, s in rows], color=[GREEN if f.met else RED for f, _ in rows])
    ax.set_xscale("log")
    low = min([s for _, s in rows] + [0.5]) / 2
    high = max([s for _, s in rows] + [1.0]) * 6  # room for the value's text
    ax.set_xlim(low, high)
    ax.set_xticks([t for t in TICKS if low <= t <= high])
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}\u00d7"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.axvline(1.0, color="black", linewidth=1, linestyle="--")
    ax.set_yticks(list(y), labels, fontsize=8)
    for yi, (f, s) in zip(y, rows, strict=True):
        sign = "≤" if f.target_kind == "max" else "≥"
        text = f" {fmt(f.value, f.unit)} (target {sign} {fmt(f.target, f.unit)})"
        if f.load_1m_at_start is not None:
            text += f", load {f.load_1m_at_start:g}"
        ax.text(s, yi, text, va="center", fontsize=7.5, bbox=BOX)
    ax.set_xlabel(
        "share of the target used (log scale): measured ÷ target, for throughputs target ÷"
        " measured\nleft of the dashed line: target met",
        fontsize=8.5,
    )
    others = [f for f in figures if share_of_target(f) is None]
    note = ", ".join(f"{f.bench}: {f.name} = {fmt(f.value, f.unit)}" for f in others)
    ax.set_title(f"Cronium benchmarks against their targets\n{subtitle}", fontsize=10)
    if note:
        fig.text(0.01, 0.005, f"Not drawn (target 0): {note}", fontsize=7, wrap=True)
    ax.grid(axis="x", which="both", color="#eeeeee")
    ax.set_axisbelow(True)
    fig.tight_layout(rect=(0, 0.03 if note else 0, 1, 1))
    fig.savefig(path)
    plt.close(fig)


def _group_bars(ax: Axes, groups: dict[str, Any], targets: dict[str, Any]) -> None:
    names = list(groups)
    width = 0.26
    for i, name in enumerate(names):
        g = groups[name]
        p99_ok = g.get("p99_ms") is not None and g["p99_ms"] <= targets[name]["p99_ms"]
        bars = (("p50", g.get("p50_ms"), LIGHT), ("p95", g.get("p95_ms"), GREY))
        for j, (label, value, color) in enumerate((*bars, ("p99", g.get("p99_ms"), None))):
            fill = color or (GREEN if p99_ok else RED)
            x = i + (j - 1) * width
            ax.bar(x, value or 0, width, color=fill, label=label if i == 0 else None)
            ax.text(x, value or 0, fmt(value), ha="center", va="bottom", fontsize=7)
        target = targets[name]["p99_ms"]
        ax.hlines(
            target,
            i - 1.6 * width,
            i + 1.6 * width,
            colors="black",
            linestyles="--",
            label="p99 target" if i == 0 else None,
        )
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("latency, ms")
    ax.legend(fontsize=8, loc="upper left")


def api_load_chart(result: dict[str, Any], path: Path, subtitle: str) -> None:
    groups, targets = result.get("groups") or {}, result.get("targets") or {}
    if not groups:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110, width_ratios=(3, 2))
    _group_bars(left, groups, targets)
    left.set_title(f"latency at {result.get('workers')} concurrent clients", fontsize=9)
    names = list(groups)
    rates = [groups[n].get("requests_per_s") or 0 for n in names]
    colors = [
        GREEN if r >= targets[n]["requests_per_s"] else RED
        for n, r in zip(names, rates, strict=True)
    ]
    right.bar(names, rates, color=colors, width=0.5)
    for i, (name, rate) in enumerate(zip(names, rates, strict=True)):
        right.text(i, rate, fmt(rate), ha="center", va="bottom", fontsize=7)
        target = targets[name]["requests_per_s"]
        right.hlines(target, i - 0.3, i + 0.3, colors="black", linestyles="--")
        right.text(i + 0.3, target, f" ≥ {fmt(target)}", fontsize=7, va="bottom")
    right.set_ylabel("requests/s (run: runs/s)")
    right.set_title("throughput (dashed: target)", fontsize=9)
    load = (result.get("machine") or {}).get("loadavg_at_start") or [None]
    end = (result.get("machine") or {}).get("loadavg_at_end") or [None]
    here = f"load {load[0]} → {end[0]} during this benchmark"
    fig.suptitle(
        f"REST API under load: `cronium serve`, one process, 1 uvicorn worker\n"
        f"{subtitle}; {here}; {dig_errors(result)}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def dig_errors(result: dict[str, Any]) -> str:
    overall = result.get("overall") or {}
    return f"{overall.get('requests', 0):,} requests, {overall.get('errors', '?')} errors"


def ui_pages_chart(result: dict[str, Any], path: Path, subtitle: str, top: int = 18) -> None:
    rows = [
        (f"{persona}: {page['page']}", page["p95_ms"])
        for persona, pages in (result.get("pages") or {}).items()
        for page in pages
        if page.get("p95_ms") is not None
    ]
    if not rows:
        return
    rows = sorted(rows, key=lambda r: r[1], reverse=True)[:top]
    target = float(result.get("target_ms") or 300.0)
    fig, ax = plt.subplots(figsize=(10, 1.4 + 0.3 * len(rows)), dpi=110)
    y = list(range(len(rows)))[::-1]
    values = [v for _, v in rows]
    ax.barh(y, values, color=[GREEN if v < target else RED for v in values])
    ax.axvline(target, color="black", linestyle="--", linewidth=1)
    ax.text(target, len(rows) - 0.4, f" target < {target:g} ms", fontsize=8)
    for yi, value in zip(y, values, strict=True):
        ax.text(value, yi, f" {value:.1f}", va="center", fontsize=7.5)
    ax.set_yticks(y, [label[:70] for label, _ in rows], fontsize=7.5)
    ax.set_xlim(0, max(target * 1.15, max(values) * 1.1))
    ax.set_xlabel("server time p95, ms")
    pages = sum(len(p) for p in (result.get("pages") or {}).values())
    ax.set_title(
        f"Web UI pages, the {len(rows)} slowest of {pages} (10,000 executions stored)\n{subtitle}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
