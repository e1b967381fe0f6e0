"""The chaos suite's events and, independently of Cronium's schedule code, their fire times.

Interval events fire at start + k * interval. Cron events use `*/S * * * * *` with S
dividing 60, so they fire at every whole second divisible by S from the start on: plain
arithmetic on epoch seconds, no cron library involved.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

CRON_STEPS_S = (5, 6, 10, 12, 15)
INTERVALS_S = range(5, 16)
POLICIES = ("skip", "run_once", "run_all")
# `start T` once, then five numbered lines carrying the same random T: the log check finds
# the last attempt's lines by T.
SCRIPT = 'T="$$-$RANDOM"; echo "start $T"; for i in 1 2 3 4 5; do echo "L$i $T"; sleep 0.2; done'


@dataclass
class EventPlan:
    name: str
    start_at: datetime
    misfire: str
    interval_s: int | None = None
    cron_step_s: int | None = None
    id: int | None = None

    def body(self) -> dict[str, object]:
        schedule: dict[str, object] = (
            {"kind": "interval", "every_seconds": self.interval_s}
            if self.interval_s
            else {"kind": "cron", "cron": f"*/{self.cron_step_s} * * * * *"}
        )
        return {
            "name": self.name,
            "language": "bash",
            "content": SCRIPT,
            "status": "active",
            "schedule": schedule,
            "start_at": self.start_at.isoformat(),
            "misfire_policy": self.misfire,
            "misfire_window_seconds": 3600,
            "retries": 3,
            "retry_backoff_seconds": 0,
            "timeout_seconds": 60,
        }

    def describe(self) -> str:
        every = f"every {self.interval_s} s" if self.interval_s else f"cron */{self.cron_step_s} s"
        return f"{every}, {self.misfire}"


def plan_events(rng: random.Random, count: int, start_at: datetime) -> list[EventPlan]:
    """A quarter cron, the rest intervals with spread start offsets; policies in turn."""
    plans = []
    for i in range(count):
        misfire = POLICIES[i % len(POLICIES)]
        if i % 4 == 0:
            plans.append(
                EventPlan(f"chaos-{i}", start_at, misfire, cron_step_s=rng.choice(CRON_STEPS_S))
            )
        else:
            interval = rng.choice(INTERVALS_S)
            offset = timedelta(milliseconds=rng.randrange(interval * 1000))
            plans.append(EventPlan(f"chaos-{i}", start_at + offset, misfire, interval_s=interval))
    return plans


def expected_fires(ev: EventPlan, until: datetime) -> list[datetime]:
    """Every fire time of the event from its start up to `until` (inclusive)."""
    fires = []
    if ev.interval_s:
        step = timedelta(seconds=ev.interval_s)
        when = ev.start_at
        while when <= until:
            fires.append(when)
            when += step
        return fires
    assert ev.cron_step_s
    second = int(ev.start_at.timestamp())
    second += -second % ev.cron_step_s
    while (when := datetime.fromtimestamp(second, UTC)) <= until:
        if when >= ev.start_at:
            fires.append(when)
        second += ev.cron_step_s
    return fires
