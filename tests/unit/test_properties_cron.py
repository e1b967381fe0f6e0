"""Property tests for domain/schedules.py against an independent oracle.

The oracle knows nothing of croniter: it walks real time forward one UTC minute at a time,
turns each instant into the zone's local wall time with zoneinfo and checks membership of
every cron field, applying the DST rules documented on `next_fires`:

- a wall time skipped by a spring-forward gap fires once, at the first instant after the
  gap (several such times collapse into that one fire);
- a wall time repeated by a fall-back overlap fires at its first occurrence only when the
  expression is pinned (no '*' in its minute or hour field), in both occurrences otherwise.

Day of month and day of week follow cron(8): when both are restricted (neither starts
with '*') a day matching either one matches; otherwise a day must match both.

The oracle collects the fires in a bounded window after a start instant (often a DST
transition of the zone); `next_fires` must return exactly those, and its next fire must
lie beyond the window.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import pairwise
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from cronium.domain.schedules import next_fires, next_interval_fire, validate_cron

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "Pacific/Chatham",  # +12:45/+13:45, transitions at 02:45 local
    "America/St_Johns",  # -03:30
    "Asia/Kathmandu",  # +05:45, no DST
    "America/Sao_Paulo",  # DST until 2019, transitions at midnight
]
YEARS = (2017, 2030)
MINUTE = timedelta(minutes=1)
WINDOW = timedelta(hours=36)
LIMIT = 25  # compare at most this many fires
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


@cache
def transitions(zone: str) -> list[datetime]:
    """UTC instants (to the minute) at which the zone's offset changes, in YEARS."""
    zi = ZoneInfo(zone)
    found: list[datetime] = []
    day = datetime(YEARS[0], 1, 1, tzinfo=UTC)
    end = datetime(YEARS[1], 12, 31, tzinfo=UTC)
    while day < end:
        nxt = day + timedelta(days=1)
        if day.astimezone(zi).utcoffset() != nxt.astimezone(zi).utcoffset():
            lo, hi = day, nxt  # offset(lo) != offset(hi): bisect to the minute
            while hi - lo > MINUTE:
                mid = lo + (hi - lo) // 2
                mid = mid.replace(second=0, microsecond=0)
                if mid.astimezone(zi).utcoffset() == lo.astimezone(zi).utcoffset():
                    lo = mid
                else:
                    hi = mid
            found.append(hi)
        day = nxt
    return found


# -- strategies -----------------------------------------------------------------------------


def _item(lo: int, hi: int) -> st.SearchStrategy[str]:
    num = st.integers(lo, hi)
    step = st.integers(1, hi - lo + 1)
    span = st.tuples(num, num).map(sorted)
    return st.one_of(
        num.map(str),
        span.map(lambda ab: f"{ab[0]}-{ab[1]}"),
        st.tuples(span, step).map(lambda t: f"{t[0][0]}-{t[0][1]}/{t[1]}"),
    )


def field(lo: int, hi: int, *, star_weight: int = 1) -> st.SearchStrategy[str]:
    """'*', '*/n', or a list of numbers, ranges and stepped ranges."""
    stars = st.one_of(st.just("*"), st.integers(1, hi - lo + 1).map(lambda s: f"*/{s}"))
    items = st.lists(_item(lo, hi), min_size=1, max_size=4).map(",".join)
    return st.one_of(*[stars] * star_weight, items)


def named(lo: int, names: list[str]) -> st.SearchStrategy[str]:
    return st.integers(lo, lo + len(names) - 1).map(lambda n: names[n - lo])


@st.composite
def cron_expressions(draw: st.DrawFn, *, seconds: bool) -> str:
    minute = draw(field(0, 59))
    hour = draw(field(0, 23))
    month = draw(st.one_of(st.just("*"), st.just("*"), field(1, 12), named(1, MONTHS)))
    dow = draw(st.one_of(st.just("*"), st.just("*"), field(0, 7), named(0, DAYS)))
    dom = draw(st.one_of(st.just("*"), st.just("*"), field(1, 31)))
    # cron(8) counts a '*/n' day field as unrestricted (a day must match both fields);
    # croniter as restricted (either field will do, if the other is restricted too).
    # Cronium documents neither: keep to the cases where both agree.
    if dom.startswith("*/") and dow != "*":
        dom = "*"
    if dow.startswith("*/") and dom != "*":
        dow = "*"
    fields = [minute, hour, dom, month, dow]
    if seconds:
        fields.insert(0, draw(field(0, 59)))
    return " ".join(fields)


@st.composite
def instants(draw: st.DrawFn, zone: str) -> datetime:
    """A start instant: often within two days before or a day after a DST transition."""
    near = transitions(zone)
    if near and draw(st.booleans()):
        base = draw(st.sampled_from(near))
        delta = draw(st.integers(-2 * 86400, 86400))
    else:
        base = datetime(YEARS[0], 1, 1, tzinfo=UTC)
        delta = draw(st.integers(0, (YEARS[1] - YEARS[0]) * 365 * 86400))
    micro = draw(st.sampled_from([0, 0, 1, 999_999, 500_000]))
    return base + timedelta(seconds=delta, microseconds=micro)


# -- the oracle -----------------------------------------------------------------------------


def values(text: str, lo: int, hi: int, names: list[str] | None = None) -> set[int]:
    out: set[int] = set()
    for item in text.split(","):
        base, _, step = item.partition("/")
        if names and base.upper() in names:
            base = str(names.index(base.upper()) + (1 if names is MONTHS else 0))
        if base == "*":
            first, last = lo, hi
        elif "-" in base:
            first, last = (int(x) for x in base.split("-"))
        else:
            first = last = int(base)
        out |= set(range(first, last + 1, int(step) if step else 1))
    return out


class Oracle:
    def __init__(self, expression: str, zone: str) -> None:
        fields = expression.split()
        if len(fields) == 5:
            fields.insert(0, "0")
        sec, minute, hour, dom, month, dow = fields
        self.seconds = sorted(values(sec, 0, 59))
        self.minutes = values(minute, 0, 59)
        self.hours = values(hour, 0, 23)
        self.doms = values(dom, 1, 31)
        self.months = values(month, 1, 12, MONTHS)
        self.dows = {d % 7 for d in values(dow, 0, 6, DAYS)}
        self.day_or = not dom.startswith("*") and not dow.startswith("*")
        self.pinned = "*" not in minute and "*" not in hour
        self.zone = ZoneInfo(zone)

    def matches(self, wall: datetime) -> bool:
        """Does this local wall-clock minute match (seconds aside)?"""
        if wall.minute not in self.minutes or wall.hour not in self.hours:
            return False
        if wall.month not in self.months:
            return False
        dom_ok = wall.day in self.doms
        dow_ok = (wall.weekday() + 1) % 7 in self.dows
        return (dom_ok or dow_ok) if self.day_or else (dom_ok and dow_ok)

    def fires(self, after: datetime, end: datetime, limit: int) -> list[datetime]:
        """The fires strictly after `after` up to `end` (at most `limit`), in UTC."""
        t = after.astimezone(UTC).replace(second=0, microsecond=0)
        previous = (t - MINUTE).astimezone(self.zone).replace(tzinfo=None)
        found: list[datetime] = []
        while t <= end and len(found) < limit:
            here = t.astimezone(self.zone)
            wall = here.replace(tzinfo=None, fold=0)
            candidates: list[datetime] = []
            # Spring forward: the wall clock jumped past some minutes; one of them matching
            # fires now, at the first instant after the gap.
            skipped = previous + MINUTE
            while skipped < wall:
                if self.matches(skipped):
                    candidates.append(t)
                    break
                skipped += MINUTE
            # Fall back: the second pass (fold=1) fires only for unpinned expressions.
            if self.matches(wall) and not (self.pinned and here.fold == 1):
                candidates += [t + timedelta(seconds=s) for s in self.seconds]
            for fire in candidates:
                if fire > after and (not found or fire > found[-1]) and fire <= end:
                    found.append(fire)
            previous = wall
            t += MINUTE
        return found[:limit]


# -- properties -----------------------------------------------------------------------------


def assert_sane(fires: list[datetime], after: datetime) -> None:
    assert all(f.utcoffset() == timedelta(0) and f.tzinfo is UTC for f in fires), fires
    assert all(a < b for a, b in pairwise(fires)), fires
    assert not fires or fires[0] > after


def check_against_oracle(expression: str, zone: str, after: datetime) -> None:
    assert validate_cron(expression) == expression
    end = after + WINDOW
    expected = Oracle(expression, zone).fires(after, end, LIMIT)
    if len(expected) == LIMIT:
        got = next_fires(expression, zone, after, count=LIMIT)
        assert got == expected, _explain(got, expected, zone)
    else:
        got = next_fires(expression, zone, after, count=len(expected) + 1)
        assert got[:-1] == expected, _explain(got[:-1], expected, zone)
        assert got[-1] > end, f"fire {got[-1]} inside the window, the oracle has none there"
    assert_sane(got, after)


def _explain(got: list[datetime], expected: list[datetime], zone: str) -> str:
    zi = ZoneInfo(zone)

    def show(fires: list[datetime]) -> list[str]:
        return [f"{f:%Y-%m-%d %H:%M:%S}Z={f.astimezone(zi):%H:%M:%S%z}" for f in fires]

    return f"\n got:      {show(got)}\n expected: {show(expected)}"


@st.composite
def cases(draw: st.DrawFn, *, seconds: bool) -> tuple[str, str, datetime]:
    zone = draw(st.sampled_from(ZONES))
    return draw(cron_expressions(seconds=seconds)), zone, draw(instants(zone))


@settings(max_examples=150)
@given(cases(seconds=False))
def test_five_field_fires_match_the_oracle(case: tuple[str, str, datetime]) -> None:
    check_against_oracle(*case)


@settings(max_examples=60)
@given(cases(seconds=True))
def test_six_field_fires_match_the_oracle(case: tuple[str, str, datetime]) -> None:
    check_against_oracle(*case)


@settings(max_examples=60)
@given(cases(seconds=False), st.integers(1, 40))
def test_fires_increase_and_one_at_a_time_equals_a_batch(
    case: tuple[str, str, datetime], count: int
) -> None:
    expression, zone, after = case
    fires = next_fires(expression, zone, after, count=count)
    assert len(fires) == count
    assert_sane(fires, after)
    one_by_one: list[datetime] = []
    previous = after
    for _ in range(count):
        (previous,) = next_fires(expression, zone, previous, count=1)
        one_by_one.append(previous)
    assert one_by_one == fires


aware = st.builds(
    lambda base, zone: base.replace(tzinfo=ZoneInfo(zone)),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2060, 1, 1)),
    st.sampled_from(ZONES),
)


@settings(max_examples=300)
@given(aware, st.integers(1, 10 * 86400), aware)
def test_an_interval_fires_at_the_first_multiple_of_its_period_after(
    start: datetime, every_s: int, after: datetime
) -> None:
    fire = next_interval_fire(start, every_s, after)
    assert fire.utcoffset() == timedelta(0)
    period = timedelta(seconds=every_s)
    if after < start:
        assert fire == start
        return
    # A whole number of real periods from the anchor, the first one strictly after.
    steps, rest = divmod(fire - start, period)
    assert rest == timedelta(0) and steps >= 1
    assert fire - period <= after < fire
