"""Chaos: two nodes on one PostgreSQL keep the scheduler's promises while things break.

200 events fire every few seconds (interval and 6-field cron schedules, all three misfire
policies) on two `cronium serve` processes. While they run, a random node is killed with
SIGKILL and started again, over and over; PostgreSQL is restarted once and Valkey stopped
once. Then the events are paused, the queue drains, and the database must show that:

- every (event, fire time) in the window, computed here independently of Cronium's
  schedule code, has exactly one record: fired with exactly one execution, or missed;
- a fire is missed only when it was late beyond the grace period, and only as its policy
  allows (run_all never misses here, skip never runs a late fire);
- no execution or job is left waiting, queued or running;
- every execution succeeded, or failed only because its node died under it;
- every succeeded execution's log holds every line its last attempt printed, in order.

The bounded form runs in CI (CRONIUM_CHAOS_SECONDS, default 60); a soak runs longer, e.g.
`CRONIUM_CHAOS_SECONDS=1800 ./scripts/test tests/chaos -s`. The figures are printed as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from tests.chaos.conftest import GRACE_S, Cluster
from tests.chaos.oracle import EventPlan, expected_fires, plan_events

CHAOS_S = float(os.environ.get("CRONIUM_CHAOS_SECONDS", "60"))
EVENTS = int(os.environ.get("CRONIUM_CHAOS_EVENTS", "200"))
SEED = int(os.environ.get("CRONIUM_CHAOS_SEED", "20261127"))
SETTLE_S = 8.0  # clean running after the chaos, before the cut-off is read back
DRAIN_TIMEOUT_S = 180.0
SCHEDULER_CATCH_UP_S = 60.0
MIN_KILLS = 4
OPEN_STATUSES = ("waiting", "queued", "running")
LEASE_LOST = "stopped renewing its lease"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(int(CHAOS_S) + 600)]


@dataclass
class Faults:
    kills: int = 0
    postgres_restarts: int = 0
    valkey_stops: int = 0
    timeline: list[str] = field(default_factory=list)

    def note(self, start: float, what: str) -> None:
        self.timeline.append(f"{time.monotonic() - start:6.1f}s {what}")


async def create_events(api: httpx.AsyncClient, plans: list[EventPlan]) -> None:
    for ev in plans:
        resp = await api.post("/api/v1/events", json=ev.body())
        assert resp.status_code == 201, resp.text
        ev.id = int(resp.json()["id"])


async def inject_faults(cluster: Cluster, rng: random.Random, start: float, faults: Faults) -> None:
    """Kill a random node, start it again, repeat; restart PostgreSQL once, stop Valkey once."""
    end, hard_end = start + CHAOS_S, start + 2 * CHAOS_S
    postgres_at, valkey_at = start + CHAOS_S * 0.35, start + CHAOS_S * 0.65
    # On a loaded machine restarts are slow: go on past the window until enough kills
    # happened (or twice the window has passed).
    while time.monotonic() < end or (faults.kills < MIN_KILLS and time.monotonic() < hard_end):
        await asyncio.sleep(rng.uniform(2.0, 5.0))
        now = time.monotonic()
        if not faults.postgres_restarts and now >= postgres_at:
            faults.note(start, "PostgreSQL stop")
            await cluster.postgres.stop()
            # Longer than the misfire grace: the fires in between come late.
            await asyncio.sleep(rng.uniform(GRACE_S + 1, GRACE_S + 4))
            await cluster.postgres.start()
            faults.postgres_restarts += 1
            faults.note(start, "PostgreSQL started")
        elif not faults.valkey_stops and now >= valkey_at:
            faults.note(start, "Valkey stop")
            cluster.valkey.stop()
            await asyncio.sleep(rng.uniform(3.0, 6.0))
            cluster.valkey.start()
            faults.valkey_stops += 1
            faults.note(start, "Valkey started")
        else:
            node = rng.choice(cluster.nodes)
            node.kill9()
            faults.kills += 1
            faults.note(start, f"kill -9 node {node.name}")
            await asyncio.sleep(rng.uniform(0.2, 3.0))
            node.start()
            await node.wait_ready()
            faults.note(start, f"node {node.name} ready")


async def pause_all(api: httpx.AsyncClient, plans: list[EventPlan]) -> None:
    for ev in plans:
        resp = await api.patch(f"/api/v1/events/{ev.id}", json={"status": "paused"})
        assert resp.status_code == 200, resp.text


async def wait_scheduled_past(cluster: Cluster, cutoff: datetime) -> None:
    """Until the scheduler has handled every fire up to the cut-off (a loaded machine lags)."""
    conn = await asyncpg.connect(cluster.postgres.asyncpg_dsn)
    try:
        deadline = time.monotonic() + SCHEDULER_CATCH_UP_S
        while await conn.fetchval(
            "SELECT count(*) FROM events WHERE status = 'active' AND next_fire_at <= $1", cutoff
        ):
            if time.monotonic() > deadline:
                raise AssertionError(f"the scheduler did not reach {cutoff} in time")
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


async def wait_drained(conn: asyncpg.Connection) -> None:
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while True:
        open_jobs = await conn.fetchval(
            "SELECT count(*) FROM jobs WHERE status::text = ANY($1)", list(OPEN_STATUSES)
        )
        open_runs = await conn.fetchval(
            "SELECT count(*) FROM executions WHERE status::text = ANY($1)", list(OPEN_STATUSES)
        )
        if open_jobs == 0 and open_runs == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{open_runs} executions and {open_jobs} jobs still open "
                f"{DRAIN_TIMEOUT_S} s after the events were paused"
            )
        await asyncio.sleep(0.5)


async def test_two_nodes_keep_every_promise_through_kills_and_restarts(cluster: Cluster) -> None:
    rng = random.Random(SEED)
    headers = {"Authorization": f"Bearer {cluster.token}"}
    first = cluster.nodes[0]
    start_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=30)
    plans = plan_events(rng, EVENTS, start_at)
    async with httpx.AsyncClient(base_url=first.base_url, headers=headers, timeout=30) as api:
        await create_events(api, plans)
        assert datetime.now(UTC) < start_at, "creating the events took longer than the lead time"
        await asyncio.sleep((start_at - datetime.now(UTC)).total_seconds())

        faults = Faults()
        began = time.monotonic()
        await inject_faults(cluster, rng, began, faults)
        chaos_end = datetime.now(UTC)
        cutoff = chaos_end + timedelta(seconds=SETTLE_S / 2)
        await asyncio.sleep(SETTLE_S)
        await first.wait_ready()
        await wait_scheduled_past(cluster, cutoff)
        await pause_all(api, plans)

    conn = await asyncpg.connect(cluster.postgres.asyncpg_dsn)
    try:
        await wait_drained(conn)
        for node in cluster.nodes:
            node.assert_alive()
            assert await node.stop(), f"node {node.name} did not stop on SIGTERM:\n{node.tail()}"
        report = await check_promises(conn, plans, start_at, cutoff)
    finally:
        await conn.close()
    report |= {
        "seconds": CHAOS_S,
        "events": len(plans),
        "seed": SEED,
        "kills": faults.kills,
        "postgres_restarts": faults.postgres_restarts,
        "valkey_stops": faults.valkey_stops,
    }
    print(json.dumps(report))
    print("\n".join(faults.timeline))
    assert (
        faults.kills >= MIN_KILLS and faults.postgres_restarts == 1 and faults.valkey_stops == 1
    ), faults
    problems = report.pop("problems") + [t for node in cluster.nodes for t in node.trouble()]
    assert not problems, "\n".join(
        [*problems[:40], f"({len(problems)} problems)", *faults.timeline]
    )


async def check_promises(
    conn: asyncpg.Connection, plans: list[EventPlan], start_at: datetime, cutoff: datetime
) -> dict[str, object]:
    """Compare the database with what must have happened; a list of every broken promise."""
    problems: list[str] = []
    fires = await conn.fetch(
        """SELECT f.event_id, f.fire_time, f.outcome::text AS outcome, f.execution_id,
                  f.recorded_at, f.lag_ms, x.event_id AS x_event, x.scheduled_for
           FROM schedule_fires f LEFT JOIN executions x ON x.id = f.execution_id
           WHERE f.fire_time <= $1""",
        cutoff,
    )
    by_event: dict[int, dict[datetime, asyncpg.Record]] = {}
    for row in fires:
        by_event.setdefault(row["event_id"], {})[row["fire_time"]] = row
    counts = {"expected_fires": 0, "fired": 0, "missed": 0}
    for ev in plans:
        assert ev.id is not None
        recorded = by_event.get(ev.id, {})
        expected = expected_fires(ev, cutoff)
        counts["expected_fires"] += len(expected)
        for when in sorted(set(expected) - set(recorded)):
            problems.append(f"event {ev.id} ({ev.describe()}): fire {when} never recorded")
        for when in sorted(set(recorded) - set(expected)):
            problems.append(f"event {ev.id} ({ev.describe()}): unexpected fire {when}")
        for when, row in recorded.items():
            counts[row["outcome"]] = counts.get(row["outcome"], 0) + 1
            problems += fire_problems(ev, when, row)

    orphans = await conn.fetch(
        """SELECT x.id, x.event_id, x.scheduled_for FROM executions x
           LEFT JOIN schedule_fires f ON f.execution_id = x.id
           WHERE x.trigger = 'schedule' AND x.scheduled_for <= $1 AND f.execution_id IS NULL""",
        cutoff,
    )
    problems += [
        f"execution {r['id']} of event {r['event_id']} has no fire record" for r in orphans
    ]

    statuses = await conn.fetch(
        """SELECT x.id, x.status::text AS status, x.error,
                  array_agg(j.error) AS job_errors, max(j.attempt) AS attempts
           FROM executions x JOIN jobs j ON j.execution_id = x.id
           WHERE x.scheduled_for >= $1 GROUP BY x.id""",
        start_at,
    )
    by_status: dict[str, int] = {}
    succeeded: list[int] = []
    for row in statuses:
        by_status[row["status"]] = by_status.get(row["status"], 0) + 1
        if row["status"] == "succeeded":
            succeeded.append(row["id"])
        elif row["status"] in OPEN_STATUSES:
            problems.append(f"execution {row['id']} left {row['status']}")
        elif not any(LEASE_LOST in (e or "") for e in row["job_errors"]):
            problems.append(
                f"execution {row['id']} {row['status']} without its node dying: "
                f"{row['error'] or row['job_errors']}"
            )
    problems += await log_problems(conn, succeeded)
    retried = sum(1 for row in statuses if row["attempts"] > 1)
    return {
        **counts,
        "executions": by_status,
        "retried_after_a_node_died": retried,
        "problems": problems,
    }


def fire_problems(ev: EventPlan, when: datetime, row: asyncpg.Record) -> list[str]:
    """A fire's record against its policy: fired with its own execution, or missed when late."""
    where = f"event {ev.id} ({ev.describe()}) fire {when}"
    late_s = (row["recorded_at"] - when).total_seconds()
    if row["outcome"] == "fired":
        if row["execution_id"] is None:
            return [f"{where}: fired without an execution"]
        if row["x_event"] != ev.id or row["scheduled_for"] != when:
            return [f"{where}: fired as execution {row['execution_id']} of another fire"]
        if ev.misfire == "skip" and row["lag_ms"] > GRACE_S * 1000:
            return [f"{where}: ran {row['lag_ms']:.0f} ms late under the skip policy"]
        return []
    if row["outcome"] == "missed":
        if ev.misfire == "run_all":
            return [f"{where}: missed although the policy runs all late fires"]
        if late_s <= GRACE_S:
            return [f"{where}: recorded missed only {late_s:.2f} s after its time"]
        return []
    return [f"{where}: outcome {row['outcome']} (overlap is allowed)"]


async def log_problems(conn: asyncpg.Connection, execution_ids: list[int]) -> list[str]:
    """Each succeeded run's last attempt printed `start T`, then `L1 T` … `L5 T`: all stored."""
    rows = await conn.fetch(
        """SELECT execution_id, array_agg(line ORDER BY seq) AS lines,
                  array_agg(seq ORDER BY seq) AS seqs
           FROM log_lines WHERE execution_id = ANY($1) AND stream = 'stdout'
           GROUP BY execution_id""",
        execution_ids,
    )
    logs = {r["execution_id"]: list(r["lines"]) for r in rows}
    seqs = {r["execution_id"]: list(r["seqs"]) for r in rows}
    problems = []
    for execution_id in execution_ids:
        lines = logs.get(execution_id, [])
        starts = [i for i, line in enumerate(lines) if line.startswith("start ")]
        if not starts:
            problems.append(f"execution {execution_id}: no start line in {lines}")
            continue
        token = lines[starts[-1]].split()[1]
        want = [f"L{i} {token}" for i in range(1, 6)]
        # A batch stored just as the connection dropped may be stored twice; none may be lost.
        got = list(dict.fromkeys(ln for ln in lines[starts[-1] + 1 :] if ln.endswith(f" {token}")))
        if got != want:
            problems.append(
                f"execution {execution_id}: log {got} instead of {want} "
                f"(stdout seqs {seqs.get(execution_id)})"
            )
    return problems
