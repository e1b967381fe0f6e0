"""The benchmark tooling still works: the API load test in its short mode against a real
`cronium serve`, and the report (figures, README table, charts) from its result.

Not a benchmark: the figures of a one-second run mean nothing and no time is asserted.
What is checked is that every request of the mix is answered as expected (no route has
moved or started refusing), that every run succeeded, and that the report reads it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_ADMIN_URL

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api_load_result() -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, str(BENCH / "api_load.py"), "--smoke"],
        env=os.environ | {"CRONIUM_BENCH_PG": PG_ADMIN_URL},
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_the_api_load_smoke_run_answers_every_request_and_runs_every_job(
    api_load_result: dict[str, object],
) -> None:
    groups = api_load_result["groups"]
    assert isinstance(groups, dict) and set(groups) == {"list", "detail", "run"}
    for name, group in groups.items():
        assert group["requests"] > 0, name
        assert group["errors"] == 0, (name, group["error_kinds"])
    drain = groups["run"]["drain"]
    assert drain["ok"], drain
    assert api_load_result["server_tracebacks"] == 0


def test_the_report_reads_the_result_into_figures_a_table_and_charts(
    api_load_result: dict[str, object], tmp_path: Path
) -> None:
    from report import markdown
    from report_charts import api_load_chart, targets_chart
    from report_figures import figures_of

    failed = {"benchmark": "queue_throughput", "error": "exit 1, no result line"}
    figures = figures_of(api_load_result) + figures_of(failed)
    names = {f.name for f in figures if f.bench == "api_load"}
    assert {"list: p99 at 32 clients", "run: runs/s", "errors and server tracebacks"} <= names
    errors = next(f for f in figures if f.name == "errors and server tracebacks")
    assert errors.value == 0 and errors.met
    broken = [f for f in figures if f.bench == "queue_throughput"]
    assert len(broken) == 1 and not broken[0].met and "exit 1" in (broken[0].note or "")

    machine = {"date": "2026-01-01T00:00:00Z", "cores": 2, "loadavg_at_start": [1.0, 1, 1]}
    report = {
        "machine": machine,
        "summary": {"figures": len(figures), "met": sum(f.met for f in figures)},
        "figures": [f.as_dict() for f in figures],
    }
    table = markdown(report)
    assert "| `api_load` | errors and server tracebacks | 0 *(ours)* | 0 | yes |" in table
    assert "| `queue_throughput` | run |" in table and "**no**" in table

    targets_chart(figures, tmp_path / "targets.png", "test")
    api_load_chart(api_load_result, tmp_path / "api_load.png", "test")
    for png in ("targets.png", "api_load.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
