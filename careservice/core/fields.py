"""marshmallow fields for the wire formats API.md fixes."""

import datetime as dt

import phonenumbers
from flask import current_app
from marshmallow import ValidationError, fields

from careservice.core.time import as_utc, is_valid_timezone, utcnow

# Instants a care service can mean: sessions, windows and reports, and the birth of its
# oldest residents. Beyond them, adding a horizon or a day overflows Python's datetime.
EARLIEST_YEAR, LATEST_YEAR = 1900, 2199


class Instant(fields.Field):
    """An ISO 8601 instant: an offset is required in, UTC with Z comes out."""

    default_error_messages = {
        "invalid": "Not a valid ISO 8601 date and time.",
        "naive": "Give an offset, e.g. 2026-12-01T09:00:00+08:00.",
        "range": f"Must lie between the years {EARLIEST_YEAR} and {LATEST_YEAR}.",
    }

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return as_utc(value).isoformat().replace("+00:00", "Z")

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise self.make_error("invalid")
        try:
            parsed = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise self.make_error("invalid") from None
        if parsed.tzinfo is None:
            raise self.make_error("naive")
        if not EARLIEST_YEAR <= parsed.year <= LATEST_YEAR:
            raise self.make_error("range")
        return as_utc(parsed)


class PastOrTodayDate(fields.Date):
    """A date that is not in the future (birth dates)."""

    def _deserialize(self, value, attr, data, **kwargs):
        parsed = super()._deserialize(value, attr, data, **kwargs)
        # Today somewhere on Earth (UTC+14) still counts as today.
        if parsed > (utcnow() + dt.timedelta(hours=14)).date():
            raise ValidationError("Must not be in the future.")
        if parsed.year < 1880:
            raise ValidationError("Not a plausible date.")
        return parsed


class Phone(fields.String):
    """A phone number, normalised to E.164 (default country from settings)."""

    def _deserialize(self, value, attr, data, **kwargs):
        raw = super()._deserialize(value, attr, data, **kwargs)
        return normalise_phone(raw, current_app.config["DEFAULT_COUNTRY"])


def normalise_phone(raw: str, default_country: str) -> str:
    # phonenumbers reads letters as keypad digits (and drops "ext 5"): a typo
    # would silently become somebody else's number.
    if any(ch.isalpha() for ch in raw):
        raise ValidationError("Not a valid phone number.")
    try:
        number = phonenumbers.parse(raw.strip(), default_country)
    except phonenumbers.NumberParseException:
        raise ValidationError("Not a valid phone number.") from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationError("Not a valid phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class TimeZoneName(fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        name = super()._deserialize(value, attr, data, **kwargs)
        if not is_valid_timezone(name):
            raise ValidationError("Not an IANA time zone name (e.g. Asia/Shanghai).")
        return name


class Language(fields.String):
    """A language tag from the configured list; case is normalised (zh-cn -> zh-CN)."""

    def _deserialize(self, value, attr, data, **kwargs):
        tag = super()._deserialize(value, attr, data, **kwargs)
        supported = current_app.config["LANGUAGES"]
        for known in supported:
            if known.lower() == tag.strip().lower():
                return known
        raise ValidationError(f"Unsupported language; use one of {', '.join(supported)}.")


class TrimmedString(fields.String):
    """A string with surrounding blanks removed; blank is refused unless allowed."""

    def __init__(self, *args, allow_blank: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.allow_blank = allow_blank

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if not text and not self.allow_blank:
            raise ValidationError("Must not be blank.")
        return text


def unique_list(values: list) -> None:
    if len(set(values)) != len(values):
        raise ValidationError("Items must not repeat.")


class ClockTime(fields.Field):
    """A wall-clock time as "HH:MM"."""

    default_error_messages = {"invalid": "Not a time of day as HH:MM."}

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else value.strftime("%H:%M")

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise self.make_error("invalid")
        try:
            parsed = dt.time.fromisoformat(value.strip())
        except ValueError:
            raise self.make_error("invalid") from None
        if parsed.second or parsed.microsecond or parsed.tzinfo:
            raise self.make_error("invalid")
        return parsed


class Choices(fields.List):
    """Query values that may repeat or be comma-separated: `?status=booked&status=cancelled`
    and `?status=booked,cancelled` alike (webargs' DelimitedList took the first only)."""

    def _deserialize(self, value, attr, data, **kwargs):
        values = value if isinstance(value, list | tuple) else [value]
        parts = [part for item in values
                 for part in (item.split(",") if isinstance(item, str) else [item])]
        return super()._deserialize([part for part in parts if part != ""], attr, data,
                                    **kwargs)

