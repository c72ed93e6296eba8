"""Errors as the API.md envelope: {"error": {"code", "message", "fields"?}}.

Services raise the ServiceError subclasses below; the handlers registered in
create_app turn them, and every werkzeug HTTP error, into the envelope.
"""

import logging

from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError

from careservice.extensions import db

log = logging.getLogger(__name__)

# HTTP status -> stable code for errors raised by Flask/werkzeug themselves.
STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "bad_request",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ServiceError(Exception):
    """A refusal with a stable code, raised by services and turned into JSON."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str | None = None, *, fields=None, headers=None, code=None):
        super().__init__(message or self.__doc__)
        self.message = message or (self.__doc__ or "").strip()
        self.fields = fields
        self.headers = headers or {}
        if code:
            self.code = code


class BadRequest(ServiceError):
    """The request could not be understood."""

    status, code = 400, "bad_request"


class Unauthorized(ServiceError):
    """Authentication is required."""

    status, code = 401, "unauthorized"


class Forbidden(ServiceError):
    """You are not allowed to do this."""

    status, code = 403, "forbidden"


class NotFound(ServiceError):
    """Not found."""

    status, code = 404, "not_found"


class Conflict(ServiceError):
    """The request conflicts with the current state."""

    status, code = 409, "conflict"


class SlotUnavailable(Conflict):
    """The slot is no longer available."""

    code = "slot_unavailable"


class InvalidTransition(Conflict):
    """This action is not allowed in the current state."""

    code = "invalid_transition"


class ValidationFailed(ServiceError):
    """The request has invalid fields."""

    status, code = 422, "validation_error"

    def __init__(self, fields: dict | None = None, message: str | None = None, **kwargs):
        super().__init__(message or "Invalid input.", fields=fields or {}, **kwargs)


class RateLimited(ServiceError):
    """Too many requests."""

    status, code = 429, "rate_limited"


def field_error(field: str, message: str) -> ValidationFailed:
    return ValidationFailed({field: [message]}, f"{field}: {message}")


def flatten_messages(messages, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages as {"a.0.b": ["..."]}, for the fields map."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            flat.update(flatten_messages(value, name))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        flat[prefix or "_schema"] = list(messages)
    elif isinstance(messages, list):
        for i, value in enumerate(messages):
            flat.update(flatten_messages(value, f"{prefix}.{i}" if prefix else str(i)))
    else:
        flat[prefix or "_schema"] = [str(messages)]
    return flat


def error_response(status: int, code: str, message: str, fields=None, headers=None):
    body = {"error": {"code": code, "message": message}}
    if fields is not None:
        body["error"]["fields"] = fields
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def handle_service_error(error: ServiceError):
    # A refusal may come after a service changed objects; none of it may reach a commit.
    db.session.rollback()
    return error_response(error.status, error.code, error.message, error.fields, error.headers)


def handle_http_exception(error: HTTPException):
    if isinstance(error, InternalServerError):
        return handle_unexpected(error.original_exception or error)
    status = error.code or 500
    code = STATUS_CODES.get(status, "bad_request" if status < 500 else "internal_error")
    data = getattr(error, "data", None) or {}
    fields = None
    message = error.description or error.name
    if "messages" in data:
        # webargs: {"json": {...}} or {"query": {...}}; the location is noise.
        fields = {}
        for location_messages in data["messages"].values():
            fields.update(flatten_messages(location_messages))
        if status == 400:
            message = "; ".join(m for ms in fields.values() for m in ms)
            fields = None
        else:
            message = "Invalid input."
    if status == 405:
        message = f"Method {request.method} is not allowed here."
    elif status == 404:
        message = "Not found."
    elif status == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        message = f"The request body is larger than {limit} bytes."
    headers = {}
    if status == 405 and error.valid_methods:
        headers["Allow"] = ", ".join(error.valid_methods)
    return error_response(status, code, message, fields, headers)


def handle_unexpected(error: BaseException):
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=error)
    return error_response(500, "internal_error", "An unexpected error occurred.")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ServiceError, handle_service_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
