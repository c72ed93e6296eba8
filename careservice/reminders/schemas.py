"""The wire shapes of reminders."""

from marshmallow import Schema, fields

from careservice.core.fields import Instant


class ReminderOut(Schema):
    id = fields.Integer()
    kind = fields.String()
    channel = fields.String()
    to = fields.String()
    status = fields.String()
    send_at = Instant()
    sent_at = Instant(allow_none=True)
    attempts = fields.Integer()
    segments = fields.Integer()
    provider_message_id = fields.String(allow_none=True)
    last_error = fields.String(allow_none=True)


def masked(phone: str) -> str:
    """+8613800138000 -> +86138****8000: enough to recognise, not to call."""
    return phone[:6] + "****" + phone[-4:] if len(phone) > 10 else "****"


class ReminderProviderOut(ReminderOut):
    """What a clinician or caregiver sees: the resident's number masked."""

    to = fields.Function(lambda reminder: masked(reminder.to))


class ReminderList(Schema):
    items = fields.List(fields.Nested(ReminderOut))
