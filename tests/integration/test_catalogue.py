"""The test-event catalogue (examples/events/, schema in its README.md): every file with an
`expect:` block is imported, run and checked in every executor — `local` (conftest's
`node`), `container` (tests/support/docker.py's `container_node`) and `ssh` (the node,
with the script events moved onto a real sshd from tests/support/sshd.py).

    .venv/bin/pytest tests/integration/test_catalogue.py -k local       # the local half
    .venv/bin/pytest tests/integration/test_catalogue.py -k python-output
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from cronium.core import Core
from tests.conftest import Api
from tests.support.catalogue import (
    EXECUTORS,
    OWNER_ID,
    SSH_TARGET,
    Entry,
    bash_sdk_functions,
    import_catalogue,
    load_catalogue,
    node_sdk_functions,
    python_sdk_functions,
    run_entry,
    schema_errors,
    used_functions,
)

try:  # the container executor's fixtures (docker_engine, container_node, …)
    from tests.support.docker import *  # noqa: F403
    from tests.support.docker import container_node as _container_node  # noqa: F401

    CONTAINER_MISSING: str | None = None
except ImportError as exc:  # pragma: no cover - depends on the checkout
    CONTAINER_MISSING = f"tests/support/docker.py has no container_node fixture: {exc}"

from tests.support.sshd import add_server, ssh_user, sshd_factory  # noqa: F401

REQUIRE_ALL = os.environ.get("CRONIUM_TEST_REQUIRE_ALL") == "1"
CATALOGUE = load_catalogue()


def cases() -> list[Any]:
    params: list[Any] = []
    for entry in CATALOGUE:
        if not entry.runnable:
            continue
        for executor in EXECUTORS:
            marks: list[Any] = []
            if executor not in entry.executors:
                chosen = ", ".join(entry.executors)
                reason = f"{entry.label} opts out of the {executor} executor (executors: {chosen})"
                marks.append(pytest.mark.skip(reason=reason))
            if executor == "container":
                marks.append(pytest.mark.slow)
            params.append(pytest.param(entry, executor, marks=marks, id=f"{entry.name}-{executor}"))
    return params


@pytest.fixture
def engine(request: pytest.FixtureRequest, executor: str) -> object:
    """A running node whose worker uses `executor`."""
    if executor in ("local", "ssh"):
        return request.getfixturevalue("node")
    if CONTAINER_MISSING is not None:
        if REQUIRE_ALL:
            required = "the container executor is required (CRONIUM_TEST_REQUIRE_ALL=1)"
            pytest.fail(f"{required}: {CONTAINER_MISSING}")
        pytest.skip(CONTAINER_MISSING)
    return request.getfixturevalue("container_node")


@pytest.fixture
async def target_server(
    request: pytest.FixtureRequest, executor: str, api: dict[str, Api]
) -> int | None:
    """For `ssh`: a server on a fresh loopback sshd, owned by the `user` persona."""
    if executor != "ssh":
        return None
    host = request.getfixturevalue("sshd_factory")(SSH_TARGET)
    return await add_server(api["user"], host)


@pytest.mark.parametrize(("entry", "executor"), cases())
async def test_catalogue_event(
    entry: Entry,
    executor: str,
    engine: object,
    target_server: int | None,
    api: dict[str, Api],
    core: Core,
) -> None:
    await run_entry(entry, executor, api["user"], core, CATALOGUE, target_server)


async def test_the_whole_catalogue_imports_idempotently(core: Core) -> None:
    """`cronium import examples/events/` twice: everything created, then only updated."""
    first = await import_catalogue(core, CATALOGUE)
    assert len(first) == len(CATALOGUE)
    assert {verb for _, verb in first.values()} == {"created"}
    again = await import_catalogue(core, CATALOGUE)
    assert again == {name: (event_id, "updated") for name, (event_id, _) in first.items()}
    async with core.db.acquire() as conn:
        count = await conn.fetchval("SELECT count(*) FROM events WHERE owner_id = $1", OWNER_ID)
        targets = await conn.fetchval(
            "SELECT count(*) FROM event_actions a JOIN events e ON e.id = a.event_id "
            "WHERE e.owner_id = $1 AND a.target_event_id IS NOT NULL",
            OWNER_ID,
        )
    assert count == len(CATALOGUE)
    assert targets == sum(len(e.data.get("actions") or []) for e in CATALOGUE)


def test_the_catalogue_is_well_formed() -> None:
    assert not schema_errors(CATALOGUE), "\n".join(schema_errors(CATALOGUE))
    assert sum(e.runnable for e in CATALOGUE) >= 40


@pytest.mark.parametrize(
    ("language", "functions"),
    [("python", python_sdk_functions), ("node", node_sdk_functions), ("bash", bash_sdk_functions)],
)
def test_the_catalogue_calls_every_sdk_function(
    language: str, functions: Callable[[], set[str]]
) -> None:
    available = functions()
    assert len(available) > 10, available
    missing = available - used_functions(CATALOGUE, language)
    assert not missing, f"no {language} event of the catalogue calls {sorted(missing)}"
