"""/metrics after real events: the counters and histograms move by what happened, the
scrape-time gauges read the queue, and every metric the dashboard and alerts use exists."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from cronium.core import Core
from cronium.engine import queue
from cronium.engine.node import Node
from cronium.engine.recovery import recover_once
from cronium.engine.scheduler import Scheduler
from cronium.services.valkey import ValkeyLink
from tests.conftest import Api, wait_for_status

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape(client: httpx.AsyncClient) -> Samples:
    resp = await client.get("/metrics")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    return parse(resp.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def create_event(api: Api, content: str, **fields: Any) -> int:
    body = {
        "name": f"m-{abs(hash((content, str(fields))))}",
        "language": "bash",
        "content": content,
    }
    resp = await api.post("/events", json={**body, **fields})
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


async def run(api: Api, event_id: int) -> int:
    resp = await api.post(f"/events/{event_id}/run")
    assert resp.status_code == 202, resp.text
    return int(resp.json()["execution_id"])


async def test_metrics_is_public_and_prefixed(client: httpx.AsyncClient) -> None:
    resp = await client.get("/metrics")  # no credentials, like /health
    assert resp.status_code == 200
    names = {f.name for f in text_string_to_metric_families(resp.text)}
    ours = {n for n in names if n.startswith("cronium_")}
    assert {"cronium_runs", "cronium_job_duration_seconds", "cronium_queue_depth"} <= ours
    assert "process_resident_memory_bytes" in names or "python_info" in names
    assert (await client.get("/api/v1/metrics")).status_code == 404


async def test_runs_jobs_durations_and_log_bytes_count_what_ran(
    client: httpx.AsyncClient, api: dict[str, Api], node: Node
) -> None:
    user = api["user"]
    ok = await create_event(user, "echo metrics-ok")
    bad = await create_event(user, "echo metrics-bad; exit 3")
    before = await scrape(client)
    runs = [await run(user, ok), await run(user, ok), await run(user, bad)]
    done = [await wait_for_status(user, x) for x in runs]
    assert [d["status"] for d in done] == ["succeeded", "succeeded", "failed"], done
    after = await scrape(client)

    assert delta(before, after, "cronium_runs_total", status="succeeded") == 2
    assert delta(before, after, "cronium_runs_total", status="failed") == 1
    assert delta(before, after, "cronium_jobs_total", status="succeeded", executor="local") == 2
    assert delta(before, after, "cronium_jobs_total", status="failed", executor="local") == 1
    count = "cronium_job_duration_seconds_count"
    assert delta(before, after, count, status="succeeded", executor="local") == 2
    assert (
        delta(before, after, "cronium_job_duration_seconds_sum", status="failed", executor="local")
        > 0
    )
    # Each run wrote its echo line plus system lines: at least the echoed bytes.
    assert delta(before, after, "cronium_log_bytes_total") >= 2 * len("metrics-ok\n") + len(
        "metrics-bad\n"
    )
    assert delta(before, after, "cronium_log_lines_total") >= 3
    assert value(after, "cronium_worker_slots_busy") == 0
    assert value(after, "cronium_worker_slots") == node.core.settings.worker_concurrency


async def test_queue_depth_and_oldest_age_read_the_queue(
    client: httpx.AsyncClient, api: dict[str, Api], core: Core
) -> None:
    """No worker runs here: the runs stay queued, and the scrape sees them."""
    event_id = await create_event(api["user"], "true")
    for _ in range(3):
        await run(api["user"], event_id)
    async with core.db.acquire() as conn:
        await conn.execute("UPDATE jobs SET run_after = now() - interval '90 seconds'")
    samples = await scrape(client)
    assert value(samples, "cronium_queue_depth") == 3
    assert value(samples, "cronium_queue_ready") == 3
    assert 90 <= value(samples, "cronium_queue_oldest_age_seconds") < 150
    assert value(samples, "cronium_database_up") == 1


async def test_a_scheduled_fire_observes_its_lag(
    client: httpx.AsyncClient, api: dict[str, Api], core: Core
) -> None:
    schedule = {"kind": "interval", "every_seconds": 3600}
    event_id = await create_event(api["user"], "true", status="active", schedule=schedule)
    due = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=10)
    async with core.db.acquire() as conn:
        await conn.execute("UPDATE events SET next_fire_at = $2 WHERE id = $1", event_id, due)
    before = await scrape(client)
    await Scheduler(core).tick(due + timedelta(seconds=2.5))
    after = await scrape(client)
    assert delta(before, after, "cronium_schedule_lag_seconds_count") == 1
    assert abs(delta(before, after, "cronium_schedule_lag_seconds_sum") - 2.5) < 1e-6
    assert delta(before, after, "cronium_schedule_lag_seconds_bucket", le="5.0") == 1
    assert delta(before, after, "cronium_schedule_lag_seconds_bucket", le="1.0") == 0


async def test_runtime_api_requests_from_the_sdk_are_counted(
    client: httpx.AsyncClient, api: dict[str, Api], node: Node
) -> None:
    script = 'cronium.set_variable("metrics_var", 1)\ncronium.output({"ok": True})\n'
    event_id = await create_event(api["user"], script, language="python")
    before = await scrape(client)
    done = await wait_for_status(api["user"], await run(api["user"], event_id), timeout_s=60)
    assert done["status"] == "succeeded", done
    after = await scrape(client)
    name = "cronium_runtime_api_requests_total"
    assert delta(before, after, name, endpoint="write_variable", status="200") == 1
    assert delta(before, after, name, endpoint="write_output", status="200") == 1
    hist = "cronium_runtime_api_request_duration_seconds_count"
    assert delta(before, after, hist, endpoint="write_output") == 1


async def test_runtime_api_routes_over_tcp_are_counted_too(client: httpx.AsyncClient) -> None:
    """Not the socket's direct path: the app's routes answer (here 401, no token)."""
    before = await scrape(client)
    resp = await client.get("/runtime/v1/context")
    assert resp.status_code == 401
    after = await scrape(client)
    name = "cronium_runtime_api_requests_total"
    assert delta(before, after, name, endpoint="read_context", status="401") == 1


async def test_a_lease_expiry_is_counted_with_its_outcome(
    client: httpx.AsyncClient, api: dict[str, Api], core: Core
) -> None:
    """A node claims a job and dies (its lease runs out): recovery fails the last attempt."""
    event_id = await create_event(api["user"], "sleep 60")
    execution_id = await run(api["user"], event_id)
    async with core.db.acquire() as conn:
        claimed = await queue.claim(conn, "dead-node", 1, 30)
        assert [j.execution_id for j in claimed] == [execution_id]
        await conn.execute("UPDATE jobs SET lease_expires_at = now() - interval '1 second'")
    before = await scrape(client)
    recovered = await recover_once(core, core.hub)
    assert [j.status.value for j in recovered] == ["failed"]
    after = await scrape(client)
    assert delta(before, after, "cronium_lease_expiries_total", outcome="failed") == 1
    assert delta(before, after, "cronium_lease_expiries_total", outcome="queued") == 0
    assert delta(before, after, "cronium_runs_total", status="failed") == 1
    assert (await wait_for_status(api["user"], execution_id))["status"] == "failed"


def promql_names(expr: str) -> set[str]:
    names = set()
    for name in re.findall(r"\bcronium_[a-zA-Z0-9_]+", expr):
        for suffix in HISTOGRAM_SUFFIXES:
            if name.endswith(suffix):
                name = name.removesuffix(suffix)
                break
        names.add(name)
    return names


def dashboard_exprs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [e for v in node.values() for e in dashboard_exprs(v)]
    if isinstance(node, list):
        return [e for v in node for e in dashboard_exprs(v)]
    return []


def used_metrics() -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    dashboards = sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))
    assert dashboards, "no Grafana dashboard"
    for path in dashboards:
        for expr in dashboard_exprs(json.loads(path.read_text())):
            for name in promql_names(expr):
                used.setdefault(name, set()).add(path.name)
    rules = yaml.safe_load((MONITORING / "prometheus" / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            for name in promql_names(rule["expr"]):
                used.setdefault(name, set()).add(f"alerts.yml:{rule.get('alert')}")
    return used


async def test_every_metric_of_the_dashboard_and_alerts_exists(
    client: httpx.AsyncClient, core: Core
) -> None:
    used = used_metrics()
    assert "cronium_queue_depth" in used and "cronium_schedule_lag_seconds" in used
    # Valkey configured but unreachable (a closed loopback port): cronium_valkey_up is
    # exposed as 0; without VALKEY_URL it is absent.
    absent = (await client.get("/metrics")).text
    assert "cronium_valkey_up" not in absent
    core.valkey = ValkeyLink("redis://127.0.0.1:9")
    try:
        text = (await client.get("/metrics")).text
    finally:
        await core.valkey.close()
    exposed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            exposed.add(name)
            if kind == "counter":
                exposed.add(name + "_total")
    missing = {name: where for name, where in used.items() if name not in exposed}
    assert not missing, f"used but not exposed: {missing}"
    assert value(parse(text), "cronium_valkey_up") == 0
