"""Offers of freed slots to residents on the waitlist, answered by SMS."""

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from careservice.core.db import Timestamps, enum_check
from careservice.core.time import UTCDateTime
from careservice.extensions import db


class OfferStatus(StrEnum):
    PENDING = "pending"      # sent (or queued), waiting for the resident's answer
    ACCEPTED = "accepted"    # the resident took it: booked
    DECLINED = "declined"    # the resident said no
    EXPIRED = "expired"      # no answer in time
    LAPSED = "lapsed"        # taken by someone else meanwhile, or no longer bookable


class SlotOffer(Timestamps, db.Model):
    """A cancelled session's time, offered to one open care request.

    At most one offer per freed session is pending at a time; when it is
    declined, expires or lapses, the next request in line is offered the slot.
    """

    __tablename__ = "slot_offers"
    __table_args__ = (
        enum_check("status", OfferStatus),
        sa.UniqueConstraint("freed_appointment_id", "care_request_id",
                            name="uq_slot_offers_once_per_request"),
        sa.Index("ix_slot_offers_status_expires", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    freed_appointment_id: Mapped[int] = mapped_column(sa.ForeignKey("appointments.id"),
                                                      index=True)
    care_request_id: Mapped[int] = mapped_column(sa.ForeignKey("care_requests.id"))
    resident_id: Mapped[int] = mapped_column(sa.ForeignKey("residents.id"), index=True)
    provider_id: Mapped[int] = mapped_column(sa.ForeignKey("providers.id"))
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(sa.String(16), default=OfferStatus.PENDING)
    appointment_id: Mapped[int | None] = mapped_column(sa.ForeignKey("appointments.id"))

    freed_appointment = relationship("Appointment", foreign_keys=[freed_appointment_id])
    care_request = relationship("CareRequest")
    resident = relationship("Resident")

    def __repr__(self) -> str:
        return f"<SlotOffer {self.id} {self.status}>"
