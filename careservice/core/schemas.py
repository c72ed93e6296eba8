"""Shared schema bases and the error envelope, for the OpenAPI document."""

from marshmallow import (
    EXCLUDE,
    RAISE,
    Schema,
    ValidationError,
    fields,
    pre_load,
    validates_schema,
)

# The largest whole number the id and count columns hold (INTEGER: 32 bits on
# PostgreSQL): a larger id can name nothing, and the database raises on it instead of
# answering "no such row".
LARGEST_INTEGER = 2**31 - 1


class _Input(Schema):
    @validates_schema
    def _values_fit_the_database(self, data, **_kwargs):
        """Whole numbers a column holds, and text without NUL (PostgreSQL refuses it):
        otherwise the driver would raise, a 500 instead of a 422 on the field."""
        errors = {}
        for name, field in self.load_fields.items():
            value = data.get(field.attribute or name)
            values = value if isinstance(value, list | tuple) else [value]
            if any(isinstance(v, int) and not isinstance(v, bool) and abs(v) > LARGEST_INTEGER
                   for v in values):
                errors[field.data_key or name] = ["Out of range."]
            elif any(isinstance(v, str) and "\x00" in v for v in values):
                errors[field.data_key or name] = ["Must not contain NUL characters."]
        if errors:
            raise ValidationError(errors)


class InSchema(_Input):
    """Request bodies: unknown fields are refused, so nobody mass-assigns `role` or `id`;
    a boolean is JSON's true or false (marshmallow would take "yes" for true, and
    `"commit": "yes"` would book)."""

    class Meta:
        unknown = RAISE

    @pre_load
    def _booleans_are_json_booleans(self, data, **_kwargs):
        if not isinstance(data, dict):
            return data
        errors = {}
        for name, field in self.load_fields.items():
            key = field.data_key or name
            value = data.get(key)
            if isinstance(field, fields.Boolean) and value is not None and not isinstance(
                    value, bool):
                errors[key] = ["Not a valid boolean: true or false."]
        if errors:
            raise ValidationError(errors)
        return data


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
