"""Schedules as pure, timezone-aware functions: validate an expression by computing a fire."""

from __future__ import annotations

import heapq
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
    # croniter walks the naive wall clock (pure calendar arithmetic); the DST rules are
    # applied here. croniter's own DST handling misses fires: on Lord Howe's 30-minute
    # fall-back night '*/4 * * * *' skipped the whole second pass of the repeated half hour.
    here = after.astimezone(zone)
    wall = here.replace(tzinfo=None)
    overlap = _overlap(wall, zone)
    if here.fold == 0 and overlap:
        # `after` is in the first pass of a repeated hour: wall times before it fire again,
        # later in real time, in the second pass.
        wall -= overlap
    it = croniter(
        " ".join(_for_croniter(fields)),
        wall,
        ret_type=datetime,
        second_at_beginning=seconds_first,
    )
    fires: list[datetime] = []
    pending: list[datetime] = []  # candidate instants, a heap
    last = after
    while len(fires) < count:
        instants = _instants(it.get_next(datetime), zone, pinned)
        # The earliest instant of a wall time never decreases as the wall time grows:
        # every candidate below it is final and can be emitted in order.
        while pending and pending[0] <= instants[0] and len(fires) < count:
            fire = heapq.heappop(pending)
            if fire > last:  # after `after`, and each instant once (a gap collapses)
                fires.append(fire)
                last = fire
        for instant in instants:
            heapq.heappush(pending, instant)
    return fires


# A one-value range ("5-5", "5-5/10") is that value; croniter 7 expands it to the whole
# field, so '0 5-5 * * *' would fire every hour.
_ONE_VALUE_RANGE = re.compile(r"^(\w+)-(\w+)(/\d+)?$")


def _for_croniter(fields: list[str]) -> list[str]:
    def item(text: str) -> str:
        found = _ONE_VALUE_RANGE.match(text)
        if found and found[1].lower() == found[2].lower():
            return found[1]
        return text

    return [",".join(item(i) for i in field.split(",")) for field in fields]


def _overlap(wall: datetime, zone: ZoneInfo) -> timedelta:
    """How long the hour this wall time is in repeats (zero if it happens once or never)."""
    first = wall.replace(tzinfo=zone, fold=0).utcoffset()
    second = wall.replace(tzinfo=zone, fold=1).utcoffset()
    assert first is not None and second is not None
    return max(first - second, timedelta(0))


def _instants(wall: datetime, zone: ZoneInfo, pinned: bool) -> list[datetime]:
    """The UTC instants at which a local wall time fires, earliest first."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) != wall:
        return [_gap_end(wall, zone)]  # skipped by spring forward
    if pinned or not _overlap(wall, zone):
        return [first]
    return [first, wall.replace(tzinfo=zone, fold=1).astimezone(UTC)]


def _gap_end(wall: datetime, zone: ZoneInfo) -> datetime:
    """The first instant after the spring-forward gap that skips this wall time."""
    # Read with the offset after the gap, the wall time is an instant before the jump;
    # with the offset before it, one after: bisect to the second where the offset changes.
    lo = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    hi = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    lo_offset = lo.astimezone(zone).utcoffset()
    while hi - lo > timedelta(seconds=1):
        mid = (lo + (hi - lo) / 2).replace(microsecond=0)
        if mid.astimezone(zone).utcoffset() == lo_offset:
            lo = mid
        else:
            hi = mid
    return hi


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
