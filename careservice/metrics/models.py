"""Coverage rollups: the cells of a calendar day, ISO week or month, stored once built.

A rollup is per fixed period, never summed from days: served residents are a
distinct count, age bands are taken at the period's end and waits give a
median, none of which adds up over days.
"""

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from careservice.core.db import enum_check
from careservice.core.time import UTCDateTime
from careservice.extensions import db
from careservice.reminders.models import Reminder
from careservice.scheduling.models import Appointment


class PeriodKind(StrEnum):
    DAY = "day"
    WEEK = "week"      # ISO: Monday to Monday
    MONTH = "month"


class CoverageRollupPeriod(db.Model):
    """A period whose cells are stored: the report reads them when asked for
    exactly [start_at, end_at). Its row exists even when it holds no cell."""

    __tablename__ = "coverage_rollup_periods"
    __table_args__ = (enum_check("kind", PeriodKind),
                      sa.UniqueConstraint("start_at", "end_at",
                                          name="uq_coverage_rollup_periods_span"))

    kind: Mapped[str] = mapped_column(sa.String(8), primary_key=True)
    start_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    timezone: Mapped[str] = mapped_column(sa.String(64))
    cells: Mapped[int] = mapped_column(sa.Integer)
    built_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CoverageRollup(db.Model):
    """One cell of a period: a village's residents of one sex and age band (service
    and provider kind empty), or a village's figures for one service type or one
    provider kind (sex and age band empty). Empty is '' so the key is a primary key."""

    __tablename__ = "coverage_rollups"
    __table_args__ = (
        sa.ForeignKeyConstraint(["period_kind", "period_start"],
                                ["coverage_rollup_periods.kind",
                                 "coverage_rollup_periods.start_at"],
                                ondelete="CASCADE"),
    )

    period_kind: Mapped[str] = mapped_column(sa.String(8), primary_key=True)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    village_id: Mapped[int] = mapped_column(sa.ForeignKey("regions.id"), primary_key=True)
    sex: Mapped[str] = mapped_column(sa.String(8), primary_key=True)
    age_band: Mapped[str] = mapped_column(sa.String(8), primary_key=True)
    service_type: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    provider_kind: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    registered: Mapped[int] = mapped_column(sa.Integer)
    served: Mapped[int] = mapped_column(sa.Integer)
    booked: Mapped[int] = mapped_column(sa.Integer)
    completed: Mapped[int] = mapped_column(sa.Integer)
    no_shows: Mapped[int] = mapped_column(sa.Integer)
    cancelled: Mapped[int] = mapped_column(sa.Integer)
    unmet: Mapped[int] = mapped_column(sa.Integer)
    sms_delivered: Mapped[int] = mapped_column(sa.Integer)
    sms_not_delivered: Mapped[int] = mapped_column(sa.Integer)
    across_partners: Mapped[int] = mapped_column(sa.Integer)
    # Every wait in microseconds, comma-separated (rollups.encode_waits), so a grouping's
    # median is exact and SQL can concatenate a group's waits.
    waits: Mapped[str | None] = mapped_column(sa.Text)


# The coverage report reads a period's sessions and reminders from these alone (index-only
# scans on PostgreSQL), instead of the whole tables. Declared here, on the tables of
# scheduling and reminders, because the queries that need them are metrics'.
sa.Index("ix_appointments_coverage", Appointment.start_at, Appointment.resident_id,
         Appointment.provider_id, Appointment.service_type_id, Appointment.status,
         Appointment.recorded, Appointment.id)
sa.Index("ix_reminders_coverage", Reminder.sent_at, Reminder.resident_id, Reminder.status)
