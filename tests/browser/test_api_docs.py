"""The interactive API docs load with no internet: Swagger UI is served by Cronium."""

from __future__ import annotations

from playwright.async_api import Page, expect


async def test_api_docs_render_from_our_own_static_files(anon_page: Page) -> None:
    external: list[str] = []
    anon_page.on(
        "request",
        lambda request: (
            external.append(request.url)
            if not request.url.startswith(("http://127.0.0.1", "data:"))
            else None
        ),
    )
    await anon_page.goto("/api/docs")
    await expect(anon_page.get_by_text("/api/v1/events").first).to_be_visible()
    assert external == []
