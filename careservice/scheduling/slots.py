"""Free slots: availability windows, minus what is booked, on a grid."""

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

import sqlalchemy as sa
from flask import current_app

from careservice.core.errors import ValidationFailed
from careservice.core.time import UTCDateTime, overlaps, utcnow, zone
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
    step = timedelta(minutes=limits.step) if limits.step else held
    tz = zone(timezone)
    per_day = Counter(b_start.astimezone(tz).date() for b_start, _ in busy)
    busy = sorted([*busy, *blocked])
    slots: list[Slot] = []
    for window in windows:
        candidate = window.start
        while candidate + held <= window.end:
            if (start <= candidate < end
                    and per_day[candidate.astimezone(tz).date()] < cap
                    and limits.earliest <= candidate <= limits.latest
                    and not any(overlaps(candidate, candidate + held, b_start, b_end)
                                for b_start, b_end in busy)):
                slots.append(Slot(candidate, candidate + duration))
            candidate += step
    slots.sort(key=lambda slot: slot.start)
    return [slot for i, slot in enumerate(slots) if i == 0 or slot.start != slots[i - 1].start]


@cache
def _calendar_queries() -> tuple[sa.Select, sa.Select]:
    """Built once: every booking runs both."""
    provider_id = sa.bindparam("provider_id")
    rules = sa.select(AvailabilityRule).where(AvailabilityRule.provider_id == provider_id)
    exceptions = sa.select(AvailabilityException).where(
        AvailabilityException.provider_id == provider_id,
        overlaps(AvailabilityException.start_at, AvailabilityException.end_at,
                 sa.bindparam("start", type_=UTCDateTime), sa.bindparam("end", type_=UTCDateTime)))
    return rules, exceptions


def load_exceptions_and_rules(provider_id: int, start: datetime, end: datetime):
    margin = timedelta(days=1)
    rules_query, exceptions_query = _calendar_queries()
    rules = db.session.execute(rules_query, {"provider_id": provider_id}).scalars().all()
    exceptions = db.session.execute(exceptions_query, {
        "provider_id": provider_id, "start": start - margin, "end": end + margin,
    }).scalars().all()
    return rules, exceptions


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
    rules, exceptions = load_exceptions_and_rules(provider.id, start, end)
    windows = working_windows(provider.timezone, rules, exceptions, start, end)
    return compute_slots(timezone=provider.timezone, cap=provider.max_sessions_per_day,
                         windows=windows, busy=load_busy(provider.id, start, end),
                         blocked=time_off(exceptions), service_type=service_type,
                         start=start, end=end, limits=limits or Limits.current())


def fits_availability(provider: Provider, service_type: ServiceType, start: datetime) -> bool:
    """A session starting then, with its buffer, lies inside one working window
    and clear of time off."""
    _, held = session_span(service_type)
    rules, exceptions = load_exceptions_and_rules(provider.id, start, start + held)
    windows = working_windows(provider.timezone, rules, exceptions, start, start + held)
    return (any(w.start <= start and start + held <= w.end for w in windows)
            and not any(overlaps(start, start + held, off_start, off_end)
                        for off_start, off_end in time_off(exceptions)))
