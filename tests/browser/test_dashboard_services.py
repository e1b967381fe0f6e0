"""Monitoring with Valkey configured: a real redis/valkey server on loopback is shown as
reachable and in use, and as unreachable on the next refresh once it stops."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from cronium.config import Settings
from tests.browser.conftest import LoginAs
from tests.support.valkey import RedisServer


@pytest.fixture
def settings(settings: Settings, redis_server: RedisServer) -> Settings:
    return settings.model_copy(update={"valkey_url": redis_server.url})


async def test_valkey_reachable_then_gone(login_as: LoginAs, redis_server: RedisServer) -> None:
    page = await login_as("viewer")
    await page.goto("/monitoring")
    valkey = page.locator('[data-dependency="valkey"]')
    await expect(valkey.locator(".badge")).to_have_text("ok")
    await expect(valkey).to_contain_text("this node uses Valkey")

    redis_server.stop()
    # The panels refresh every 5 s: the probe now fails and says where it looked.
    await expect(valkey.locator(".badge")).to_have_text("error", timeout=12_000)
    await expect(valkey).to_contain_text(f"127.0.0.1:{redis_server.port}")
