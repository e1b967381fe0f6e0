"""Secret values never come out of Cronium unmasked.

One run of the corpus (tests/security/leak_cases.py: each case a way a job prints a
secret) by the real engine with the local executor, shared by the whole module; then,
per case, the lines it printed as stored and as streamed live; per kind of surface
(stored log, live stream, run details, REST API, pages, the server's own log, the
database), that no claimed form of any secret shows; and the runs that are not scripts:
HTTP events, a tool event, a failing failure notification, a workflow, a credential test.
The limits (docs/security.md, "not masked, by design") are cases too: their checks show
the documented behaviour, so a change to it fails here and the docs get updated.
"""

from __future__ import annotations

import html
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.conftest import Persona
from tests.security.leak_cases import CASES, OUTPUTS
from tests.security.leak_corpus import Case, M, Secrets, case_lines
from tests.security.leak_harness import environment
from tests.security.leak_run import NOTIFY_FAILED, Corpus, run_corpus

pytestmark = pytest.mark.slow

SURFACES = [
    "stored log",
    "live stream",
    "live stream lines",
    "run details",
    "REST API",
    "pages",
    "server log",
    "database",
    "credential test",
    "webhook refusal",
]


@pytest.fixture(scope="module")
async def corpus(
    template_db: str, personas: dict[str, Persona], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Corpus]:
    folder = tmp_path_factory.mktemp("leaks")
    async with environment(template_db, personas["user"], folder) as env:
        yield await run_corpus(env, Secrets())


# -- the corpus, case by case -------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_case(corpus: Corpus, case: Case) -> None:
    name = f"corpus-{case.language}"
    got = case_lines(corpus.logs[name], case)
    assert got is not None, f"markers of {case.id} missing: the script stopped early"
    problem = case.check(got, corpus.secrets)
    if case.limit:
        problem = problem and f"documented limit ({case.why}) changed: {problem}"
    assert problem is None, f"{case.id}: {problem}; stored {got!r}"
    # The live stream shows the same lines.
    streamed = case_lines([m for m in corpus.streams[name] if m["type"] == "log"], case)
    assert streamed == got, f"{case.id}: streamed {streamed!r}"


def test_the_corpus_holds_at_least_50_masked_cases_and_every_language() -> None:
    masked = [case for case in CASES if not case.limit]
    assert len(masked) >= 50
    assert {case.language for case in masked} == {"bash", "python", "node"}
    assert {case.stream for case in masked} == {"stdout", "stderr"}
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("language", sorted(OUTPUTS))
def test_the_runs_output_is_masked(corpus: Corpus, language: str) -> None:
    name = f"corpus-{language}"
    detail = corpus.details[name]
    assert detail["status"] == "succeeded", detail
    check = OUTPUTS[language][1]
    assert check(detail["output"], corpus.secrets) is None, detail["output"]
    assert detail["jobs"][0]["output"] == detail["output"]


# -- every place a secret could come out ----------------------------------------------------


def _views(text: str) -> Iterator[str]:
    """The text, and what a reader of it sees: HTML unescaped, JSON strings decoded."""
    yield text
    yield html.unescape(text)
    try:
        value = json.loads(text)
    except ValueError:
        return
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack += [*item.keys(), *item.values()]
        elif isinstance(item, list):
            stack += item


@pytest.mark.parametrize("surface", SURFACES)
def test_no_form_of_any_secret_shows(corpus: Corpus, surface: str) -> None:
    forbidden = dict(corpus.forbidden)
    if surface == "server log":
        forbidden[corpus.webhook_key] = "the webhook key"  # the owner sees it in the API
    leaks = sorted(
        {
            f"{where}: {form[:40]!r} (a form of {secret[:20]!r})"
            for where, text in corpus.surfaces[surface]
            for view in _views(text)
            for form, secret in forbidden.items()
            if form in view
        }
    )
    assert corpus.surfaces[surface], f"nothing collected for {surface}"
    assert not leaks, f"{len(leaks)} leaks:\n" + "\n".join(leaks[:40])


def test_every_surface_was_reached(corpus: Corpus) -> None:
    assert set(corpus.surfaces) == set(SURFACES)
    # A run's page shows its output and error (its log comes over the stream): masked.
    pages = dict(corpus.surfaces["pages"])
    for name in ("corpus-python", "tool-send"):
        assert M in pages[f"/executions/{corpus.executions[name]}"], name


# -- runs that are not scripts --------------------------------------------------------------


def test_an_http_events_answer_is_masked_in_its_log_and_output(corpus: Corpus) -> None:
    detail = corpus.details["http-token"]
    assert detail["status"] == "succeeded", detail
    output = detail["output"]
    assert output["body"] == {"access_token": M}
    assert output["headers"]["x-session"] == M
    stdout = [i["line"] for i in corpus.logs["http-token"] if i["stream"] == "stdout"]
    assert stdout == [f'{{"access_token":"{M}"}}']


def test_a_failed_http_event_keeps_its_answer_masked(corpus: Corpus) -> None:
    detail = corpus.details["http-denied"]
    assert detail["status"] == "failed"
    assert detail["jobs"][0]["error"] == "HTTP 403"
    assert detail["output"]["body"] == {"error": "expired", "token": M}


def test_a_tool_events_error_never_shows_the_credential(corpus: Corpus) -> None:
    detail = corpus.details["tool-send"]
    assert detail["status"] == "failed"
    error = detail["jobs"][0]["error"]
    assert error.startswith("auth_failed: the webhook answered HTTP 401") and M in error
    assert detail["error"] == error
    assert M in (detail["jobs"][0]["output"] or {"error": {"message": M}})["error"]["message"]
    assert any(M in i["line"] and "HTTP 401" in i["line"] for i in corpus.logs["tool-send"])


def test_a_failure_notification_that_fails_is_logged_masked(corpus: Corpus) -> None:
    lines = [i["line"] for i in corpus.logs["notify-on-failure"] if NOTIFY_FAILED in i["line"]]
    assert len(lines) == 1 and "answered HTTP 401" in lines[0] and M in lines[0], lines


def test_a_workflow_run_shows_its_nodes_output_masked(corpus: Corpus) -> None:
    run = corpus.workflow_run
    assert run["status"] == "succeeded", run
    assert run["nodes"][0]["output"] == {"token": M, "env": M}
    stdout = [i["line"] for i in corpus.logs["workflow-node"] if i["stream"] == "stdout"]
    assert stdout == [f"node {M}"]


def test_a_credential_test_never_shows_the_credential(corpus: Corpus) -> None:
    outcome = corpus.credential_test
    assert outcome["ok"] is False
    assert outcome["error"]["code"] == "auth_failed"
    assert M in outcome["error"]["message"]


def test_the_access_log_masks_the_webhook_key(corpus: Corpus) -> None:
    (_, log), *_ = corpus.surfaces["server log"]
    assert f"/api/v1/webhooks/{M}" in log
    assert corpus.webhook_key not in log
