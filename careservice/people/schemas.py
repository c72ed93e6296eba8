"""The wire shapes of regions, residents, providers, users and tokens."""

from flask import current_app
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from careservice.core.fields import (
    Instant,
    Language,
    PastOrTodayDate,
    Phone,
    TimeZoneName,
    TrimmedString,
    unique_list,
)
from careservice.core.models import Role
from careservice.core.pagination import page_schema
from careservice.core.schemas import InSchema, QuerySchema
from careservice.people.models import Modality, ProviderKind, RegionKind, Setting, Sex, Zone


def one_of(enum):
    return validate.OneOf([member.value for member in enum])


# Regions

class RegionIn(InSchema):
    name = TrimmedString(required=True, validate=validate.Length(max=120))
    kind = fields.String(required=True, validate=one_of(RegionKind))
    parent_id = fields.Integer(allow_none=True, load_default=None)
    zone = fields.String(validate=one_of(Zone))
    setting = fields.String(validate=one_of(Setting))
    timezone = TimeZoneName()
    latitude = fields.Float(allow_none=True, validate=validate.Range(min=-90, max=90))
    longitude = fields.Float(allow_none=True, validate=validate.Range(min=-180, max=180))
    partner_region_id = fields.Integer(allow_none=True)


class RegionPatch(RegionIn):
    """Any subset of RegionIn's fields (used with partial=True)."""


class RegionOut(Schema):
    id = fields.Integer()
    name = fields.String()
    kind = fields.String()
    parent_id = fields.Integer(allow_none=True)
    zone = fields.String()
    setting = fields.String()
    timezone = fields.String()
    latitude = fields.Float(allow_none=True)
    longitude = fields.Float(allow_none=True)
    partner_region_id = fields.Integer(allow_none=True)


class RegionQuery(QuerySchema):
    parent_id = fields.Integer()
    kind = fields.String(validate=one_of(RegionKind))
    zone = fields.String(validate=one_of(Zone))
    setting = fields.String(validate=one_of(Setting))


RegionPage = page_schema(RegionOut, "RegionPage")


# Residents

class ResidentIn(InSchema):
    name = TrimmedString(required=True, validate=validate.Length(max=120))
    preferred_name = TrimmedString(allow_none=True, validate=validate.Length(max=60))
    phone = Phone(allow_none=True)
    birth_date = PastOrTodayDate(required=True)
    sex = fields.String(required=True, validate=one_of(Sex))
    region_id = fields.Integer(required=True)
    languages = fields.List(Language(), validate=[validate.Length(min=1, max=5), unique_list])
    sms_consent = fields.Boolean()
    notes = fields.String(allow_none=True, validate=validate.Length(max=4000))


class ResidentPatch(ResidentIn):
    """Any subset of ResidentIn's fields (used with partial=True)."""


class ResidentOut(Schema):
    id = fields.Integer()
    name = fields.String()
    preferred_name = fields.String(attribute="sms_name")
    phone = fields.String(allow_none=True)
    birth_date = fields.Date()
    sex = fields.String()
    region_id = fields.Integer()
    languages = fields.List(fields.String())
    sms_consent = fields.Boolean()
    opted_out_at = Instant(allow_none=True)
    sms_problem_at = Instant(allow_none=True)
    sms_problem = fields.String(allow_none=True)
    notes = fields.String(allow_none=True)
    created_at = Instant()
    updated_at = Instant()


# What a clinician or caregiver sees of a resident in their sessions: enough to
# greet and serve them, not their phone, full name or notes.
RESIDENT_PROVIDER_VIEW = ("id", "preferred_name", "birth_date", "sex", "region_id", "languages")


class ResidentQuery(QuerySchema):
    region_id = fields.Integer()
    q = fields.String(validate=validate.Length(min=1, max=120))


ResidentPage = page_schema(ResidentOut, "ResidentPage")


# Providers

class ProviderIn(InSchema):
    kind = fields.String(required=True, validate=one_of(ProviderKind))
    name = TrimmedString(required=True, validate=validate.Length(max=120))
    phone = Phone(allow_none=True)
    email = fields.Email(allow_none=True)
    skills = fields.List(
        fields.String(validate=validate.Regexp(r"^[a-z][a-z0-9_]{0,39}$",
                                               error="Skills are lower_snake_case codes.")),
        validate=unique_list,
    )
    languages = fields.List(Language(), validate=[validate.Length(min=1), unique_list])
    modalities = fields.List(fields.String(validate=one_of(Modality)),
                             validate=[validate.Length(min=1), unique_list])
    timezone = TimeZoneName()
    home_region_id = fields.Integer(required=True)
    service_region_ids = fields.List(fields.Integer(), validate=unique_list)
    max_sessions_per_day = fields.Integer(validate=validate.Range(min=1, max=100))
    active = fields.Boolean()

    @validates_schema
    def modalities_fit_kind(self, data, **kwargs):
        kind, modalities = data.get("kind"), data.get("modalities")
        if kind == ProviderKind.CAREGIVER and modalities and Modality.HOME_VISIT not in modalities:
            raise ValidationError("A caregiver makes home visits.", "modalities")


class ProviderPatch(ProviderIn):
    """Any subset of ProviderIn's fields (used with partial=True)."""


class ProviderOut(Schema):
    id = fields.Integer()
    kind = fields.String()
    name = fields.String()
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    skills = fields.List(fields.String())
    languages = fields.List(fields.String())
    modalities = fields.List(fields.String())
    timezone = fields.String()
    home_region_id = fields.Integer()
    service_region_ids = fields.List(fields.Integer())
    max_sessions_per_day = fields.Integer()
    active = fields.Boolean()
    calendar_url = fields.Method("get_calendar_url", metadata={"type": "string", "format": "uri"})
    created_at = Instant()
    updated_at = Instant()

    def get_calendar_url(self, provider) -> str:
        base = current_app.config["PUBLIC_URL"]
        return f"{base}/calendar/providers/{provider.id}.ics?token={provider.calendar_token}"


# Everyone but the provider themself, coordinators and admins.
PROVIDER_PUBLIC_VIEW = tuple(name for name in ProviderOut._declared_fields
                             if name != "calendar_url")


class ProviderQuery(QuerySchema):
    kind = fields.String(validate=one_of(ProviderKind))
    active = fields.Boolean()
    region_id = fields.Integer()


ProviderPage = page_schema(ProviderOut, "ProviderPage")


# Users and tokens

class UserBrief(Schema):
    id = fields.Integer()
    username = fields.String()
    role = fields.String()


class LoginIn(InSchema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=80))
    password = fields.String(required=True, validate=validate.Length(min=1, max=1024))


class TokenOut(Schema):
    token = fields.String()
    expires_at = Instant()
    user = fields.Nested(UserBrief)


class RegionBrief(Schema):
    id = fields.Integer()
    name = fields.String()
    kind = fields.String()


class MeOut(Schema):
    id = fields.Integer()
    username = fields.String()
    role = fields.String(validate=one_of(Role))
    provider_id = fields.Integer(allow_none=True)
    region_ids = fields.List(fields.Integer())
    regions = fields.List(fields.Nested(RegionBrief))
