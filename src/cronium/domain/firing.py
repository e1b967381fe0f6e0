"""What the scheduler does with an event that is due: pure, clock-injected, testable.

A fire later than `grace_s` is a misfire (the scheduler was down or stalled). Misfires
follow the event's policy: `skip` runs none, `run_once` runs the latest, `run_all` runs
those within the misfire window. Every fire not run is recorded as missed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cronium.db.models import MisfirePolicy, ScheduleKind
from cronium.domain.schedules import next_fires, next_interval_fire

MAX_FIRES_PER_PASS = 1000


@dataclass(frozen=True)
class ScheduleState:
    kind: ScheduleKind
    cron: str | None
    timezone: str
    interval_seconds: int | None
    run_at: datetime | None
    start_at: datetime | None
    next_fire_at: datetime
    misfire_policy: MisfirePolicy
    misfire_window_s: int
    max_executions: int | None
    execution_count: int


@dataclass
class FirePlan:
    run: list[datetime] = field(default_factory=list)
    missed: list[datetime] = field(default_factory=list)
    next_fire_at: datetime | None = None
    exhausted: bool = False  # max_executions reached: the event stops


def following_fire(state: ScheduleState, after: datetime, previous: datetime) -> datetime | None:
    """The first fire strictly after `after`, continuing the series that produced `previous`."""
    if state.kind is ScheduleKind.cron and state.cron:
        return next_fires(state.cron, state.timezone, after, count=1)[0]
    if state.kind is ScheduleKind.interval and state.interval_seconds:
        return next_interval_fire(previous, state.interval_seconds, after)
    return None  # once (and manual) fire a single time


def due_fires(state: ScheduleState, now: datetime) -> list[datetime]:
    """All fire times in (−∞, now], starting at next_fire_at, capped per pass."""
    fires = [state.next_fire_at]
    while len(fires) < MAX_FIRES_PER_PASS:
        following = following_fire(state, fires[-1], fires[-1])
        if following is None or following > now:
            break
        fires.append(following)
    return fires


def plan(state: ScheduleState, now: datetime, grace_s: float) -> FirePlan:
    fires = due_fires(state, now)
    on_time = [f for f in fires if (now - f).total_seconds() <= grace_s]
    late = [f for f in fires if (now - f).total_seconds() > grace_s]
    result = FirePlan()
    chosen_late: list[datetime] = []
    if late:
        if state.misfire_policy is MisfirePolicy.run_all:
            window = timedelta(seconds=state.misfire_window_s)
            chosen_late = [f for f in late if now - f <= window]
        elif state.misfire_policy is MisfirePolicy.run_once and not on_time:
            chosen_late = [late[-1]]
    chosen = sorted(set(chosen_late) | set(on_time))
    if state.max_executions is not None:
        room = max(state.max_executions - state.execution_count, 0)
        if len(chosen) >= room:
            chosen = chosen[:room]
            result.exhausted = True
    result.run = chosen
    result.missed = [f for f in fires if f not in set(chosen)]
    if result.exhausted:
        result.next_fire_at = None
        # Fires after the last run are not "missed": the event simply stopped.
        if chosen:
            result.missed = [f for f in result.missed if f < chosen[-1]]
        else:
            result.missed = []
    else:
        result.next_fire_at = following_fire(state, max(now, fires[-1]), fires[-1])
    return result
