"""The house rule for DICOM's zone-less dates (Django-free: no database, no settings)."""

import datetime as dt

import pytest

from studies.dicom.datetimes import parse_date, parse_time, to_aware
from studies.dicom.errors import DicomValueError


def test_a_zoneless_dicom_time_is_local_time_of_the_hospital_zone():
    value = to_aware("20261122", "093000", default_zone="Europe/Moscow")
    assert value.utcoffset() == dt.timedelta(hours=3)
    assert value.astimezone(dt.UTC) == dt.datetime(2026, 11, 22, 6, 30, tzinfo=dt.UTC)


def test_timezone_offset_from_utc_wins_over_the_hospital_zone():
    value = to_aware("20261122", "093000", default_zone="Europe/Moscow", offset="+0700")
    assert value.astimezone(dt.UTC) == dt.datetime(2026, 11, 22, 2, 30, tzinfo=dt.UTC)


def test_fractions_and_partial_times():
    assert parse_time("0930") == dt.time(9, 30)
    assert parse_time("093015.25") == dt.time(9, 30, 15, 250000)
    assert parse_time("09:30:15") == dt.time(9, 30, 15)


def test_empty_values_are_none():
    assert parse_date("") is None and parse_time(" ") is None
    assert to_aware("", "1200", default_zone="UTC") is None


@pytest.mark.parametrize("value", ["20261332", "2026-11-22x", "yesterday"])
def test_a_wrong_date_is_a_clear_error(value):
    with pytest.raises(DicomValueError, match="is not a DICOM date"):
        parse_date(value)
