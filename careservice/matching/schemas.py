"""The wire shapes of matching."""

from marshmallow import Schema, fields, validate

from careservice.core.fields import Instant
from careservice.core.schemas import InSchema, QuerySchema


class MatchQuery(QuerySchema):
    resident_id = fields.Integer(required=True)
    service_type = fields.String(required=True)
    start = Instant(data_key="from")
    end = Instant(data_key="to")
    limit = fields.Integer(load_default=10, validate=validate.Range(min=1, max=100))
    urgency = fields.String(load_default="routine",
                            validate=validate.OneOf(["routine", "soon", "urgent"]))


class MatchOut(Schema):
    provider_id = fields.Integer()
    start = Instant()
    end = Instant()
    score = fields.Float()
    reasons = fields.List(fields.String())


class MatchList(Schema):
    items = fields.List(fields.Nested(MatchOut))


class BatchIn(InSchema):
    request_ids = fields.List(fields.Integer(), allow_none=True, load_default=None)
    start = Instant(data_key="from", required=True)
    end = Instant(data_key="to", required=True)
    commit = fields.Boolean(load_default=False)


class AssignmentOut(Schema):
    request_id = fields.Integer()
    provider_id = fields.Integer()
    start = Instant()
    end = Instant()
    score = fields.Float()


class UnassignedOut(Schema):
    request_id = fields.Integer()
    reason = fields.String()


class ObjectiveOut(Schema):
    assigned = fields.Integer()
    weighted_coverage = fields.Float()
    cost = fields.Integer()


class BatchOut(Schema):
    assignments = fields.List(fields.Nested(AssignmentOut))
    unassigned = fields.List(fields.Nested(UnassignedOut))
    objective = fields.Nested(ObjectiveOut)
