"""Job output end to end (local executor): masked, tagged, numbered, capped, bounded."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg

from cronium.core import Core
from cronium.db.models import LogStream
from cronium.engine.node import Node
from cronium.executors.registry import local_only
from cronium.logs import sink
from cronium.logs.capture import MASK, Masker
from cronium.logs.sink import JobLogWriter
from tests.conftest import Api, wait_for_status
from tests.support.runs import create_event, run

SECRET_VARIABLE = "s3cr3t-value-123"
SECRET_ENV = "env-secret-987654"
MIB = 1024 * 1024


async def all_logs(api: Api, execution_id: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    after = 0
    while True:
        page = (await api.get(f"/executions/{execution_id}/logs?after={after}&limit=10000")).json()
        items += page["items"]
        if not page["items"]:
            return items
        after = page["next_after"]


@asynccontextmanager
async def node_with(core: Core, **settings: Any) -> AsyncIterator[Node]:
    """A running node whose core has some settings changed (same database, same hub)."""
    changed = dataclasses.replace(core, settings=core.settings.model_copy(update=settings))
    node = Node(changed, frozenset({"api", "scheduler", "worker"}), local_only())
    task = asyncio.create_task(node.run())
    await asyncio.wait_for(node.ready.wait(), timeout=10)
    try:
        yield node
    finally:
        node.stop()
        await asyncio.wait_for(task, timeout=30)


async def test_secrets_split_across_two_writes_are_stored_masked(
    api: dict[str, Api], node: Node, core: Core
) -> None:
    resp = await api["user"].post(
        "/variables", json={"key": "TOKEN", "value": SECRET_VARIABLE, "secret": True}
    )
    assert resp.status_code == 201, resp.text
    script = "\n".join(
        [
            # Each secret is written in two write() calls, the second one 0.2 s later, so
            # the halves arrive in separate reads of the pipe.
            "printf 's3cr3t-'; sleep 0.2; printf 'value-123\\n'",
            "printf 'env-secret-' >&2; sleep 0.2; printf '987654 on stderr\\n' >&2",
            'echo "from env: $API_KEY"',
            "printf '%s' \"$API_KEY\" | base64",
            'echo "user:$API_KEY" | base64',
            'printf \'{"token": "%s"}\\n\' "$API_KEY"',
            # The execution token, in two writes too.
            'printf "t=%s" "${CRONIUM_EXECUTION_TOKEN:0:9}"; sleep 0.2',
            'printf "%s\\n" "${CRONIUM_EXECUTION_TOKEN:9}"',
            "echo visible-line",
        ]
    )
    event_id = await create_event(api["user"], content=script, env={"API_KEY": SECRET_ENV})
    execution_id = await run(api["user"], event_id)
    done = await wait_for_status(api["user"], execution_id)
    assert done["status"] == "succeeded", done

    lines = [(item["stream"], item["line"]) for item in await all_logs(api["user"], execution_id)]
    output = [pair for pair in lines if pair[0] != "system"]
    assert output[:4] == [
        ("stdout", MASK),
        ("stderr", f"{MASK} on stderr"),
        ("stdout", f"from env: {MASK}"),
        ("stdout", MASK),
    ]
    assert MASK in output[4][1]  # base64 of "user:<secret>\n": the secret's part is masked
    assert output[5:] == [
        ("stdout", f'{{"token": "{MASK}"}}'),
        ("stdout", f"t={MASK}"),
        ("stdout", "visible-line"),
    ]

    async with core.db.acquire() as conn:
        stored = [r["line"] for r in await conn.fetch("SELECT line FROM log_lines ORDER BY seq")]
    leaks = [
        SECRET_VARIABLE,
        SECRET_ENV,
        "value-123",
        "987654",
        base64.b64encode(SECRET_ENV.encode()).decode().rstrip("="),
    ]
    for line in stored:
        for leak in leaks:
            assert leak not in line, f"{leak!r} stored unmasked in {line!r}"
    assert "visible-line" in stored


async def test_lines_are_tagged_and_numbered_without_gaps(
    api: dict[str, Api], node: Node, core: Core
) -> None:
    script = "for i in 1 2 3; do echo out-$i; echo err-$i >&2; done; exit 3"
    event_id = await create_event(api["user"], content=script)
    execution_id = await run(api["user"], event_id)
    done = await wait_for_status(api["user"], execution_id)
    assert done["status"] == "failed"

    items = await all_logs(api["user"], execution_id)
    assert [item["seq"] for item in items] == list(range(1, len(items) + 1))
    assert {item["target"] for item in items} == {"local"}
    by_stream = streams_of(items)
    # Each stream keeps its order; stdout and stderr interleave as the reads came.
    assert by_stream["stdout"] == ["out-1", "out-2", "out-3"]
    assert by_stream["stderr"] == ["err-1", "err-2", "err-3"]
    assert items[0]["stream"] == "system"
    assert items[0]["line"].startswith("attempt 1/1 on ")
    assert by_stream["system"][-1] == "exited with code 3"
    await assert_counter_matches(core, execution_id, len(items))


async def test_numbering_continues_without_gaps_across_retry_attempts(
    api: dict[str, Api], node: Node, core: Core
) -> None:
    script = "echo out; echo err >&2; exit 3"
    event_id = await create_event(api["user"], content=script, retries=1, retry_backoff_seconds=0)
    execution_id = await run(api["user"], event_id)
    done = await wait_unless_deadlocked(api["user"], core, execution_id)
    assert done["status"] == "failed"

    items = await all_logs(api["user"], execution_id)
    assert [item["seq"] for item in items] == list(range(1, len(items) + 1))
    by_stream = streams_of(items)
    assert by_stream["stdout"] == ["out", "out"]
    assert by_stream["stderr"] == ["err", "err"]
    system = by_stream["system"]
    assert system[0].startswith("attempt 1/2 on ")
    assert any(line.startswith("attempt 2/2 on ") for line in system)
    assert "retrying in 0 s" in system
    assert system.count("exited with code 3") == 2
    await assert_counter_matches(core, execution_id, len(items))


def streams_of(items: list[dict[str, Any]]) -> dict[str, list[str]]:
    by_stream: dict[str, list[str]] = {"stdout": [], "stderr": [], "system": []}
    for item in items:
        by_stream[item["stream"]].append(item["line"])
    return by_stream


async def assert_counter_matches(core: Core, execution_id: int, stored: int) -> None:
    """The execution's sequence counter matches what is stored: nothing reserved and lost."""
    async with core.db.acquire() as conn:
        log_seq = await conn.fetchval("SELECT log_seq FROM executions WHERE id = $1", execution_id)
        count = await conn.fetchval(
            "SELECT count(*) FROM log_lines WHERE execution_id = $1", execution_id
        )
    assert log_seq == count == stored


async def wait_unless_deadlocked(api: Api, core: Core, execution_id: int) -> dict[str, object]:
    """wait_for_status, but if a log insert is stuck behind a transaction of this process
    that waits for it (a deadlock PostgreSQL cannot see), break it and fail clearly instead
    of hanging the session's teardown.
    """
    try:
        return await wait_for_status(api, execution_id, timeout_s=15)
    except AssertionError:
        async with core.db.acquire() as conn:
            stuck = await conn.fetch(
                """SELECT pid, pg_blocking_pids(pid) AS blockers, left(query, 60) AS query
                   FROM pg_stat_activity
                   WHERE datname = current_database() AND wait_event_type = 'Lock'"""
            )
            blockers = {b for row in stuck for b in row["blockers"]}
            for pid in blockers:
                await conn.execute("SELECT pg_terminate_backend($1)", pid)
        if stuck:
            raise AssertionError(f"lock wait: {[dict(r) for r in stuck]}") from None
        raise


async def test_an_unterminated_last_line_and_a_long_line_are_kept(
    api: dict[str, Api], node: Node
) -> None:
    script = (
        "python3 -c \"import sys; sys.stdout.write('z' * 150000 + '\\n')\"; printf 'no newline'"
    )
    event_id = await create_event(api["user"], content=script)
    execution_id = await run(api["user"], event_id)
    assert (await wait_for_status(api["user"], execution_id))["status"] == "succeeded"
    output = [
        i["line"] for i in await all_logs(api["user"], execution_id) if i["stream"] == "stdout"
    ]
    assert "".join(output[:-1]) == "z" * 150000
    assert all(len(piece) <= 64 * 1024 for piece in output)
    assert output[-1] == "no newline"


async def test_output_over_the_cap_is_truncated_with_one_system_line(
    api: dict[str, Api], core: Core
) -> None:
    cap = 100_000
    script = 'for i in $(seq 1 5000); do echo "line $i of some output to fill the cap"; done'
    event_id = await create_event(api["user"], content=script)
    async with node_with(core, max_job_output_bytes=cap):
        execution_id = await run(api["user"], event_id)
        done = await wait_for_status(api["user"], execution_id)
    assert done["status"] == "succeeded"

    items = await all_logs(api["user"], execution_id)
    notices = [i["line"] for i in items if i["stream"] == "system" and "exceeded" in i["line"]]
    assert notices == ["output exceeded 100000 bytes: the rest of this job's output is discarded"]
    stdout = [i["line"] for i in items if i["stream"] == "stdout"]
    # The cap counts every stored line but the notice (system lines included), up to the
    # line that would have crossed it (lines here are under 50 bytes).
    stored = sum(len(i["line"].encode()) + 1 for i in items if i["line"] != notices[0])
    assert cap - 50 < stored <= cap
    # What was kept is the beginning, in order; the notice comes after it.
    assert stdout[:3] == [f"line {n} of some output to fill the cap" for n in (1, 2, 3)]
    notice_seq = next(i["seq"] for i in items if i["line"] == notices[0])
    assert notice_seq > max(i["seq"] for i in items if i["stream"] == "stdout")


def _reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := the current VmRSS


def _memory_kib(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None, f"{field} missing from /proc/self/status"
    return int(match.group(1))


async def test_50_mib_of_output_stays_within_memory_bounds(
    api: dict[str, Api], node: Node, core: Core
) -> None:
    """50 MiB printed, 10 MiB (the default cap) stored; this process's peak RSS barely moves.

    The peak is reset (/proc/self/clear_refs) before the run, so VmHWM afterwards is the
    peak during the run: the node, the reader and the writer all live in this process.
    """
    assert core.settings.max_job_output_bytes == 10 * MIB
    script = (
        "import sys\n"
        "block = ('x' * 99 + '\\n') * 1024  # 100 KiB of 100-byte lines\n"
        "for _ in range(512):  # 50 MiB\n"
        "    sys.stdout.write(block)\n"
        "sys.stdout.flush()\n"
    )
    event_id = await create_event(api["user"], language="python", content=script)
    _reset_peak_rss()
    before_kib = _memory_kib("VmRSS")
    sampled_kib = before_kib
    started = asyncio.get_running_loop().time()

    async def sample() -> None:  # a second opinion on the peak, in case the reset failed
        nonlocal sampled_kib
        while True:
            sampled_kib = max(sampled_kib, _memory_kib("VmRSS"))
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    execution_id = await run(api["user"], event_id)
    done = await wait_for_status(api["user"], execution_id, timeout_s=90)
    sampler.cancel()

    elapsed_s = asyncio.get_running_loop().time() - started
    peak_growth_mib = (_memory_kib("VmHWM") - before_kib) / 1024
    sampled_growth_mib = (sampled_kib - before_kib) / 1024
    print(
        f"\n50 MiB output in {elapsed_s:.1f} s: RSS {before_kib / 1024:.0f} MiB before, "
        f"peak growth {peak_growth_mib:.1f} MiB (sampled {sampled_growth_mib:.1f} MiB)"
    )
    assert done["status"] == "succeeded", done
    # Well under what holding the output would take (50 MiB of bytes, more as str objects).
    assert peak_growth_mib < 64, f"peak RSS grew by {peak_growth_mib:.1f} MiB"
    assert sampled_growth_mib < 64, f"RSS grew by {sampled_growth_mib:.1f} MiB"

    async with core.db.acquire() as conn:
        row = await conn.fetchrow(
            """SELECT count(*) FILTER (WHERE stream = 'stdout') AS lines,
                      coalesce(sum(octet_length(line) + 1) FILTER (WHERE stream = 'stdout'), 0)
                        AS bytes,
                      count(*) FILTER (WHERE stream = 'system' AND line LIKE 'output exceeded%')
                        AS notices
               FROM log_lines WHERE execution_id = $1""",
            execution_id,
        )
    assert row["notices"] == 1
    # ≈ 10 MiB kept: all of it but the attempt line and less than one 100-byte line.
    assert 10 * MIB - 200 < row["bytes"] <= 10 * MIB
    assert row["bytes"] == 100 * row["lines"]


class FlakyPool:
    """A pool whose first `failures` acquisitions fail as if the database were down."""

    def __init__(self, pool: asyncpg.Pool, failures: int) -> None:
        self._pool = pool
        self.failures = failures

    def acquire(self) -> Any:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionRefusedError("database unreachable")
        return self._pool.acquire()


async def an_execution(api: Api, core: Core) -> int:
    event_id = await create_event(api)
    async with core.db.acquire() as conn:
        return int(
            await conn.fetchval(
                """INSERT INTO executions (event_id, owner_id, status, trigger)
                   SELECT id, owner_id, 'running', 'manual' FROM events WHERE id = $1
                   RETURNING id""",
                event_id,
            )
        )


async def test_a_database_outage_delays_lines_without_blocking_or_losing_them(
    api: dict[str, Api], core: Core, monkeypatch: Any
) -> None:
    monkeypatch.setattr(sink, "RETRY_AFTER_S", 0.05)
    execution_id = await an_execution(api["user"], core)
    pool = FlakyPool(core.db, failures=3)
    writer = JobLogWriter(
        pool,  # type: ignore[arg-type]
        execution_id=execution_id,
        job_id=None,
        target="local",
        masker=Masker([SECRET_VARIABLE]),
        batch_lines=4,
        flush_interval_s=0.01,
    )
    async with asyncio.timeout(5):  # writes never raise and never wait for the database
        for n in range(1, 11):
            await writer.write(LogStream.stdout, f"line {n} {SECRET_VARIABLE}")
    await writer.close()

    assert pool.failures == 0 and writer.lines_lost == 0
    async with core.db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT seq, line FROM log_lines WHERE execution_id = $1 ORDER BY seq", execution_id
        )
    assert [(r["seq"], r["line"]) for r in rows] == [(n, f"line {n} {MASK}") for n in range(1, 11)]


async def test_a_database_that_stays_down_costs_the_lines_but_not_the_job(
    api: dict[str, Api], core: Core, monkeypatch: Any
) -> None:
    monkeypatch.setattr(sink, "RETRY_AFTER_S", 0.01)
    execution_id = await an_execution(api["user"], core)
    writer = JobLogWriter(
        FlakyPool(core.db, failures=10_000),  # type: ignore[arg-type]
        execution_id=execution_id,
        job_id=None,
        target="local",
        masker=Masker(),
        batch_lines=2,
    )
    async with asyncio.timeout(5):
        for n in range(5):
            await writer.write(LogStream.stderr, f"line {n}")
        await writer.close()
    assert writer.lines_lost == 5
