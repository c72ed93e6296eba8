"""Audit trail: who did what to which record, in the same transaction as the act."""

from functools import cache

import sqlalchemy as sa

from careservice.core.models import AuditEvent
from careservice.core.time import utcnow
from careservice.extensions import db


@cache
def _insert() -> sa.Insert:
    # A plain INSERT, built once: every read of a resident writes one.
    return sa.insert(AuditEvent.__table__)


def record(actor, action: str, entity: str, entity_id: int | None = None, *,
           request_id: str | None = None, **detail) -> None:
    """Write an audit event inside the caller's transaction; their commit keeps it,
    their rollback drops it.

    `detail` must never hold names, phones or notes: ids, field names, counts.
    """
    db.session.execute(_insert(), {
        "at": utcnow(),
        "actor_id": actor.user_id if actor is not None else None,
        "action": action,
        "entity": entity,
        "entity_id": entity_id,
        "request_id": actor.request_id if actor is not None else request_id,
        "detail": detail or None,
    })
