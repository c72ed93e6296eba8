"""The dispatcher: claims due outbox rows, re-checks them, sends, records.

Exactly once, across any number of dispatcher processes:
- a claim is a short transaction that moves due `pending` rows to `sending`
  with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL; on SQLite the
  IMMEDIATE transaction is the lock), so two processes never hold one row;
- each send happens inside a transaction that holds the appointment row
  (`FOR SHARE`; on SQLite, the write lock, so there one send per transaction),
  so a reschedule or cancellation either lands before the re-check (and the
  stale row is not sent) or waits until the send is recorded;
- a result that may or may not have reached Twilio (a timeout, a 5xx) is
  `unknown`, and so is a claim whose process died (its lease ran out): the
  reconciler looks the message up at Twilio before anything is sent again.
"""

import logging
import random
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

import sqlalchemy as sa
from flask import current_app

from careservice.core.time import utcnow
from careservice.extensions import db
from careservice.people.models import Region, Resident
from careservice.reminders import quiet
from careservice.reminders.backends import (
    RESIDENT_ERROR_CODES,
    PermanentError,
    SendError,
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

    def wait_for_a_slot(self) -> None:
        """Sleep until a send could go at once, without taking the slot: a row that is
        then suppressed or deferred spends none."""
        if not self.interval:
            return
        with self.lock:
            delay = self.next_slot - time.monotonic()
        if delay > 0:
            time.sleep(delay)


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


def _verdict(reminder: Reminder, appointment: Appointment | None, resident: Resident | None,
             tz_name: str | None, now: datetime):
    """("send", None), ("suppress", why) or ("defer", until) after a fresh look."""
    if resident is not None:
        if not resident.phone or not resident.sms_consent:
            return "suppress", "no phone or no SMS consent"
        if resident.opted_out_at is not None:
            return "suppress", "opted out (STOP)"
        if resident.phone != reminder.to:
            return "suppress", "the phone number changed"
    tz_name = tz_name or current_app.config["DEFAULT_TIMEZONE"]
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


@cache
def _parties_query(postgresql: bool) -> sa.Select:
    """The appointments (held FOR SHARE until their sends are recorded), their
    residents and the residents' timezones, in one round trip."""
    query = (sa.select(Appointment, Resident, Region.timezone)
             .join(Resident, Appointment.resident_id == Resident.id)
             .join(Region, Resident.region_id == Region.id)
             .where(Appointment.id.in_(sa.bindparam("ids", expanding=True)))
             .order_by(Appointment.id)
             .execution_options(populate_existing=True))
    return query.with_for_update(read=True, of=Appointment) if postgresql else query


def _parties(reminders: list[Reminder]) -> dict[int, tuple]:
    """reminder id -> (appointment, resident, timezone), None where there is none."""
    appointment_ids = sorted({r.appointment_id for r in reminders if r.appointment_id})
    by_appointment = {}
    if appointment_ids:
        postgresql = db.engine.dialect.name == "postgresql"
        for appointment, resident, tz_name in db.session.execute(
                _parties_query(postgresql), {"ids": appointment_ids}):
            by_appointment[appointment.id] = (appointment, resident, tz_name)
    parties = {}
    for reminder in reminders:
        if reminder.appointment_id is not None:
            parties[reminder.id] = by_appointment[reminder.appointment_id]
        elif reminder.resident_id is not None:
            resident = db.session.get(Resident, reminder.resident_id)
            parties[reminder.id] = (None, resident, resident.region.timezone)
        else:
            parties[reminder.id] = (None, None, None)
    return parties


def deliver_batch(reminder_ids: list[int], limiter: RateLimiter) -> list[str]:
    """Send claimed rows; the outcome name of each, in order.

    One transaction for the batch: it re-reads the rows, holds their
    appointments (FOR SHARE on PostgreSQL; SQLite's write lock) while it
    sends, and records every result before it lets go. A process killed in between leaves the rows
    `sending`; their lease runs out and the reconciler looks them up.
    """
    now = utcnow()
    reminders = db.session.execute(
        sa.select(Reminder).where(Reminder.id.in_(reminder_ids),
                                  Reminder.status == ReminderStatus.SENDING)
        .order_by(Reminder.id)
        # claim() updated these rows behind the session's back: read them afresh.
        .execution_options(populate_existing=True)).scalars().all()
    parties = _parties(reminders)
    outcomes: dict[int, str] = {}
    to_send = []
    for reminder in reminders:
        verdict, detail = _verdict(reminder, *parties[reminder.id], now)
        if verdict == "suppress":
            _set(reminder, ReminderStatus.SUPPRESSED, last_error=detail)
            outcomes[reminder.id] = "suppressed"
        elif verdict == "defer":
            _set(reminder, ReminderStatus.PENDING, send_at=detail,
                 attempts=reminder.attempts - 1, last_error="quiet hours")
            outcomes[reminder.id] = "deferred"
        else:
            to_send.append((reminder.id, reminder.to, reminder.body))
    backend, callback = get_backend(), status_callback_url()

    def send(item):
        reminder_id, to, body = item
        limiter.wait()
        try:
            return reminder_id, backend.send(to, body, callback), None
        except SendError as error:
            return reminder_id, None, error

    results = map(send, to_send)
    by_id = {reminder.id: reminder for reminder in reminders}
    for reminder_id, sent, error in results:
        outcomes[reminder_id] = _record(by_id[reminder_id], sent, error)
    db.session.commit()
    return [outcomes.get(reminder_id, "skipped") for reminder_id in reminder_ids]


def deliver(reminder_id: int, limiter: RateLimiter) -> str:
    """Send one claimed row; its outcome."""
    return deliver_batch([reminder_id], limiter)[0]


def _record(reminder: Reminder, sent, error) -> str:
    """Put one send's result on its row (the caller commits); the outcome name."""
    if isinstance(error, TransientError):
        if reminder.attempts >= current_app.config["SMS_MAX_ATTEMPTS"]:
            _set(reminder, ReminderStatus.FAILED, error_code=error.code,
                 last_error=f"gave up after {reminder.attempts} attempts: {error.message}")
            return "failed"
        _set(reminder, ReminderStatus.PENDING, error_code=error.code, last_error=error.message,
             send_at=utcnow() + backoff(reminder.attempts, error.retry_after))
        return "retried"
    if isinstance(error, PermanentError):
        flag_resident(reminder.resident_id, error.code, error.message)
        _set(reminder, ReminderStatus.FAILED, error_code=error.code, last_error=error.message)
        return "failed"
    if error is not None:  # AmbiguousError: it may have gone; the reconciler decides
        _set(reminder, ReminderStatus.UNKNOWN, error_code=error.code, last_error=error.message)
        return "unknown"
    _set(reminder, ReminderStatus.SENT, provider_message_id=sent.sid, sent_at=utcnow(),
         last_error=None, error_code=None,
         **({"segments": sent.segments} if sent.segments else {}))
    return "sent"


def _set(reminder: Reminder, status: str, **values) -> None:
    for name, value in values.items():
        setattr(reminder, name, value)
    reminder.status = status
    reminder.lease_until = None


def flag_resident(resident_id: int | None, code: int | None, message: str) -> None:
    """Mark the number as unable to take SMS, for the village health worker to check."""
    if resident_id is None or code not in RESIDENT_ERROR_CODES:
        return
    db.session.execute(sa.update(Resident).where(Resident.id == resident_id)
                       .values(sms_problem_at=utcnow(), sms_problem=message[:200]))


def _deliver_chunk(app, reminder_ids: list[int], limiter: RateLimiter) -> list[str]:
    """deliver_batch in a worker thread, with its own app context and session. It waits
    for a free rate slot before its transaction begins, so the transaction does not sleep
    on the limit before its first send: on SQLite (one send per transaction, one worker)
    the write lock is then held for the send alone."""
    with app.app_context():
        try:
            limiter.wait_for_a_slot()
            return deliver_batch(reminder_ids, limiter)
        except Exception:
            db.session.rollback()
            log.exception("reminders %s: unexpected error; left to the reconciler", reminder_ids)
            return ["unknown"] * len(reminder_ids)
        finally:
            db.session.remove()


def dispatch_due(now: datetime | None = None, *, max_seconds: float = 50.0) -> Tally:
    """Claim and send due reminders until none is due or time is up.

    DISPATCH_CONCURRENCY worker threads each send a small chunk in one
    transaction; new rows are claimed as workers free up, so one slow answer
    from Twilio holds up one chunk, not the whole batch.
    """
    app = current_app._get_current_object()
    config = app.config
    limiter = RateLimiter(config["SMS_RATE_PER_SECOND"])
    if db.engine.dialect.name == "sqlite":
        # Each send holds SQLite's one write lock, so every booking waits for it: one
        # send per transaction, one at a time (more threads would only queue for it).
        workers, chunk = 1, 1
    else:
        # Rows per transaction: a reschedule of one of them waits for at most these.
        workers, chunk = config["DISPATCH_CONCURRENCY"], 8
    tally = Tally()
    began = time.monotonic()

    def submit(pool, ids, inflight):
        tally.claimed += len(ids)
        for i in range(0, len(ids), chunk):
            inflight.add(pool.submit(_deliver_chunk, app, ids[i:i + chunk], limiter))

    def collect(done):
        for future in done:
            for outcome in future.result():
                tally.add(outcome)

    with ThreadPoolExecutor(workers, thread_name_prefix="sms-send") as pool:
        inflight: set = set()
        if now is not None and not stopping.is_set():  # a fixed clock (tests): one claim
            submit(pool, claim(now, config["DISPATCH_BATCH"]), inflight)
            collect(wait(inflight)[0])
            return tally
        while not stopping.is_set() and time.monotonic() - began < max_seconds:
            if len(inflight) < workers * 2:
                ids = claim(utcnow(), min(config["DISPATCH_BATCH"], chunk * workers))
                if ids:
                    submit(pool, ids, inflight)
                    continue
                if not inflight:
                    break
            done, inflight = wait(inflight, return_when=FIRST_COMPLETED)
            collect(done)
        collect(wait(inflight)[0])
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
