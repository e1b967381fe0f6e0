"""domain/schedules.py: cron validation, fire times across DST, interval anchor math.

DST behaviour (Europe/Berlin, 2026), as next_fires applies it (croniter only walks the
wall clock):

- Spring forward, 2026-03-29: 02:00 CET jumps to 03:00 CEST, so 02:00-02:59 does not
  exist. A fire that would fall in the gap is moved to the first instant after it:
  `30 2 * * *` fires once that day, at 03:00 CEST (01:00 UTC). `0 * * * *` fires at every
  real hour (01:00 CET, then 03:00 CEST): 23 fires on a 23-hour day, none lost.
- Fall back, 2026-10-25: 03:00 CEST goes back to 02:00 CET, so 02:00-02:59 happens twice.
  croniter alone fires `30 2 * * *` in both passes (00:30 and 01:30 UTC); next_fires keeps
  only the first pass for expressions pinned to an hour and minute (the Vixie cron rule),
  so a daily job runs once. Expressions with '*' in the minute or hour field fire in both
  passes: `0 * * * *` fires at 00:00 and 01:00 UTC (both 02:00 local), 25 fires on a
  25-hour day, one per real hour.
- Always: fire times are strictly increasing, never repeat a UTC instant, and computing
  them one at a time (as the scheduler does) gives the same series as in one batch.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from cronium.domain.schedules import (
    next_fires,
    next_interval_fire,
    parse_timezone,
    validate_cron,
)
from cronium.errors import ValidationFailed

BERLIN = "Europe/Berlin"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def chained(expression: str, zone: str, after: datetime, count: int) -> list[datetime]:
    """Fire times one by one, each after the previous: how the scheduler walks a series."""
    fires: list[datetime] = []
    for _ in range(count):
        after = next_fires(expression, zone, after, count=1)[0]
        fires.append(after)
    return fires


def local(fires: list[datetime], zone: str = BERLIN) -> list[str]:
    return [f.astimezone(ZoneInfo(zone)).strftime("%m-%d %H:%M %Z") for f in fires]


def assert_sane(fires: list[datetime]) -> None:
    assert all(f.tzinfo is UTC or f.utcoffset() == timedelta(0) for f in fires)
    assert all(a < b for a, b in pairwise(fires)), fires
    assert len(set(fires)) == len(fires)


def test_a_daily_fire_in_the_spring_gap_moves_to_the_end_of_the_gap() -> None:
    fires = next_fires("30 2 * * *", BERLIN, utc(2026, 3, 27, 12), count=4)
    assert fires == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30),
                     utc(2026, 3, 31, 0, 30)]  # fmt: skip
    assert local(fires) == ["03-28 02:30 CET", "03-29 03:00 CEST", "03-30 02:30 CEST",
                            "03-31 02:30 CEST"]  # fmt: skip


def test_several_fires_in_the_spring_gap_collapse_into_one() -> None:
    fires = next_fires("0,15,45 2 * * *", BERLIN, utc(2026, 3, 28, 12), count=4)
    assert local(fires) == ["03-29 03:00 CEST", "03-30 02:00 CEST", "03-30 02:15 CEST",
                            "03-30 02:45 CEST"]  # fmt: skip
    assert_sane(fires)


def test_an_hourly_fire_loses_nothing_at_spring_forward() -> None:
    fires = next_fires("0 * * * *", BERLIN, utc(2026, 3, 28, 22, 30), count=6)
    assert fires == [utc(2026, 3, 28, 23) + timedelta(hours=h) for h in range(6)]
    assert local(fires) == ["03-29 00:00 CET", "03-29 01:00 CET", "03-29 03:00 CEST",
                            "03-29 04:00 CEST", "03-29 05:00 CEST", "03-29 06:00 CEST"]  # fmt: skip


def test_a_daily_fire_in_the_repeated_hour_runs_once() -> None:
    fires = next_fires("30 2 * * *", BERLIN, utc(2026, 10, 23, 12), count=3)
    assert fires == [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    assert local(fires) == ["10-24 02:30 CEST", "10-25 02:30 CEST", "10-26 02:30 CET"]
    assert chained("30 2 * * *", BERLIN, utc(2026, 10, 23, 12), 3) == fires


def test_a_six_field_pinned_fire_in_the_repeated_hour_runs_once() -> None:
    fires = next_fires("15 30 2 * * *", BERLIN, utc(2026, 10, 24, 12), count=2)
    assert fires == [utc(2026, 10, 25, 0, 30, 15), utc(2026, 10, 26, 1, 30, 15)]


def test_a_pinned_fire_asked_for_inside_the_repeated_hour_waits_for_the_next_day() -> None:
    # 01:10 UTC is 02:10 CET, the second pass; 02:30 already fired in the first pass.
    assert next_fires("30 2 * * *", BERLIN, utc(2026, 10, 25, 1, 10), count=1) == [
        utc(2026, 10, 26, 1, 30)
    ]


def test_an_hourly_fire_runs_in_both_passes_of_the_repeated_hour() -> None:
    fires = next_fires("0 * * * *", BERLIN, utc(2026, 10, 24, 22, 30), count=5)
    assert fires == [utc(2026, 10, 24, 23) + timedelta(hours=h) for h in range(5)]
    assert local(fires) == ["10-25 01:00 CEST", "10-25 02:00 CEST", "10-25 02:00 CET",
                            "10-25 03:00 CET", "10-25 04:00 CET"]  # fmt: skip
    assert chained("0 * * * *", BERLIN, utc(2026, 10, 24, 22, 30), 5) == fires


def test_a_quarter_hourly_fire_keeps_its_rhythm_in_real_time_across_fall_back() -> None:
    fires = next_fires("*/15 * * * *", BERLIN, utc(2026, 10, 24, 23, 50), count=12)
    assert fires == [utc(2026, 10, 25, 0) + timedelta(minutes=15 * i) for i in range(12)]


def test_hourly_fires_cover_every_real_hour_of_a_year() -> None:
    start = utc(2025, 12, 31, 23, 30)
    fires = next_fires("0 * * * *", BERLIN, start, count=365 * 24)
    assert fires[0] == utc(2026, 1, 1, 0) and fires[-1] == utc(2026, 12, 31, 23)
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(fires))


@pytest.mark.parametrize("zone", [BERLIN, "America/New_York", "Australia/Lord_Howe", "UTC"])
def test_a_daily_fire_runs_once_on_every_local_day_of_a_year(zone: str) -> None:
    fires = next_fires("30 2 * * *", zone, utc(2026, 1, 1, 12), count=364)
    assert_sane(fires)
    days = [f.astimezone(ZoneInfo(zone)).date() for f in fires]
    assert days == [days[0] + timedelta(days=i) for i in range(364)]


@pytest.mark.parametrize(
    "expression", ["*/20 * * * *", "0 */2 * * *", "45 1-3 * * *", "*/30 * 2 * * *"]
)
@pytest.mark.parametrize("start", [utc(2026, 3, 28, 20), utc(2026, 10, 24, 20)])
def test_fires_are_strictly_increasing_and_unique_across_transitions(
    expression: str, start: datetime
) -> None:
    fires = next_fires(expression, BERLIN, start, count=200)
    assert_sane(fires)
    assert fires[0] > start
    assert chained(expression, BERLIN, start, 200) == fires


def test_a_fire_time_is_strictly_after_the_given_instant() -> None:
    assert next_fires("0 * * * *", "UTC", utc(2030, 1, 1, 5), count=1) == [utc(2030, 1, 1, 6)]
    just_before = utc(2030, 1, 1, 5) - timedelta(microseconds=1)
    assert next_fires("0 * * * *", "UTC", just_before, count=1) == [utc(2030, 1, 1, 5)]


def test_fires_are_utc_whatever_the_zone_of_the_input() -> None:
    after = datetime(2030, 6, 1, 12, tzinfo=ZoneInfo("Asia/Tokyo"))  # 03:00 UTC
    (fire,) = next_fires("0 9 * * *", "Asia/Kolkata", after, count=1)
    assert fire == utc(2030, 6, 1, 3, 30) and fire.utcoffset() == timedelta(0)


def test_six_fields_put_the_seconds_first() -> None:
    every_two = next_fires("*/2 * * * * *", "UTC", utc(2030, 1, 1, 0, 0, 1), count=3)
    assert every_two == [
        utc(2030, 1, 1, 0, 0, 2),
        utc(2030, 1, 1, 0, 0, 4),
        utc(2030, 1, 1, 0, 0, 6),
    ]
    assert next_fires("30 0 3 * * *", BERLIN, utc(2030, 1, 1), count=1) == [
        utc(2030, 1, 1, 2, 0, 30)
    ]
    assert next_fires("0 */5 * * * *", "UTC", utc(2030, 1, 1, 0, 1), count=2) == [
        utc(2030, 1, 1, 0, 5),
        utc(2030, 1, 1, 0, 10),
    ]
    # Five fields have no seconds: the minute comes first.
    assert next_fires("30 * * * *", "UTC", utc(2030, 1, 1), count=1) == [utc(2030, 1, 1, 0, 30)]


@pytest.mark.parametrize(
    ("expression", "normalised"),
    [("*/5 * * * *", "*/5 * * * *"), ("  0   3 * * MON-FRI ", "0 3 * * MON-FRI"),
     ("*/2 * * * * *", "*/2 * * * * *"), ("0 0 29 2 *", "0 0 29 2 *"), ("0 0 L * *", "0 0 L * *")],
)  # fmt: skip
def test_validate_cron_accepts_five_or_six_fields(expression: str, normalised: str) -> None:
    assert validate_cron(expression) == normalised


@pytest.mark.parametrize(
    "expression",
    ["* * * *", "0 0 12 * * * 2030", "", "@hourly", "61 * * * *", "0 24 * * *", "0 0 32 * *",
     "0 0 * 13 *", "0 0 * * 8", "60 * * * * *", "*/0 * * * *", "0 0 30 2 *", "R * * * *",
     "H(0-29) * * * *", "0 H * * *", "x * * * *"],
)  # fmt: skip
def test_validate_cron_refuses_bad_expressions(expression: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_cron(expression)
    assert caught.value.details == {"field": "schedule.cron"}


def test_month_and_weekday_names_are_not_mistaken_for_hashed_values() -> None:
    assert validate_cron("0 0 * MAR THU") == "0 0 * MAR THU"
    assert validate_cron("0 0 * * SUN,THU") == "0 0 * * SUN,THU"


@pytest.mark.parametrize(
    "zone", ["Mars/Olympus", "localtime", "", "europe/berlin", "../etc/passwd"]
)
def test_parse_timezone_refuses_names_that_are_not_iana_zones(zone: str) -> None:
    with pytest.raises(ValidationFailed):
        parse_timezone(zone)


def test_parse_timezone_accepts_iana_zones() -> None:
    assert parse_timezone("Europe/Berlin") == ZoneInfo("Europe/Berlin")
    assert parse_timezone("UTC") == ZoneInfo("UTC")


ANCHOR = utc(2030, 1, 1, 12)


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        (ANCHOR - timedelta(days=3), ANCHOR),  # before the anchor: the anchor itself
        (ANCHOR - timedelta(microseconds=1), ANCHOR),
        (ANCHOR, ANCHOR + timedelta(seconds=300)),  # strictly after
        (ANCHOR + timedelta(seconds=1), ANCHOR + timedelta(seconds=300)),
        (ANCHOR + timedelta(seconds=299, microseconds=999_999), ANCHOR + timedelta(seconds=300)),
        (ANCHOR + timedelta(seconds=300), ANCHOR + timedelta(seconds=600)),  # on a boundary
        (ANCHOR + timedelta(days=365, seconds=7), ANCHOR + timedelta(days=365, seconds=300)),
    ],
)
def test_an_interval_fires_on_multiples_of_its_period_from_the_anchor(
    after: datetime, expected: datetime
) -> None:
    assert next_interval_fire(ANCHOR, 300, after) == expected


def test_an_interval_does_not_drift_over_many_periods() -> None:
    after = ANCHOR + timedelta(seconds=7 * 1_000_000 + 3)
    assert next_interval_fire(ANCHOR, 7, after) == ANCHOR + timedelta(seconds=7 * 1_000_001)


def test_an_interval_ignores_dst_because_it_counts_real_seconds() -> None:
    anchor = datetime(2026, 10, 24, 12, tzinfo=ZoneInfo(BERLIN))  # 10:00 UTC
    fire = next_interval_fire(anchor, 24 * 3600, anchor + timedelta(hours=1))
    assert fire.astimezone(UTC) == utc(2026, 10, 25, 10)  # 11:00 CET: 24 real hours later


def test_lord_howe_half_hour_fall_back_fires_in_both_passes() -> None:
    # 2017-04-02 02:00 LHDT (+11) goes back to 01:30 LHST (+10:30): 01:30-01:59 repeats.
    # croniter alone jumped from 01:56 (first pass) to 02:00, losing the second pass.
    fires = next_fires("*/4 * * * *", "Australia/Lord_Howe", utc(2017, 4, 1, 14, 50), count=4)
    assert fires == [utc(2017, 4, 1, 14, 52), utc(2017, 4, 1, 14, 56), utc(2017, 4, 1, 15, 2),
                     utc(2017, 4, 1, 15, 6)]  # fmt: skip
    assert local(fires, "Australia/Lord_Howe") == ["04-02 01:52 +11", "04-02 01:56 +11",
                                                   "04-02 01:32 +1030", "04-02 01:36 +1030"]  # fmt: skip


def test_a_one_value_range_is_that_value() -> None:
    # croniter expands "5-5" to the whole field: '0 5-5 * * *' fired every hour.
    assert next_fires("0 5-5 * * *", "UTC", utc(2030, 1, 1), count=2) == [
        utc(2030, 1, 1, 5),
        utc(2030, 1, 2, 5),
    ]
    assert next_fires("7-7/5 * * * *", "UTC", utc(2030, 1, 1), count=2) == [
        utc(2030, 1, 1, 0, 7),
        utc(2030, 1, 1, 1, 7),
    ]
    assert next_fires("0 0 * * MON-mon", "UTC", utc(2030, 1, 1), count=1) == [utc(2030, 1, 7)]
