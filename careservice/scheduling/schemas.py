"""The wire shapes of scheduling."""

from datetime import timedelta

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from careservice.core.fields import Choices, ClockTime, Instant, TrimmedString
from careservice.core.pagination import page_schema
from careservice.core.schemas import InSchema, QuerySchema
from careservice.people.models import Modality
from careservice.people.schemas import one_of
from careservice.scheduling.models import ExceptionKind, RequestStatus, Status, Urgency

CODE = validate.Regexp(r"^[a-z][a-z0-9_]{0,39}$", error="A lower_snake_case code.")


def _ordered(data, first: str, second: str, message: str, key: str | None = None):
    """`second` after `first`; the error on `key` (the field's name on the wire)."""
    if first in data and second in data and data[first] >= data[second]:
        raise ValidationError(message, key or second)


# Service types

class ServiceTypeIn(InSchema):
    code = fields.String(required=True, validate=CODE)
    name = TrimmedString(required=True, validate=validate.Length(max=120))
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


# Availability

class RuleIn(InSchema):
    weekday = fields.Integer(required=True, validate=validate.Range(min=0, max=6))
    start = ClockTime(required=True)
    end = ClockTime(required=True)
    valid_from = fields.Date(allow_none=True)
    valid_to = fields.Date(allow_none=True)

    @validates_schema
    def check_order(self, data, **kwargs):
        _ordered(data, "start", "end", "Must be after start.")
        valid_from, valid_to = data.get("valid_from"), data.get("valid_to")
        if valid_from and valid_to and valid_from > valid_to:
            raise ValidationError("Must not be before valid_from.", "valid_to")


class AvailabilityIn(InSchema):
    rules = fields.List(fields.Nested(RuleIn), required=True,
                        validate=validate.Length(max=100))


class RuleOut(Schema):
    weekday = fields.Integer()
    start = ClockTime(attribute="start_time")
    end = ClockTime(attribute="end_time")
    valid_from = fields.Date(allow_none=True)
    valid_to = fields.Date(allow_none=True)


class AvailabilityOut(Schema):
    provider_id = fields.Integer()
    timezone = fields.String()
    rules = fields.List(fields.Nested(RuleOut))


class ExceptionIn(InSchema):
    start = Instant(required=True)
    end = Instant(required=True)
    kind = fields.String(required=True, validate=one_of(ExceptionKind))

    @validates_schema
    def check_order(self, data, **kwargs):
        _ordered(data, "start", "end", "Must be after start.")
        if "start" in data and "end" in data and data["end"] - data["start"] > timedelta(days=366):
            raise ValidationError("At most a year long.", "end")


class ExceptionOut(Schema):
    id = fields.Integer()
    provider_id = fields.Integer()
    start = Instant(attribute="start_at")
    end = Instant(attribute="end_at")
    kind = fields.String()


ExceptionList = page_schema(ExceptionOut, "ExceptionPage")


# Slots

class SlotQuery(QuerySchema):
    service_type = fields.String(required=True)
    start = Instant(data_key="from")
    end = Instant(data_key="to")


class SlotOut(Schema):
    start = Instant()
    end = Instant()


class SlotList(Schema):
    items = fields.List(fields.Nested(SlotOut))


# Appointments

class AppointmentIn(InSchema):
    resident_id = fields.Integer(required=True)
    provider_id = fields.Integer(required=True)
    service_type = fields.String(required=True)
    start = Instant(required=True)
    care_request_id = fields.Integer(allow_none=True)


class RecordIn(InSchema):
    resident_id = fields.Integer(required=True)
    provider_id = fields.Integer(required=True)
    service_type = fields.String(required=True)
    start = Instant(required=True)
    outcome = fields.String(required=True, validate=validate.OneOf(["completed", "no_show"]))
    notes = fields.String(allow_none=True, validate=validate.Length(max=4000))


class CancelIn(InSchema):
    reason = fields.String(allow_none=True, validate=validate.Length(max=500))


class RescheduleIn(InSchema):
    start = Instant(required=True)
    provider_id = fields.Integer(allow_none=True)


class AppointmentOut(Schema):
    id = fields.Integer()
    resident_id = fields.Integer()
    provider_id = fields.Integer()
    service_type = fields.Function(lambda a: a.service_type.code)
    start = Instant(attribute="start_at")
    end = Instant(attribute="end_at")
    modality = fields.String()
    join_url = fields.String(allow_none=True)
    visit_region_id = fields.Integer(allow_none=True)
    travel_minutes = fields.Integer(allow_none=True)
    status = fields.String(validate=one_of(Status))
    booked_by = fields.Integer(attribute="booked_by_id", allow_none=True)
    on_behalf = fields.Boolean()
    recorded = fields.Boolean()
    series_id = fields.Integer(allow_none=True)
    rescheduled_from_id = fields.Integer(allow_none=True)
    cancel_reason = fields.String(allow_none=True)
    checked_in_at = Instant(allow_none=True)
    version = fields.Integer()
    created_at = Instant()
    updated_at = Instant()


class AppointmentQuery(QuerySchema):
    provider_id = fields.Integer()
    resident_id = fields.Integer()
    region_id = fields.Integer()
    status = Choices(fields.String(validate=one_of(Status)))
    start = Instant(data_key="from")
    end = Instant(data_key="to")

    @validates_schema
    def _range(self, data, **_kwargs):
        _ordered(data, "start", "end", "Must be after from.", key="to")  # as slots, matches


AppointmentPage = page_schema(AppointmentOut, "AppointmentPage")


# Series

class SeriesIn(InSchema):
    resident_id = fields.Integer(required=True)
    provider_id = fields.Integer(required=True)
    service_type = fields.String(required=True)
    start = Instant(required=True)
    rrule = fields.String(required=True, validate=validate.Length(min=1, max=500))


class SeriesAppointmentOut(Schema):
    id = fields.Integer()
    start = Instant(attribute="start_at")
    end = Instant(attribute="end_at")
    status = fields.String()


class SeriesConflictOut(Schema):
    start = Instant(attribute="start_at")
    reason = fields.String()


class SeriesOut(Schema):
    id = fields.Integer()
    resident_id = fields.Integer()
    provider_id = fields.Integer()
    service_type = fields.Function(lambda s: s.service_type.code)
    start = Instant(attribute="start_at")
    rrule = fields.String()
    timezone = fields.String()
    status = fields.String()
    expanded_until = Instant(allow_none=True)
    appointments = fields.List(fields.Nested(SeriesAppointmentOut))
    conflicts = fields.List(fields.Nested(SeriesConflictOut))


# Care requests

class CareRequestIn(InSchema):
    resident_id = fields.Integer(required=True)
    service_type = fields.String(required=True)
    earliest = Instant(required=True)
    latest = Instant(required=True)
    urgency = fields.String(load_default="routine", validate=one_of(Urgency))
    notes = fields.String(allow_none=True, validate=validate.Length(max=4000))

    @validates_schema
    def check_order(self, data, **kwargs):
        _ordered(data, "earliest", "latest", "Must be after earliest.")


class CareRequestOut(Schema):
    id = fields.Integer()
    resident_id = fields.Integer()
    service_type = fields.Function(lambda r: r.service_type.code)
    earliest = Instant()
    latest = Instant()
    urgency = fields.String()
    status = fields.String()
    appointment_id = fields.Integer(allow_none=True)
    notes = fields.String(allow_none=True)
    created_at = Instant()
    updated_at = Instant()


class CareRequestQuery(QuerySchema):
    resident_id = fields.Integer()
    status = Choices(fields.String(validate=one_of(RequestStatus)))
    urgency = Choices(fields.String(validate=one_of(Urgency)))


CareRequestPage = page_schema(CareRequestOut, "CareRequestPage")
