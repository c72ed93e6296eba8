"""Scheduling state: service types, availability, appointments, series, care requests."""

from datetime import date, datetime, time
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from careservice.core.db import Timestamps, enum_check
from careservice.core.errors import InvalidTransition
from careservice.core.time import UTCDateTime
from careservice.extensions import db
from careservice.people.models import Modality, Provider, Region, Resident


class ServiceType(Timestamps, db.Model):
    """What a session is: its modality, length, buffer after and the skill it needs."""

    __tablename__ = "service_types"
    __table_args__ = (
        enum_check("modality", Modality),
        sa.CheckConstraint("duration_minutes > 0", name="duration_positive"),
        sa.CheckConstraint("buffer_minutes >= 0", name="buffer_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(40), unique=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    modality: Mapped[str] = mapped_column(sa.String(16))
    duration_minutes: Mapped[int] = mapped_column(sa.Integer)
    buffer_minutes: Mapped[int] = mapped_column(sa.Integer, default=0)
    required_skill: Mapped[str | None] = mapped_column(sa.String(40))

    def __repr__(self) -> str:
        return f"<ServiceType {self.code}>"


class AvailabilityRule(db.Model):
    """A weekly window in the provider's own timezone (weekday 0 is Monday)."""

    __tablename__ = "availability_rules"
    __table_args__ = (
        sa.CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday_valid"),
        sa.CheckConstraint("start_time < end_time", name="window_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(
        sa.ForeignKey("providers.id", ondelete="CASCADE"), index=True)
    weekday: Mapped[int] = mapped_column(sa.SmallInteger)
    start_time: Mapped[time] = mapped_column(sa.Time)
    end_time: Mapped[time] = mapped_column(sa.Time)
    valid_from: Mapped[date | None] = mapped_column(sa.Date)
    valid_to: Mapped[date | None] = mapped_column(sa.Date)

    def applies_on(self, day: date) -> bool:
        return rule_applies_on(self, day)


def rule_applies_on(rule, day: date) -> bool:
    """A weekly rule (a model or a row of its columns) holds on that local day."""
    return (day.weekday() == rule.weekday
            and (rule.valid_from is None or day >= rule.valid_from)
            and (rule.valid_to is None or day <= rule.valid_to))


class ExceptionKind(StrEnum):
    UNAVAILABLE = "unavailable"
    EXTRA = "extra"


class AvailabilityException(db.Model):
    """Time off (unavailable) or extra hours, as UTC instants."""

    __tablename__ = "availability_exceptions"
    __table_args__ = (
        enum_check("kind", ExceptionKind),
        sa.CheckConstraint("start_at < end_at", name="window_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(
        sa.ForeignKey("providers.id", ondelete="CASCADE"), index=True)
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(sa.String(16))


class Status(StrEnum):
    BOOKED = "booked"
    CONFIRMED = "confirmed"
    CHECKED_IN = "checked_in"
    COMPLETED = "completed"
    NO_SHOW = "no_show"
    CANCELLED = "cancelled"


# Every status but cancelled holds the provider's and the resident's time: a
# completed or missed session still happened then.
LIVE = (Status.BOOKED, Status.CONFIRMED, Status.CHECKED_IN, Status.COMPLETED, Status.NO_SHOW)
UPCOMING = (Status.BOOKED, Status.CONFIRMED)

TRANSITIONS = {
    Status.BOOKED: {Status.CONFIRMED, Status.CHECKED_IN, Status.NO_SHOW, Status.CANCELLED},
    Status.CONFIRMED: {Status.CHECKED_IN, Status.NO_SHOW, Status.CANCELLED},
    Status.CHECKED_IN: {Status.COMPLETED},
    Status.COMPLETED: set(),
    Status.NO_SHOW: set(),
    Status.CANCELLED: set(),
}


class Appointment(Timestamps, db.Model):
    """A session between a resident and a provider.

    The provider is held over [start_at, block_end_at): the session and the
    service's buffer after it. On PostgreSQL two exclusion constraints
    (migration 0002) forbid overlapping live appointments of one provider or
    one resident, whatever the concurrency. `travel_minutes` tells a caregiver
    how far the visit is from their previous one that day.
    """

    __tablename__ = "appointments"
    __table_args__ = (
        enum_check("status", Status),
        enum_check("modality", Modality),
        sa.CheckConstraint("start_at < end_at", name="times_ordered"),
        sa.CheckConstraint("end_at <= block_end_at", name="block_covers_session"),
        sa.Index("ix_appointments_provider_start", "provider_id", "start_at"),
        sa.Index("ix_appointments_resident_start", "resident_id", "start_at"),
        sa.Index("ix_appointments_status_start", "status", "start_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(sa.ForeignKey("residents.id"))
    provider_id: Mapped[int] = mapped_column(sa.ForeignKey("providers.id"))
    service_type_id: Mapped[int] = mapped_column(sa.ForeignKey("service_types.id"))
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    block_end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    modality: Mapped[str] = mapped_column(sa.String(16))
    join_url: Mapped[str | None] = mapped_column(sa.String(255))
    visit_region_id: Mapped[int | None] = mapped_column(sa.ForeignKey("regions.id"))
    travel_minutes: Mapped[int | None] = mapped_column(sa.Integer)
    status: Mapped[str] = mapped_column(sa.String(16), default=Status.BOOKED)
    booked_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"))
    on_behalf: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    recorded: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    series_id: Mapped[int | None] = mapped_column(sa.ForeignKey("series.id"), index=True)
    rescheduled_from_id: Mapped[int | None] = mapped_column(sa.ForeignKey("appointments.id"))
    cancel_reason: Mapped[str | None] = mapped_column(sa.String(500))
    cancelled_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"))
    checked_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the waitlist backfill looked at this cancelled session's freed slot.
    backfill_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    notes: Mapped[str | None] = mapped_column(sa.Text)
    version: Mapped[int] = mapped_column(sa.Integer, default=1)

    resident: Mapped[Resident] = relationship()
    provider: Mapped[Provider] = relationship()
    service_type: Mapped[ServiceType] = relationship()
    visit_region: Mapped[Region | None] = relationship()

    __mapper_args__ = {"version_id_col": version}

    def check_transition(self, target: Status) -> None:
        if target not in TRANSITIONS[Status(self.status)]:
            raise InvalidTransition(f"A {self.status} appointment cannot become {target}.")

    @property
    def is_live(self) -> bool:
        return self.status in LIVE

    def __repr__(self) -> str:
        return f"<Appointment {self.id} {self.status} {self.start_at:%Y-%m-%dT%H:%M}Z>"


class SeriesStatus(StrEnum):
    ACTIVE = "active"
    CANCELLED = "cancelled"


class Series(Timestamps, db.Model):
    """Recurring sessions from an RFC 5545 RRULE, expanded ahead by the scheduler."""

    __tablename__ = "series"
    __table_args__ = (enum_check("status", SeriesStatus),)

    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(sa.ForeignKey("residents.id"), index=True)
    provider_id: Mapped[int] = mapped_column(sa.ForeignKey("providers.id"), index=True)
    service_type_id: Mapped[int] = mapped_column(sa.ForeignKey("service_types.id"))
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    rrule: Mapped[str] = mapped_column(sa.String(500))
    timezone: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[str] = mapped_column(sa.String(16), default=SeriesStatus.ACTIVE)
    expanded_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    booked_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"))
    on_behalf: Mapped[bool] = mapped_column(sa.Boolean, default=False)

    resident: Mapped[Resident] = relationship()
    provider: Mapped[Provider] = relationship()
    service_type: Mapped[ServiceType] = relationship()


class SeriesConflict(db.Model):
    """An occurrence of a series that could not be booked, and why."""

    __tablename__ = "series_conflicts"
    __table_args__ = (sa.UniqueConstraint("series_id", "start_at",
                                          name="uq_series_conflicts_series_start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(sa.ForeignKey("series.id", ondelete="CASCADE"))
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(sa.String(200))


class Urgency(StrEnum):
    ROUTINE = "routine"
    SOON = "soon"
    URGENT = "urgent"


class RequestStatus(StrEnum):
    OPEN = "open"
    BOOKED = "booked"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class CareRequest(Timestamps, db.Model):
    """A need not yet booked (the waitlist): a session fits when it starts at or
    after `earliest` and ends by `latest`."""

    __tablename__ = "care_requests"
    __table_args__ = (
        enum_check("urgency", Urgency),
        enum_check("status", RequestStatus),
        sa.CheckConstraint("earliest < latest", name="window_positive"),
        sa.Index("ix_care_requests_status_latest", "status", "latest"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(sa.ForeignKey("residents.id"), index=True)
    service_type_id: Mapped[int] = mapped_column(sa.ForeignKey("service_types.id"))
    earliest: Mapped[datetime] = mapped_column(UTCDateTime)
    latest: Mapped[datetime] = mapped_column(UTCDateTime)
    urgency: Mapped[str] = mapped_column(sa.String(16), default=Urgency.ROUTINE)
    status: Mapped[str] = mapped_column(sa.String(16), default=RequestStatus.OPEN)
    appointment_id: Mapped[int | None] = mapped_column(sa.ForeignKey("appointments.id"))
    created_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"))
    notes: Mapped[str | None] = mapped_column(sa.Text)

    resident: Mapped[Resident] = relationship()
    service_type: Mapped[ServiceType] = relationship()
