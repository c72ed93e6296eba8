"""The SMS outbox and the replies that come back."""

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from careservice.core.db import Timestamps, enum_check
from careservice.core.time import UTCDateTime
from careservice.extensions import db


class ReminderStatus(StrEnum):
    PENDING = "pending"          # waiting for send_at (or a retry)
    SENDING = "sending"          # claimed by a dispatcher until lease_until
    SENT = "sent"                # accepted by Twilio
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    SUPPRESSED = "suppressed"    # not sent, on purpose (opt-out, quiet hours, too late)
    UNKNOWN = "unknown"          # the request may or may not have left: reconcile first
    CANCELLED = "cancelled"      # made stale by a reschedule or cancellation


# How far along a message is; a status callback never moves a row backwards
# (a late "sent" after "delivered" is ignored).
RANK = {
    ReminderStatus.PENDING: 0, ReminderStatus.SENDING: 1, ReminderStatus.UNKNOWN: 2,
    ReminderStatus.SENT: 3, ReminderStatus.DELIVERED: 4, ReminderStatus.UNDELIVERED: 4,
    ReminderStatus.FAILED: 4, ReminderStatus.SUPPRESSED: 4, ReminderStatus.CANCELLED: 4,
}
FINAL = {ReminderStatus.DELIVERED, ReminderStatus.UNDELIVERED, ReminderStatus.FAILED,
         ReminderStatus.SUPPRESSED, ReminderStatus.CANCELLED}


class Reminder(Timestamps, db.Model):
    """One SMS to send (the outbox row).

    `dedupe_key` is unique: (appointment, kind, appointment start) for a
    resident's reminder, (user, kind, day) for a digest, so a retry, a rerun or
    a restart never queues the same message twice.
    """

    __tablename__ = "reminders"
    __table_args__ = (
        enum_check("status", ReminderStatus),
        sa.Index("ix_reminders_due", "status", "send_at"),
        sa.Index("ix_reminders_appointment", "appointment_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(sa.String(120), unique=True)
    kind: Mapped[str] = mapped_column(sa.String(24))
    channel: Mapped[str] = mapped_column(sa.String(8), default="sms")
    appointment_id: Mapped[int | None] = mapped_column(sa.ForeignKey("appointments.id"))
    appointment_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resident_id: Mapped[int | None] = mapped_column(sa.ForeignKey("residents.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    to: Mapped[str] = mapped_column(sa.String(20))
    language: Mapped[str] = mapped_column(sa.String(8))
    body: Mapped[str] = mapped_column(sa.Text)
    segments: Mapped[int] = mapped_column(sa.SmallInteger, default=1)
    send_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(sa.String(16), default=ReminderStatus.PENDING)
    attempts: Mapped[int] = mapped_column(sa.SmallInteger, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    provider_message_id: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    error_code: Mapped[int | None] = mapped_column(sa.Integer)
    last_error: Mapped[str | None] = mapped_column(sa.String(300))

    appointment = relationship("Appointment")

    def __repr__(self) -> str:
        return f"<Reminder {self.id} {self.kind} {self.status}>"


class InboundMessage(db.Model):
    """A resident's SMS reply, kept once per Twilio MessageSid."""

    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_sid: Mapped[str] = mapped_column(sa.String(64), unique=True)
    from_number: Mapped[str] = mapped_column(sa.String(20), index=True)
    body: Mapped[str] = mapped_column(sa.String(1600))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    intent: Mapped[str] = mapped_column(sa.String(16))
    appointment_id: Mapped[int | None] = mapped_column(sa.ForeignKey("appointments.id"))
    reply: Mapped[str | None] = mapped_column(sa.Text)
