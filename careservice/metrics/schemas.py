"""The wire shapes of metrics."""

from marshmallow import Schema, fields, validate

from careservice.core.fields import Instant
from careservice.core.schemas import QuerySchema
from careservice.metrics.coverage import GROUPINGS


class CoverageQuery(QuerySchema):
    start = Instant(data_key="from", required=True)
    end = Instant(data_key="to", required=True)
    group_by = fields.String(load_default="region", validate=validate.OneOf(GROUPINGS))
    region_id = fields.Integer()
    level = fields.String(load_default="village",
                          validate=validate.OneOf(["province", "county", "township", "village"]))


class CoverageRow(Schema):
    group = fields.Raw(metadata={"description": "region id, or the value (west, 80+, ...)"})
    label = fields.String()
    registered = fields.Integer()
    served = fields.Integer()
    coverage_rate = fields.Float(allow_none=True)
    sessions_booked = fields.Integer()
    sessions_completed = fields.Integer()
    no_show_rate = fields.Float(allow_none=True)
    cancellation_rate = fields.Float(allow_none=True)
    median_wait_days = fields.Float(allow_none=True)
    unmet_requests = fields.Integer()
    sms_delivery_rate = fields.Float(allow_none=True)
    sessions_across_partner_regions = fields.Integer()


class Equity(Schema):
    rural_urban_ratio = fields.Float(allow_none=True)
    west_east_ratio = fields.Float(allow_none=True)
    worst_best_village_ratio = fields.Float(allow_none=True)
    gini = fields.Float()
    villages = fields.Integer()


class CoverageOut(Schema):
    rows = fields.List(fields.Nested(CoverageRow))
    equity = fields.Nested(Equity)
