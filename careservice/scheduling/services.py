"""The rules of scheduling."""

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from careservice.core import audit
from careservice.core.auth import Actor
from careservice.core.errors import NotFound, field_error
from careservice.core.pagination import paginate
from careservice.extensions import db
from careservice.scheduling.models import ServiceType


def list_service_types(*, limit=50, offset=0) -> dict:
    return paginate(sa.select(ServiceType).order_by(ServiceType.code), limit, offset)


def get_service_type(code: str) -> ServiceType:
    if "\x00" in code:  # no code holds one, and PostgreSQL refuses it in a query
        raise NotFound("No such service type.")
    service_type = db.session.execute(
        sa.select(ServiceType).where(ServiceType.code == code)
    ).scalar_one_or_none()
    if service_type is None:
        raise NotFound("No such service type.")
    return service_type


def create_service_type(actor: Actor, data: dict) -> ServiceType:
    exists = field_error("code", "A service type with this code exists.")
    taken = sa.select(ServiceType.id).where(ServiceType.code == data["code"])
    if db.session.execute(taken).first():
        raise exists
    service_type = ServiceType(**data)
    db.session.add(service_type)
    try:
        db.session.flush()  # the unique code decides between two creates at once
    except IntegrityError:
        db.session.rollback()
        raise exists from None
    audit.record(actor, "service_type.create", "service_type", service_type.id)
    db.session.commit()
    return service_type
