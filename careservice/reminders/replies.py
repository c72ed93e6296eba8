"""Residents' SMS replies: confirm, cancel, ask to reschedule, STOP/START, HELP."""

import logging
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from marshmallow import ValidationError
from sqlalchemy.exc import IntegrityError

from careservice.core.auth import Actor
from careservice.core.errors import ServiceError
from careservice.core.fields import normalise_phone
from careservice.core.models import Role, User
from careservice.core.time import utcnow
from careservice.extensions import db
from careservice.people.models import Region, Resident, path_ids
from careservice.reminders import messages
from careservice.reminders.keywords import Intent, parse_reply
from careservice.reminders.messages import Kind
from careservice.reminders.models import InboundMessage, Reminder, ReminderStatus
from careservice.scheduling.models import UPCOMING, Appointment, CareRequest, Status

log = logging.getLogger(__name__)

SMS_ACTOR = Actor.system("sms-reply")
RESCHEDULE_WINDOW = timedelta(days=14)
OPTED_OUT = "opted out (STOP)"
ASKS_TO_RESCHEDULE = {"en": "asks to reschedule", "zh-CN": "请求改期",
                      "id": "minta jadwal ulang"}


def residents_with_phone(phone: str) -> list[Resident]:
    """Everyone registered with this number (a family may share one phone)."""
    return db.session.execute(
        sa.select(Resident).where(Resident.phone == phone).order_by(Resident.id)
    ).scalars().all()


def next_appointment(residents: list[Resident]) -> Appointment | None:
    if not residents:
        return None
    return db.session.execute(
        sa.select(Appointment).where(
            Appointment.resident_id.in_([r.id for r in residents]),
            Appointment.status.in_(UPCOMING), Appointment.start_at > utcnow())
        .order_by(Appointment.start_at).limit(1)
    ).scalar_one_or_none()


def _pending_offer(residents: list[Resident]):
    from careservice.matching.backfill import pending_offer

    return pending_offer(residents, utcnow())


def _missed_offer(residents: list[Resident]) -> bool:
    """A slot offer to this phone ran out lately: a late "1" is answered about it."""
    from careservice.matching.backfill import missed_offer

    return missed_offer(residents, utcnow())


class _Answer:
    """The message with its answer, kept in the transaction of what the message did:
    a crash between acting and keeping it would let Twilio's retry act again, on the
    next appointment once the first is cancelled."""

    def __init__(self, message_sid: str, phone: str, body: str, intent: str) -> None:
        self.message_sid, self.phone, self.body, self.intent = message_sid, phone, body, intent

    def keep(self, reply: str, appointment_id: int | None = None) -> None:
        """Add the record to the session (again, after a retried unit of work)."""
        db.session.add(InboundMessage(
            message_sid=self.message_sid, from_number=self.phone[:20], body=self.body[:1600],
            received_at=utcnow(), intent=self.intent, appointment_id=appointment_id,
            reply=reply))


def handle_inbound(message_sid: str, from_number: str, body: str) -> str:
    """Apply a reply and return the text to answer with. A repeat of the same
    MessageSid (Twilio retries) gives the first answer without acting twice."""
    seen = _seen(message_sid)
    if seen is not None:
        return seen.reply or ""
    try:
        phone = normalise_phone(from_number, current_app.config["DEFAULT_COUNTRY"])
    except ValidationError:
        phone = from_number.strip()
    residents = residents_with_phone(phone)
    language = messages.choose_language(residents[0].languages if residents else [])
    intent = parse_reply(body)
    answer = _Answer(message_sid, phone, body, intent)
    appointment = None
    try:
        if intent in (Intent.STOP, Intent.START):
            reply = _opt(residents, intent, language)
        elif intent == Intent.HELP or intent == Intent.UNKNOWN:
            reply = messages.render(
                Kind.REPLY_HELP if intent == Intent.HELP else Kind.REPLY_UNKNOWN, language)
        elif intent in (Intent.CONFIRM, Intent.CANCEL) and (
                offer := _pending_offer(residents)) is not None:
            # The newest question asked of this phone is a slot offer: 1 takes it, 2 lets
            # it go.
            from careservice.matching.backfill import answer_offer

            language = messages.choose_language(offer.resident.languages)
            reply = messages.render(answer_offer(
                offer, intent, SMS_ACTOR,
                within=lambda kind: answer.keep(messages.render(kind, language))), language)
        else:
            appointment = next_appointment(residents)
            if appointment is None and _missed_offer(residents):
                reply = messages.render(Kind.REPLY_OFFER_GONE, language)
            elif appointment is None:
                reply = messages.render(Kind.REPLY_NO_APPOINTMENT, language)
            else:
                # On a shared phone, answer in the language of the one whose session it is.
                language = messages.choose_language(appointment.resident.languages)
                reply = _act(appointment, intent, language, answer)
        if _seen(message_sid) is None:  # not kept with a change already committed
            answer.keep(reply, appointment.id if appointment else None)
            db.session.commit()
    except IntegrityError:  # the same MessageSid, handled by a parallel request
        db.session.rollback()
        seen = _seen(message_sid)
        if seen is None:
            raise
        return seen.reply or ""
    return reply


def _seen(message_sid: str) -> InboundMessage | None:
    return db.session.execute(
        sa.select(InboundMessage).where(InboundMessage.message_sid == message_sid)
    ).scalar_one_or_none()


def _opt(residents: list[Resident], intent: str, language: str) -> str:
    now = utcnow()
    for resident in residents:
        resident.opted_out_at = now if intent == Intent.STOP else None
    ids = [r.id for r in residents]
    if intent == Intent.STOP:
        # Nothing more goes out to this number, whatever was queued...
        db.session.execute(
            sa.update(Reminder)
            .where(Reminder.resident_id.in_(ids), Reminder.status == ReminderStatus.PENDING)
            .values(status=ReminderStatus.SUPPRESSED, last_error=OPTED_OUT, updated_at=now)
            .execution_options(synchronize_session=False))
    else:
        # ...until START: what STOP held back and is still ahead goes out again.
        db.session.execute(
            sa.update(Reminder)
            .where(Reminder.resident_id.in_(ids), Reminder.status == ReminderStatus.SUPPRESSED,
                   Reminder.last_error == OPTED_OUT, Reminder.send_at > now)
            .values(status=ReminderStatus.PENDING, last_error=None, updated_at=now)
            .execution_options(synchronize_session=False))
    return messages.render(Kind.REPLY_STOPPED if intent == Intent.STOP else Kind.REPLY_STARTED,
                           language)


def _act(appointment: Appointment, intent: str, language: str, answer: _Answer) -> str:
    from careservice.scheduling import booking

    if intent == Intent.RESCHEDULE:
        _ask_to_reschedule(appointment, answer.message_sid)  # committed with the answer
        return messages.render(Kind.REPLY_RESCHEDULE, language)
    if intent == Intent.CONFIRM and appointment.status != Status.BOOKED:
        return messages.render(Kind.REPLY_CONFIRMED, language)  # confirmed already
    target, kind = ((Status.CONFIRMED, Kind.REPLY_CONFIRMED) if intent == Intent.CONFIRM
                    else (Status.CANCELLED, Kind.REPLY_CANCELLED))
    reply = messages.render(kind, language)
    try:
        booking.change_status(
            SMS_ACTOR, appointment.id, target,
            reason="cancelled by the resident by SMS" if target == Status.CANCELLED else None,
            within=lambda changed: answer.keep(reply, changed.id))
    except ServiceError as error:
        db.session.rollback()
        log.info("SMS %s on appointment %s refused: %s", intent, appointment.id, error.message)
        return messages.render(Kind.REPLY_UNKNOWN, language)
    return reply


def _ask_to_reschedule(appointment: Appointment, message_sid: str) -> None:
    """A care request for the same service, and a note to the village health worker;
    asking again while that request is open adds nothing. Not committed here."""
    now = utcnow()
    note = f"Asked by SMS to move appointment {appointment.id}."
    already = db.session.execute(
        sa.select(CareRequest.id).where(CareRequest.resident_id == appointment.resident_id,
                                        CareRequest.status == "open", CareRequest.notes == note)
    ).first()
    if already:
        return
    db.session.add(CareRequest(
        resident_id=appointment.resident_id, service_type_id=appointment.service_type_id,
        earliest=now + timedelta(hours=2), latest=now + RESCHEDULE_WINDOW, urgency="soon",
        notes=note))
    resident = appointment.resident
    for user in village_health_workers(resident):
        if not user.phone:
            continue
        language = messages.choose_language([user.language] if user.language else [])
        body = messages.render(Kind.VHW_NOTICE, language, name=resident.sms_name,
                               what=ASKS_TO_RESCHEDULE.get(language, ASKS_TO_RESCHEDULE["en"]))
        db.session.add(Reminder(
            dedupe_key=f"u{user.id}:notice:{message_sid}"[:120],
            kind=Kind.VHW_NOTICE, user_id=user.id, resident_id=None, to=user.phone,
            language=language, body=body, segments=messages.segments(body), send_at=now))


def village_health_workers(resident: Resident) -> list[User]:
    """Active vhw users whose regions hold the resident's village."""
    return db.session.execute(
        sa.select(User).join(User.regions).where(
            User.role == Role.VHW, User.active.is_(True),
            Region.id.in_(path_ids(resident.region.path)))
        .distinct()
    ).scalars().all()
