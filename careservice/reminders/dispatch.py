"""The dispatcher: claims due outbox rows, re-checks them, sends, records.

Exactly once, across any number of dispatcher processes:
- a claim is a short transaction that moves due `pending` rows to `sending`
  with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL; on SQLite the
  IMMEDIATE transaction is the lock), so two processes never hold one row;
- each send happens inside a transaction that holds the appointment row
  (`FOR SHARE`), so a reschedule or cancellation either lands before the
  re-check (and the stale row is not sent) or waits until the send is
  recorded;
- a result that may or may not have reached Twilio (a timeout, a 5xx) is
  `unknown`, and so is a claim whose process died (its lease ran out): the
  reconciler looks the message up at Twilio before anything is sent again.
"""

import logging
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import Flask, current_app

from careservice.core.time import utcnow
from careservice.extensions import db
from careservice.people.models import Resident
from careservice.reminders import quiet
from careservice.reminders.backends import (
    RESIDENT_ERROR_CODES,
    AmbiguousError,
    PermanentError,
    TransientError,
    get_backend,
)
from careservice.reminders.messages import Kind
from careservice.reminders.models import Reminder, ReminderStatus
from careservice.reminders.status import apply_status
from careservice.scheduling.models import UPCOMING, Appointment, Status

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(hours=1)
# Set by the scheduler on SIGTERM: finish the batch in hand, claim no more.
stopping = threading.Event()


@dataclass
class Tally:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    unknown: int = 0
    suppressed: int = 0
    deferred: int = 0
    skipped: int = 0

    def add(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)


class RateLimiter:
    """At most `rate` sends per second from this process (0: no limit)."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate if rate else 0.0
        self.next_slot = time.monotonic()
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            slot = max(now, self.next_slot)
            self.next_slot = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


def status_callback_url() -> str:
    return current_app.config["PUBLIC_URL"] + "/webhooks/twilio/status"


def claim(now: datetime, limit: int) -> list[int]:
    """Move up to `limit` due rows to `sending` under a lease; their ids."""
    config = current_app.config
    due = (sa.select(Reminder.id)
           .where(Reminder.status == ReminderStatus.PENDING, Reminder.send_at <= now)
           .order_by(Reminder.send_at, Reminder.id).limit(limit))
    if db.engine.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = db.session.execute(due).scalars().all()
    if ids:
        db.session.execute(
            sa.update(Reminder)
            .where(Reminder.id.in_(ids), Reminder.status == ReminderStatus.PENDING)
            .values(status=ReminderStatus.SENDING, claimed_at=now,
                    lease_until=now + timedelta(seconds=config["DISPATCH_LEASE_SECONDS"]),
                    attempts=Reminder.attempts + 1, updated_at=now)
            .execution_options(synchronize_session=False))
    db.session.commit()
    return list(ids)


def _verdict(reminder: Reminder, appointment: Appointment | None, now: datetime):
    """("send", None), ("suppress", why) or ("defer", until) after a fresh look."""
    if reminder.resident_id is not None:
        resident = db.session.get(Resident, reminder.resident_id)
        if not resident.phone or not resident.sms_consent:
            return "suppress", "no phone or no SMS consent"
        if resident.opted_out_at is not None:
            return "suppress", "opted out (STOP)"
        if resident.phone != reminder.to:
            return "suppress", "the phone number changed"
        tz_name = resident.region.timezone
    else:
        tz_name = current_app.config["DEFAULT_TIMEZONE"]
    if appointment is not None:
        if appointment.start_at != reminder.appointment_start:
            return "suppress", "the session moved"
        if appointment.start_at <= now:
            return "suppress", "the session has started"
        if reminder.kind == Kind.CANCELLATION:
            if appointment.status != Status.CANCELLED:
                return "suppress", "the session is not cancelled"
        elif appointment.status not in UPCOMING:
            return "suppress", f"the session is {appointment.status}"
    allowed = quiet.next_allowed(now, tz_name, current_app.config["QUIET_HOURS"])
    if allowed > now:
        if appointment is not None and reminder.kind != Kind.CANCELLATION \
                and allowed >= appointment.start_at:
            return "suppress", "quiet hours last until the session"
        return "defer", allowed
    return "send", None


def backoff(attempts: int, retry_after: float | None) -> timedelta:
    """Exponential, with full jitter, never sooner than Retry-After."""
    base = current_app.config["SMS_RETRY_BASE_SECONDS"]
    ceiling = min(MAX_BACKOFF.total_seconds(), base * 2 ** max(attempts - 1, 0))
    delay = random.uniform(ceiling / 2, ceiling)
    return timedelta(seconds=max(delay, retry_after or 0))


def deliver(reminder_id: int, limiter: RateLimiter) -> str:
    """Send one claimed row; the outcome name for the tally."""
    config = current_app.config
    now = utcnow()
    reminder = db.session.get(Reminder, reminder_id)
    if reminder is None or reminder.status != ReminderStatus.SENDING:
        db.session.rollback()  # settled meanwhile (the reconciler, a callback)
        return "skipped"
    appointment = None
    if reminder.appointment_id is not None:
        query = sa.select(Appointment).where(Appointment.id == reminder.appointment_id)
        if db.engine.dialect.name == "postgresql":
            query = query.with_for_update(read=True)
        appointment = db.session.execute(query).scalar_one()
    verdict, detail = _verdict(reminder, appointment, now)
    if verdict == "suppress":
        _finish(reminder, ReminderStatus.SUPPRESSED, last_error=detail)
        return "suppressed"
    if verdict == "defer":
        _finish(reminder, ReminderStatus.PENDING, send_at=detail, attempts=reminder.attempts - 1,
                last_error="quiet hours")
        return "deferred"
    limiter.wait()
    try:
        sent = get_backend().send(reminder.to, reminder.body, status_callback_url())
    except TransientError as error:
        if reminder.attempts >= config["SMS_MAX_ATTEMPTS"]:
            _finish(reminder, ReminderStatus.FAILED, error_code=error.code,
                    last_error=f"gave up after {reminder.attempts} attempts: {error.message}")
            return "failed"
        _finish(reminder, ReminderStatus.PENDING, error_code=error.code, last_error=error.message,
                send_at=utcnow() + backoff(reminder.attempts, error.retry_after))
        return "retried"
    except PermanentError as error:
        flag_resident(reminder.resident_id, error.code, error.message)
        _finish(reminder, ReminderStatus.FAILED, error_code=error.code, last_error=error.message)
        return "failed"
    except AmbiguousError as error:
        _finish(reminder, ReminderStatus.UNKNOWN, error_code=error.code, last_error=error.message)
        return "unknown"
    _finish(reminder, ReminderStatus.SENT, provider_message_id=sent.sid, sent_at=utcnow(),
            last_error=None, error_code=None,
            **({"segments": sent.segments} if sent.segments else {}))
    return "sent"


def _finish(reminder: Reminder, status: str, **values) -> None:
    for name, value in values.items():
        setattr(reminder, name, value)
    reminder.status = status
    reminder.lease_until = None
    db.session.commit()


def flag_resident(resident_id: int | None, code: int | None, message: str) -> None:
    """Mark the number as unable to take SMS, for the village health worker to check."""
    if resident_id is None or code not in RESIDENT_ERROR_CODES:
        return
    db.session.execute(sa.update(Resident).where(Resident.id == resident_id)
                       .values(sms_problem_at=utcnow(), sms_problem=message[:200]))


def _deliver_in_context(app: Flask, reminder_id: int, limiter: RateLimiter) -> str:
    with app.app_context():
        try:
            return deliver(reminder_id, limiter)
        except Exception:
            db.session.rollback()
            log.exception("reminder %s: unexpected error; left to the reconciler", reminder_id)
            return "unknown"
        finally:
            db.session.remove()


def dispatch_due(now: datetime | None = None, *, max_seconds: float = 50.0) -> Tally:
    """Claim and send due reminders, batch after batch, until none is due or time is up."""
    app = current_app._get_current_object()
    config = app.config
    limiter = RateLimiter(config["SMS_RATE_PER_SECOND"])
    tally = Tally()
    began = time.monotonic()
    worker = uuid.uuid4().hex[:8]
    with ThreadPoolExecutor(config["DISPATCH_CONCURRENCY"],
                            thread_name_prefix=f"dispatch-{worker}") as pool:
        while not stopping.is_set() and time.monotonic() - began < max_seconds:
            ids = claim(now or utcnow(), config["DISPATCH_BATCH"])
            if not ids:
                break
            tally.claimed += len(ids)
            for outcome in pool.map(lambda i: _deliver_in_context(app, i, limiter), ids):
                tally.add(outcome)
            if now is not None:
                break  # a fixed clock (tests): one batch
    return tally


def reconcile(now: datetime | None = None) -> int:
    """Settle `unknown` rows and claims whose lease ran out: ask Twilio whether
    the message exists; if it does, record it; if not, send it again."""
    now = now or utcnow()
    config = current_app.config
    waited = now - timedelta(seconds=config["RECONCILE_AFTER_SECONDS"])
    rows = db.session.execute(
        sa.select(Reminder).where(sa.or_(
            (Reminder.status == ReminderStatus.UNKNOWN) & (Reminder.updated_at <= waited),
            (Reminder.status == ReminderStatus.SENDING) & (Reminder.lease_until <= now)))
        .order_by(Reminder.id).limit(config["DISPATCH_BATCH"])
    ).scalars().all()
    backend = get_backend()
    settled = 0
    for reminder in rows:
        try:
            if reminder.provider_message_id:
                status = backend.lookup(reminder.provider_message_id)
                found = reminder.provider_message_id if status else None
            else:
                since = (reminder.claimed_at or reminder.updated_at) - timedelta(minutes=1)
                match = backend.find(reminder.to, reminder.body, since)
                found, status = (match.sid, match.status) if match else (None, None)
        except Exception as error:  # Twilio unreachable: try again next round
            log.warning("reconcile reminder %s: %s", reminder.id, error)
            continue
        # Compare-and-swap on the status seen, so a status callback that lands
        # meanwhile wins.
        values = ({"status": ReminderStatus.SENT, "provider_message_id": found,
                   "sent_at": reminder.claimed_at or now}
                  if found else {"status": ReminderStatus.PENDING, "send_at": now})
        changed = db.session.execute(
            sa.update(Reminder).where(Reminder.id == reminder.id,
                                      Reminder.status == reminder.status)
            .values(lease_until=None, updated_at=now, **values)
            .execution_options(synchronize_session=False)).rowcount
        db.session.commit()
        if changed and found and status in ("delivered", "undelivered", "failed"):
            apply_status(found, status, None)
        settled += changed
    return settled
