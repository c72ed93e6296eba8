"""Audit trail: who did what to which record, in the same transaction as the act."""

from careservice.core.models import AuditEvent
from careservice.extensions import db


def record(actor, action: str, entity: str, entity_id: int | None = None, *,
           request_id: str | None = None, **detail) -> None:
    """Add an audit event to the session; the caller's commit writes it.

    `detail` must never hold names, phones or notes: ids, field names, counts.
    """
    db.session.add(
        AuditEvent(
            actor_id=actor.user_id if actor is not None else None,
            action=action,
            entity=entity,
            entity_id=entity_id,
            request_id=actor.request_id if actor is not None else request_id,
            detail=detail or None,
        )
    )
