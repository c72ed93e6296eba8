"""Writing the outbox: the SMS rows a booking, a reschedule or a cancellation
needs, added in the same transaction as the change itself (sent later by the
dispatcher), and the rows a change makes stale, voided."""

from datetime import datetime, timedelta
from functools import cache

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects import postgresql, sqlite

from careservice.core.time import utcnow
from careservice.extensions import db
from careservice.people.models import Modality, Resident
from careservice.reminders import messages, quiet
from careservice.reminders.messages import Kind
from careservice.reminders.models import Reminder, ReminderStatus

BEFORE = {Kind.REMINDER_24H: timedelta(hours=24), Kind.REMINDER_2H: timedelta(hours=2)}


def dedupe_key(appointment, kind: str) -> str:
    return f"a{appointment.id}:{kind}:{appointment.start_at:%Y%m%dT%H%M%SZ}"


def why_not_reachable(resident: Resident) -> str | None:
    """Why no SMS may go to this resident now, or None."""
    if not resident.phone:
        return "no phone number"
    if not resident.sms_consent:
        return "no SMS consent"
    if resident.opted_out_at is not None:
        return "opted out (STOP)"
    return None


def resident_body(kind: str, appointment, resident: Resident, language: str) -> str:
    date, time = messages.format_when(appointment.start_at, resident.region.timezone, language)
    how = {}
    if appointment.modality == Modality.VIDEO and appointment.join_url:
        how["join"] = appointment.join_url
    elif appointment.modality == Modality.HOME_VISIT:
        how["visit"] = True
    else:
        how["phone"] = True
    return messages.render(kind, language, name=resident.sms_name, date=date, time=time, **how)


def _row(appointment, kind: str, send_at: datetime, now: datetime) -> dict:
    """The outbox row for one message about an appointment."""
    resident = appointment.resident
    language = messages.choose_language(resident.languages)
    body = resident_body(kind, appointment, resident, language)
    status, reason = ReminderStatus.PENDING, why_not_reachable(resident)
    if reason is None:
        send_at = quiet.next_allowed(max(send_at, now), resident.region.timezone,
                                     current_app.config["QUIET_HOURS"])
        if kind != Kind.CANCELLATION and send_at >= appointment.start_at:
            reason = "quiet hours last until the session"
    if reason is not None:
        status = ReminderStatus.SUPPRESSED
    return dict(
        dedupe_key=dedupe_key(appointment, kind), kind=kind, channel="sms",
        appointment_id=appointment.id, appointment_start=appointment.start_at,
        resident_id=resident.id, to=resident.phone or "", language=language, body=body,
        segments=messages.segments(body), send_at=send_at, status=status, last_error=reason,
        attempts=0, created_at=now, updated_at=now)


def _insert(rows: list[dict]) -> None:
    """One INSERT for all rows; a row whose dedupe key exists already (a retry of
    the same change) is skipped by the database, not by a look-up first."""
    if rows:
        db.session.execute(_insert_statement(db.session.get_bind().dialect.name), rows)


@cache
def _insert_statement(dialect: str) -> sa.Insert:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(Reminder.__table__).on_conflict_do_nothing(index_elements=["dedupe_key"])


def queue_booking(appointment, now: datetime | None = None) -> None:
    """A new booking: the confirmation now, then 24 h and 2 h before, when still ahead."""
    now = now or utcnow()
    _insert([_row(appointment, Kind.CONFIRMATION, now, now), *_before(appointment, now)])


def queue_confirmation(appointment, now: datetime | None = None) -> None:
    now = now or utcnow()
    _insert([_row(appointment, Kind.CONFIRMATION, now, now)])


def queue_reminders(appointment, now: datetime | None = None) -> None:
    _insert(_before(appointment, now or utcnow()))


def _before(appointment, now: datetime) -> list[dict]:
    return [_row(appointment, kind, appointment.start_at - lead, now)
            for kind, lead in BEFORE.items() if appointment.start_at - lead > now]


def queue_change(old, new, now: datetime | None = None) -> None:
    """A reschedule: the old session's rows are void; one change notice for the new time."""
    now = now or utcnow()
    void_pending(old.id)
    _insert([_row(new, Kind.CHANGE, now, now), *_before(new, now)])


def queue_cancellation(appointment, now: datetime | None = None) -> None:
    now = now or utcnow()
    void_pending(appointment.id)
    _insert([_row(appointment, Kind.CANCELLATION, now, now)])


def void_pending(appointment_id: int) -> int:
    """Rows not yet handed to Twilio become `cancelled`. Rows being sent are left
    to the dispatcher, which re-checks the appointment under a lock."""
    return db.session.execute(
        sa.update(Reminder)
        .where(Reminder.appointment_id == appointment_id,
               Reminder.status == ReminderStatus.PENDING)
        .values(status=ReminderStatus.CANCELLED, last_error="the session changed",
                updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount

