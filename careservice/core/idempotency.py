"""`Idempotency-Key` on creating POSTs.

The first request with a key claims it in its own committed row, so every
worker and app copy sees the claim; the finished response is then stored on
that row and replayed for a repeat with the same body. A repeat while the first
is still running gets 409; the same key with another body gets 422
`idempotency_key_reused`. A claim whose request died is retaken after a lease.
"""

import hashlib
import json
from datetime import timedelta
from functools import wraps

import sqlalchemy as sa
from flask import Response, current_app, request
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException

from careservice.core.auth import current_actor
from careservice.core.errors import (
    Conflict,
    ServiceError,
    ValidationFailed,
    handle_http_exception,
    handle_service_error,
)
from careservice.core.models import IdempotencyRecord, IdempotencyState
from careservice.core.time import utcnow
from careservice.core.web import parse_json
from careservice.extensions import db

HEADER = "Idempotency-Key"


def _request_hash() -> str:
    body = request.get_data(cache=True)
    try:
        canonical = json.dumps(parse_json(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.path.encode(), canonical):
        digest.update(part + b"\0")
    return digest.hexdigest()


def _claim(user_id: int, key: str, request_hash: str) -> IdempotencyRecord | Response:
    """The claimed record, or the response to give instead of running the view."""
    now = utcnow()
    config = current_app.config
    record = IdempotencyRecord(
        user_id=user_id, key=key, request_hash=request_hash,
        expires_at=now + timedelta(hours=config["IDEMPOTENCY_TTL_HOURS"]),
    )
    db.session.add(record)
    try:
        db.session.commit()
        return record
    except IntegrityError:
        db.session.rollback()
    existing = db.session.execute(
        sa.select(IdempotencyRecord).where(IdempotencyRecord.user_id == user_id,
                                           IdempotencyRecord.key == key)
    ).scalar_one()
    stale_claim = (existing.state == IdempotencyState.RUNNING and existing.updated_at
                   < now - timedelta(seconds=config["IDEMPOTENCY_LEASE_SECONDS"]))
    if existing.expires_at <= now or stale_claim:
        # Compare-and-swap on updated_at: of two retakers only one wins.
        taken = db.session.execute(
            sa.update(IdempotencyRecord)
            .where(IdempotencyRecord.id == existing.id,
                   IdempotencyRecord.updated_at == existing.updated_at)
            .values(request_hash=request_hash, state=IdempotencyState.RUNNING,
                    response_status=None, response_body=None, updated_at=now,
                    expires_at=now + timedelta(hours=config["IDEMPOTENCY_TTL_HOURS"]))
        ).rowcount
        db.session.commit()
        if taken:
            return db.session.get(IdempotencyRecord, existing.id)
        raise Conflict("A request with this Idempotency-Key is still being processed.")
    if existing.request_hash != request_hash:
        raise ValidationFailed(
            {HEADER: ["This key was used with a different request."]},
            "Idempotency-Key reused with a different request body.",
            code="idempotency_key_reused",
        )
    if existing.state == IdempotencyState.RUNNING:
        raise Conflict("A request with this Idempotency-Key is still being processed.")
    response = Response(existing.response_body, status=existing.response_status,
                        mimetype="application/json")
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _finish(record_id: int, response: Response) -> None:
    db.session.rollback()
    db.session.execute(
        sa.update(IdempotencyRecord).where(IdempotencyRecord.id == record_id)
        .values(state=IdempotencyState.DONE, response_status=response.status_code,
                response_body=response.get_data(as_text=True), updated_at=utcnow())
    )
    db.session.commit()


def _release(record_id: int) -> None:
    db.session.rollback()
    db.session.execute(sa.delete(IdempotencyRecord).where(IdempotencyRecord.id == record_id))
    db.session.commit()


def idempotent(view):
    """Replay the first response for a repeated `Idempotency-Key` (see module doc)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        key = key.strip()
        if not key or len(key) > 255 or not key.isprintable():
            raise ValidationFailed({HEADER: ["1 to 255 printable characters."]})
        actor = current_actor()
        claimed = _claim(actor.user_id, key, _request_hash())
        if isinstance(claimed, Response):
            return claimed
        record_id = claimed.id
        try:
            response = current_app.make_response(view(*args, **kwargs))
        except ServiceError as error:
            response = handle_service_error(error)
        except HTTPException as error:
            if (error.code or 500) >= 500:
                _release(record_id)
                raise
            response = handle_http_exception(error)
        except BaseException:
            _release(record_id)
            raise
        if response.status_code >= 500:
            _release(record_id)
        else:
            _finish(record_id, response)
        return response

    wrapper.idempotent = True  # tests check that every creating POST carries this
    # Described in the OpenAPI document (flask-smorest's manual doc of the operation; the
    # dict is shared with the view's by functools.wraps).
    manual = wrapper.__dict__.setdefault("_apidoc", {}).setdefault("manual_doc", {})
    manual.setdefault("parameters", []).append({
        "in": "header", "name": HEADER, "required": False,
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        "description": "Repeat a create safely: the same key and body replay the first "
                       "answer; the same key with another body is 422 "
                       "idempotency_key_reused."})
    return wrapper
