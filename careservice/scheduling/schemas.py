"""The wire shapes of scheduling."""

from marshmallow import Schema, fields, validate

from careservice.core.pagination import page_schema
from careservice.core.schemas import InSchema
from careservice.people.models import Modality
from careservice.people.schemas import one_of

CODE = validate.Regexp(r"^[a-z][a-z0-9_]{0,39}$", error="A lower_snake_case code.")


class ServiceTypeIn(InSchema):
    code = fields.String(required=True, validate=CODE)
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    modality = fields.String(required=True, validate=one_of(Modality))
    duration_minutes = fields.Integer(required=True, validate=validate.Range(min=5, max=480))
    buffer_minutes = fields.Integer(load_default=0, validate=validate.Range(min=0, max=240))
    required_skill = fields.String(allow_none=True, load_default=None, validate=CODE)


class ServiceTypeOut(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    modality = fields.String()
    duration_minutes = fields.Integer()
    buffer_minutes = fields.Integer()
    required_skill = fields.String(allow_none=True)


ServiceTypePage = page_schema(ServiceTypeOut, "ServiceTypePage")
