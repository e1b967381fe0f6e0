"""Benchmark report: every figure next to its target (bench/report.json), charts
(bench/charts/*.png) and the README's table, from the results bench/run_all collected.

    bench/report.py [--results bench/results.json] [--started ISO] [--run-seconds N]
                    [--load-start "1.2 0.9 0.7"]       write report.json and the charts
    bench/report.py --rebuild                         the same, keeping report.json's machine
    bench/report.py --markdown                        print the README block (report.json)
    bench/report.py --update-readme                   replace that block in README.md

bench/run_all calls the first form after the benchmarks, with the run's start time, its
length and the load average before the first benchmark. Machine facts are read when the
report is built, on the machine that ran the benchmarks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine_info
from report_charts import api_load_chart, targets_chart, ui_pages_chart
from report_figures import dig, figures_of

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"
START, END = "<!-- bench-report:start -->", "<!-- bench-report:end -->"


def os_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.platform()


def load_triple(text: str | None) -> list[float] | None:
    with contextlib.suppress(ValueError, AttributeError):
        values = [float(x) for x in (text or "").split()[:3]]
        return values if len(values) == 3 else None
    return None


async def machine(args: argparse.Namespace, results: list[dict[str, Any]]) -> dict[str, Any]:
    info = await machine_info()
    first = dig(results, 0, "machine", "loadavg_at_start")
    return {
        "cpu_model": info.get("cpu_model"),
        "cores": info.get("cpus"),
        "memory_gib": round(info["mem_total_mb"] / 1024, 1) if info.get("mem_total_mb") else None,
        "os": os_name(),
        "kernel": info.get("kernel"),
        "python": info.get("python"),
        "postgresql": info.get("postgresql"),
        "loadavg_at_start": load_triple(args.load_start) or first,
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        "date": args.started or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "run_seconds": args.run_seconds,
    }


def build(args: argparse.Namespace) -> dict[str, Any]:
    results: list[dict[str, Any]] = json.loads(args.results.read_text())["results"]
    figures = [f for result in results for f in figures_of(result)]
    if args.rebuild:  # the machine facts of the run, not of now
        facts = json.loads(args.out.read_text())["machine"]
    else:
        facts = asyncio.run(machine(args, results))
    report = {
        "machine": facts,
        "summary": {"figures": len(figures), "met": sum(f.met for f in figures)},
        "figures": [f.as_dict() for f in figures],
    }
    args.charts.mkdir(parents=True, exist_ok=True)
    subtitle = machine_line(report["machine"], short=True)
    charts = [args.charts / "targets.png"]
    targets_chart(figures, charts[0], subtitle)
    by_name = {r.get("benchmark"): r for r in results if "error" not in r}
    if "api_load" in by_name:
        charts.append(args.charts / "api_load.png")
        api_load_chart(by_name["api_load"], charts[-1], subtitle.rsplit(", load", 1)[0])
    if "ui_pages" in by_name:
        charts.append(args.charts / "ui_pages.png")
        ui_pages_chart(by_name["ui_pages"], charts[-1], subtitle)
    report["charts"] = [os.path.relpath(c, HERE.parent) for c in charts if c.exists()]
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(
        f"report: {report['summary']['met']}/{len(figures)} figures meet their target; "
        f"wrote {args.out} and {len(report['charts'])} charts",
        file=sys.stderr,
    )
    return report


# -- markdown ----------------------------------------------------------------------------------


def machine_line(m: dict[str, Any], short: bool = False) -> str:
    load = lambda key: "?" if not m.get(key) else f"{m[key][0]:g}"  # noqa: E731
    cpu = f"{m.get('cores')} cores ({m.get('cpu_model')})"
    if short:
        loads = f"load {load('loadavg_at_start')} → {load('loadavg_at_end')}"
        return f"{m.get('date', '')[:10]}, {cpu}, {loads}"
    pg = str(m.get("postgresql")).split()[0]
    seconds = m.get("run_seconds")
    took = f"; the whole run took {seconds / 60:.1f} min ({seconds} s)" if seconds else ""
    return (
        f"{m.get('date', '')[:16].replace('T', ' ')} UTC on {cpu}, {m.get('memory_gib')} GiB, "
        f"{m.get('os')}, Python {m.get('python')}, PostgreSQL {pg}; "
        f"load average (1 min) {load('loadavg_at_start')} at the start and "
        f"{load('loadavg_at_end')} at the end{took}"
    )


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{text} {unit}".strip()


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    s = report["summary"]
    lines = [
        f"Latest run: {machine_line(m)}. {s['met']} of {s['figures']} figures meet their "
        "target. Targets marked *ours* were set with the benchmark that measures them; the "
        "others come from the specification. Load: the 1-minute load average when that "
        "benchmark started (2 cores: above 2, programs waited for a core).",
        "",
        "| Benchmark | Figure | Target | Measured | Met | Load |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for f in report["figures"]:
        sign = "≤" if f["target_kind"] == "max" else "≥"
        target = f"{sign} {_number(f['target'], f['unit'])}" if f["target"] else "0"
        if f["target_source"] == "ours":
            target += " *(ours)*"
        measured = _number(f["value"], f["unit"])
        if f.get("note"):
            measured += f" ({f['note']})"
        met = "yes" if f["met"] else "**no**"
        name = f["name"].replace("|", "\\|")
        load = "—" if f.get("load_1m_at_start") is None else f"{f['load_1m_at_start']:g}"
        lines.append(f"| `{f['bench']}` | {name} | {target} | {measured} | {met} | {load} |")
    return "\n".join(lines) + "\n"


def update_readme(report: dict[str, Any], readme: Path = README) -> None:
    text = readme.read_text()
    head, sep, rest = text.partition(START)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise SystemExit(f"{readme}: no {START} … {END} block to replace")
    readme.write_text(f"{head}{START}\n{markdown(report)}{END}{tail}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=HERE / "results.json")
    parser.add_argument("--out", type=Path, default=HERE / "report.json")
    parser.add_argument("--charts", type=Path, default=HERE / "charts")
    parser.add_argument("--started", help="when the run started (ISO 8601)")
    parser.add_argument("--run-seconds", type=int, help="how long the whole run took")
    parser.add_argument("--load-start", help="load average before the first benchmark")
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="figures and charts again from --results, machine facts kept from --out",
    )
    parser.add_argument("--markdown", action="store_true", help="print the README block")
    parser.add_argument("--update-readme", action="store_true", help="rewrite it in README.md")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.markdown or arguments.update_readme:
        stored = json.loads(arguments.out.read_text())
        if arguments.update_readme:
            update_readme(stored)
        else:
            print(markdown(stored), end="")
    else:
        build(arguments)
