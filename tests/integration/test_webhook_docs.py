"""The signing examples in docs/workflows.md work as written: the shell one (openssl, curl)
and the Python one each start a run on a real server on loopback, and a replay of the
shell call is refused."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn

from cronium.app import create_app
from cronium.config import Settings
from cronium.core import Core
from tests.conftest import Api, wait_for_status
from tests.integration.test_webhooks import SECRET, hooked_event
from tests.support.tool_receivers import free_port

DOC = Path(__file__).resolve().parents[2] / "docs" / "workflows.md"
PLACEHOLDER = "https://cronium.example.com/api/v1/webhooks/<key>"


def example(language: str) -> str:
    """The code block of this language in the signing bullet of the Webhooks section."""
    section = DOC.read_text().split("## Webhooks", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(rf"^ *```{language}\n(.*?)^ *```", section, re.MULTILINE | re.DOTALL)
    signing = [b for b in blocks if "X-Cronium-Timestamp" in b]
    assert len(signing) == 1, f"one signing example in {language} expected"
    lines = signing[0].splitlines()
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    code = "\n".join(line[indent:] for line in lines) + "\n"
    assert PLACEHOLDER in code
    return code


@pytest.fixture
async def base_url(settings: Settings, core: Core) -> AsyncIterator[str]:
    port = free_port()
    app = create_app(settings, core=core)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


async def run(*argv: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env={**os.environ, "SECRET": SECRET},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def started_run(user: Api, core: Core, event_id: int) -> dict[str, object]:
    """The one execution the example started, once it finished."""
    async with core.db.acquire() as conn:
        ids = await conn.fetch("SELECT id FROM executions WHERE event_id = $1", event_id)
    assert len(ids) == 1, ids
    return await wait_for_status(user, ids[0]["id"])


async def test_the_shell_example_signs_a_call_that_runs_once(
    api: dict[str, Api], core: Core, base_url: str, node: object
) -> None:
    user = api["user"]
    event_id, key = await hooked_event(user, secret=SECRET)
    script = example("sh").replace(PLACEHOLDER, f"{base_url}/api/v1/webhooks/{key}")
    assert '"kind":"event"' in await run("bash", "-euo", "pipefail", "-c", script)
    execution = await started_run(user, core, event_id)
    assert execution["status"] == "succeeded" and execution["input"] == {"ref": "main"}
    # A call with a fixed timestamp (inside the window, before the first call's) runs once;
    # sent again, the very same call is refused.
    stamp = f"ts={int(time.time()) - 120}"
    fixed = script.replace("ts=$(date +%s)", stamp)
    assert fixed != script
    assert '"kind":"event"' in await run("bash", "-euo", "pipefail", "-c", fixed)
    assert '"code":"replayed"' in await run("bash", "-euo", "pipefail", "-c", fixed)


async def test_the_python_example_signs_a_call_that_runs(
    api: dict[str, Api], core: Core, base_url: str, node: object
) -> None:
    user = api["user"]
    event_id, key = await hooked_event(user, secret=SECRET)
    code = example("python").replace(PLACEHOLDER, f"{base_url}/api/v1/webhooks/{key}")
    await run(sys.executable, "-c", "import os\nSECRET = os.environ['SECRET']\n" + code)
    execution = await started_run(user, core, event_id)
    assert execution["status"] == "succeeded" and execution["input"] == {"ref": "main"}
