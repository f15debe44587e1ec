"""Time on the wire: Bitrix24 writes ``YYYY-MM-DDThh:mm:ss±hh:mm`` in the portal's zone.

DOCS api-reference/data-types.md: "at the API level all dates and times are stored according to
the server parameters", so every datetime the double serves carries the portal zone's offset.
Filters accept ISO with offset, a bare date, ``YYYY-MM-DD HH:MM:SS`` or ``DD.MM.YYYY HH:MM:SS``
(the latter two read in the portal zone), and unix seconds.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone, tzinfo

_DMY = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?)?$")


def iso(ts: int | None, tz: tzinfo) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(int(ts), tz).isoformat(timespec="seconds")


def dmy(ts: int | None, tz: tzinfo) -> str:
    """``24.08.2023 13:19:39`` (user.get TIMESTAMP_X style)."""
    return "" if ts is None else datetime.fromtimestamp(int(ts), tz).strftime("%d.%m.%Y %H:%M:%S")


def ymd_hms(ts: int | None, tz: tzinfo) -> str:
    """``2024-07-23 08:08:50`` (user.get LAST_ACTIVITY_DATE style)."""
    return "" if ts is None else datetime.fromtimestamp(int(ts), tz).strftime("%Y-%m-%d %H:%M:%S")


def parse(value, tz: tzinfo) -> int | None:
    """A filter value -> unix seconds; None when it is empty; ValueError when it is not a time."""
    if value is None or value == "" or value is False:
        return None
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, (int, float)):
        return int(value)
    s = str(value).strip()
    if re.fullmatch(r"-?\d+", s):
        return int(s)
    m = _DMY.match(s)
    if m:
        d, mo, y, hh, mm, ss = m.groups()
        dt = datetime(int(y), int(mo), int(d), int(hh or 0), int(mm or 0), int(ss or 0), tzinfo=tz)
        return int(dt.timestamp())
    s = s.replace("Z", "+00:00")
    if " " in s and "T" not in s:
        s = s.replace(" ", "T", 1)
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return int(dt.timestamp())


def utc_iso(ts: int) -> str:
    return datetime.fromtimestamp(int(ts), timezone.utc).isoformat(timespec="seconds")
