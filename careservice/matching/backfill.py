"""Waitlist backfill: a cancelled session's slot goes to the best open care
request that fits it, booked through the scheduling core (whose confirmation SMS
tells the resident). BACKFILL_MODE = "book" or "off"."""

import logging
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from careservice.core.auth import Actor
from careservice.core.errors import ServiceError
from careservice.core.time import overlaps, utcnow
from careservice.extensions import db
from careservice.matching import scoring
from careservice.matching.batch import _village_coverage, request_weight
from careservice.scheduling import booking
from careservice.scheduling.models import LIVE, Appointment, CareRequest, RequestStatus, Status

log = logging.getLogger(__name__)

TRIES = 3  # candidates tried per freed slot before giving up on it


def backfill_freed_slots(now=None) -> int:
    """Offer each newly freed slot to the waitlist; the number of sessions booked."""
    if current_app.config["BACKFILL_MODE"] != "book":
        return 0
    now = now or utcnow()
    earliest = now + timedelta(minutes=current_app.config["MIN_NOTICE_MINUTES"])
    freed = db.session.execute(
        sa.select(Appointment.id).where(Appointment.status == Status.CANCELLED,
                                        Appointment.backfill_checked_at.is_(None),
                                        Appointment.start_at >= earliest)
        .order_by(Appointment.start_at)).scalars().all()
    actor = Actor.system("scheduler:backfill")
    booked = 0
    for appointment_id in freed:
        # Compare-and-swap: of two schedulers, one looks at each freed slot.
        taken = db.session.execute(
            sa.update(Appointment).where(Appointment.id == appointment_id,
                                         Appointment.backfill_checked_at.is_(None))
            .values(backfill_checked_at=now)
            .execution_options(synchronize_session=False)).rowcount
        db.session.commit()
        if taken:
            booked += _fill(actor, db.session.get(Appointment, appointment_id), now)
    return booked


def _fill(actor: Actor, freed: Appointment, now) -> int:
    served, coverage = _village_coverage(now)
    candidates = []
    for request in db.session.execute(
            sa.select(CareRequest).where(
                CareRequest.status == RequestStatus.OPEN,
                CareRequest.service_type_id == freed.service_type_id,
                CareRequest.earliest <= freed.start_at, CareRequest.latest >= freed.end_at,
                CareRequest.resident_id != freed.resident_id)).scalars():
        if not scoring.serves(freed.provider, request.resident.region):
            continue
        busy = db.session.execute(
            sa.select(Appointment.id).where(
                Appointment.resident_id == request.resident_id, Appointment.status.in_(LIVE),
                overlaps(Appointment.start_at, Appointment.end_at, freed.start_at,
                         freed.end_at))).first()
        if busy is None:
            weight = request_weight(request, served, coverage, freed.start_at.date())
            candidates.append((-weight, request.created_at, request.id, request))
    for *_, request in sorted(candidates)[:TRIES]:
        try:
            booking.book_appointment(actor, resident_id=request.resident_id,
                                     provider_id=freed.provider_id,
                                     service_type=freed.service_type.code,
                                     start=freed.start_at, care_request_id=request.id)
            return 1
        except ServiceError as refusal:
            db.session.rollback()
            log.info("backfill of appointment %s for request %s refused: %s",
                     freed.id, request.id, refusal.message)
    return 0
