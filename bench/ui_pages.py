"""Server time of every web UI page with 10,000 executions stored (target: < 300 ms each).

A fresh database is seeded (ui_seed.py) with set-based SQL: users, a few hundred
events (active with schedules, paused, drafts), servers, variables, tool credentials,
10,000 executions over 30 days with one job each, log lines for the newest runs (one run
with 5,000 lines), and two workflows with runs. Then each page is requested through the
app in process (httpx ASGITransport, no network) with a browser session cookie, as an
admin (sees everything) and as a user (own objects only): a few warm-ups, then `--requests`
timed requests per page; p50/p95/max ms and the SQL statements per request are reported.

Pages are discovered from the app's GET routes that are not API, static or probe routes,
so pages added later are measured without editing this file; path parameters are filled
with seeded ids by name (`{execution_id}`, `{event_id}`, …; see ID_PARAMS). EXTRA_PAGES
adds query-string variants (filters, paging, HTMX fragments).

Usage: python bench/ui_pages.py [--requests 20] [--executions 10000] [--events 300]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import event as sa_event

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    CpuMeter,
    bench_core,
    fresh_database,
    machine_info,
    rounded,
    run_main,
    say,
    setup_logging,
    summarize,
)
from ui_seed import PASSWORD, seed

from cronium.app import create_app
from cronium.core import Core

TARGET_MS = 300.0
SKIP_PREFIXES = ("/api/", "/runtime", "/static", "/metrics", "/health", "/ready", "/webhooks")
# Route parameter name (without "_id") or the path segment before a bare {id} → seeded kind.
ID_PARAMS = {
    "execution": "execution",
    "executions": "execution",
    "event": "event",
    "events": "event",
    "workflow": "workflow",
    "workflows": "workflow",
    "run": "workflow_run",
    "workflow_run": "workflow_run",
    "workflow-runs": "workflow_run",
    "server": "server",
    "servers": "server",
    "variable": "variable",
    "variables": "variable",
    "credential": "credential",
    "credentials": "credential",
    "user": "user",
    "users": "user",
    "token": "token",
    "tokens": "token",
    "template": "template",
    "action-templates": "template",
}
# Variants worth measuring on their own: (path template, HTMX request?).
EXTRA_PAGES = (
    ("/executions?status=failed", False),
    ("/executions?page=100", False),
    ("/executions?event_id={event}", True),
    ("/executions/{big_execution}", False),
    ("/monitoring", True),
    ("/events?page=5", False),
)


# -- pages -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageSpec:
    path: str
    htmx: bool = False
    route: str = ""

    @property
    def label(self) -> str:
        return self.path + (" [htmx]" if self.htmx else "")


def discover(app: FastAPI, ids: dict[str, int]) -> tuple[list[PageSpec], list[dict[str, str]]]:
    """The UI's GET pages with path parameters filled in; unfillable ones are reported."""
    pages: list[PageSpec] = []
    skipped: list[dict[str, str]] = []
    for route_path, route in _get_routes(app.routes):
        if "GET" not in route.methods or route_path.startswith(SKIP_PREFIXES):
            continue
        path, missing = fill(route_path, ids)
        if missing:
            skipped.append({"route": route_path, "reason": f"no seeded id for {{{missing}}}"})
        else:
            pages.append(PageSpec(path, route=route_path))
    for template, htmx in EXTRA_PAGES:
        try:
            pages.append(PageSpec(template.format(**ids), htmx, route=template))
        except KeyError as exc:
            skipped.append({"route": template, "reason": f"no seeded id for {exc}"})
    return pages, skipped


def _get_routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """(full path, route) of every APIRoute, also inside routers that FastAPI keeps nested
    (newer FastAPI includes a router by reference instead of copying its routes)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
        elif (nested := getattr(route, "original_router", None)) is not None:
            context = getattr(route, "include_context", None)
            yield from _get_routes(nested.routes, prefix + getattr(context, "prefix", ""))


def fill(route_path: str, ids: dict[str, int]) -> tuple[str, str | None]:
    segments = route_path.strip("/").split("/")
    out = []
    for index, segment in enumerate(segments):
        match = re.fullmatch(r"\{(\w+)(?::\w+)?\}", segment)
        if match is None:
            out.append(segment)
            continue
        name = match.group(1)
        key = name.removesuffix("_id")
        if key == "id" and index > 0:
            key = segments[index - 1]
        kind = ID_PARAMS.get(key)
        if kind is None or kind not in ids:
            return route_path, name
        out.append(str(ids[kind]))
    return "/" + "/".join(out), None


@contextmanager
def statement_counter(core: Core) -> Iterator[list[int]]:
    """Counts SQL statements the app sends through SQLAlchemy (catches N+1 queries)."""
    box = [0]

    def count(*_args: Any) -> None:
        box[0] += 1

    engine = core.engine.sync_engine
    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        yield box
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)


async def measure(
    client: httpx.AsyncClient, core: Core, page: PageSpec, requests: int, warmup: int
) -> dict[str, Any]:
    headers = {"HX-Request": "true"} if page.htmx else {}
    for _ in range(warmup):
        await client.get(page.path, headers=headers)
    times: list[float] = []
    status = 0
    size = 0
    with statement_counter(core) as statements:
        cpu0 = time.process_time()
        for _ in range(requests):
            t0 = time.perf_counter()
            response = await client.get(page.path, headers=headers)
            times.append(1000 * (time.perf_counter() - t0))
            status, size = response.status_code, len(response.content)
        cpu_ms = 1000 * (time.process_time() - cpu0) / requests
    stats = summarize(times)
    return {
        "page": page.label,
        "route": page.route,
        "status": status,
        "bytes": size,
        "p50_ms": stats["p50_ms"],
        "p95_ms": stats["p95_ms"],
        "max_ms": stats["max_ms"],
        "sql_per_request": rounded(statements[0] / requests, 1),
        # CPU of this process (app + client) per request: unlike the wall-clock times it
        # barely moves when other programs compete for the cores.
        "cronium_cpu_ms": rounded(cpu_ms),
    }


async def login(client: httpx.AsyncClient, email: str) -> None:
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    response.raise_for_status()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    machine = await machine_info()
    results: dict[str, list[dict[str, Any]]] = {}
    skipped: list[dict[str, str]] = []
    async with fresh_database("ui_pages") as (_name, url), bench_core(url) as core:
        async with core.db.acquire() as conn:
            ids, seeded = await seed(conn, core, args)
        app = create_app(core.settings, core=core)
        meter = CpuMeter()
        for persona, email in (("admin", "admin@bench.example"), ("user", "user@bench.example")):
            transport = httpx.ASGITransport(
                app=app, client=("127.0.0.1", 50000), raise_app_exceptions=False
            )
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                await login(client, email)
                pages, skipped = discover(app, ids)
                say(f"{persona}: measuring {len(pages)} pages, {args.requests} requests each")
                rows = []
                for page in pages:
                    row = await measure(client, core, page, args.requests, args.warmup)
                    flag = "" if row["p95_ms"] < TARGET_MS else "  <-- over target"
                    say(f"  {row['status']} {row['p95_ms']:8.1f} ms p95  {page.label}{flag}")
                    rows.append(row)
                results[persona] = rows
        cpu = meter.stop()
    every = [row for rows in results.values() for row in rows]
    ok_rows = [r for r in every if r["status"] < 500]
    slowest = max(every, key=lambda r: r["p95_ms"]) if every else None
    return {
        "benchmark": "ui_pages",
        "seeded": seeded,
        "requests_per_page": args.requests,
        "method": "in-process ASGI (httpx.ASGITransport), session cookie, sequential requests",
        "pages": results,
        "skipped": skipped,
        # 5xx: a broken page. 4xx: a page that wants more than an id (a token in the query)
        # or a role this persona lacks; listed so a new refusal is noticed.
        "errors": [{"page": r["page"], "status": r["status"]} for r in every if r["status"] >= 500],
        "refused": sorted(
            {f"{r['status']} {r['page']}" for r in every if 400 <= r["status"] < 500}
        ),
        "slowest_p95": {"page": slowest["page"], "p95_ms": slowest["p95_ms"]} if slowest else None,
        "target_ms": TARGET_MS,
        "meets_target": len(ok_rows) == len(every) > 0
        and all(r["p95_ms"] < TARGET_MS for r in every),
        "cpu": cpu,
        "machine": machine,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20, help="timed requests per page")
    parser.add_argument("--warmup", type=int, default=2, help="untimed requests per page first")
    parser.add_argument("--executions", type=int, default=10_000, help="executions to seed")
    parser.add_argument("--events", type=int, default=300, help="events to seed")
    parser.add_argument("--verbose", action="store_true", help="Cronium's INFO logs on stderr")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    setup_logging(arguments.verbose)
    run_main(lambda: main(arguments), budget_s=900)
