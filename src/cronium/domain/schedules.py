"""Schedules as pure, timezone-aware functions: validate an expression by computing a fire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterNotAlphaError, croniter

from cronium.errors import ValidationFailed

_CRON_ERRORS = (CroniterBadCronError, CroniterBadDateError, CroniterNotAlphaError, ValueError, KeyError)


def parse_timezone(name: str) -> ZoneInfo:
    if name not in _timezones():
        raise ValidationFailed(
            f"unknown timezone {name!r}: use an IANA name such as 'Europe/Berlin' or 'UTC'",
            details={"field": "timezone"},
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(f"unknown timezone {name!r}", details={"field": "timezone"}) from None


_TZ_CACHE: set[str] = set()


def _timezones() -> set[str]:
    if not _TZ_CACHE:
        _TZ_CACHE.update(available_timezones())
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
    results are converted to UTC once, at the edge.
    """
    zone = ZoneInfo(timezone)
    fields = cron_fields(expression)
    seconds_first = len(fields) == 6
    it = croniter(
        " ".join(fields),
        after.astimezone(zone),
        ret_type=datetime,
        second_at_beginning=seconds_first,
    )
    fires: list[datetime] = []
    for _ in range(count):
        fire = it.get_next(datetime)
        fires.append(fire.astimezone(UTC))
    return fires


def next_interval_fire(start: datetime, every_s: int, after: datetime) -> datetime:
    """Next fire of a fixed interval anchored at `start`, strictly after `after`."""
    if after < start:
        return start
    elapsed_s = (after - start).total_seconds()
    steps = int(elapsed_s // every_s) + 1
    return start + timedelta(seconds=steps * every_s)
