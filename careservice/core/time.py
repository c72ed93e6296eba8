"""Time helpers: every instant is an aware UTC datetime inside the service."""

from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfo, available_timezones

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator


class Clock:
    """The service's idea of now: the wall clock, unless set.

    Tests freeze it, and the demo simulation advances it week by week, so that
    every service, job and check of time sees the same instant.
    """

    def __init__(self) -> None:
        self._fixed: datetime | None = None

    def now(self) -> datetime:
        return self._fixed if self._fixed is not None else datetime.now(UTC)

    def set(self, instant: datetime) -> None:
        self._fixed = as_utc(instant)

    def advance(self, delta: timedelta) -> None:
        self._fixed = self.now() + delta

    def reset(self) -> None:
        self._fixed = None


clock = Clock()


def utcnow() -> datetime:
    return clock.now()


@lru_cache(maxsize=65536)
def local_date(instant: datetime, tz_name: str) -> date:
    """The calendar day of an instant on the wall clock of `tz_name`. Kept: slots
    of many providers start at the same instants, and each asks this."""
    return instant.astimezone(zone(tz_name)).date()


def local_midnight(day: date, tz_name: str) -> datetime:
    """The UTC instant at which `day` begins on the wall clock of `tz_name`."""
    return datetime.combine(day, time(0), tzinfo=zone(tz_name)).astimezone(UTC)


def local_day(instant: datetime, tz_name: str) -> tuple[datetime, datetime]:
    """[start, end) in UTC of the local calendar day holding `instant` (23 or 25 hours
    on the days the clocks change)."""
    day = local_date(instant, tz_name)
    return local_midnight(day, tz_name), local_midnight(day + timedelta(days=1), tz_name)


def today_utc() -> date:
    return utcnow().date()


def as_utc(value: datetime) -> datetime:
    """An aware datetime in UTC; a naive one is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def is_valid_timezone(name: str) -> bool:
    """An IANA zone name known to tzdata ("Asia/Shanghai", "UTC")."""
    return name in _zone_names()


def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


class UTCDateTime(TypeDecorator):
    """Stores aware datetimes as UTC and always returns them aware in UTC.

    SQLite keeps no offset, so without this a value read back would be naive and
    compare wrongly with aware ones.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = as_utc(value)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return as_utc(value)


def overlaps(a_start, a_end, b_start, b_end):
    """Half-open intervals [a_start, a_end) and [b_start, b_end) share a moment.

    Works on datetimes and on SQL columns alike (`&` is `and` for both), so
    Python checks and queries cannot disagree: 09:00-09:20 and 09:20-09:40
    do not overlap.
    """
    return (a_start < b_end) & (b_start < a_end)


def local_to_utc(day: date, wall: time, tz: ZoneInfo) -> datetime | None:
    """The UTC instant of a wall-clock time on a local day, or None when the
    clock skips it (the spring-forward gap). An ambiguous time (autumn) is
    taken at its first occurrence."""
    local = datetime.combine(day, wall, tzinfo=tz)
    instant = local.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) != local.replace(tzinfo=None):
        return None
    return instant
