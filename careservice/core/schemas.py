"""Shared schema bases and the error envelope, for the OpenAPI document."""

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validates_schema

# The largest whole number a database column holds (BIGINT; SQLite's INTEGER): a larger
# id can name nothing, and the drivers raise on it instead of answering "no such row".
LARGEST_INTEGER = 2**63 - 1


class _Input(Schema):
    @validates_schema
    def _integers_fit_the_database(self, data, **_kwargs):
        errors = {}
        for name, field in self.load_fields.items():
            value = data.get(field.attribute or name)
            inner = getattr(field, "inner", None)
            if isinstance(field, fields.Integer):
                values = [value]
            elif isinstance(inner, fields.Integer) and isinstance(value, list | tuple):
                values = value
            else:
                continue
            if any(isinstance(v, int) and abs(v) > LARGEST_INTEGER for v in values):
                errors[field.data_key or name] = ["Out of range."]
        if errors:
            raise ValidationError(errors)


class InSchema(_Input):
    """Request bodies: unknown fields are refused, so nobody mass-assigns `role` or `id`."""

    class Meta:
        unknown = RAISE


class QuerySchema(_Input):
    """Query strings: unknown parameters are ignored (cache busters, tracking)."""

    class Meta:
        unknown = EXCLUDE


class ErrorDetail(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    fields = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


class ErrorSchema(Schema):
    error = fields.Nested(ErrorDetail, required=True)
