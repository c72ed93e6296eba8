"""Shared schema bases and the error envelope, for the OpenAPI document."""

from marshmallow import EXCLUDE, RAISE, Schema, fields


class InSchema(Schema):
    """Request bodies: unknown fields are refused, so nobody mass-assigns `role` or `id`."""

    class Meta:
        unknown = RAISE


class QuerySchema(Schema):
    """Query strings: unknown parameters are ignored (cache busters, tracking)."""

    class Meta:
        unknown = EXCLUDE


class ErrorDetail(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    fields = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


class ErrorSchema(Schema):
    error = fields.Nested(ErrorDetail, required=True)
