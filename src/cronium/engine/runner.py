"""Turn a claimed job into an executor call: load, decrypt, choose the executor, mask."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from cronium.core import Core
from cronium.domain.servers import load_server_spec
from cronium.engine import queue
from cronium.engine.queue import ClaimedJob
from cronium.engine.sql import q
from cronium.executors.base import ExecutorError, JobSpec
from cronium.logs.capture import Masker, value_secrets
from cronium.security.tokens import hash_token
from cronium.tools.credentials import credential_secrets


@dataclass(frozen=True)
class LoadedJob:
    spec: JobSpec
    masker: Masker
    event_type: str
    concurrency_limit: int | None


def concurrency_limit(overlap_policy: str, max_concurrent: int | None) -> int | None:
    """How many executions of an event may be queued or running at once (None: no limit)."""
    if max_concurrent is not None:
        return max_concurrent
    return 1 if overlap_policy in ("queue", "skip") else None


CONTAINER_RUNTIME_DIR = "/run/cronium"


def runtime_url(mode: str, core: Core) -> str:
    """Where a script of this mode reaches the Runtime API."""
    if mode == "container":
        return f"unix://{CONTAINER_RUNTIME_DIR}/{core.settings.runtime_socket_path.name}"
    return f"unix://{core.settings.runtime_socket_path}"


async def load_job(
    core: Core, conn: asyncpg.Connection, job: ClaimedJob, mode: str, token: str
) -> LoadedJob:
    """Start the job (execution running, token hash stored) and load its run in one round trip."""
    row = await queue.start_job(conn, job, hash_token(token), mode)
    if row["id"] is None:
        raise ExecutorError("the job's event no longer exists", permanent=True)
    env: dict[str, str] = (
        core.cipher.decrypt_json(row["env_encrypted"]) if row["env_encrypted"] else {}
    )
    secrets = [token, *env.values(), *_secret_values(core, row)]
    runtime_env = {
        "CRONIUM_RUNTIME_URL": runtime_url(mode, core),
        "CRONIUM_EXECUTION_TOKEN": token,
        "CRONIUM_EXECUTION_ID": str(job.execution_id),
        "CRONIUM_JOB_ID": str(job.id),
        "CRONIUM_EVENT_ID": str(row["id"]),
        "CRONIUM_EXECUTION_MODE": mode,
    }
    server = None
    if job.server_id is not None:
        server = await load_server_spec(core.cipher, conn, job.server_id)
        if server is None:
            raise ExecutorError("the job's server no longer exists", permanent=True)
    spec = JobSpec(
        job_id=job.id,
        execution_id=job.execution_id,
        event_id=row["id"],
        event_name=row["name"],
        kind=row["type"],
        target=job.target,
        timeout_s=float(row["timeout_seconds"]),
        language=row["language"],
        content=row["content"],
        env=env,
        runtime_env=runtime_env,
        input=row["input"],
        http=row["http_spec"],
        image=row["image"],
        cpu=row["cpu"],
        memory_mb=row["memory_mb"],
        pids=row["pids"],
        network=row["network"],
        kill_grace_s=core.settings.kill_grace_s,
        installation_id=core.installation_id,
        server=server,
    )
    return LoadedJob(
        spec=spec,
        masker=Masker(secrets),
        event_type=row["type"],
        concurrency_limit=concurrency_limit(row["overlap_policy"], row["max_concurrent"]),
    )


def _secret_values(core: Core, row: asyncpg.Record) -> list[str]:
    """The owner's secret variables, tool credential strings and server secrets: masked."""
    values: list[str] = []
    for blob in row["secret_variables"]:
        values.extend(value_secrets(core.cipher.decrypt_json(blob)))
    for blob, tool in zip(row["tool_credentials"], row["tool_kinds"], strict=True):
        values.extend(credential_secrets(tool, core.cipher.decrypt_json(blob)))
    values.extend(core.cipher.decrypt_str(blob) for blob in row["server_secrets"])
    values.extend(core.cipher.decrypt_str(blob) for blob in row["server_passphrases"])
    return values


async def execution_masker(
    core: Core, conn: asyncpg.Connection, execution_id: int, *extra: str
) -> Masker:
    """A masker for an execution whose job runs elsewhere (or has ended): its event's env
    and its owner's secrets, loaded from the database; `extra` adds more (a token)."""
    row = await conn.fetchrow(q("execution_secrets"), execution_id)
    if row is None:
        return Masker(extra)
    env = core.cipher.decrypt_json(row["env_encrypted"]) if row["env_encrypted"] else {}
    return Masker([*extra, *env.values(), *_secret_values(core, row)])
