"""domain/firing.py: what the scheduler does with due fires, driven by a controllable clock.

Semantics pinned here (grace 2 s unless a test says otherwise):

- A fire at most `grace_s` late is on time and always runs. Later fires are misfires and
  follow the policy: `skip` runs none, `run_once` runs only the latest (and none when an
  on-time fire runs anyway), `run_all` runs those at most `misfire_window_s` old. Every
  fire that does not run is recorded as missed, exactly once.
- The next fire continues the series (cron: next value after `now`; interval: anchored at
  the previous fire, so lateness never makes it drift).
- DST (Europe/Berlin, 2026): a local time that does not exist (spring forward) fires once,
  at the first instant after the gap; a repeated local time (fall back) fires once, at its
  first occurrence, for an expression pinned to an hour and minute; `*/30 * * * *` keeps
  firing every 30 real minutes through both transitions. Fire times are strictly
  increasing and never repeat a UTC instant, whatever the tick rhythm.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from cronium.db.models import MisfirePolicy, OverlapPolicy, ScheduleKind
from cronium.domain.firing import (
    MAX_FIRES_PER_PASS,
    FirePlan,
    ScheduleState,
    due_fires,
    plan,
)
from cronium.domain.schedules import next_fires

GRACE_S = 2.0
BERLIN = "Europe/Berlin"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def state(next_fire_at: datetime, **overrides: object) -> ScheduleState:
    fields: dict[str, object] = {
        "kind": ScheduleKind.cron,
        "cron": "* * * * *",
        "timezone": "UTC",
        "interval_seconds": None,
        "run_at": None,
        "start_at": None,
        "next_fire_at": next_fire_at,
        "misfire_policy": MisfirePolicy.run_once,
        "misfire_window_s": 3600,
        "max_executions": None,
        "execution_count": 0,
    }
    fields.update(overrides)
    return ScheduleState(**fields)  # type: ignore[arg-type]


def minutes(start: datetime, count: int) -> list[datetime]:
    return [start + timedelta(minutes=i) for i in range(count)]


@dataclasses.dataclass
class Drive:
    """Every outcome of driving plan() with a clock, as the scheduler's loop would."""

    run: list[datetime] = dataclasses.field(default_factory=list)
    missed: list[datetime] = dataclasses.field(default_factory=list)
    skipped: list[datetime] = dataclasses.field(default_factory=list)
    passes: int = 0
    final: ScheduleState | None = None


def drive(s: ScheduleState, clock: list[datetime], *, grace_s: float = GRACE_S) -> Drive:
    """Tick at each time in `clock`; at each tick, plan again while fires are due."""
    out = Drive()
    current: ScheduleState | None = s
    for now in clock:
        while current is not None and current.next_fire_at <= now:
            p = plan(current, now, grace_s)
            out.passes += 1
            out.run += p.run
            out.missed += p.missed
            out.skipped += p.skipped
            if p.next_fire_at is None:
                current = None
                break
            assert p.next_fire_at > current.next_fire_at, "a pass must make progress"
            current = dataclasses.replace(
                current,
                next_fire_at=p.next_fire_at,
                execution_count=current.execution_count + len(p.run),
            )
        out.final = current
    return out


def every(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    ticks = []
    while start <= end:
        ticks.append(start)
        start += step
    return ticks


def assert_series(fires: list[datetime]) -> None:
    assert all(a < b for a, b in pairwise(fires)), fires
    assert len(set(fires)) == len(fires)


def berlin(fires: list[datetime]) -> list[str]:
    zone = ZoneInfo(BERLIN)
    return [f.astimezone(zone).strftime("%m-%d %H:%M %Z") for f in fires]


# --- on time, grace --------------------------------------------------------------------


def test_an_on_time_fire_runs_and_the_next_one_follows() -> None:
    p = plan(state(utc(2026, 1, 1, 12)), utc(2026, 1, 1, 12, 0, 1), GRACE_S)
    assert p == FirePlan(run=[utc(2026, 1, 1, 12)], next_fire_at=utc(2026, 1, 1, 12, 1))


@pytest.mark.parametrize("policy", list(MisfirePolicy))
def test_a_fire_late_by_exactly_the_grace_still_runs(policy: MisfirePolicy) -> None:
    fire = utc(2026, 1, 1, 12)
    p = plan(state(fire, misfire_policy=policy), fire + timedelta(seconds=GRACE_S), GRACE_S)
    assert p.run == [fire]
    assert p.missed == []


def test_a_fire_just_past_the_grace_is_a_misfire() -> None:
    fire = utc(2026, 1, 1, 12)
    p = plan(
        state(fire, misfire_policy=MisfirePolicy.skip),
        fire + timedelta(seconds=GRACE_S + 0.001),
        GRACE_S,
    )
    assert (p.run, p.missed) == ([], [fire])
    assert p.next_fire_at == utc(2026, 1, 1, 12, 1)


def test_nothing_is_due_before_next_fire_at() -> None:
    fire = utc(2026, 1, 1, 12)
    p = plan(state(fire), fire - timedelta(microseconds=1), GRACE_S)
    assert p == FirePlan(next_fire_at=fire)


# --- misfire policies after downtime -----------------------------------------------------

# Every minute; the scheduler was down from before 12:00 until 12:09:30: ten fires
# (12:00 ... 12:09) are all late, none is on time.
DOWN_FROM = utc(2026, 1, 1, 12)
BACK_AT = utc(2026, 1, 1, 12, 9, 30)
TEN_LATE = minutes(DOWN_FROM, 10)


def test_after_downtime_skip_runs_nothing_and_records_every_fire_missed() -> None:
    p = plan(state(DOWN_FROM, misfire_policy=MisfirePolicy.skip), BACK_AT, GRACE_S)
    assert p.run == []
    assert p.missed == TEN_LATE
    assert p.next_fire_at == utc(2026, 1, 1, 12, 10)
    assert not p.exhausted


def test_after_downtime_run_once_runs_only_the_latest_fire() -> None:
    p = plan(state(DOWN_FROM, misfire_policy=MisfirePolicy.run_once), BACK_AT, GRACE_S)
    assert p.run == [utc(2026, 1, 1, 12, 9)]
    assert p.missed == TEN_LATE[:9]
    assert p.next_fire_at == utc(2026, 1, 1, 12, 10)


def test_after_downtime_run_all_runs_the_fires_within_the_window_and_misses_older() -> None:
    s = state(DOWN_FROM, misfire_policy=MisfirePolicy.run_all, misfire_window_s=300)
    p = plan(s, BACK_AT, GRACE_S)
    # 12:05 is 270 s old (inside 300 s), 12:04 is 330 s old (outside).
    assert p.run == minutes(utc(2026, 1, 1, 12, 5), 5)
    assert p.missed == minutes(DOWN_FROM, 5)
    assert p.next_fire_at == utc(2026, 1, 1, 12, 10)


def test_after_downtime_run_all_with_a_wide_window_runs_every_fire() -> None:
    s = state(DOWN_FROM, misfire_policy=MisfirePolicy.run_all, misfire_window_s=3600)
    p = plan(s, BACK_AT, GRACE_S)
    assert (p.run, p.missed) == (TEN_LATE, [])


@pytest.mark.parametrize(
    ("policy", "runs"),
    [
        (MisfirePolicy.skip, [utc(2026, 1, 1, 12, 10)]),
        # The on-time fire is the latest: run_once runs it and nothing else.
        (MisfirePolicy.run_once, [utc(2026, 1, 1, 12, 10)]),
        (MisfirePolicy.run_all, minutes(DOWN_FROM, 11)),
    ],
)
def test_when_the_scheduler_returns_on_a_fire_that_fire_runs_on_time(
    policy: MisfirePolicy, runs: list[datetime]
) -> None:
    now = utc(2026, 1, 1, 12, 10, 1)
    p = plan(state(DOWN_FROM, misfire_policy=policy), now, GRACE_S)
    assert p.run == runs
    assert sorted(p.run + p.missed) == minutes(DOWN_FROM, 11)


@pytest.mark.parametrize("policy", list(MisfirePolicy))
def test_every_due_fire_is_either_run_or_missed_never_both(policy: MisfirePolicy) -> None:
    s = state(DOWN_FROM, misfire_policy=policy, misfire_window_s=200)
    p = plan(s, BACK_AT, GRACE_S)
    assert sorted(p.run + p.missed) == TEN_LATE
    assert not set(p.run) & set(p.missed)


# --- more fires due than one pass looks at ------------------------------------------------


def test_a_long_backlog_is_handled_over_several_passes_and_nothing_is_lost() -> None:
    # Every second for an hour of downtime: 3601 fires, more than one pass takes.
    s = state(
        utc(2026, 1, 1, 11),
        cron="* * * * * *",
        misfire_policy=MisfirePolicy.run_all,
        misfire_window_s=60,
    )
    now = utc(2026, 1, 1, 12)
    first = plan(s, now, GRACE_S)
    assert len(first.missed) == MAX_FIRES_PER_PASS
    assert first.next_fire_at == utc(2026, 1, 1, 11) + timedelta(seconds=MAX_FIRES_PER_PASS)
    out = drive(s, [now])
    assert out.passes == 4
    # Three on time (0-2 s late) and 58 late within the window (3-60 s late).
    assert out.run == [now - timedelta(seconds=i) for i in range(60, -1, -1)]
    assert len(out.missed) == 3601 - 61
    assert_series(sorted(out.run + out.missed))
    assert len(out.run + out.missed) == 3601
    assert out.final is not None and out.final.next_fire_at == now + timedelta(seconds=1)


def test_run_once_after_a_long_backlog_runs_the_very_latest_fire() -> None:
    s = state(utc(2026, 1, 1, 11), cron="* * * * * *", misfire_policy=MisfirePolicy.run_once)
    now = utc(2026, 1, 1, 12, 0, 0, 500000)
    out = drive(s, [now], grace_s=0)
    assert out.run == [utc(2026, 1, 1, 12)]
    assert len(out.missed) == 3600


# --- max executions ------------------------------------------------------------------------


def test_max_executions_caps_the_runs_and_exhausts_the_event() -> None:
    s = state(DOWN_FROM, misfire_policy=MisfirePolicy.run_all, max_executions=5, execution_count=2)
    p = plan(s, BACK_AT, GRACE_S)
    assert p.run == TEN_LATE[:3]
    assert p.exhausted
    assert p.next_fire_at is None
    # Fires after the last run are not misfires: the event simply stopped.
    assert p.missed == []


def test_the_run_that_reaches_max_executions_exhausts_the_event() -> None:
    fire = utc(2026, 1, 1, 12)
    p = plan(state(fire, max_executions=3, execution_count=2), fire, GRACE_S)
    assert (p.run, p.exhausted, p.next_fire_at) == ([fire], True, None)
    p = plan(state(fire, max_executions=3, execution_count=1), fire, GRACE_S)
    assert (p.run, p.exhausted) == ([fire], False)


def test_an_event_already_at_max_executions_runs_nothing_and_records_nothing() -> None:
    p = plan(state(DOWN_FROM, max_executions=2, execution_count=2), BACK_AT, GRACE_S)
    assert p == FirePlan(exhausted=True)


def test_missed_fires_before_the_last_run_are_still_recorded_when_exhausted() -> None:
    s = state(DOWN_FROM, misfire_policy=MisfirePolicy.run_once, max_executions=1)
    p = plan(s, BACK_AT, GRACE_S)
    assert (p.run, p.missed, p.exhausted) == ([TEN_LATE[-1]], TEN_LATE[:9], True)


def test_a_driven_event_stops_after_exactly_max_executions() -> None:
    s = state(DOWN_FROM, max_executions=4)
    out = drive(s, every(DOWN_FROM, DOWN_FROM + timedelta(hours=1), timedelta(seconds=1)))
    assert out.run == minutes(DOWN_FROM, 4)
    assert out.final is None


# --- overlap policy skip -------------------------------------------------------------------


def test_overlap_skip_while_busy_skips_the_fire_and_keeps_the_event_going() -> None:
    fire = utc(2026, 1, 1, 12)
    s = state(fire, overlap_policy=OverlapPolicy.skip, max_executions=1)
    p = plan(s, fire, GRACE_S, busy=True)
    assert (p.run, p.skipped, p.missed) == ([], [fire], [])
    # A skipped fire does not count towards max_executions.
    assert not p.exhausted
    assert p.next_fire_at == utc(2026, 1, 1, 12, 1)


def test_overlap_skip_runs_one_fire_of_a_backlog_and_skips_the_rest() -> None:
    s = state(DOWN_FROM, misfire_policy=MisfirePolicy.run_all, overlap_policy=OverlapPolicy.skip)
    p = plan(s, BACK_AT, GRACE_S)
    assert p.run == TEN_LATE[:1]
    assert p.skipped == TEN_LATE[1:]
    assert p.missed == []


@pytest.mark.parametrize("overlap", [OverlapPolicy.allow, OverlapPolicy.queue])
def test_busy_does_not_matter_unless_the_overlap_policy_is_skip(overlap: OverlapPolicy) -> None:
    fire = utc(2026, 1, 1, 12)
    p = plan(state(fire, overlap_policy=overlap), fire, GRACE_S, busy=True)
    assert (p.run, p.skipped) == ([fire], [])


# --- intervals and one-off -------------------------------------------------------------------


def test_an_interval_is_anchored_at_the_previous_fire_and_never_drifts() -> None:
    start = utc(2026, 1, 1, 12)
    s = state(start, kind=ScheduleKind.interval, cron=None, interval_seconds=90)
    # A clock that ticks at odd moments, always a little late (up to 1.9 s).
    ticks = [start + timedelta(seconds=90 * i + (i % 7) * 0.3) for i in range(200)]
    out = drive(s, ticks)
    assert out.run == [start + timedelta(seconds=90 * i) for i in range(200)]
    assert out.missed == []


def test_an_interval_after_downtime_stays_on_its_grid() -> None:
    start = utc(2026, 1, 1, 12)
    s = state(
        start,
        kind=ScheduleKind.interval,
        cron=None,
        interval_seconds=90,
        misfire_policy=MisfirePolicy.skip,
    )
    p = plan(s, start + timedelta(seconds=1000), GRACE_S)
    assert p.missed == [start + timedelta(seconds=90 * i) for i in range(12)]  # 0 ... 990
    assert p.next_fire_at == start + timedelta(seconds=1080)


def test_a_once_schedule_fires_once_and_has_no_next_fire() -> None:
    at = utc(2026, 1, 1, 12)
    s = state(at, kind=ScheduleKind.once, cron=None, run_at=at)
    assert due_fires(s, at + timedelta(days=365)) == [at]
    out = drive(
        s, every(at - timedelta(seconds=5), at + timedelta(seconds=30), timedelta(seconds=1))
    )
    assert out.run == [at]
    assert out.final is None


@pytest.mark.parametrize(
    ("policy", "run", "missed"),
    [(MisfirePolicy.skip, False, True), (MisfirePolicy.run_once, True, False)],
)
def test_a_once_schedule_missed_during_downtime_follows_the_policy(
    policy: MisfirePolicy, run: bool, missed: bool
) -> None:
    at = utc(2026, 1, 1, 12)
    s = state(at, kind=ScheduleKind.once, cron=None, run_at=at, misfire_policy=policy)
    p = plan(s, at + timedelta(hours=1), GRACE_S)
    assert (p.run == [at], p.missed == [at], p.next_fire_at) == (run, missed, None)


@pytest.mark.parametrize("policy", list(MisfirePolicy))
def test_a_once_schedule_stops_after_its_fire_whether_run_or_missed(
    policy: MisfirePolicy,
) -> None:
    at = utc(2026, 1, 1, 12)
    s = state(at, kind=ScheduleKind.once, cron=None, run_at=at, misfire_policy=policy)
    assert plan(s, at, GRACE_S).stops
    assert plan(s, at + timedelta(hours=1), GRACE_S).stops


def test_a_recurring_schedule_or_a_one_off_not_yet_due_does_not_stop() -> None:
    at = utc(2026, 1, 1, 12)
    assert not plan(state(at), at, GRACE_S).stops
    assert not plan(
        state(at, kind=ScheduleKind.once, cron=None, run_at=at), at - timedelta(seconds=1), GRACE_S
    ).stops


# --- daylight saving time (Europe/Berlin, 2026) ----------------------------------------------


def drive_berlin(cron: str, start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    first = next_fires(cron, BERLIN, start, count=1)[0]
    out = drive(state(first, cron=cron, timezone=BERLIN), every(start, end, step))
    assert out.missed == []
    assert_series(out.run)
    return out.run


def test_dst_a_nonexistent_local_time_fires_once_at_the_next_valid_instant() -> None:
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
    fires = drive_berlin(
        "30 2 * * *", utc(2026, 3, 27, 12), utc(2026, 3, 31, 12), timedelta(minutes=1)
    )
    assert fires == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30),
                     utc(2026, 3, 31, 0, 30)]  # fmt: skip
    assert berlin(fires) == ["03-28 02:30 CET", "03-29 03:00 CEST", "03-30 02:30 CEST",
                             "03-31 02:30 CEST"]  # fmt: skip


def test_dst_a_repeated_local_time_fires_once_at_its_first_occurrence() -> None:
    # 2026-10-25: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice (00:30 and 01:30 UTC).
    fires = drive_berlin(
        "30 2 * * *", utc(2026, 10, 23, 12), utc(2026, 10, 27, 12), timedelta(minutes=1)
    )
    assert fires == [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30),
                     utc(2026, 10, 27, 1, 30)]  # fmt: skip
    assert berlin(fires) == ["10-24 02:30 CEST", "10-25 02:30 CEST", "10-26 02:30 CET",
                             "10-27 02:30 CET"]  # fmt: skip


def test_dst_a_six_field_daily_fire_at_a_repeated_local_time_fires_once() -> None:
    fires = drive_berlin(
        "0 30 2 * * *", utc(2026, 10, 24, 12), utc(2026, 10, 26, 12), timedelta(seconds=20)
    )
    assert fires == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]


def test_dst_every_30_minutes_keeps_a_30_minute_rhythm_through_spring_forward() -> None:
    fires = drive_berlin(
        "*/30 * * * *", utc(2026, 3, 28, 23, 1), utc(2026, 3, 29, 3), timedelta(seconds=30)
    )
    # 01:30 CET is followed by 03:00 CEST, 30 real minutes later: the skipped local hour
    # holds no real time, so no fire is lost.
    assert fires == [utc(2026, 3, 28, 23, 30) + timedelta(minutes=30 * i) for i in range(8)]
    assert berlin(fires)[2:5] == ["03-29 01:30 CET", "03-29 03:00 CEST", "03-29 03:30 CEST"]


def test_dst_every_30_minutes_fires_in_both_passes_of_the_repeated_hour_at_fall_back() -> None:
    fires = drive_berlin(
        "*/30 * * * *", utc(2026, 10, 24, 23, 1), utc(2026, 10, 25, 3), timedelta(seconds=30)
    )
    # One fire per 30 real minutes: 02:00 and 02:30 local happen twice and fire twice,
    # at distinct UTC instants.
    assert fires == [utc(2026, 10, 24, 23, 30) + timedelta(minutes=30 * i) for i in range(8)]
    assert berlin(fires)[1:6] == ["10-25 02:00 CEST", "10-25 02:30 CEST", "10-25 02:00 CET",
                                  "10-25 02:30 CET", "10-25 03:00 CET"]  # fmt: skip


@pytest.mark.parametrize(
    ("cron", "start", "end"),
    [
        ("30 2 * * *", utc(2026, 3, 27, 12), utc(2026, 3, 31, 12)),
        ("30 2 * * *", utc(2026, 10, 23, 12), utc(2026, 10, 27, 12)),
        ("*/30 * * * *", utc(2026, 3, 28, 22, 1), utc(2026, 3, 29, 4)),
        ("*/30 * * * *", utc(2026, 10, 24, 22, 1), utc(2026, 10, 25, 4)),
    ],
)
def test_dst_a_scheduler_down_across_the_transition_sees_the_same_fires(
    cron: str, start: datetime, end: datetime
) -> None:
    ticked = drive_berlin(cron, start, end, timedelta(minutes=1))
    first = next_fires(cron, BERLIN, start, count=1)[0]
    s = state(
        first,
        cron=cron,
        timezone=BERLIN,
        misfire_policy=MisfirePolicy.run_all,
        misfire_window_s=30 * 24 * 3600,
    )
    # One tick after the whole period: the backlog is the very series a live clock saw.
    assert due_fires(s, end) == ticked
    p = plan(s, end, GRACE_S)
    assert p.run == ticked
    assert p.missed == []


def test_dst_an_hourly_interval_counts_real_hours_through_fall_back() -> None:
    start = utc(2026, 10, 24, 22)
    s = state(start, kind=ScheduleKind.interval, cron=None, interval_seconds=3600, timezone=BERLIN)
    out = drive(s, every(start, utc(2026, 10, 25, 4), timedelta(minutes=1)))
    assert out.run == [start + timedelta(hours=i) for i in range(7)]
