"""The figures of bench/report.py: each benchmark's headline numbers next to their targets.

A target comes from the project's specification ("spec": the engine, Runtime API, SSH,
workflow and web UI requirements) or was set with the benchmark that measures it ("ours":
the API load test and Valkey). `kind` says which way is good: "max" (at most the target)
or "min" (at least the target).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

SPEC, OURS = "spec", "ours"


@dataclass(frozen=True)
class Figure:
    bench: str
    name: str
    value: float | None
    unit: str
    target: float
    target_kind: str  # "max" | "min"
    target_source: str  # SPEC | OURS
    load_1m_at_start: float | None = None
    note: str | None = None

    @property
    def met(self) -> bool:
        if self.value is None:
            return False
        return self.value <= self.target if self.target_kind == "max" else self.value >= self.target

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"met": self.met}


def dig(data: Any, *path: str | int) -> Any:
    """data[p0][p1]…, or None where a step is missing."""
    for step in path:
        try:
            data = data[step]
        except (KeyError, IndexError, TypeError):
            return None
    return data


# (name, path to the value, unit, target, kind, source)
Spec = tuple[str, tuple[str | int, ...], str, float, str, str]


def _plain(specs: list[Spec]) -> Callable[[dict[str, Any]], Iterator[tuple[Spec, Any]]]:
    def figures(result: dict[str, Any]) -> Iterator[tuple[Spec, Any]]:
        for spec in specs:
            yield spec, dig(result, *spec[1])

    return figures


def _schedule_lag(result: dict[str, Any]) -> Iterator[tuple[Spec, Any]]:
    layout = "even spread" if result.get("spread") == "even" else "cron layout"
    for p, target in (("p50", 20.0), ("p99", 100.0)):
        spec = (f"fire → script start {p}, {layout}", (f"{p}_ms",), "ms", target, "max", SPEC)
        yield spec, result.get(f"{p}_ms")


def _ws_latency(result: dict[str, Any]) -> Iterator[tuple[Spec, Any]]:
    for topology in result.get("topologies") or []:
        where = "API and worker on two nodes" if topology["topology"] == "split" else "one node"
        name = f"print → WebSocket p95, {where}"
        yield (name, (), "ms", 100.0, "max", SPEC), dig(topology, "latency", "p95_ms")


def _api_load(result: dict[str, Any]) -> Iterator[tuple[Spec, Any]]:
    targets = result.get("targets") or {}
    for group, figures in (result.get("groups") or {}).items():
        target = targets.get(group, {})
        what = "runs" if group == "run" else "requests"
        yield (
            (f"{group}: p99 at 32 clients", (), "ms", target.get("p99_ms"), "max", OURS),
            figures.get("p99_ms"),
        )
        yield (
            (f"{group}: {what}/s", (), f"{what}/s", target.get("requests_per_s"), "min", OURS),
            figures.get("requests_per_s"),
        )
    overall = result.get("overall") or {}
    errors = None
    if "errors" in overall:
        errors = overall["errors"] + (result.get("server_tracebacks") or 0)
    yield ("errors and server tracebacks", (), "", 0.0, "max", OURS), errors
    drain = dig(result, "groups", "run", "drain", "statuses")
    if drain is not None:
        failed = sum(n for status, n in drain.items() if status != "succeeded")
        yield ("runs not succeeded", (), "", 0.0, "max", OURS), failed


def _workflow_chain(result: dict[str, Any]) -> Iterator[tuple[Spec, Any]]:
    steps = "Bash `true`" if str(result.get("steps", "")).startswith("bash") else "Python fibo(10)"
    name = f"{result.get('nodes', 40)}-node chain of {steps}, trigger → end (median)"
    yield (name, (), "s", 1.0, "max", SPEC), dig(result, "trigger_to_end_s", "median")


def _valkey(result: dict[str, Any]) -> Iterator[tuple[Spec, Any]]:
    checks = (
        ("rate-limit check p99 through Valkey", "rate_limit_check", 5.0),
        ("wake-up on another node p99 through Valkey", "wake_other_node", 10.0),
    )
    for name, key, target in checks:
        us = dig(result, "valkey", key, "p99_us")
        yield (name, (), "ms", target, "max", OURS), None if us is None else round(us / 1000, 3)


def _ui_pages(result: dict[str, Any]) -> Iterator[tuple[Spec, Any]]:
    slowest = result.get("slowest_p95") or {}
    name = f"slowest page p95 ({slowest.get('page', '?')})"
    yield (name, (), "ms", 300.0, "max", SPEC), slowest.get("p95_ms")
    errors = result.get("errors")
    yield (
        ("pages answering 5xx", (), "", 0.0, "max", SPEC),
        (None if errors is None else len(errors)),
    )


EXTRACTORS: dict[str, Callable[[dict[str, Any]], Iterator[tuple[Spec, Any]]]] = {
    "schedule_lag": _schedule_lag,
    "queue_throughput": _plain(
        [("trivial Bash jobs/s, drain", ("jobs_per_s",), "jobs/s", 150.0, "min", SPEC)]
    ),
    "idle_queries": _plain(
        [("idle node queries/s", ("queries_per_s",), "queries/s", 1.0, "max", SPEC)]
    ),
    "ws_latency": _ws_latency,
    "runtime_api": _plain(
        [
            ("Python SDK calls p99", ("python_p99_ms",), "ms", 10.0, "max", SPEC),
            ("Python SDK calls/s", ("python_calls_per_s",), "calls/s", 1000.0, "min", SPEC),
        ]
    ),
    "ssh_fanout": _plain(
        [
            ("20-host fan-out, warm (median)", ("warm", "fanout_s_median"), "s", 2.0, "max", SPEC),
            ("20-host fan-out, cold", ("cold", "fanout_s"), "s", 2.0, "max", SPEC),
            (
                "warm per-job overhead p50",
                ("single_host_sequential", "per_job", "p50_ms"),
                "ms",
                150.0,
                "max",
                SPEC,
            ),
        ]
    ),
    "workflow_chain": _workflow_chain,
    "container_overhead": _plain(
        [("container overhead per job p50", ("p50_ms",), "ms", 400.0, "max", SPEC)]
    ),
    "ui_pages": _ui_pages,
    "api_load": _api_load,
    "valkey_latency": _valkey,
}


def bench_label(result: dict[str, Any]) -> str:
    name = str(result.get("benchmark", "?"))
    return f"{name}_even" if name == "schedule_lag" and result.get("spread") == "even" else name


def figures_of(result: dict[str, Any]) -> list[Figure]:
    """The figures of one benchmark result; a failed run gives one unmet figure saying why."""
    name = str(result.get("benchmark", "?"))
    bench = bench_label(result)
    load = dig(result, "machine", "loadavg_at_start", 0)
    if "error" in result or name not in EXTRACTORS:
        note = result.get("error") or "no figures known for this benchmark"
        return [Figure(bench, "run", None, "", 0.0, "max", SPEC, load, str(note))]
    out = []
    for (label, _path, unit, target, kind, source), value in EXTRACTORS[name](result):
        number = None if value is None else float(value)
        note = None if value is not None else "missing in the result"
        out.append(Figure(bench, label, number, unit, target, kind, source, load, note))
    return out
