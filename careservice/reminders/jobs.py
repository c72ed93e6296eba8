"""Periodic work of reminders, as plain functions the scheduler (and tests) call."""

from datetime import datetime, time, timedelta

import sqlalchemy as sa
from flask import current_app

from careservice.core.models import Role, User
from careservice.core.time import local_midnight, utcnow, zone
from careservice.extensions import db
from careservice.people.models import Modality, Region, Resident
from careservice.reminders import messages
from careservice.reminders.dispatch import dispatch_due, reconcile
from careservice.reminders.messages import Kind
from careservice.reminders.models import Reminder
from careservice.scheduling.models import UPCOMING, Appointment

HOW = {Modality.VIDEO: "video", Modality.PHONE: "phone", Modality.HOME_VISIT: "visit"}


def dispatch_reminders() -> int:
    return dispatch_due().claimed


def reconcile_reminders() -> int:
    return reconcile()


def queue_vhw_digests(now: datetime | None = None) -> int:
    """After DIGEST_LOCAL_TIME in their region, each village health worker with a
    phone gets one SMS listing tomorrow's sessions of their residents."""
    now = now or utcnow()
    digest_at = time.fromisoformat(current_app.config["DIGEST_LOCAL_TIME"])
    workers = db.session.execute(
        sa.select(User).where(User.role == Role.VHW, User.active.is_(True),
                              User.phone.is_not(None))).scalars().all()
    queued = 0
    for user in workers:
        if not user.regions:
            continue
        tz_name = user.regions[0].timezone
        tz = zone(tz_name)
        local = now.astimezone(tz)
        if local.time() < digest_at:
            continue
        day = local.date() + timedelta(days=1)
        key = f"u{user.id}:{Kind.VHW_DIGEST}:{day:%Y%m%d}"
        if db.session.execute(sa.select(Reminder.id).where(Reminder.dedupe_key == key)).first():
            continue
        start = local_midnight(day, tz_name)
        end = local_midnight(day + timedelta(days=1), tz_name)
        in_scope = sa.or_(*(Region.path.startswith(region.path) for region in user.regions))
        rows = db.session.execute(
            sa.select(Appointment.start_at, Resident, Appointment.modality)
            .join(Resident, Appointment.resident_id == Resident.id)
            .join(Region, Resident.region_id == Region.id)
            .where(in_scope, Appointment.status.in_(UPCOMING),
                   Appointment.start_at >= start, Appointment.start_at < end)
            .order_by(Appointment.start_at)).all()
        if not rows:
            continue
        language = messages.choose_language([user.language] if user.language else [])
        items = [(messages.format_when(at, tz_name, language)[1], resident.sms_name, HOW[how])
                 for at, resident, how in rows]
        body = messages.render(Kind.VHW_DIGEST, language,
                               date=messages.format_when(start, tz_name, language)[0], items=items)
        db.session.add(Reminder(dedupe_key=key, kind=Kind.VHW_DIGEST, user_id=user.id,
                                to=user.phone, language=language, body=body,
                                segments=messages.segments(body), send_at=now))
        queued += 1
    db.session.commit()
    return queued
