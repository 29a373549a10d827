"""Business calendars: opening hours, holidays, DST, and business time that adds up."""
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from rules.calendar import (END_OF_DAY, MAX_CLOSED_DAYS, Calendar, CalendarNeverOpens,
                            parse_calendar)
from rules.durations import Duration, parse_duration

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def calendar(text: str) -> Calendar:
    """One `calendars:` entry written as in rules.yaml ("name: {...}"), parsed."""
    (name, data), = YAML(typ="safe", pure=True).load(text).items()
    built, problems = parse_calendar(name, data, ("calendars", name))
    assert problems == []
    return built


def problems(text: str) -> list:
    (name, data), = YAML(typ="safe", pure=True).load(text).items()
    built, found = parse_calendar(name, data, ("calendars", name))
    assert built is None
    return found


def berlin(*args) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


def new_york(*args) -> datetime:
    return datetime(*args, tzinfo=NEW_YORK)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def due(cal: Calendar, start: datetime, target: str) -> datetime:
    """The deadline of an SLA target as written in rules.yaml ("1d4h")."""
    return cal.add_duration(start, parse_duration(target))


OFFICE = calendar("""office: {timezone: Europe/Berlin, hours: {mon-fri: "09:00-17:00"},
                              holidays: [2026-12-24, "2026-12-31"], country: DE}""")
BAVARIA = calendar("""bavaria: {timezone: Europe/Berlin, hours: {mon-fri: "09:00-17:00"},
                                country: DE, subdivision: BY}""")
ALWAYS = calendar('always: {timezone: UTC, hours: {mon-sun: "00:00-24:00"}}')
ALWAYS_BERLIN = calendar('always: {timezone: Europe/Berlin, hours: {mon-sun: "00:00-24:00"}}')
SPLIT = calendar("""split: {timezone: America/New_York,
                            hours: {mon-thu: "08:00-12:00, 13:00-17:00", fri: "08:00-12:00"}}""")
# Sunday ranges inside and around the 02:00-03:00 hour that DST skips or repeats
NIGHT = calendar("""night: {timezone: Europe/Berlin, hours: {sun: "02:00-03:00"}}""")
EDGES = calendar("""edges: {timezone: Europe/Berlin,
                            hours: {mon-fri: "08:00-12:00, 13:00-17:00", sat: "22:00-24:00",
                                    sun: "00:00-01:00, 01:30-02:30, 02:30-04:00"}}""")


# --- parsing: what a good entry becomes -------------------------------------------------------

def test_a_weekday_office_opens_monday_to_friday_with_its_holidays():
    assert OFFICE.name == "office" and OFFICE.timezone == "Europe/Berlin"
    assert OFFICE.hours == ((( time(9), time(17)),),) * 5 + ((), ())
    assert OFFICE.holidays == {date(2026, 12, 24), date(2026, 12, 31)}
    assert (OFFICE.country, OFFICE.subdivision) == ("DE", None)
    assert OFFICE.open_weekdays == 5


def test_24_00_ends_the_day_as_end_of_day():
    assert ALWAYS.hours == ((( time(0), END_OF_DAY),),) * 7
    assert ALWAYS.open_weekdays == 7


def test_split_hours_are_kept_in_order_and_days_may_be_written_in_any_case():
    cal = calendar('c: {timezone: UTC, hours: {Mon-Tue: "13:00-17:00,08:00-12:00", '
                   'sun: "12:00-13:00, 13:00-14:00"}}')
    assert cal.hours[0] == cal.hours[1] == ((time(8), time(12)), (time(13), time(17)))
    assert cal.hours[6] == ((time(12), time(13)), (time(13), time(14)))    # touching is fine
    assert cal.hours[2:6] == ((),) * 4


def test_calendars_compare_and_hash_by_their_values():
    again = calendar("""office: {timezone: Europe/Berlin, hours: {mon-fri: "09:00-17:00"},
                                 holidays: ["2026-12-24", 2026-12-31], country: DE}""")
    OFFICE.is_open(utc(2026, 12, 25, 10))              # fills the holiday cache
    assert again == OFFICE and hash(again) == hash(OFFICE)
    assert {OFFICE, again} == {OFFICE}


# --- parsing: every problem, where it is ------------------------------------------------------

def test_an_entry_that_is_not_a_mapping_is_refused():
    assert problems('office: "09:00-17:00"') == [
        (("calendars", "office"),
         "expected a mapping with timezone and hours, got string '09:00-17:00'")]


def test_missing_timezone_and_hours_are_both_reported():
    assert problems("office: {country: DE}") == [
        (("calendars", "office", "timezone"), "required key is missing"),
        (("calendars", "office", "hours"), "required key is missing")]


def test_an_unknown_key_is_refused_with_a_suggestion():
    found = problems('office: {timezone: UTC, hours: {mon: "09:00-17:00"}, holiday: [2026-12-24]}')
    assert found == [(("calendars", "office", "holiday"),
                      "unknown key; did you mean 'holidays'? (allowed here: timezone, hours, "
                      "holidays, country, subdivision)")]


def test_an_unknown_time_zone_is_refused_with_a_suggestion():
    assert problems('office: {timezone: Europe/Berln, hours: {mon: "09:00-17:00"}}') == [
        (("calendars", "office", "timezone"),
         "unknown time zone 'Europe/Berln'; did you mean 'Europe/Berlin'? "
         "(an IANA name like Europe/Berlin or UTC)")]


@pytest.mark.parametrize("value", ["5", "''", "../etc/passwd"])
def test_a_time_zone_must_be_a_name_of_the_database(value):
    (path, message), = problems(f'office: {{timezone: {value}, hours: {{mon: "09:00-17:00"}}}}')
    assert path == ("calendars", "office", "timezone")
    assert "time zone" in message


def test_hours_must_be_a_mapping():
    assert problems('office: {timezone: UTC, hours: "09:00-17:00"}') == [
        (("calendars", "office", "hours"),
         "expected a mapping of days to hours like mon-fri: \"09:00-17:00\", got string '09:00-17:00'")]


def test_a_calendar_without_hours_is_never_open():
    assert problems("office: {timezone: UTC, hours: {}}") == [
        (("calendars", "office", "hours"),
         'the calendar is never open; give hours like mon-fri: "09:00-17:00"')]


def test_an_unknown_day_is_refused():
    assert problems('office: {timezone: UTC, hours: {mo-fr: "09:00-17:00"}}') == [
        (("calendars", "office", "hours", "mo-fr"),
         "unknown day 'mo'; days are mon tue wed thu fri sat sun, ranges like mon-fri")]


def test_a_day_must_be_a_name():
    assert problems('office: {timezone: UTC, hours: {1: "09:00-17:00"}}') == [
        (("calendars", "office", "hours", 1),
         "expected a day or day range like mon-fri, got integer 1")]


def test_a_day_range_that_wraps_around_the_week_is_refused():
    assert problems('office: {timezone: UTC, hours: {fri-mon: "09:00-17:00"}}') == [
        (("calendars", "office", "hours", "fri-mon"),
         "'fri-mon' wraps around the week; a range runs from mon towards sun: "
         "write fri-sun and mon as two entries")]
    (_, message), = problems('office: {timezone: UTC, hours: {sat-tue: "09:00-17:00"}}')
    assert "write sat-sun and mon-tue as two entries" in message


def test_a_day_given_twice_is_refused_at_its_second_entry():
    assert problems('office: {timezone: UTC, hours: {mon-fri: "09:00-17:00", fri: "09:00-12:00"}}') == [
        (("calendars", "office", "hours", "fri"),
         "fri is already given by 'mon-fri'; a day belongs to one entry")]


@pytest.mark.parametrize("ranges, message", [
    ("9-17", "expected a range HH:MM-HH:MM, got '9-17'"),
    ("09:00-17:00,", "expected a range HH:MM-HH:MM, got ''"),
    ("25:00-26:00", "'25:00-26:00': not a time of day (00:00 to 23:59, and 24:00 as an end)"),
    ("09:60-17:00", "'09:60-17:00': not a time of day (00:00 to 23:59, and 24:00 as an end)"),
    ("24:00-24:00", "'24:00-24:00': not a time of day (00:00 to 23:59, and 24:00 as an end)"),
    ("20:00-24:30", "'20:00-24:30': not a time of day (00:00 to 23:59, and 24:00 as an end)"),
    ("22:00-06:00", "'22:00-06:00' ends before it starts; a range cannot run past midnight "
                    "(use 24:00, and 00:00 on the next day)"),
    ("09:00-09:00", "'09:00-09:00' ends before it starts; a range cannot run past midnight "
                    "(use 24:00, and 00:00 on the next day)"),
    ("08:00-12:00, 11:00-13:00", "'11:00-13:00' overlaps '08:00-12:00'"),
])
def test_a_bad_time_range_is_refused_with_the_range_named(ranges, message):
    assert problems(f'office: {{timezone: UTC, hours: {{mon-fri: "{ranges}"}}}}') == [
        (("calendars", "office", "hours", "mon-fri"), message)]


@pytest.mark.parametrize("value, shown", [("17", "integer 17"), ('""', "string ''"),
                                           ("[09:00-17:00]", "a list")])
def test_hours_of_a_day_must_be_text(value, shown):
    assert problems(f"office: {{timezone: UTC, hours: {{sat: {value}}}}}") == [
        (("calendars", "office", "hours", "sat"),
         f'expected time ranges like "09:00-17:00" or "08:00-12:00, 13:00-17:00", got {shown}')]


def test_holidays_must_be_a_list_of_dates():
    assert problems('office: {timezone: UTC, hours: {mon: "09:00-17:00"}, holidays: 2026-12-24}') == [
        (("calendars", "office", "holidays"),
         "expected a list of dates like [2026-12-24], got date 2026-12-24")]


def test_each_bad_holiday_is_reported_at_its_index():
    found = problems('office: {timezone: UTC, hours: {mon: "09:00-17:00"}, '
                     'holidays: [2026-12-24, "2026-02-30", christmas, 2026-12-25 10:00:00, 20261226]}')
    assert found == [
        (("calendars", "office", "holidays", 1),
         "expected a date like 2026-12-24, got string '2026-02-30'"),
        (("calendars", "office", "holidays", 2),
         "expected a date like 2026-12-24, got string 'christmas'"),
        (("calendars", "office", "holidays", 3),
         "expected a date like 2026-12-24, got timestamp 2026-12-25 10:00:00; "
         "a holiday closes the whole day, write the date alone"),
        (("calendars", "office", "holidays", 4),
         "expected a date like 2026-12-24, got integer 20261226")]


def test_an_unknown_country_is_refused():
    assert problems('office: {timezone: UTC, hours: {mon: "09:00-17:00"}, country: XX}') == [
        (("calendars", "office", "country"),
         "unknown country 'XX' (an ISO code the holidays package knows, like DE, US, GB, FR)")]


def test_a_lower_case_country_gets_a_suggestion():
    (path, message), = problems('office: {timezone: UTC, hours: {mon: "09:00-17:00"}, country: de}')
    assert path == ("calendars", "office", "country")
    assert "did you mean 'DE'?" in message


def test_a_country_must_be_a_code():
    assert problems('office: {timezone: UTC, hours: {mon: "09:00-17:00"}, country: 49}') == [
        (("calendars", "office", "country"), "expected a code like DE or US, got integer 49")]


def test_an_unknown_subdivision_lists_the_known_ones():
    (path, message), = problems(
        'office: {timezone: UTC, hours: {mon: "09:00-17:00"}, country: DE, subdivision: XY}')
    assert path == ("calendars", "office", "subdivision")
    assert message.startswith("DE has no subdivision 'XY' (known: BB, BE, BW, BY,")


def test_a_subdivision_needs_a_country():
    assert problems('office: {timezone: UTC, hours: {mon: "09:00-17:00"}, subdivision: BY}') == [
        (("calendars", "office", "subdivision"), "a subdivision needs a country")]


def test_every_problem_of_an_entry_is_reported_at_once():
    found = problems("""office: {timezone: Mars/Olympus, colour: blue, country: XX,
                                 hours: {mon-fri: "17:00-09:00", sun-sat: "10:00-11:00",
                                         thu: "09:00-12:00", xyz: 5},
                                 holidays: [someday]}""")
    assert [path for path, _ in found] == [
        ("calendars", "office", "colour"),
        ("calendars", "office", "timezone"),
        ("calendars", "office", "hours", "mon-fri"),
        ("calendars", "office", "hours", "sun-sat"),
        ("calendars", "office", "hours", "thu"),
        ("calendars", "office", "hours", "xyz"),
        ("calendars", "office", "hours", "xyz"),
        ("calendars", "office", "holidays", 0),
        ("calendars", "office", "country"),
    ]
    assert "thu is already given by 'mon-fri'" in found[4][1]


def test_a_hand_built_calendar_is_checked_too():
    week = ((time(9), time(17)),) * 5
    with pytest.raises(ValueError, match="7 days"):
        Calendar("c", "UTC", (week,) * 5)
    with pytest.raises(ValueError, match="never open"):
        Calendar("c", "UTC", ((),) * 7)
    with pytest.raises(ValueError, match="overlap"):
        Calendar("c", "UTC", (((time(9), time(12)), (time(11), time(13))),) + ((),) * 6)
    with pytest.raises(ValueError, match="unknown time zone"):
        Calendar("c", "Nowhere/Town", (((time(9), time(17)),),) * 7)
    with pytest.raises(ValueError, match="country"):
        Calendar("c", "UTC", (((time(9), time(17)),),) * 7, country="XX")


# --- is_open ----------------------------------------------------------------------------------

def test_the_office_is_open_on_weekdays_in_its_hours_in_local_time():
    assert OFFICE.is_open(berlin(2026, 6, 10, 9, 0))            # Wednesday, opening minute
    assert OFFICE.is_open(berlin(2026, 6, 10, 16, 59))
    assert not OFFICE.is_open(berlin(2026, 6, 10, 17, 0))       # closing time is closed
    assert not OFFICE.is_open(berlin(2026, 6, 10, 8, 59))
    assert OFFICE.is_open(utc(2026, 6, 10, 7, 0))               # 09:00 in Berlin (summer)
    assert not OFFICE.is_open(utc(2026, 1, 14, 7, 30))          # 08:30 in Berlin (winter)


def test_naive_datetimes_are_utc():
    assert OFFICE.is_open(datetime(2026, 6, 10, 7, 0))
    assert not OFFICE.is_open(datetime(2026, 6, 10, 15, 0))     # 17:00 in Berlin


def test_the_office_is_closed_at_the_weekend():
    assert not OFFICE.is_open(berlin(2026, 6, 13, 12))          # Saturday
    assert not OFFICE.is_open(berlin(2026, 6, 14, 12))          # Sunday


def test_a_listed_holiday_closes_the_whole_day():
    assert not OFFICE.is_open(berlin(2026, 12, 24, 10))         # Thursday, listed
    assert OFFICE.is_open(berlin(2026, 12, 23, 10))
    assert OFFICE.is_holiday(date(2026, 12, 31))


def test_a_public_holiday_of_the_country_closes_the_day():
    assert not OFFICE.is_open(berlin(2026, 12, 25, 10))         # Christmas Day, Friday
    assert not OFFICE.is_open(berlin(2026, 5, 1, 10))           # Labour Day, Friday
    assert not OFFICE.is_open(berlin(2028, 10, 3, 10))          # German Unity Day, a Tuesday


def test_a_holiday_of_the_subdivision_closes_only_there():
    epiphany = berlin(2026, 1, 6, 10)                           # Tuesday, a holiday in Bavaria
    assert not BAVARIA.is_open(epiphany)
    assert OFFICE.is_open(epiphany)
    assert not BAVARIA.is_open(berlin(2026, 12, 25, 10))        # national holidays too


def test_a_calendar_without_country_only_knows_its_listed_holidays():
    assert ALWAYS.is_open(utc(2026, 12, 25, 10))


def test_a_24_hour_calendar_is_always_open():
    for hour in (0, 6, 12, 23):
        assert ALWAYS.is_open(utc(2026, 3, 1, hour, 59, 59))
    assert ALWAYS.next_open(utc(2026, 3, 1, 23, 59, 59, 999999)) == utc(2026, 3, 1, 23, 59, 59, 999999)


def test_split_hours_close_for_lunch_and_friday_afternoon():
    assert SPLIT.is_open(new_york(2026, 6, 11, 11, 59))         # Thursday
    assert not SPLIT.is_open(new_york(2026, 6, 11, 12, 30))     # lunch
    assert SPLIT.is_open(new_york(2026, 6, 11, 13, 0))
    assert SPLIT.is_open(new_york(2026, 6, 12, 11, 0))          # Friday morning
    assert not SPLIT.is_open(new_york(2026, 6, 12, 14, 0))      # Friday afternoon


# --- next_open --------------------------------------------------------------------------------

def test_next_open_is_the_instant_itself_when_open():
    at = berlin(2026, 6, 10, 10, 15, 30)
    assert OFFICE.next_open(at) == at and OFFICE.next_open(at).tzinfo == UTC


def test_after_friday_closing_the_next_opening_is_monday_morning():
    assert OFFICE.next_open(berlin(2026, 6, 12, 17, 0)) == berlin(2026, 6, 15, 9, 0)


def test_after_lunch_break_starts_the_next_opening_is_after_lunch():
    assert SPLIT.next_open(new_york(2026, 6, 11, 12, 0)) == new_york(2026, 6, 11, 13, 0)


def test_the_christmas_holidays_are_skipped():
    assert OFFICE.next_open(berlin(2026, 12, 23, 18)) == berlin(2026, 12, 28, 9)


# --- add and between across nights, weekends and holidays -------------------------------------

def test_a_mail_on_friday_at_16_30_with_a_1h_target_is_due_monday_at_09_30():
    due = OFFICE.add(berlin(2026, 6, 12, 16, 30), timedelta(hours=1))
    assert due == berlin(2026, 6, 15, 9, 30)
    assert due.tzinfo == UTC


def test_a_target_that_runs_out_at_closing_time_is_due_at_closing_time():
    assert OFFICE.add(berlin(2026, 6, 12, 16, 0), timedelta(hours=1)) == berlin(2026, 6, 12, 17, 0)


def test_a_mail_at_night_starts_the_clock_at_the_next_opening():
    assert OFFICE.add(berlin(2026, 6, 10, 22, 0), timedelta(hours=2)) == berlin(2026, 6, 11, 11, 0)
    assert OFFICE.add(berlin(2026, 6, 13, 10, 0), timedelta(hours=8)) == berlin(2026, 6, 15, 17, 0)


def test_a_zero_target_is_now_when_open_else_the_next_opening():
    assert OFFICE.add(berlin(2026, 6, 10, 10), timedelta(0)) == berlin(2026, 6, 10, 10)
    assert OFFICE.add(berlin(2026, 6, 10, 17), timedelta(0)) == berlin(2026, 6, 11, 9)


def test_a_negative_target_is_refused():
    with pytest.raises(ValueError, match="negative"):
        OFFICE.add(berlin(2026, 6, 10, 10), timedelta(minutes=-1))


def test_a_mail_before_christmas_waits_for_the_holidays_to_end():
    # 23 December 16:00 + 2h: one hour on Wednesday; 24th listed, 25th public, then weekend
    assert OFFICE.add(berlin(2026, 12, 23, 16), timedelta(hours=2)) == berlin(2026, 12, 28, 10)
    assert OFFICE.between(berlin(2026, 12, 23, 16), berlin(2026, 12, 28, 10)) == timedelta(hours=2)


def test_lunch_does_not_count():
    assert SPLIT.add(new_york(2026, 6, 11, 11, 30), timedelta(hours=1)) == new_york(2026, 6, 11, 13, 30)
    assert SPLIT.between(new_york(2026, 6, 11, 11, 30),
                         new_york(2026, 6, 11, 13, 30)) == timedelta(hours=1)


def test_a_week_of_the_split_calendar_has_36_business_hours():
    assert SPLIT.between(new_york(2026, 6, 8), new_york(2026, 6, 15)) == timedelta(hours=36)


def test_between_is_zero_when_the_end_is_not_after_the_start():
    assert OFFICE.between(berlin(2026, 6, 10, 12), berlin(2026, 6, 10, 11)) == timedelta(0)
    assert OFFICE.between(berlin(2026, 6, 10, 12), berlin(2026, 6, 10, 12)) == timedelta(0)


def test_between_counts_only_open_time_and_takes_naive_utc():
    # Friday 12:00 Berlin (10:00 UTC) to Monday 12:00: five hours Friday, three Monday
    assert OFFICE.between(datetime(2026, 6, 12, 10), datetime(2026, 6, 15, 10)) == timedelta(hours=8)


def test_thirty_business_days_over_easter_and_may_day():
    # Monday 23 March 2026; Good Friday, Easter Monday and 1 May are closed; DST starts 29 March
    start = berlin(2026, 3, 23, 9)
    due = OFFICE.add(start, timedelta(hours=30 * 8))
    assert due == berlin(2026, 5, 6, 17)                       # Wednesday, end of day 30
    assert OFFICE.between(start, due) == timedelta(hours=240)


def test_a_very_long_target_walks_day_by_day():
    start = berlin(2026, 1, 5, 9)
    due = OFFICE.add(start, timedelta(hours=8 * 2000))          # about eight years of work
    assert due.year in (2033, 2034)
    assert OFFICE.between(start, due) == timedelta(hours=16000)


# --- daylight saving time ---------------------------------------------------------------------

def test_the_office_day_is_eight_hours_in_both_berlin_dst_weeks():
    assert OFFICE.between(berlin(2026, 3, 27), berlin(2026, 3, 31)) == timedelta(hours=16)
    assert OFFICE.between(berlin(2026, 10, 23), berlin(2026, 10, 27)) == timedelta(hours=16)
    # Friday 16:00 + 2h: one hour Friday, then Monday 09:00-10:00 local, whatever the offset
    assert OFFICE.add(berlin(2026, 3, 27, 16), timedelta(hours=2)) == utc(2026, 3, 30, 8)
    assert OFFICE.add(berlin(2026, 10, 23, 16), timedelta(hours=2)) == utc(2026, 10, 26, 9)


def test_the_split_calendar_across_new_york_dst_weekends():
    # 2026-03-08 and 2026-11-01 are the change Sundays
    two_hours = timedelta(hours=2)
    assert SPLIT.add(new_york(2026, 3, 6, 11), two_hours) == utc(2026, 3, 9, 13)      # 09:00 EDT
    assert SPLIT.add(new_york(2026, 10, 30, 11), two_hours) == utc(2026, 11, 2, 14)   # 09:00 EST
    assert SPLIT.between(new_york(2026, 3, 2), new_york(2026, 3, 16)) == timedelta(hours=72)
    assert SPLIT.between(new_york(2026, 10, 26), new_york(2026, 11, 9)) == timedelta(hours=72)


def test_a_24_hour_day_lasts_23_hours_when_clocks_spring_forward_and_25_when_they_fall_back():
    assert ALWAYS_BERLIN.between(berlin(2026, 3, 29), berlin(2026, 3, 30)) == timedelta(hours=23)
    assert ALWAYS_BERLIN.between(berlin(2026, 10, 25), berlin(2026, 10, 26)) == timedelta(hours=25)
    assert ALWAYS_BERLIN.add(berlin(2026, 3, 28, 12), timedelta(hours=24)) == berlin(2026, 3, 29, 13)


def test_a_range_inside_the_skipped_hour_is_empty_that_day():
    assert NIGHT.between(berlin(2026, 3, 29), berlin(2026, 3, 30)) == timedelta(0)
    assert not NIGHT.is_open(utc(2026, 3, 29, 0, 59))           # 01:59 CET
    assert not NIGHT.is_open(utc(2026, 3, 29, 1, 0))            # 03:00 CEST
    assert NIGHT.next_open(utc(2026, 3, 28, 12)) == berlin(2026, 4, 5, 2)   # next Sunday
    assert NIGHT.between(berlin(2026, 4, 5), berlin(2026, 4, 6)) == timedelta(hours=1)


def test_a_range_over_the_repeated_hour_covers_both_passes():
    assert NIGHT.between(berlin(2026, 10, 25), berlin(2026, 10, 26)) == timedelta(hours=2)
    assert NIGHT.is_open(utc(2026, 10, 25, 0, 30))              # 02:30 CEST, first pass
    assert NIGHT.is_open(utc(2026, 10, 25, 1, 30))              # 02:30 CET, second pass
    assert not NIGHT.is_open(utc(2026, 10, 25, 2, 0))           # 03:00 CET


def test_skipped_wall_times_mean_the_jump_and_repeated_ones_their_first_pass():
    spring, fall = date(2026, 3, 29), date(2026, 10, 25)
    # 01:30-02:30 then 02:30-04:00 on the spring-forward Sunday: 02:30 is the jump, 03:00 CEST
    assert EDGES.between(berlin(2026, 3, 29, 1, 30), berlin(2026, 3, 29, 3, 0)) \
        == timedelta(minutes=30)
    assert EDGES.add(berlin(2026, 3, 29, 1, 30), timedelta(minutes=30)) == utc(2026, 3, 29, 1, 0)
    assert EDGES.between(utc(2026, 3, 29, 1), berlin(2026, 3, 29, 4)) == timedelta(hours=1)
    # on the fall-back Sunday 02:30 is its first pass (summer time)
    assert EDGES.between(berlin(2026, 10, 25, 1, 30), utc(2026, 10, 25, 0, 30)) == timedelta(hours=1)
    assert EDGES.between(utc(2026, 10, 25, 0, 30), berlin(2026, 10, 25, 4)) \
        == timedelta(hours=2, minutes=30)
    whole_sunday = [EDGES.between(berlin(d.year, d.month, d.day), berlin(d.year, d.month, d.day, 23))
                    for d in (spring, fall, date(2026, 6, 7))]
    assert whole_sunday == [timedelta(hours=2, minutes=30), timedelta(hours=4, minutes=30),
                            timedelta(hours=3, minutes=30)]


# --- business days and weeks (add_duration) ---------------------------------------------------

def test_five_business_days_is_the_same_time_on_the_fifth_open_day():
    assert due(OFFICE, berlin(2026, 6, 10, 10), "5d") == berlin(2026, 6, 17, 10)


def test_a_holiday_pushes_business_days_later():
    # Wednesday 29 April + 2 business days: Thursday 30 April, then (1 May closed) Monday 4 May
    assert due(OFFICE, berlin(2026, 4, 29, 10), "2d") == berlin(2026, 5, 4, 10)


def test_a_weekend_mail_with_a_1d_target_is_due_tuesday_at_opening():
    assert due(OFFICE, berlin(2026, 6, 13, 11), "1d") == berlin(2026, 6, 16, 9)


def test_a_week_is_as_many_business_days_as_the_calendar_opens_weekdays():
    assert due(OFFICE, berlin(2026, 6, 10, 10), "1w") == berlin(2026, 6, 17, 10)
    assert due(ALWAYS, utc(2026, 6, 10, 10), "1w") == utc(2026, 6, 17, 10)
    assert due(OFFICE, berlin(2026, 6, 10, 10), "2w1d") == berlin(2026, 6, 25, 10)


def test_days_count_first_then_hours():
    assert due(OFFICE, berlin(2026, 6, 15, 10), "1d4h") == berlin(2026, 6, 16, 14)
    assert due(OFFICE, berlin(2026, 6, 15, 15), "1d4h") == berlin(2026, 6, 17, 11)


def test_hours_only_durations_are_business_time():
    assert due(OFFICE, berlin(2026, 6, 12, 16, 30), "1h") == berlin(2026, 6, 15, 9, 30)
    assert due(OFFICE, berlin(2026, 6, 13, 10), "0m") == berlin(2026, 6, 15, 9)


def test_a_business_day_on_a_short_day_is_due_at_its_closing_time():
    # Thursday 15:00 in New York + 1 business day: Friday closes at noon
    assert due(SPLIT, new_york(2026, 6, 11, 15), "1d") == new_york(2026, 6, 12, 12)


def test_a_business_day_landing_in_a_break_or_before_opening_is_clamped():
    cal = calendar('c: {timezone: UTC, hours: {mon: "08:00-12:00", tue: "09:00-10:00, 13:00-17:00"}}')
    assert due(cal, utc(2026, 6, 15, 11), "1d") == utc(2026, 6, 16, 10)   # break
    assert due(cal, utc(2026, 6, 15, 8, 30), "1d") == utc(2026, 6, 16, 9)  # opens later
    assert due(cal, utc(2026, 6, 16, 16), "1d") == utc(2026, 6, 22, 12)    # closes earlier
    assert due(cal, utc(2026, 6, 15, 11), "2d") == utc(2026, 6, 22, 11)


def test_thirty_business_days_skip_easter_and_may_day():
    assert due(OFFICE, berlin(2026, 3, 23, 9), "30d") == berlin(2026, 5, 7, 9)


def test_a_business_day_over_the_spring_forward_sunday_is_the_same_wall_time():
    deadline = due(ALWAYS_BERLIN, berlin(2026, 3, 28, 12), "1d")
    assert deadline == berlin(2026, 3, 29, 12)
    assert ALWAYS_BERLIN.between(berlin(2026, 3, 28, 12), deadline) == timedelta(hours=23)


# --- a calendar that never opens --------------------------------------------------------------

def test_a_calendar_closed_for_years_raises_never_opens():
    mondays = frozenset(date(2026, 1, 5) + timedelta(weeks=w) for w in range(5 * 52))
    cal = Calendar("closed", "UTC", (((time(9), time(17)),),) + ((),) * 6, holidays=mondays)
    with pytest.raises(CalendarNeverOpens, match=f"closed for {MAX_CLOSED_DAYS} days"):
        cal.next_open(utc(2026, 1, 1))
    with pytest.raises(CalendarNeverOpens):
        cal.add(utc(2026, 1, 1), timedelta(hours=1))
    with pytest.raises(CalendarNeverOpens):
        due(cal, utc(2026, 1, 1), "1d")
    assert cal.between(utc(2026, 1, 1), utc(2027, 1, 1)) == timedelta(0)
    assert cal.next_open(utc(2031, 1, 1)) == utc(2031, 1, 6, 9)     # open again after


# --- properties -------------------------------------------------------------------------------

CALENDARS = st.sampled_from([OFFICE, BAVARIA, ALWAYS, ALWAYS_BERLIN, SPLIT, NIGHT, EDGES])
STARTS = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31))
DURATIONS = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=10))


@settings(max_examples=300, deadline=None)
@given(CALENDARS, STARTS, DURATIONS)
def test_between_counts_back_what_add_added(cal, start, duration):
    due = cal.add(start, duration)
    assert due >= start.replace(tzinfo=UTC)
    assert cal.between(start, due) == duration
    if duration:
        assert not cal.between(start, due - timedelta(microseconds=1)) == duration


@settings(max_examples=200, deadline=None)
@given(CALENDARS, STARTS, DURATIONS, DURATIONS.filter(bool))
def test_adding_in_two_steps_is_adding_once(cal, start, first, second):
    assert cal.add(cal.add(start, first), second) == cal.add(start, first + second)


@settings(max_examples=200, deadline=None)
@given(CALENDARS, STARTS, STARTS, STARTS)
def test_business_time_adds_up_over_consecutive_spans(cal, a, b, c):
    a, b, c = sorted((a, b, c))
    assert cal.between(a, b) + cal.between(b, c) == cal.between(a, c)


@settings(max_examples=200, deadline=None)
@given(CALENDARS, STARTS)
def test_next_open_is_open_and_is_the_start_exactly_when_open(cal, at):
    opening = cal.next_open(at)
    assert cal.is_open(opening)
    assert (opening == at.replace(tzinfo=UTC)) == cal.is_open(at)
    assert cal.between(at, opening) == timedelta(0)


@settings(max_examples=200, deadline=None)
@given(CALENDARS, STARTS, st.integers(min_value=1, max_value=40))
def test_business_days_move_forward_by_whole_open_days(cal, start, days):
    due = cal.add_duration(start, Duration(days=days))
    fewer = cal.add_duration(start, Duration(days=days - 1))
    assert due > fewer >= cal.next_open(start)
