"""What the scheduler does with an event that is due: pure, clock-injected, testable.

A fire later than `grace_s` is a misfire (the scheduler was down or stalled). Misfires
follow the event's policy: `skip` runs none, `run_once` runs the latest, `run_all` runs
those within the misfire window. Every fire not run is recorded as missed. With the
overlap policy `skip`, a fire that would start while an execution is still open is
recorded as skipped instead of run.

One pass looks at no more than MAX_FIRES_PER_PASS fires; when more are due, the plan's
`next_fire_at` is the first fire not yet looked at (still due), so the next pass
continues the series where this one stopped: no fire is lost or planned twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cronium.db.models import MisfirePolicy, OverlapPolicy, ScheduleKind
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
    overlap_policy: OverlapPolicy = OverlapPolicy.allow


@dataclass
class FirePlan:
    run: list[datetime] = field(default_factory=list)
    missed: list[datetime] = field(default_factory=list)
    skipped: list[datetime] = field(default_factory=list)  # overlap policy skip
    next_fire_at: datetime | None = None
    exhausted: bool = False  # max_executions reached: the event stops

    @property
    def stops(self) -> bool:
        """Nothing is left to fire: max_executions reached, or a one-off has had its fire."""
        return self.exhausted or self.next_fire_at is None


def following_fire(state: ScheduleState, after: datetime, previous: datetime) -> datetime | None:
    """The first fire strictly after `after`, continuing the series that produced `previous`."""
    if state.kind is ScheduleKind.cron and state.cron:
        return next_fires(state.cron, state.timezone, after, count=1)[0]
    if state.kind is ScheduleKind.interval and state.interval_seconds:
        return next_interval_fire(previous, state.interval_seconds, after)
    return None  # once (and manual) fire a single time


def due_fires(state: ScheduleState, now: datetime) -> list[datetime]:
    """The fire times up to `now`, from next_fire_at on, at most MAX_FIRES_PER_PASS."""
    if state.next_fire_at > now:
        return []
    fires = [state.next_fire_at]
    while len(fires) < MAX_FIRES_PER_PASS:
        following = following_fire(state, fires[-1], fires[-1])
        if following is None or following > now:
            break
        fires.append(following)
    return fires


def plan(state: ScheduleState, now: datetime, grace_s: float, *, busy: bool = False) -> FirePlan:
    """Sort the fires due at `now` into run, missed and skipped, and find the next fire.

    `busy`: an execution of the event is still open (waiting, queued or running); with the
    overlap policy `skip` the due fires are then skipped. Skipped and missed fires do not
    count towards max_executions; the fires after the last run of an exhausted event are
    neither run nor recorded: the event simply stopped.
    """
    fires = due_fires(state, now)
    if not fires:
        return FirePlan(next_fire_at=state.next_fire_at)
    after_pass = following_fire(state, fires[-1], fires[-1])
    more_due = after_pass is not None and after_pass <= now
    chosen = _by_misfire_policy(state, fires, now, grace_s, more_due)
    run, skipped = chosen, list[datetime]()
    if state.overlap_policy is OverlapPolicy.skip:
        # The first run is still open when the next fire of the same pass comes.
        run, skipped = ([], chosen) if busy else (chosen[:1], chosen[1:])
    result = FirePlan(run=run, skipped=skipped)
    if state.max_executions is not None:
        room = max(state.max_executions - state.execution_count, 0)
        if len(run) >= room:
            result.run = run[:room]
            result.exhausted = True
    handled = set(result.run) | set(result.skipped)
    result.missed = [f for f in fires if f not in handled]
    if result.exhausted:
        last_run = result.run[-1] if result.run else None
        result.missed = [f for f in result.missed if last_run is not None and f < last_run]
        result.skipped = [f for f in result.skipped if last_run is not None and f < last_run]
        result.next_fire_at = None
    elif more_due:
        result.next_fire_at = after_pass  # due already: the next pass goes on from here
    else:
        result.next_fire_at = following_fire(state, now, fires[-1])
    return result


def _by_misfire_policy(
    state: ScheduleState, fires: list[datetime], now: datetime, grace_s: float, more_due: bool
) -> list[datetime]:
    """The fires of this pass to start, oldest first: every on-time fire plus late ones."""
    on_time = [f for f in fires if (now - f).total_seconds() <= grace_s]
    late = [f for f in fires if (now - f).total_seconds() > grace_s]
    chosen_late: list[datetime] = []
    if late and state.misfire_policy is MisfirePolicy.run_all:
        window = timedelta(seconds=state.misfire_window_s)
        chosen_late = [f for f in late if now - f <= window]
    elif late and state.misfire_policy is MisfirePolicy.run_once and not on_time and not more_due:
        chosen_late = [late[-1]]  # the latest; with more due, it lies in a later pass
    return sorted(set(chosen_late) | set(on_time))
