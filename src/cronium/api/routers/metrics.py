"""Prometheus metrics at /metrics: unauthenticated, like /health (scrapers send no token)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from cronium import metrics
from cronium.api.deps import CoreDep

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response)
async def prometheus_metrics(core: CoreDep) -> Response:
    """This process's metrics in the Prometheus text format."""
    body = await metrics.render(core.pool, core.valkey.state)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
