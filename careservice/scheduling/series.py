"""Recurring sessions from an RFC 5545 RRULE, booked a few weeks ahead."""

import re
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from dateutil.rrule import DAILY, MONTHLY, WEEKLY, YEARLY, rrule, rrulestr
from flask import current_app
from sqlalchemy.exc import IntegrityError

from careservice.core import audit
from careservice.core.auth import Actor
from careservice.core.errors import InvalidTransition, NotFound, SlotUnavailable, field_error
from careservice.core.time import as_utc, utcnow, zone
from careservice.extensions import db
from careservice.people.services import visible_residents_clause
from careservice.reminders import outbox
from careservice.scheduling.booking import (
    body_parties,
    check_may_book,
    check_provider_serves,
    place_appointment,
    run_unit,
)
from careservice.scheduling.models import (
    UPCOMING,
    Appointment,
    Series,
    SeriesConflict,
    SeriesStatus,
    Status,
)

ALLOWED_FREQUENCIES = {DAILY, WEEKLY, MONTHLY, YEARLY}
MAX_OCCURRENCES_PER_EXPANSION = 400
UTC_UNTIL = re.compile(r"UNTIL=(\d{8}T\d{6})Z", re.IGNORECASE)


def _local_until(stamp: str, tz) -> str:
    instant = datetime.strptime(stamp, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    return instant.astimezone(tz).strftime("%Y%m%dT%H%M%S")


def parse_rrule(text: str, local_start: datetime, tz):
    """A dateutil rule anchored at the local (naive) start; 422 on `rrule` if unusable.

    The rule runs on the wall clock of `tz`, so 09:00 stays 09:00 across
    daylight-saving changes; a UTC UNTIL (RFC 5545's form when the start has
    an offset) is turned into that wall clock first.
    """
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    if not body or "DTSTART" in body.upper() or "\n" in body:
        raise field_error("rrule", "Give one RRULE, e.g. FREQ=WEEKLY;BYDAY=TU;COUNT=8.")
    try:
        body = UTC_UNTIL.sub(lambda match: "UNTIL=" + _local_until(match.group(1), tz), body)
        rule = rrulestr(body, dtstart=local_start)
    except (ValueError, TypeError, OverflowError) as error:
        raise field_error("rrule", f"Not a valid RRULE: {error}") from None
    if not isinstance(rule, rrule):  # EXDATE, RDATE, EXRULE: a set of rules
        raise field_error("rrule", "Give one RRULE, e.g. FREQ=WEEKLY;BYDAY=TU;COUNT=8.")
    if rule._freq not in ALLOWED_FREQUENCIES:
        raise field_error("rrule", "Sessions repeat at most daily (FREQ=DAILY, WEEKLY, ...).")
    if rule._interval < 1:
        raise field_error("rrule", "INTERVAL must be 1 or more.")
    # A rule that never falls (BYMONTH=2;BYMONTHDAY=30) would be searched up to the year
    # 9999 on every expansion: it must fall within its first year.
    try:
        first_year = rule.between(local_start, local_start + timedelta(days=366), inc=True)
    except (ValueError, OverflowError) as error:
        raise field_error("rrule", f"Not a valid RRULE: {error}") from None
    if not first_year:
        raise field_error("rrule", "The rule has no occurrence within a year of the start.")
    return rule


def _visible_clause(actor: Actor):
    if actor.is_provider:
        return Series.provider_id == actor.provider_id
    return visible_residents_clause(actor, Series.resident_id)


def find_series(actor: Actor, series_id: int) -> Series:
    series = db.session.execute(
        sa.select(Series).where(Series.id == series_id, _visible_clause(actor))
    ).scalar_one_or_none()
    if series is None:
        raise NotFound("No such series.")
    return series


def expansion_limit(now: datetime) -> datetime:
    config = current_app.config
    ahead = min(config["SERIES_AHEAD_DAYS"], config["BOOKING_HORIZON_DAYS"])
    return now + timedelta(days=ahead)


def expand(actor: Actor, series: Series, until: datetime) -> tuple[list, list]:
    """Book the occurrences after `expanded_until` up to `until`, each in its own
    savepoint; the ones that cannot be booked are stored as conflicts."""
    tz = zone(series.timezone)
    local_start = series.start_at.astimezone(tz).replace(tzinfo=None)
    rule = parse_rrule(series.rrule, local_start, tz)
    # Resume after what was expanded before, and never look into the past:
    # an occurrence missed while no scheduler ran is gone, not a conflict.
    resume = max(filter(None, (series.expanded_until, utcnow())))
    first = max(local_start, resume.astimezone(tz).replace(tzinfo=None))
    booked, conflicts = [], []
    for local in rule.xafter(first, count=MAX_OCCURRENCES_PER_EXPANSION,
                             inc=first == local_start):
        start = as_utc(local.replace(tzinfo=tz))
        if start.astimezone(tz).replace(tzinfo=None) != local:
            start, reason = None, "That local time does not exist (daylight-saving change)."
        if start is not None and start > until:
            break
        if start is None:
            conflicts.append(_conflict(series, as_utc(local.replace(tzinfo=tz)), reason))
            continue
        try:
            with db.session.begin_nested():
                appointment = place_appointment(
                    actor, series.resident, series.provider, series.service_type, start,
                    series_id=series.id)
                outbox.queue_reminders(appointment)
                booked.append(appointment)
        except SlotUnavailable as refusal:
            conflicts.append(_conflict(series, start, refusal.message))
        except IntegrityError:
            conflicts.append(_conflict(series, start, "That time overlaps another session."))
    series.expanded_until = until
    return booked, conflicts


def _conflict(series: Series, start: datetime, reason: str) -> SeriesConflict:
    conflict = db.session.execute(
        sa.select(SeriesConflict).where(SeriesConflict.series_id == series.id,
                                        SeriesConflict.start_at == start)
    ).scalar_one_or_none()
    if conflict is None:
        conflict = SeriesConflict(series_id=series.id, start_at=start, reason=reason[:200])
        db.session.add(conflict)
        db.session.flush()
    return conflict


def create_series(actor: Actor, *, resident_id: int, provider_id: int, service_type: str,
                  start: datetime, rrule: str) -> tuple[Series, list, list]:
    check_may_book(actor)

    def work():
        resident, provider, kind, serves = body_parties(actor, resident_id, provider_id,
                                                        service_type)
        check_provider_serves(provider, kind, resident, serves)
        tz = zone(provider.timezone)
        local_start = start.astimezone(tz).replace(tzinfo=None)
        rule = parse_rrule(rrule, local_start, tz)
        first = next(rule.xafter(local_start, count=1, inc=True))
        series = Series(resident=resident, provider=provider, service_type=kind, start_at=start,
                        rrule=rrule.strip(), timezone=provider.timezone,
                        booked_by_id=actor.user_id, on_behalf=actor.provider_id != provider.id)
        db.session.add(series)
        db.session.flush()
        # A series may begin beyond the scheduler's window (SERIES_AHEAD_DAYS): its
        # first session is booked now all the same, the rest as the window reaches them.
        until = max(expansion_limit(utcnow()), as_utc(first.replace(tzinfo=tz)))
        booked, conflicts = expand(actor, series, until)
        if not booked:
            reasons = sorted({c.reason for c in conflicts}) or ["No occurrence in the horizon."]
            raise SlotUnavailable("No occurrence of the series could be booked: "
                                  + " ".join(reasons))
        # One confirmation for the series; each session still gets its 24 h and 2 h.
        outbox.queue_confirmation(booked[0])
        audit.record(actor, "series.create", "series", series.id, booked=len(booked),
                     conflicts=len(conflicts))
        return series, booked, conflicts

    return run_unit(work)


def series_detail(series: Series) -> tuple[Series, list, list]:
    appointments = db.session.execute(
        sa.select(Appointment).where(Appointment.series_id == series.id)
        .order_by(Appointment.start_at)).scalars().all()
    conflicts = db.session.execute(
        sa.select(SeriesConflict).where(SeriesConflict.series_id == series.id)
        .order_by(SeriesConflict.start_at)).scalars().all()
    return series, appointments, conflicts


def cancel_series(actor: Actor, series_id: int) -> Series:
    """Stop the series and cancel its sessions that have not started."""

    def work():
        series = find_series(actor, series_id)
        if series.status != SeriesStatus.ACTIVE:
            raise InvalidTransition("The series is already cancelled.")
        now = utcnow()
        series.status = SeriesStatus.CANCELLED
        future = db.session.execute(
            sa.select(Appointment).where(Appointment.series_id == series.id,
                                         Appointment.status.in_(UPCOMING),
                                         Appointment.start_at > now)).scalars().all()
        for appointment in future:
            appointment.status = Status.CANCELLED
            appointment.cancel_reason = "series cancelled"
            appointment.cancelled_by_id = actor.user_id
            outbox.void_pending(appointment.id)
        if future:
            db.session.flush()
            outbox.queue_cancellation(future[0], now)  # one notice, for the next session
        audit.record(actor, "series.cancel", "series", series.id, cancelled=len(future))
        return series

    return run_unit(work)


def extend_all_series(now: datetime | None = None) -> int:
    """Book active series ahead to the expansion limit. A scheduler job."""
    now = now or utcnow()
    until = expansion_limit(now)
    actor = Actor.system("scheduler:extend_series")
    ids = db.session.execute(
        sa.select(Series.id).where(Series.status == SeriesStatus.ACTIVE,
                                   sa.or_(Series.expanded_until.is_(None),
                                          Series.expanded_until < until))).scalars().all()
    total = 0
    for series_id in ids:
        def work(series_id=series_id):
            series = db.session.get(Series, series_id)
            booked, _ = expand(actor, series, until)
            return len(booked)

        total += run_unit(work)
    return total
