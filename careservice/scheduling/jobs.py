"""Periodic work of scheduling, as plain functions the scheduler (and tests) call."""

from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from careservice.core import audit
from careservice.core.auth import Actor
from careservice.core.time import utcnow
from careservice.extensions import db
from careservice.scheduling.care_requests import expire_care_requests
from careservice.scheduling.models import UPCOMING, Appointment, Status
from careservice.scheduling.series import extend_all_series
from careservice.scheduling.signals import sessions_changed

BATCH = 500


def mark_no_shows(now=None) -> int:
    """Sessions never checked in some time after their end become no-shows."""
    now = now or utcnow()
    cutoff = now - timedelta(minutes=current_app.config["NO_SHOW_AFTER_MINUTES"])
    actor = Actor.system("scheduler:mark_no_shows")
    total = 0
    while True:
        ids = db.session.execute(
            sa.select(Appointment.id).where(Appointment.status.in_(UPCOMING),
                                            Appointment.end_at <= cutoff)
            .order_by(Appointment.id).limit(BATCH)).scalars().all()
        if not ids:
            return total
        # Compare-and-swap per row: a check-in that lands meanwhile wins.
        starts = []
        for appointment_id in ids:
            start = db.session.execute(
                sa.update(Appointment)
                .where(Appointment.id == appointment_id, Appointment.status.in_(UPCOMING))
                .values(status=Status.NO_SHOW, version=Appointment.version + 1, updated_at=now)
                .returning(Appointment.start_at)
            ).scalar()
            if start is not None:
                audit.record(actor, "appointment.no_show", "appointment", appointment_id)
                starts.append(start)
        sessions_changed.send(starts=starts)
        total += len(starts)
        db.session.commit()


def expire_requests(now=None) -> int:
    return expire_care_requests(now)


def extend_series(now=None) -> int:
    return extend_all_series(now)
