"""The socket's token cache holds only the live token of a job this node runs: nothing is
cached before the worker registers the job, and nothing can be cached again once it took
the job back (a lookup that resolved just before the end and answers just after)."""

from __future__ import annotations

from cronium.runtime.tokens import CallerCache, RuntimeCaller
from cronium.security.tokens import hash_token, new_token


def caller_of(job_id: int, token: str, attempt: int = 1) -> RuntimeCaller:
    return RuntimeCaller(
        job_id=job_id,
        execution_id=job_id * 10,
        event_id=1,
        owner_id=2,
        target="local",
        attempt=attempt,
        trigger="manual",
        started_at=None,
        event_name="e",
        event_type="script",
        language="bash",
        tags=[],
        user_email="user@example.com",
        mode="local",
        token_hash=hash_token(token),
    )


def test_only_a_registered_live_token_is_cached() -> None:
    cache = CallerCache()
    token = new_token("cxt_")
    cache.put(token, caller_of(7, token))
    assert cache.get(token) is None, "a job this node does not run"
    cache.start_job(7, token)
    cache.put(token, caller_of(7, token))
    assert cache.get(token) == caller_of(7, token)


def test_a_token_taken_back_is_never_cached_again() -> None:
    cache = CallerCache()
    token = new_token("cxt_")
    cache.start_job(7, token)
    cache.put(token, caller_of(7, token))
    cache.evict_job(7)
    assert cache.get(token) is None
    cache.put(token, caller_of(7, token))  # a lookup that answers after the end
    assert cache.get(token) is None


def test_a_retry_caches_its_own_token_only() -> None:
    cache = CallerCache()
    first, second = new_token("cxt_"), new_token("cxt_")
    cache.start_job(7, first)
    cache.put(first, caller_of(7, first))
    cache.evict_job(7)
    cache.start_job(7, second)  # the next attempt of the same job, on this node
    cache.put(first, caller_of(7, first))  # the first attempt's late lookup
    cache.put(second, caller_of(7, second, attempt=2))
    assert cache.get(first) is None
    assert cache.get(second) == caller_of(7, second, attempt=2)


def test_other_jobs_are_untouched() -> None:
    cache = CallerCache()
    a, b = new_token("cxt_"), new_token("cxt_")
    cache.start_job(1, a)
    cache.start_job(2, b)
    cache.put(a, caller_of(1, a))
    cache.put(b, caller_of(2, b))
    cache.put(a, caller_of(2, a))  # a token is cached only for its own job
    cache.evict_job(1)
    assert cache.get(a) is None
    assert cache.get(b) == caller_of(2, b)
