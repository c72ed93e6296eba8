"""Free slots: availability windows, minus what is booked, on a grid."""

import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache

import numpy as np
import sqlalchemy as sa
from flask import current_app

from careservice.core.errors import ValidationFailed
from careservice.core.time import UTCDateTime, local_date, overlaps, utcnow
from careservice.extensions import db
from careservice.people.models import Provider
from careservice.scheduling.availability import Window, time_off, working_windows
from careservice.scheduling.models import (
    LIVE,
    Appointment,
    AvailabilityException,
    AvailabilityRule,
    ServiceType,
)

MAX_RANGE = timedelta(days=62)


@dataclass(frozen=True)
class Slot:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Limits:
    """Booking limits from settings, fixed at one `now`."""

    earliest: datetime
    latest: datetime
    step: int  # minutes; 0 means duration + buffer

    @classmethod
    def current(cls, now: datetime | None = None) -> "Limits":
        config = current_app.config
        now = now or utcnow()
        return cls(earliest=now + timedelta(minutes=config["MIN_NOTICE_MINUTES"]),
                   latest=now + timedelta(days=config["BOOKING_HORIZON_DAYS"]),
                   step=config["SLOT_STEP_MINUTES"])


def offers(provider: Provider, service_type: ServiceType) -> bool:
    """The provider does this kind of session: modality and skill."""
    return (service_type.modality in provider.modalities
            and (not service_type.required_skill or service_type.required_skill in provider.skills))


def session_span(service_type: ServiceType) -> tuple[timedelta, timedelta]:
    """(duration, duration + buffer): the session, and how long it holds the provider."""
    duration = timedelta(minutes=service_type.duration_minutes)
    return duration, duration + timedelta(minutes=service_type.buffer_minutes)


def compute_slots(*, timezone: str, cap: int, windows: list[Window], busy, service_type,
                  start: datetime, end: datetime, limits: Limits, blocked=()) -> list[Slot]:
    """Free starts in [start, end) for a service.

    `busy` is [(start, block_end)] of the provider's live appointments, and
    `blocked` their time off. Starts lie on a grid from each window's start;
    the session and its buffer fit inside the window; days at the provider's
    cap offer nothing.
    """
    duration, held = session_span(service_type)
    starts = free_starts(windows, Taken([*busy, *blocked]), held=held,
                         step=timedelta(minutes=limits.step) if limits.step else held,
                         start=max(start, limits.earliest), end=end, latest=limits.latest)
    per_day = Counter(local_date(b_start, timezone) for b_start, _ in busy)
    full = {day for day, sessions in per_day.items() if sessions >= cap}
    return [Slot(at, at + duration) for at in instants(starts)
            if not (full and local_date(at, timezone) in full)]


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def micros(values) -> np.ndarray:
    """Instants as int64 microseconds since the epoch: exact, and quick to compare."""
    return np.fromiter(((value - EPOCH) // MICROSECOND for value in values), dtype=np.int64)


@lru_cache(maxsize=65536)  # providers' grids share their starts: each made once
def instant(value: int) -> datetime:
    """The instant of int microseconds since the epoch."""
    return EPOCH + timedelta(microseconds=value)


def instants(values: np.ndarray) -> list[datetime]:
    return [instant(value) for value in values.tolist()]


def free_starts(windows: list[Window], taken: "Taken", *, held: timedelta, step: timedelta,
                start: datetime, end: datetime, latest: datetime) -> np.ndarray:
    """Free starts, in microseconds, ascending: on a grid of `step` from each window's
    start, with `held` (the session and its buffer) inside the window and clear of
    `taken`, in [start, end) and no later than `latest`. Windows are disjoint and in
    order (see `working_windows`), so their starts come out in order too."""
    if not windows:
        return np.zeros(0, dtype=np.int64)
    opens = micros(window.start for window in windows)
    held_us, step_us = held // MICROSECOND, step // MICROSECOND
    lowest, end_us, latest_us = micros((start, end, latest))
    last = np.minimum(micros(window.end for window in windows) - held_us,
                      min(end_us - 1, latest_us))
    first = np.maximum(-((opens - lowest) // step_us), 0)  # steps to the first start
    counts = np.maximum((last - opens) // step_us - first + 1, 0)
    # Every window's grid at once: each start is its window's first plus k steps.
    runs = np.repeat(np.cumsum(counts) - counts, counts)
    starts = np.repeat(opens + first * step_us, counts) + (np.arange(runs.size) - runs) * step_us
    return starts[~taken.meets(starts, starts + held_us)]


class Taken:
    """Busy intervals, asked "does [start, end) meet any?" for many spans at once:
    sorted by start, with the latest end so far; the intervals starting before
    `end` meet it exactly when the latest of their ends is after `start`."""

    def __init__(self, intervals):
        ordered = sorted(intervals)
        self.starts = micros(interval_start for interval_start, _ in ordered)
        self.latest_end = np.maximum.accumulate(micros(interval_end for _, interval_end in ordered))

    def meets(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """For spans in microseconds: whether each meets a busy interval."""
        if not self.starts.size:
            return np.zeros(starts.size, dtype=bool)
        before = np.searchsorted(self.starts, ends, side="left")
        return (before > 0) & (self.latest_end[np.maximum(before - 1, 0)] > starts)


@cache
def _calendar_queries() -> tuple[sa.Select, sa.Select]:
    """Built once; plain rows, not models, since they are kept between requests."""
    provider_id = sa.bindparam("provider_id")
    rules = sa.select(AvailabilityRule.weekday, AvailabilityRule.start_time,
                      AvailabilityRule.end_time, AvailabilityRule.valid_from,
                      AvailabilityRule.valid_to).where(AvailabilityRule.provider_id == provider_id)
    exceptions = sa.select(
        AvailabilityException.start_at, AvailabilityException.end_at, AvailabilityException.kind,
    ).where(AvailabilityException.provider_id == provider_id,
            AvailabilityException.end_at > sa.bindparam("since", type_=UTCDateTime))
    return rules, exceptions


@dataclass(frozen=True)
class Calendar:
    """A provider's weekly rules, and every exception that ends after `since`."""

    rules: tuple
    exceptions: tuple
    since: datetime


class CalendarCache:
    """Providers' calendars per process, under their availability tag.

    Every booking checks the provider's calendar; the tag comes with the
    provider's row, and changing the rules or exceptions renews it, so a
    stale entry is never read. Least recently used entries go first.
    """

    MARGIN = timedelta(days=2)

    def __init__(self, size: int = 2048):
        self.size = size
        self.entries: OrderedDict[tuple[int, str], Calendar] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, provider: Provider, start: datetime) -> Calendar:
        """The calendar, with every exception that can touch times from `start` on."""
        key = (provider.id, provider.availability_tag)
        with self.lock:
            calendar = self.entries.get(key)
            if calendar is not None and calendar.since <= start - self.MARGIN:
                self.entries.move_to_end(key)
                return calendar
        since = min(start, utcnow()) - self.MARGIN
        rules_query, exceptions_query = _calendar_queries()
        calendar = Calendar(
            rules=tuple(db.session.execute(rules_query, {"provider_id": provider.id}).all()),
            exceptions=tuple(db.session.execute(
                exceptions_query, {"provider_id": provider.id, "since": since}).all()),
            since=since)
        with self.lock:
            self.entries[key] = calendar
            self.entries.move_to_end(key)
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)
        return calendar


def provider_calendar(provider: Provider, start: datetime) -> Calendar:
    cache = current_app.extensions.setdefault("careservice.calendars", CalendarCache())
    return cache.get(provider, start)


def load_busy(provider_id: int, start: datetime, end: datetime) -> list[tuple]:
    """(start, block_end) of the provider's live appointments around [start, end)."""
    margin = timedelta(days=2)
    return [tuple(row) for row in db.session.execute(
        sa.select(Appointment.start_at, Appointment.block_end_at).where(
            Appointment.provider_id == provider_id,
            Appointment.status.in_(LIVE),
            overlaps(Appointment.start_at, Appointment.block_end_at,
                     start - margin, end + margin))
    ).all()]


def free_slots(provider: Provider, service_type: ServiceType, start: datetime, end: datetime,
               limits: Limits | None = None) -> list[Slot]:
    if end <= start:
        raise ValidationFailed({"to": ["Must be after from."]})
    if end - start > MAX_RANGE:
        raise ValidationFailed({"to": [f"At most {MAX_RANGE.days} days after from."]})
    if not provider.active or not offers(provider, service_type):
        return []
    calendar = provider_calendar(provider, start)
    windows = working_windows(provider.timezone, calendar.rules, calendar.exceptions, start, end)
    return compute_slots(timezone=provider.timezone, cap=provider.max_sessions_per_day,
                         windows=windows, busy=load_busy(provider.id, start, end),
                         blocked=time_off(calendar.exceptions), service_type=service_type,
                         start=start, end=end, limits=limits or Limits.current())


def fits_availability(provider: Provider, service_type: ServiceType, start: datetime) -> bool:
    """A session starting then, with its buffer, lies inside one working window
    and clear of time off."""
    _, held = session_span(service_type)
    calendar = provider_calendar(provider, start)
    windows = working_windows(provider.timezone, calendar.rules, calendar.exceptions,
                              start, start + held)
    return (any(w.start <= start and start + held <= w.end for w in windows)
            and not any(overlaps(start, start + held, off_start, off_end)
                        for off_start, off_end in time_off(calendar.exceptions)))
