"""Care requests: the waitlist of needs not yet booked."""

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from careservice.core import audit
from careservice.core.auth import Actor
from careservice.core.errors import Forbidden, InvalidTransition, NotFound, field_error
from careservice.core.pagination import paginate
from careservice.core.time import utcnow
from careservice.extensions import db
from careservice.people.services import visible_residents_clause
from careservice.scheduling.booking import body_resident, body_service_type
from careservice.scheduling.models import Appointment, CareRequest, RequestStatus
from careservice.scheduling.slots import session_span


def _visible_clause(actor: Actor):
    """Coordinators and vhws: the requests of residents in their regions. Providers:
    only the requests their own sessions took; the waitlist is not theirs to read (its
    notes may say why care is needed) or to change."""
    if actor.is_provider:
        return CareRequest.appointment_id.in_(
            sa.select(Appointment.id).where(Appointment.provider_id == actor.provider_id))
    return visible_residents_clause(actor, CareRequest.resident_id)


def _check_may_change(actor: Actor) -> None:
    if actor.is_provider:
        raise Forbidden("Village health workers, coordinators and admins keep the waitlist.")


def find_care_request(actor: Actor, request_id: int) -> CareRequest:
    request = db.session.execute(
        sa.select(CareRequest).where(CareRequest.id == request_id, _visible_clause(actor))
    ).scalar_one_or_none()
    if request is None:
        raise NotFound("No such care request.")
    return request


def list_care_requests(actor: Actor, *, resident_id=None, status=None, urgency=None,
                       limit=50, offset=0) -> dict:
    query = sa.select(CareRequest).where(_visible_clause(actor))
    if resident_id is not None:
        query = query.where(CareRequest.resident_id == resident_id)
    if status:
        query = query.where(CareRequest.status.in_(status))
    if urgency:
        query = query.where(CareRequest.urgency.in_(urgency))
    return paginate(query.order_by(CareRequest.id)
                    .options(selectinload(CareRequest.service_type)), limit, offset)


def create_care_request(actor: Actor, *, resident_id: int, service_type: str, earliest, latest,
                        urgency: str = "routine", notes: str | None = None) -> CareRequest:
    _check_may_change(actor)
    resident = body_resident(actor, resident_id)
    kind = body_service_type(service_type)
    duration, _ = session_span(kind)
    if latest <= utcnow():
        raise field_error("latest", "The window has already passed.")
    if latest - earliest < duration:
        raise field_error("latest", "The window is shorter than one session.")
    request = CareRequest(resident=resident, service_type=kind, earliest=earliest, latest=latest,
                          urgency=urgency, notes=notes, created_by_id=actor.user_id)
    db.session.add(request)
    db.session.flush()
    audit.record(actor, "care_request.create", "care_request", request.id,
                 resident_id=resident.id)
    db.session.commit()
    return request


def cancel_care_request(actor: Actor, request_id: int) -> CareRequest:
    request = find_care_request(actor, request_id)
    _check_may_change(actor)
    if request.status != RequestStatus.OPEN:
        raise InvalidTransition(f"A {request.status} care request cannot be cancelled.")
    updated = db.session.execute(
        sa.update(CareRequest)
        .where(CareRequest.id == request.id, CareRequest.status == RequestStatus.OPEN)
        .values(status=RequestStatus.CANCELLED, updated_at=utcnow())
    ).rowcount
    if not updated:
        db.session.rollback()
        raise InvalidTransition("The care request changed meanwhile.")
    audit.record(actor, "care_request.cancel", "care_request", request.id)
    db.session.commit()
    db.session.refresh(request)
    return request


def expire_care_requests(now=None) -> int:
    """Open requests whose window has passed become expired. A scheduler job."""
    now = now or utcnow()
    count = db.session.execute(
        sa.update(CareRequest)
        .where(CareRequest.status == RequestStatus.OPEN, CareRequest.latest <= now)
        .values(status=RequestStatus.EXPIRED, updated_at=now)
    ).rowcount
    db.session.commit()
    return count
