-- The whole queue protocol on one screen. Each query: `-- name: <name>`, then a one-line
-- purpose, then the SQL. Loaded once by cronium.engine.sql; only cronium.engine.queue runs them.

-- name: claim_jobs
-- Atomically take up to $2 ready jobs for node $1 with a lease of $3 seconds.
WITH ready AS (
    SELECT id FROM jobs
    WHERE status = 'queued' AND run_after <= now()
    ORDER BY priority DESC, run_after, id
    FOR UPDATE SKIP LOCKED
    LIMIT $2
)
UPDATE jobs j
SET status = 'running',
    lease_owner = $1,
    lease_expires_at = now() + make_interval(secs => $3),
    started_at = now(),
    finished_at = NULL
FROM ready
WHERE j.id = ready.id
RETURNING j.id, j.execution_id, j.event_id, j.target, j.server_id, j.attempt, j.max_attempts,
          j.cancel_requested;

-- name: heartbeat
-- Renew the leases of node $1's running jobs; report which of them were asked to cancel.
UPDATE jobs
SET lease_expires_at = now() + make_interval(secs => $2)
WHERE lease_owner = $1 AND status = 'running'
RETURNING id, cancel_requested;

-- name: finish_job
-- Terminal transition of job $1, only by its lease owner $2 and only once.
UPDATE jobs
SET status = $3::job_status, exit_code = $4, error = $5, output = coalesce($6::jsonb, output),
    finished_at = now(), lease_owner = NULL, lease_expires_at = NULL, runtime_token_hash = NULL
WHERE id = $1 AND lease_owner = $2 AND status = 'running'
RETURNING id, execution_id, event_id;

-- name: retry_job
-- Put running job $1 (leased by $2) back in the queue for attempt+1 after $3 seconds.
UPDATE jobs
SET status = 'queued', attempt = attempt + 1, error = $4,
    run_after = now() + make_interval(secs => $3),
    lease_owner = NULL, lease_expires_at = NULL, started_at = NULL, runtime_token_hash = NULL
WHERE id = $1 AND lease_owner = $2 AND status = 'running'
RETURNING id, execution_id;

-- name: recover_expired
-- Jobs whose node stopped heartbeating: retry them by policy or fail them, once.
WITH expired AS (
    SELECT id, lease_owner FROM jobs
    WHERE status = 'running' AND lease_expires_at < now()
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs j
SET status = CASE WHEN j.attempt < j.max_attempts AND NOT j.cancel_requested
                  THEN 'queued'::job_status ELSE 'failed'::job_status END,
    attempt = CASE WHEN j.attempt < j.max_attempts AND NOT j.cancel_requested
                   THEN j.attempt + 1 ELSE j.attempt END,
    run_after = now() + make_interval(secs => j.retry_backoff_seconds * power(2, j.attempt - 1)),
    error = 'node ' || expired.lease_owner || ' stopped renewing its lease (crashed or lost)',
    finished_at = CASE WHEN j.attempt < j.max_attempts AND NOT j.cancel_requested
                       THEN NULL ELSE now() END,
    lease_owner = NULL, lease_expires_at = NULL, runtime_token_hash = NULL
FROM expired
WHERE j.id = expired.id
RETURNING j.id, j.execution_id, j.event_id, j.status, expired.lease_owner AS lost_owner;

-- name: request_cancel
-- Flag every unfinished job of execution $1 for cancellation; return the running ones.
UPDATE jobs SET cancel_requested = true
WHERE execution_id = $1 AND status IN ('queued', 'waiting', 'running')
RETURNING id, status, lease_owner;

-- name: cancel_pending
-- Jobs of execution $1 that never started are cancelled right away.
UPDATE jobs SET status = 'cancelled', finished_at = now(), error = 'cancelled before it started',
                runtime_token_hash = NULL
WHERE execution_id = $1 AND status IN ('queued', 'waiting')
RETURNING id;

-- name: start_job
-- Job $1 of execution $2 starts: the execution turns running (once, with NOTIFY), the job
-- gets its runtime token hash $3 and mode $4, and the run's event, input and owner's secret
-- blobs come back, all in one round trip. No event columns when the event is gone.
WITH started AS (
    UPDATE executions SET status = 'running', started_at = coalesce(started_at, now())
    WHERE id = $2 AND status = 'queued'
    RETURNING id
), notified AS (
    SELECT pg_notify('cronium_status', id::text) FROM started
), minted AS (
    UPDATE jobs SET runtime_token_hash = $3, mode = $4 WHERE id = $1
    RETURNING execution_id, event_id
)
SELECT e.id, e.name, e.type::text AS type, e.language::text AS language, e.content,
       e.http_spec, e.env_encrypted, e.image, e.cpu, e.memory_mb, e.pids, e.network,
       e.timeout_seconds, e.overlap_policy::text AS overlap_policy, e.max_concurrent,
       x.input, x.owner_id,
       (SELECT count(*) FROM notified) AS execution_started,
       ARRAY(SELECT v.value_encrypted FROM variables v
             WHERE v.owner_id = x.owner_id AND v.secret AND v.value_encrypted IS NOT NULL
             ORDER BY v.id) AS secret_variables,
       ARRAY(SELECT t.config_encrypted FROM tool_credentials t
             WHERE t.owner_id = x.owner_id ORDER BY t.id) AS tool_credentials,
       ARRAY(SELECT t.tool::text FROM tool_credentials t
             WHERE t.owner_id = x.owner_id ORDER BY t.id) AS tool_kinds,
       ARRAY(SELECT s.secret_encrypted FROM servers s
             WHERE s.owner_id = x.owner_id ORDER BY s.id) AS server_secrets,
       ARRAY(SELECT s.passphrase_encrypted FROM servers s
             WHERE s.owner_id = x.owner_id AND s.passphrase_encrypted IS NOT NULL
             ORDER BY s.id) AS server_passphrases
FROM (SELECT 1) AS one
LEFT JOIN (minted j JOIN executions x ON x.id = j.execution_id JOIN events e ON e.id = j.event_id)
    ON true;

-- name: execution_secrets
-- What output of execution $1 must not show, encrypted: its event's env and its owner's
-- secret variables, tool credentials and server secrets (the blobs start_job loads).
SELECT e.env_encrypted,
       ARRAY(SELECT v.value_encrypted FROM variables v
             WHERE v.owner_id = x.owner_id AND v.secret AND v.value_encrypted IS NOT NULL
             ORDER BY v.id) AS secret_variables,
       ARRAY(SELECT t.config_encrypted FROM tool_credentials t
             WHERE t.owner_id = x.owner_id ORDER BY t.id) AS tool_credentials,
       ARRAY(SELECT t.tool::text FROM tool_credentials t
             WHERE t.owner_id = x.owner_id ORDER BY t.id) AS tool_kinds,
       ARRAY(SELECT s.secret_encrypted FROM servers s
             WHERE s.owner_id = x.owner_id ORDER BY s.id) AS server_secrets,
       ARRAY(SELECT s.passphrase_encrypted FROM servers s
             WHERE s.owner_id = x.owner_id AND s.passphrase_encrypted IS NOT NULL
             ORDER BY s.id) AS server_passphrases
FROM executions x JOIN events e ON e.id = x.event_id
WHERE x.id = $1;

-- name: lock_execution
-- Serialise the settling of execution $1 between jobs that end at the same time.
SELECT 1 FROM executions WHERE id = $1 FOR UPDATE;

-- name: finish_execution
-- When no job of execution $1 is left unfinished, settle its status once and NOTIFY; the
-- row returned tells the caller it won and must fire follow-ups (if the event has actions).
WITH counts AS (
    SELECT count(*) FILTER (WHERE status IN ('queued', 'waiting', 'running')) AS open,
           count(*) AS total,
           count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) FILTER (WHERE status = 'timed_out') AS timed_out,
           count(*) FILTER (WHERE status = 'cancelled') AS cancelled
    FROM jobs WHERE execution_id = $1
), outcome AS (
    SELECT CASE
        WHEN succeeded = total THEN 'succeeded'
        WHEN succeeded > 0 THEN 'partial'
        WHEN cancelled = total THEN 'cancelled'
        WHEN timed_out = total THEN 'timed_out'
        WHEN cancelled > 0 AND failed = 0 AND timed_out = 0 THEN 'cancelled'
        WHEN timed_out > 0 AND failed = 0 THEN 'timed_out'
        ELSE 'failed' END::execution_status AS status
    FROM counts WHERE open = 0 AND total > 0
), settled AS (
    UPDATE executions e
    SET status = outcome.status, finished_at = now(),
        started_at = coalesce(e.started_at, now()),
        error = (SELECT string_agg(DISTINCT j.error, '; ') FROM jobs j
                 WHERE j.execution_id = $1 AND j.status <> 'succeeded' AND j.error IS NOT NULL),
        output = coalesce(e.output, (SELECT j.output FROM jobs j WHERE j.execution_id = $1
                                     AND j.output IS NOT NULL ORDER BY j.id LIMIT 1)),
        condition = coalesce(e.condition, (SELECT j.condition FROM jobs j
                                           WHERE j.execution_id = $1 AND j.condition IS NOT NULL
                                           ORDER BY j.id LIMIT 1))
    FROM outcome
    WHERE e.id = $1
      AND e.status NOT IN ('succeeded', 'failed', 'timed_out', 'cancelled', 'partial')
    RETURNING e.id, e.event_id, e.status, e.owner_id, e.workflow_run_id
)
SELECT s.id, s.event_id, s.status, s.owner_id,
       (EXISTS (SELECT 1 FROM event_actions a WHERE a.event_id = s.event_id)
        OR s.workflow_run_id IS NOT NULL) AS has_actions,
       pg_notify('cronium_status', s.id::text)
FROM settled s;

-- name: promote_waiting
-- Under event $1's row lock: let waiting executions start while the event has a free slot
-- ($2 = the limit of running-or-queued executions).
WITH busy AS (
    SELECT count(DISTINCT execution_id) AS n FROM jobs
    WHERE event_id = $1 AND status IN ('queued', 'running')
), next_executions AS (
    SELECT DISTINCT execution_id FROM jobs
    WHERE event_id = $1 AND status = 'waiting'
    ORDER BY execution_id
    LIMIT greatest($2 - (SELECT n FROM busy), 0)
)
UPDATE jobs SET status = 'queued', run_after = now()
WHERE status = 'waiting' AND execution_id IN (SELECT execution_id FROM next_executions)
RETURNING id, execution_id;

-- name: lock_event
-- Serialise admission decisions for event $1.
SELECT id FROM events WHERE id = $1 FOR UPDATE;

-- name: due_events
-- Lock up to $2 events due at $1 with what firing them needs (busy: an execution is still
-- open; the servers they run on); rows another transaction holds are skipped, never waited
-- for. $3: only this event (NULL: any).
SELECT e.id, e.owner_id, e.schedule_kind::text AS kind, e.cron, e.timezone,
       e.interval_seconds, e.run_at, e.start_at, e.next_fire_at,
       e.misfire_policy::text AS misfire, e.misfire_window_seconds, e.max_executions,
       e.execution_count, e.run_local, e.overlap_policy::text AS overlap, e.max_concurrent,
       e.retries, e.retry_backoff_seconds, e.input,
       e.overlap_policy = 'skip' AND EXISTS (
           SELECT 1 FROM jobs j
           WHERE j.event_id = e.id AND j.status IN ('waiting', 'queued', 'running')) AS busy,
       ARRAY(SELECT s.id FROM event_servers es JOIN servers s ON s.id = es.server_id
             WHERE es.event_id = e.id ORDER BY s.id) AS server_ids,
       ARRAY(SELECT s.name FROM event_servers es JOIN servers s ON s.id = es.server_id
             WHERE es.event_id = e.id ORDER BY s.id) AS server_names
FROM events e
WHERE e.status = 'active' AND e.next_fire_at <= $1 AND ($3::bigint IS NULL OR e.id = $3)
ORDER BY e.next_fire_at
LIMIT $2
FOR UPDATE OF e SKIP LOCKED;

-- name: insert_fire_executions
-- One execution per scheduled fire (event $1[i], time $3[i]); a fire already made is
-- refused by the (event, fire time) key and missing from the rows returned.
INSERT INTO executions (event_id, owner_id, status, trigger, triggered_by, scheduled_for, input,
                        chain_depth)
SELECT f.event_id, f.owner_id, 'queued', f.trigger::execution_trigger, f.triggered_by,
       f.scheduled_for, f.input::jsonb, 0
FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[], $4::text[], $5::text[], $6::text[])
     AS f(event_id, owner_id, scheduled_for, trigger, triggered_by, input)
ON CONFLICT (event_id, scheduled_for) WHERE scheduled_for IS NOT NULL DO NOTHING
RETURNING id, event_id, scheduled_for;

-- name: insert_jobs
-- The jobs of new executions (one row per array index), then one NOTIFY to wake workers.
WITH inserted AS (
    INSERT INTO jobs (execution_id, event_id, target, server_id, status, priority, max_attempts,
                      retry_backoff_seconds)
    SELECT t.execution_id, t.event_id, t.target, t.server_id, t.status::job_status, t.priority,
           t.max_attempts, t.backoff
    FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::int[],
                $7::int[], $8::int[])
         AS t(execution_id, event_id, target, server_id, status, priority, max_attempts, backoff)
    RETURNING execution_id
)
SELECT pg_notify('cronium_jobs', 'enqueued') FROM (SELECT 1 FROM inserted LIMIT 1) AS any_job;

-- name: lock_events
-- Admission's event locks for several events at once, in id order (no deadlock between two).
SELECT id FROM events WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE;

-- name: record_fires
-- One schedule_fires row per (event, fire time) of the arrays; the first writer wins.
INSERT INTO schedule_fires (event_id, fire_time, outcome, execution_id, lag_ms)
SELECT f.event_id, f.fire_time, f.outcome::fire_outcome, f.execution_id, f.lag_ms
FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::bigint[], $5::float8[])
     AS f(event_id, fire_time, outcome, execution_id, lag_ms)
ON CONFLICT (event_id, fire_time) DO NOTHING;

-- name: advance_events
-- After a pass: each event's next fire, runs added and status (one row per array index).
UPDATE events e
SET next_fire_at = a.next_fire_at, execution_count = e.execution_count + a.fired,
    status = a.status::event_status
FROM unnest($1::bigint[], $2::timestamptz[], $3::int[], $4::text[])
     AS a(id, next_fire_at, fired, status)
WHERE e.id = a.id;

-- name: pause_unschedulable
-- Events $1 whose schedule failed stop firing (paused); each reason $2 goes to the audit log.
WITH paused AS (
    UPDATE events SET status = 'paused', next_fire_at = NULL
    WHERE id = ANY($1::bigint[])
    RETURNING id
)
INSERT INTO audit_log (action, actor, target_type, target_id, details)
SELECT 'event.schedule_failed', 'scheduler', 'event', f.id::text,
       jsonb_build_object('error', f.error)
FROM unnest($1::bigint[], $2::text[]) AS f(id, error)
JOIN paused p ON p.id = f.id;

-- name: append_logs
-- Store a batch of masked lines of one execution and wake live viewers (NOTIFY carries ids).
WITH stored AS (
    INSERT INTO log_lines (execution_id, job_id, seq, stream, target, ts, line)
    SELECT $1, $2, s.seq, s.stream::log_stream, $3, s.ts, s.line
    FROM unnest($4::bigint[], $5::text[], $6::timestamptz[], $7::text[]) AS s(seq, stream, ts, line)
    RETURNING seq
)
SELECT pg_notify('cronium_logs', $1::text || ':' || (SELECT max(seq) FROM stored)::text);

-- name: store_logs
-- Number a batch of masked lines of execution $1 (several jobs, several nodes share the
-- sequence), store them and wake live viewers, in one statement; returns the last seq.
WITH reserved AS (
    UPDATE executions SET log_seq = log_seq + cardinality($4::text[]) WHERE id = $1
    RETURNING log_seq - cardinality($4::text[]) AS first
), stored AS (
    INSERT INTO log_lines (execution_id, job_id, seq, stream, target, ts, line)
    SELECT $1, $2, r.first + s.n, s.stream::log_stream, $3, s.ts, s.line
    FROM reserved r,
         unnest($4::text[], $5::timestamptz[], $6::text[]) WITH ORDINALITY AS s(stream, ts, line, n)
    RETURNING seq
)
SELECT last, pg_notify('cronium_logs', $1::text || ':' || last::text)
FROM (SELECT max(seq) AS last FROM stored) AS m
WHERE last IS NOT NULL;

-- name: reserve_log_seq
-- Reserve $2 consecutive sequence numbers of execution $1 (several jobs, several nodes).
UPDATE executions SET log_seq = log_seq + $2 WHERE id = $1 RETURNING log_seq - $2 AS first;

-- name: node_seen
-- Register or refresh node $1.
INSERT INTO nodes (id, hostname, roles, version, started_at, last_seen_at)
VALUES ($1, $2, $3, $4, now(), now())
ON CONFLICT (id) DO UPDATE SET last_seen_at = now();
