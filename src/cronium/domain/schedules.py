"""Schedules as pure, timezone-aware functions: validate an expression by computing a fire."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterNotAlphaError, croniter

from cronium.errors import ValidationFailed

_CRON_ERRORS = (
    CroniterBadCronError,
    CroniterBadDateError,
    CroniterNotAlphaError,
    ValueError,
    KeyError,
)
# Names the zoneinfo database lists that are not IANA zones but host settings.
_NOT_IANA = frozenset({"localtime", "posixrules"})
# croniter's H (hashed) and R (random) items: R draws a new value on every parse, so the
# fire times would change each time they are computed.
_HASHED_OR_RANDOM = re.compile(r"^[HR](\(|/|$)", re.IGNORECASE)


def parse_timezone(name: str) -> ZoneInfo:
    if name not in _timezones():
        raise ValidationFailed(
            f"unknown timezone {name!r}: use an IANA name such as 'Europe/Berlin' or 'UTC'",
            details={"field": "timezone"},
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(
            f"unknown timezone {name!r}", details={"field": "timezone"}
        ) from None


_TZ_CACHE: set[str] = set()


def _timezones() -> set[str]:
    if not _TZ_CACHE:
        _TZ_CACHE.update(available_timezones() - _NOT_IANA)
        _TZ_CACHE.add("UTC")
    return _TZ_CACHE


def cron_fields(expression: str) -> list[str]:
    return expression.split()


def validate_cron(expression: str) -> str:
    """Return the normalised expression (single spaces) or raise ValidationFailed.

    Five fields: minute hour day month weekday. Six fields: seconds first, as in
    `*/2 * * * * *` (every two seconds).
    """
    fields = cron_fields(expression)
    if len(fields) not in (5, 6):
        raise ValidationFailed(
            f"cron expression must have 5 fields (minute hour day month weekday) or 6 "
            f"(seconds first), got {len(fields)}",
            details={"field": "schedule.cron"},
        )
    normalised = " ".join(fields)
    if any(_HASHED_OR_RANDOM.match(item) for field in fields for item in field.split(",")):
        raise ValidationFailed(
            f"invalid cron expression {expression!r}: H and R (hashed/random) are not supported",
            details={"field": "schedule.cron"},
        )
    try:
        next_fires(normalised, "UTC", datetime.now(UTC), count=1)
    except _CRON_ERRORS as exc:
        raise ValidationFailed(
            f"invalid cron expression {expression!r}: {exc}", details={"field": "schedule.cron"}
        ) from None
    return normalised


def next_fires(expression: str, timezone: str, after: datetime, *, count: int) -> list[datetime]:
    """The next `count` fire times strictly after `after`, as aware UTC datetimes.

    Iterates in the event's zone so '0 2 * * *' means 02:00 local time across DST; the
    results are converted to UTC once, at the edge. Daylight saving time:

    - a local time that does not exist (spring forward) fires once, at the first instant
      after the gap (02:30 on the Berlin spring-forward day fires at 03:00 CEST);
    - a repeated local hour (fall back) fires only once, at its first occurrence, for an
      expression pinned to a wall-clock hour and minute ('30 2 * * *'); an expression with
      '*' in its minute or hour field ('0 * * * *', '*/15 * * * *') fires in both
      occurrences, so no hour of real time goes without its fire. This is the rule of
      Vixie cron (cron(8)).
    """
    zone = ZoneInfo(timezone)
    fields = cron_fields(expression)
    seconds_first = len(fields) == 6
    minute, hour = fields[1:3] if seconds_first else fields[0:2]
    pinned = "*" not in minute and "*" not in hour
    it = croniter(
        " ".join(fields),
        after.astimezone(zone),
        ret_type=datetime,
        second_at_beginning=seconds_first,
    )
    fires: list[datetime] = []
    last = after
    while len(fires) < count:
        fire = it.get_next(datetime).astimezone(UTC)
        if fire <= last or (pinned and fire.astimezone(zone).fold == 1):
            continue  # not after the previous fire, or the second pass through a repeated hour
        fires.append(fire)
        last = fire
    return fires


def next_interval_fire(start: datetime, every_s: int, after: datetime) -> datetime:
    """Next fire of a fixed interval anchored at `start`, strictly after `after`, in UTC.

    Intervals count real seconds. Both times are converted to UTC first: Python adds and
    subtracts datetimes of one zone on the wall clock, which would bend a period across DST.
    """
    start, after = start.astimezone(UTC), after.astimezone(UTC)
    if after < start:
        return start
    period = timedelta(seconds=every_s)
    steps = (after - start) // period + 1  # exact integer arithmetic, no float rounding
    return start + steps * period
