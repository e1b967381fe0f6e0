"""Seeding for bench/ui_pages.py: a fresh database filled with set-based SQL (generate_series).

Users (admin, two users, a viewer), events (active with schedules, paused, drafts),
servers, variables, tool credentials, executions over 30 days with one job each, log lines
for the newest runs (one run with 5,000 lines), and two workflows with runs. `seed` returns
the ids that fill the pages' path parameters and the row counts.
"""

from __future__ import annotations

import argparse
import time

import asyncpg
from common import say

from cronium.core import Core
from cronium.security.passwords import hash_password

PASSWORD = "bench-password-123"  # of every seeded user


async def seed(
    conn: asyncpg.Connection, core: Core, args: argparse.Namespace
) -> tuple[dict[str, int], dict[str, int]]:
    """Everything in a few set-based statements: (ids to fill path parameters, row counts)."""
    started = time.monotonic()
    pw = hash_password(PASSWORD)
    users = await conn.fetch(
        """INSERT INTO users (email, password_hash, role)
           SELECT e, $1, r::user_role FROM unnest($2::text[], $3::text[]) AS t(e, r)
           RETURNING id, role::text""",
        pw,
        ["admin@bench.example", "user@bench.example", "ops@bench.example", "viewer@bench.example"],
        ["admin", "user", "user", "viewer"],
    )
    admin_id, user_id, ops_id = users[0]["id"], users[1]["id"], users[2]["id"]
    owners = [admin_id, user_id, ops_id]
    await conn.execute(
        """INSERT INTO events (owner_id, name, description, type, language, content, status,
                               schedule_kind, cron, timezone, interval_seconds, next_fire_at,
                               tags, timeout_seconds, retries)
           SELECT ($1::bigint[])[1 + i % 3], 'event-' || lpad(i::text, 4, '0'),
                  'Benchmark event ' || i, 'script',
                  (ARRAY['bash','python','node'])[1 + i % 3]::script_language,
                  'echo "run ' || i || '"',
                  CASE WHEN i % 20 < 14 THEN 'active' WHEN i % 20 < 17 THEN 'paused'
                       WHEN i % 20 < 19 THEN 'draft' ELSE 'archived' END::event_status,
                  CASE WHEN i % 4 = 0 THEN 'interval' WHEN i % 4 = 3 THEN 'manual'
                       ELSE 'cron' END::schedule_kind,
                  CASE WHEN i % 4 IN (1, 2) THEN '*/' || (1 + i % 15) || ' * * * *' END,
                  'Europe/Berlin',
                  CASE WHEN i % 4 = 0 THEN 60 * (1 + i % 30) END,
                  CASE WHEN i % 20 < 14 AND i % 4 <> 3
                       THEN now() + make_interval(secs => (i * 37) % 7200) END,
                  ARRAY['bench', 'team-' || (i % 5)], 3600, i % 3
           FROM generate_series(1, $2) AS i""",
        owners,
        args.events,
    )
    secret = core.cipher.encrypt_str("not-a-real-key")
    await conn.execute(
        """INSERT INTO servers (owner_id, name, host, port, username, auth_type,
                                secret_encrypted, status)
           SELECT ($1::bigint[])[1 + i % 3], 'server-' || i, '10.0.0.' || i, 22, 'deploy',
                  'key', $2, 'online'
           FROM generate_series(1, 12) AS i""",
        owners,
        secret,
    )
    await conn.execute(
        """INSERT INTO variables (owner_id, key, value, secret, description)
           SELECT ($1::bigint[])[1 + i % 3], 'VAR_' || i, to_jsonb('value ' || i), false, ''
           FROM generate_series(1, 60) AS i""",
        owners,
    )
    cred = core.cipher.encrypt_json({"webhook_url": "http://127.0.0.1:9/hook"})
    await conn.execute(
        """INSERT INTO tool_credentials (owner_id, name, tool, config_encrypted)
           SELECT ($1::bigint[])[1 + i % 3], 'slack-' || i, 'slack', $2
           FROM generate_series(1, 6) AS i""",
        owners,
        cred,
    )
    await conn.execute(
        """INSERT INTO action_templates (owner_id, name, tool, action, params)
           SELECT ($1::bigint[])[1 + i % 3], 'notify-' || i, 'slack', 'slack.send_message',
                  jsonb_build_object('text', '{{event.name}} finished: {{execution.status}}')
           FROM generate_series(1, 6) AS i""",
        owners,
    )
    # 10,000 runs over 30 days, newest first in id order reversed (older ids are older runs).
    await conn.execute(
        """WITH ev AS (SELECT id, owner_id, row_number() OVER (ORDER BY id) - 1 AS k,
                              count(*) OVER () AS n FROM events)
           INSERT INTO executions (event_id, owner_id, status, trigger, input, output, created_at,
                                   started_at, finished_at, error, log_seq)
           SELECT ev.id, ev.owner_id, s.status::execution_status,
                  (ARRAY['schedule','schedule','schedule','manual','webhook','action'])
                      [1 + i % 6]::execution_trigger,
                  jsonb_build_object('n', i),
                  CASE WHEN i % 3 = 0 THEN jsonb_build_object('rows', i % 97, 'ok', true) END,
                  t.created, t.created + interval '150 ms',
                  CASE WHEN s.status NOT IN ('queued', 'running')
                       THEN t.created + make_interval(secs => 0.2 + (i % 40)) END,
                  CASE WHEN s.status IN ('failed', 'timed_out') THEN 'exit status 1' END,
                  0
           FROM generate_series(1, $1) AS i
           CROSS JOIN LATERAL (SELECT now() - make_interval(secs => ($1 - i) * 259.2)
                               AS created) AS t
           CROSS JOIN LATERAL (SELECT CASE
                 WHEN i > $1 - 3 THEN 'running' WHEN i > $1 - 6 THEN 'queued'
                 WHEN (i * 7919) % 100 < 82 THEN 'succeeded'
                 WHEN (i * 7919) % 100 < 94 THEN 'failed'
                 WHEN (i * 7919) % 100 < 97 THEN 'timed_out'
                 ELSE 'cancelled' END AS status) AS s
           JOIN ev ON ev.k = (i * 31) % ev.n""",
        args.executions,
    )
    await conn.execute(
        """INSERT INTO jobs (execution_id, event_id, target, status, mode, attempt, max_attempts,
                             run_after, exit_code, created_at, started_at, finished_at,
                             lease_owner, lease_expires_at)
           SELECT x.id, x.event_id, 'local',
                  CASE x.status WHEN 'partial' THEN 'failed' ELSE x.status::text END::job_status,
                  'local', 1, 1, x.created_at,
                  CASE x.status WHEN 'succeeded' THEN 0 WHEN 'failed' THEN 1 END,
                  x.created_at, CASE WHEN x.status <> 'queued' THEN x.started_at END,
                  x.finished_at,
                  CASE WHEN x.status = 'running' THEN 'bench-node' END,
                  CASE WHEN x.status = 'running' THEN now() + interval '1 hour' END
           FROM executions x"""
    )
    await conn.execute("UPDATE executions SET started_at = NULL WHERE status = 'queued'")
    # Log lines: 50 for each of the newest 200 runs, 5,000 for one big finished run of the
    # user (admins see it too, so both personas open the same pages).
    big = int(
        await conn.fetchval(
            """SELECT max(id) FROM executions
               WHERE owner_id = $1 AND status NOT IN ('queued', 'running')""",
            user_id,
        )
    )
    await conn.execute(
        """INSERT INTO log_lines (execution_id, job_id, seq, stream, target, ts, line)
           SELECT x.id, j.id, s, CASE WHEN s % 10 = 0 THEN 'stderr' WHEN s = 1 THEN 'system'
                                      ELSE 'stdout' END::log_stream,
                  'local', x.created_at + make_interval(secs => s * 0.01),
                  'line ' || s || ' of run ' || x.id || ': processing item ' || (s * 17) % 1000
           FROM (SELECT id, created_at FROM executions ORDER BY id DESC LIMIT 200) AS x
           JOIN jobs j ON j.execution_id = x.id
           CROSS JOIN LATERAL generate_series(1, CASE WHEN x.id = $1 THEN 5000 ELSE 50 END) AS s""",
        big,
    )
    await conn.execute(
        """UPDATE executions x SET log_seq = l.n
           FROM (SELECT execution_id, max(seq) AS n FROM log_lines GROUP BY execution_id) l
           WHERE l.execution_id = x.id"""
    )
    ids = await _seed_workflows(conn, owners)
    await conn.execute(
        """INSERT INTO nodes (id, hostname, roles, version)
           VALUES ('bench-node', 'bench-host', 'api,scheduler,worker', 'bench')"""
    )
    await conn.execute("ANALYZE")
    row = await conn.fetchrow(
        """SELECT (SELECT max(id) FROM executions WHERE owner_id = $1) AS execution,
                  (SELECT min(id) FROM events WHERE owner_id = $1) AS event,
                  (SELECT min(id) FROM servers WHERE owner_id = $1) AS server,
                  (SELECT min(id) FROM variables WHERE owner_id = $1) AS variable,
                  (SELECT min(id) FROM tool_credentials WHERE owner_id = $1) AS credential,
                  (SELECT min(id) FROM action_templates WHERE owner_id = $1) AS template""",
        user_id,
    )
    ids.update({k: int(v) for k, v in row.items()})
    ids.update(big_execution=big, user=user_id, admin=admin_id)
    counts = await conn.fetchrow(
        """SELECT (SELECT count(*) FROM events) AS events,
                  (SELECT count(*) FROM executions) AS executions,
                  (SELECT count(*) FROM jobs) AS jobs,
                  (SELECT count(*) FROM log_lines) AS log_lines,
                  (SELECT count(*) FROM workflow_runs) AS workflow_runs"""
    )
    say(f"seeded {dict(counts)} in {time.monotonic() - started:.1f} s")
    return ids, {k: int(v) for k, v in counts.items()}


async def _seed_workflows(conn: asyncpg.Connection, owners: list[int]) -> dict[str, int]:
    """Two workflows of three steps (a → b, a → c) by the user, with 20 runs each."""
    ids: dict[str, int] = {}
    for w in range(2):
        owner = owners[1]
        events = [
            r["id"]
            for r in await conn.fetch(
                "SELECT id FROM events WHERE owner_id = $1 ORDER BY id LIMIT 3 OFFSET $2",
                owner,
                w * 3,
            )
        ]
        wf = await conn.fetchval(
            """INSERT INTO workflows (owner_id, name, status) VALUES ($1, $2, 'active')
               RETURNING id""",
            owner,
            f"workflow-{w}",
        )
        nodes = [
            await conn.fetchval(
                """INSERT INTO workflow_nodes (workflow_id, name, event_id, position)
                   VALUES ($1, $2, $3, jsonb_build_object('x', $4::int, 'y', 0)) RETURNING id""",
                wf,
                name,
                event_id,
                k * 200,
            )
            for k, (name, event_id) in enumerate(zip("abc", events, strict=True))
        ]
        await conn.execute(
            """INSERT INTO workflow_edges (workflow_id, source_id, target_id, type)
               VALUES ($1, $2, $3, 'on_success'), ($1, $2, $4, 'always')""",
            wf,
            *nodes,
        )
        await conn.execute(
            """WITH runs AS (
                 INSERT INTO workflow_runs (workflow_id, owner_id, status, trigger, created_at,
                                            finished_at)
                 SELECT $1, $2, 'succeeded', 'manual', now() - make_interval(hours => i),
                        now() - make_interval(hours => i) + interval '5 s'
                 FROM generate_series(1, 20) AS i RETURNING id)
               INSERT INTO workflow_node_runs (run_id, node_id, status)
               SELECT runs.id, n, 'succeeded' FROM runs, unnest($3::bigint[]) AS n""",
            wf,
            owner,
            nodes,
        )
        ids["workflow"] = wf
        ids["workflow_run"] = int(
            await conn.fetchval("SELECT max(id) FROM workflow_runs WHERE workflow_id = $1", wf)
        )
    return ids
