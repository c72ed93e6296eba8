"""Free slots: availability windows, minus what is booked, on a grid."""

import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

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

# Longer than any session and its buffer: a start at the horizon still fits its window.
LONGEST_SESSION = timedelta(days=1)


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

    def clip(self, start: datetime, end: datetime) -> tuple[datetime, datetime]:
        """[start, end) cut to what can be booked: nothing before the notice, nothing
        starting past the horizon. Asking for a year then costs no more than asking for
        the bookable days. May come out empty (end <= start)."""
        return max(start, self.earliest), min(end, self.latest + LONGEST_SESSION)


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
    step = timedelta(minutes=limits.step) if limits.step else held
    _, starts = free_starts(Grids.build([(windows, held, step, 0)]),
                            Taken([(0, *interval) for interval in [*busy, *blocked]]),
                            start=max(start, limits.earliest), end=end, latest=limits.latest)
    per_day = Counter(local_date(b_start, timezone) for b_start, _ in busy)
    full = {day for day, sessions in per_day.items() if sessions >= cap}
    return [Slot(at, at + duration) for at in instants(starts).tolist()
            if not (full and local_date(at, timezone) in full)]


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def micros(values) -> np.ndarray:
    """Instants as int64 microseconds since the epoch: exact, and quick to compare."""
    return np.fromiter(((value - EPOCH) // MICROSECOND for value in values), dtype=np.int64)


def instants(values: np.ndarray) -> np.ndarray:
    """The datetimes of microseconds since the epoch (an object array); grids share
    their starts, so each distinct instant is made once."""
    distinct, inverse = np.unique(values, return_inverse=True)
    made = [EPOCH + timedelta(microseconds=value) for value in distinct.tolist()]
    return np.array(made, dtype=object)[inverse]


@dataclass
class Grids:
    """Grids of starts, many at once (a provider's for one service, say), in
    microseconds: each working window (`opens`, `closes`) belongs to a grid (`of`);
    each grid has its `held` span (the session and its buffer), its `step`, and
    the `owner` whose busy times apply to it."""

    opens: np.ndarray
    closes: np.ndarray
    of: np.ndarray
    held: np.ndarray
    step: np.ndarray
    owner: np.ndarray

    @classmethod
    def build(cls, grids: list[tuple[list[Window], timedelta, timedelta, int]]) -> "Grids":
        """From (windows, held, step, owner) for each grid; the windows disjoint and in
        order, as `working_windows` makes them."""
        windows = [(window, grid) for grid, (found, *_) in enumerate(grids) for window in found]
        return cls(opens=micros(window.start for window, _ in windows),
                   closes=micros(window.end for window, _ in windows),
                   of=np.array([grid for _, grid in windows], dtype=np.int64),
                   held=np.array([held // MICROSECOND for _, held, _, _ in grids], dtype=np.int64),
                   step=np.array([step // MICROSECOND for _, _, step, _ in grids], dtype=np.int64),
                   owner=np.array([owner for *_, owner in grids], dtype=np.int64))


def free_starts(grids: Grids, taken: "Taken", *, start: datetime, end: datetime,
                latest: datetime) -> tuple[np.ndarray, np.ndarray]:
    """The free starts of every grid: on its step from each window's start, with the
    span held inside the window and clear of the owner's `taken` times, in [start, end)
    and no later than `latest`. (grid, start in microseconds) pairs, by grid then start."""
    lowest, end_us, latest_us = micros((start, end, latest))
    held, step = grids.held[grids.of], grids.step[grids.of]  # per window
    last = np.minimum(grids.closes - held, min(end_us - 1, latest_us))
    first = np.maximum(-((grids.opens - lowest) // step), 0)  # steps to the first start
    counts = np.maximum((last - grids.opens) // step - first + 1, 0)
    # Each start is its window's first plus k steps.
    runs = np.repeat(np.cumsum(counts) - counts, counts)
    at = (np.repeat(grids.opens + first * step, counts)
          + (np.arange(runs.size) - runs) * np.repeat(step, counts))
    of = np.repeat(grids.of, counts)
    free = ~taken.meets(grids.owner[of], at, at + grids.held[of])
    return of[free], at[free]


class Taken:
    """Owners' busy intervals, asked "does [start, end) meet any of the owner's?" for
    many spans at once: sorted by owner and start, with the latest end so far; the
    owner's intervals starting before `end` meet it exactly when the latest of their
    ends is after `start`."""

    def __init__(self, intervals: list[tuple[int, datetime, datetime]]):
        owners = np.array([owner for owner, _, _ in intervals], dtype=np.int64)
        starts = micros(interval_start for _, interval_start, _ in intervals)
        ends = micros(interval_end for _, _, interval_end in intervals)
        order = np.lexsort((starts, owners))
        self.owners, self.starts, self.ends = owners[order], starts[order], ends[order]

    def meets(self, owners: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """For spans in microseconds, each of an owner: whether it meets a busy interval."""
        if not self.starts.size:
            return np.zeros(starts.size, dtype=bool)
        # Times by rank, so that (owner, time) packs into one integer that sorts as the pair.
        times = np.unique(np.concatenate([self.starts, self.ends, starts, ends]))

        def packed(owner, at):
            return owner * times.size + np.searchsorted(times, at)

        latest_end = np.maximum.accumulate(packed(self.owners, self.ends))
        before = np.searchsorted(packed(self.owners, self.starts), packed(owners, ends))
        return (before > 0) & (latest_end[np.maximum(before - 1, 0)] > packed(owners, starts))


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
    """Free starts in [start, end), cut to what can be booked first (Limits.clip)."""
    if end <= start:
        raise ValidationFailed({"to": ["Must be after from."]})
    limits = limits or Limits.current()
    start, end = limits.clip(start, end)
    if end <= start or not provider.active or not offers(provider, service_type):
        return []
    calendar = provider_calendar(provider, start)
    windows = working_windows(provider.timezone, calendar.rules, calendar.exceptions, start, end)
    return compute_slots(timezone=provider.timezone, cap=provider.max_sessions_per_day,
                         windows=windows, busy=load_busy(provider.id, start, end),
                         blocked=time_off(calendar.exceptions), service_type=service_type,
                         start=start, end=end, limits=limits)


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
