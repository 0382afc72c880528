"""DICOM dates and times, which carry no time zone.

The rule of the house: a DICOM date/time is the local time of the hospital's zone
(``TIME_ZONE``), unless the dataset carries ``TimezoneOffsetFromUTC`` (0008,0201), which wins.
"""

import datetime as dt
import re
from zoneinfo import ZoneInfo

from studies.dicom.errors import DicomValueError

_OFFSET = re.compile(r"^([+-])(\d{2})(\d{2})$")


def parse_date(value: str) -> dt.date | None:
    """``YYYYMMDD`` (or the retired ``YYYY.MM.DD``) → date; empty → None."""
    text = (value or "").strip().replace(".", "")
    if not text:
        return None
    try:
        return dt.datetime.strptime(text[:8], "%Y%m%d").date()
    except ValueError:
        raise DicomValueError(f"{value!r} is not a DICOM date (YYYYMMDD)") from None


def parse_time(value: str) -> dt.time | None:
    """``HHMMSS.FFFFFF`` with optional trailing parts, or the retired ``HH:MM:SS``."""
    text = (value or "").strip().replace(":", "")
    if not text:
        return None
    whole, _, fraction = text.partition(".")
    try:
        hour = int(whole[0:2])
        minute = int(whole[2:4] or 0)
        second = min(int(whole[4:6] or 0), 59)  # DICOM allows a leap second 60
        micro = int((fraction + "000000")[:6]) if fraction else 0
        return dt.time(hour, minute, second, micro)
    except ValueError:
        raise DicomValueError(f"{value!r} is not a DICOM time (HHMMSS)") from None


def parse_offset(value: str) -> dt.tzinfo | None:
    match = _OFFSET.match((value or "").strip())
    if not match:
        return None
    sign, hours, minutes = match.groups()
    delta = dt.timedelta(hours=int(hours), minutes=int(minutes))
    return dt.timezone(-delta if sign == "-" else delta)


def to_aware(
    date_value: str, time_value: str = "", *, default_zone: str, offset: str = ""
) -> dt.datetime | None:
    """Combine a DICOM date and time into an aware datetime by the rule above."""
    date = parse_date(date_value)
    if date is None:
        return None
    time = parse_time(time_value) or dt.time(0, 0)
    zone = parse_offset(offset) or ZoneInfo(default_zone)
    return dt.datetime.combine(date, time).replace(tzinfo=zone)
