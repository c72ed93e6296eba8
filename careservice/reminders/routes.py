"""Twilio's webhooks, and the outbox rows of an appointment."""

import logging

import sqlalchemy as sa
from flask import Response, current_app, request
from flask.views import MethodView
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from careservice.core.auth import current_actor, require
from careservice.core.errors import Forbidden
from careservice.core.web import BEARER, Blueprint, json_response
from careservice.extensions import db
from careservice.reminders.models import Reminder
from careservice.reminders.replies import handle_inbound
from careservice.reminders.schemas import ReminderList, ReminderOut, ReminderProviderOut
from careservice.reminders.status import apply_status
from careservice.scheduling.booking import find_appointment

log = logging.getLogger(__name__)

blp = Blueprint("reminders", __name__, description="SMS: the outbox and Twilio's webhooks")

FORM = {"requestBody": {"content": {"application/x-www-form-urlencoded": {
    "schema": {"type": "object", "additionalProperties": {"type": "string"}}}}}}


def check_signature() -> None:
    """403 unless X-Twilio-Signature matches this request, signed with our auth
    token over the public URL (what Twilio saw, not what the proxy passed on)."""
    token = current_app.config["TWILIO_AUTH_TOKEN"]
    signature = request.headers.get("X-Twilio-Signature", "")
    url = current_app.config["PUBLIC_URL"] + request.full_path.rstrip("?")
    if not token or not signature or not RequestValidator(token).validate(
            url, request.form.to_dict(), signature):
        raise Forbidden("The Twilio signature does not match.")


@blp.route("/webhooks/twilio/status", methods=["POST"])
@blp.doc(summary="Twilio delivery status callback", **FORM,
         responses={"200": {"description": "Recorded (or an unknown SID, ignored)"}})
@blp.alt_response(403, description="Bad X-Twilio-Signature")
def twilio_status():
    check_signature()
    code = request.form.get("ErrorCode", "")
    apply_status(_text("MessageSid"), _text("MessageStatus"),
                 int(code) if code.isascii() and code.isdigit() and len(code) <= 9 else None)
    return Response("", status=200, mimetype="text/plain")


@blp.route("/webhooks/twilio/inbound", methods=["POST"])
@blp.doc(summary="A resident's SMS reply; answers TwiML", **FORM,
         responses={"200": {"description": "TwiML <Response>, with a <Message> when due",
                            "content": {"application/xml": {"schema": {"type": "string"}}}}})
@blp.alt_response(403, description="Bad X-Twilio-Signature")
def twilio_inbound():
    check_signature()
    reply = handle_inbound(_text("MessageSid"), _text("From"), _text("Body"))
    twiml = MessagingResponse()
    if reply:
        twiml.message(reply)
    return Response(str(twiml), status=200, mimetype="application/xml")


@blp.route("/api/v1/appointments/<int:appointment_id>/reminders")
class AppointmentReminders(MethodView):
    @require()
    @blp.doc(security=BEARER)
    @blp.response(200, ReminderList)
    def get(self, appointment_id):
        """The SMS outbox rows of an appointment (providers see the number masked)."""
        actor = current_actor()
        appointment = find_appointment(actor, appointment_id)
        rows = db.session.execute(
            sa.select(Reminder).where(Reminder.appointment_id == appointment.id)
            .order_by(Reminder.send_at, Reminder.id)).scalars().all()
        schema = ReminderProviderOut if actor.is_provider else ReminderOut
        return json_response({"items": schema(many=True).dump(rows)})


def _text(name: str) -> str:
    """A form value without NUL characters, which no SMS carries and PostgreSQL refuses."""
    return request.form.get(name, "").replace("\x00", "")

