"""Delivery status from Twilio (callbacks and look-ups), applied idempotently."""

import logging

import sqlalchemy as sa

from careservice.core.time import utcnow
from careservice.extensions import db
from careservice.people.models import Resident
from careservice.reminders.backends import RESIDENT_ERROR_CODES
from careservice.reminders.models import RANK, Reminder, ReminderStatus

log = logging.getLogger(__name__)

# Twilio's MessageStatus values -> ours. Statuses before "sent" (queued,
# accepted, sending, scheduled) only tell us Twilio has it: that is "sent".
TWILIO_STATUS = {
    "accepted": ReminderStatus.SENT, "scheduled": ReminderStatus.SENT,
    "queued": ReminderStatus.SENT, "sending": ReminderStatus.SENT, "sent": ReminderStatus.SENT,
    "delivered": ReminderStatus.DELIVERED, "read": ReminderStatus.DELIVERED,
    "undelivered": ReminderStatus.UNDELIVERED, "failed": ReminderStatus.FAILED,
}


def apply_status(sid: str, twilio_status: str, error_code: int | None) -> Reminder | None:
    """Move the reminder with this SID forward to the reported status; never
    backwards (a late "sent" after "delivered" changes nothing). Unknown SIDs
    are logged and ignored."""
    status = TWILIO_STATUS.get((twilio_status or "").lower())
    reminder = db.session.execute(
        sa.select(Reminder).where(Reminder.provider_message_id == sid)).scalar_one_or_none()
    if reminder is None or status is None:
        log.info("status callback for %s (%s): no such reminder or status", sid, twilio_status)
        return None
    if RANK[status] <= RANK[ReminderStatus(reminder.status)]:
        return reminder
    # Compare-and-swap on the status we read: two callbacks at once resolve in order.
    values = {"status": status, "updated_at": utcnow(), "lease_until": None}
    if error_code:
        values.update(error_code=error_code, last_error=f"Twilio error {error_code}")
    changed = db.session.execute(
        sa.update(Reminder).where(Reminder.id == reminder.id, Reminder.status == reminder.status)
        .values(**values).execution_options(synchronize_session=False)).rowcount
    if changed and status in (ReminderStatus.UNDELIVERED, ReminderStatus.FAILED) \
            and error_code in RESIDENT_ERROR_CODES and reminder.resident_id is not None:
        db.session.execute(sa.update(Resident).where(Resident.id == reminder.resident_id)
                           .values(sms_problem_at=utcnow(),
                                   sms_problem=f"SMS {status}: Twilio error {error_code}"))
    db.session.commit()
    db.session.refresh(reminder)
    return reminder
