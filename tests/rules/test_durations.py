"""SLA targets as admins write them: business time in h and m, business days and weeks."""
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.durations import MAX_DAYS, Duration, format_duration, parse_duration


@pytest.mark.parametrize("text, duration", [
    ("30m", Duration(time=timedelta(minutes=30))),
    ("1h", Duration(time=timedelta(hours=1))),
    ("8h", Duration(time=timedelta(hours=8))),
    ("1h30m", Duration(time=timedelta(hours=1, minutes=30))),
    ("90m", Duration(time=timedelta(hours=1, minutes=30))),
    ("36h", Duration(time=timedelta(hours=36))),
    ("5d", Duration(days=5)),
    ("2w", Duration(weeks=2)),
    ("1w2d4h30m", Duration(weeks=1, days=2, time=timedelta(hours=4, minutes=30))),
    ("1d 4h", Duration(days=1, time=timedelta(hours=4))),
    ("  0m ", Duration()),
])
def test_the_accepted_forms(text, duration):
    assert parse_duration(text) == duration


def test_five_days_are_five_business_days_not_120_hours():
    assert parse_duration("5d") != parse_duration("120h")
    assert parse_duration("5d").days == 5 and parse_duration("5d").time == timedelta(0)


@pytest.mark.parametrize("value", [30, 1.5, 0])
def test_a_bare_number_is_refused_because_its_unit_is_unknown(value):
    with pytest.raises(ValueError, match="a bare number has no unit") as refused:
        parse_duration(value)
    assert "30m, 4h, 1h30m" in str(refused.value) and "5d" in str(refused.value)


@pytest.mark.parametrize("value", [True, None, ["1h"], timedelta(hours=1)])
def test_other_types_are_refused(value):
    with pytest.raises(ValueError, match="expected a duration like 30m, 4h"):
        parse_duration(value)


@pytest.mark.parametrize("text", ["", " ", "h", "90s", "1.5h", "-1h", "1m1h", "1h1h", "1 h",
                                  "1H", "1hour", "P1D", "1d-4h", "4h,30m"])
def test_other_spellings_are_refused_naming_the_accepted_forms(text):
    with pytest.raises(ValueError) as refused:
        parse_duration(text)
    assert str(refused.value) == (
        "expected a duration like 30m, 4h, 1h30m (business time), 5d (business days), "
        f"2w (business weeks), got {text!r}")


@pytest.mark.parametrize("text", ["523w", f"{MAX_DAYS + 1}d", "87841h", "99999999999999999999w",
                                  "99999999999999999999h"])
def test_more_than_ten_years_is_a_typing_mistake(text):
    with pytest.raises(ValueError, match="at most 3660 days"):
        parse_duration(text)


def test_ten_years_exactly_is_accepted():
    assert parse_duration(f"{MAX_DAYS}d") == Duration(days=MAX_DAYS)


def test_a_duration_cannot_be_negative():
    with pytest.raises(ValueError, match="negative"):
        Duration(days=-1)
    with pytest.raises(ValueError, match="negative"):
        Duration(time=timedelta(minutes=-5))


@pytest.mark.parametrize("text, shown", [
    ("90m", "1h30m"), ("1h", "1h"), ("0h", "0m"), ("5d", "5d"), ("2w", "2w"),
    ("1w 0d 4h", "1w4h"), ("2d30m", "2d30m"), ("120m", "2h"),
])
def test_a_duration_is_shown_in_its_canonical_spelling(text, shown):
    assert format_duration(parse_duration(text)) == shown
    assert str(parse_duration(text)) == shown


@pytest.mark.parametrize("td, shown", [
    (timedelta(0), "0m"), (timedelta(minutes=90), "1h30m"), (timedelta(hours=2), "2h"),
    (timedelta(days=5), "120h"), (timedelta(minutes=59, seconds=59), "59m"),
    (timedelta(seconds=30), "0m"), (-timedelta(hours=1, minutes=15), "-1h15m"),
])
def test_business_time_is_shown_in_hours_and_minutes(td, shown):
    assert format_duration(td) == shown


@given(st.integers(0, 20), st.integers(0, 100), st.integers(0, 10_000))
def test_the_shown_spelling_reads_back_the_same_duration(weeks, days, minutes):
    duration = Duration(weeks, days, timedelta(minutes=minutes))
    assert parse_duration(format_duration(duration)) == duration


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400)))
def test_business_time_shown_reads_back_to_the_minute(td):
    whole_minutes = td // timedelta(minutes=1) * timedelta(minutes=1)
    assert parse_duration(format_duration(td)).time == whole_minutes
