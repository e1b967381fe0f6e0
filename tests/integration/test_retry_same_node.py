"""A retry with no backoff is often claimed again by the node that just ran the attempt
before: the first attempt's cleanup must not take the second one's place with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from cronium.config import Settings
from cronium.engine.node import Node
from tests.conftest import Api, wait_for_status
from tests.support.runs import create_event, run

LEASE_S = 2.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A short lease, so an attempt whose lease nobody renews is taken away within seconds."""
    return settings.model_copy(update={"lease_s": LEASE_S})


async def test_an_immediate_retry_on_the_same_node_keeps_its_lease(
    api: dict[str, Api], node: Node, tmp_path: Path
) -> None:
    marker = tmp_path / "first-attempt-failed"
    # The second attempt runs for three leases: it only succeeds if its lease is renewed.
    script = (
        f"if [ -e {marker} ]; then sleep {3 * LEASE_S:g}; echo second; exit 0; fi; "
        f"touch {marker}; exit 1"
    )
    event_id = await create_event(api["user"], content=script, retries=1, retry_backoff_seconds=0)
    for _ in range(3):  # the race is likely but not certain: give it a few chances
        marker.unlink(missing_ok=True)
        done = await wait_for_status(api["user"], await run(api["user"], event_id), timeout_s=30)
        assert done["status"] == "succeeded", done
        assert done["jobs"][0]["attempt"] == 2, done
