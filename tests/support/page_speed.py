"""Timing of web UI pages for the speed tests: the UI's budget and a noise-resistant time."""

from __future__ import annotations

import time

import httpx

BUDGET_S = 0.3  # each page's server time (docs/ui.md, bench/ui_pages.py)


async def timed(client: httpx.AsyncClient, path: str) -> float:
    """The best of three: the server's time, without the noise of a busy test machine."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        response = await client.get(path)
        best = min(best, time.perf_counter() - start)
        assert response.status_code == 200, response.text[:500]
    return best
