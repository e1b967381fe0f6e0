"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from cronium import __version__
from cronium.api.deps import CoreDep
from cronium.services.probes import probe_database, probe_docker, probe_valkey

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok", "version": __version__}


@router.get(
    "/ready",
    responses={
        503: {
            "description": "The database is down: the same body, status unavailable.",
            "content": {"application/json": {"schema": {}}},
        }
    },
)
async def ready(core: CoreDep) -> JSONResponse:
    """Each dependency's state; 503 when the database is down."""
    db, docker, valkey = await asyncio.gather(
        probe_database(core.engine),
        probe_docker(core.settings.docker_host),
        probe_valkey(core.settings.valkey_url),
    )
    checks: dict[str, Any] = {
        name: {"status": p.state, "reason": p.reason}
        for name, p in (("database", db), ("docker", docker), ("valkey", valkey))
    }
    link = core.valkey
    if link.url and link.url == core.settings.valkey_url:
        # Keep what this node uses in step with what the probe just saw.
        if valkey.state == "ok" and not link.usable:
            link.kick()
        elif valkey.state != "ok" and link.usable:
            link.down(valkey.reason or "probe failed")
    checks["valkey"]["in_use"] = "memory" if valkey.state != "ok" else link.backend
    mode = core.executor_mode
    checks["executor"] = {
        "status": "ok" if mode else "absent",
        "mode": mode,
        "reason": (
            (core.executor_warning or "scripts run as local subprocesses and are NOT isolated")
            if mode == "local"
            else None
            if mode
            else "no worker role on this node"
        ),
    }
    ok = db.state == "ok"
    body = {"status": "ok" if ok else "unavailable", "checks": checks}
    return JSONResponse(body, status_code=200 if ok else 503)
