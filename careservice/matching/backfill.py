"""Waitlist backfill: a cancelled session's slot goes to the best open care
request that fits it. BACKFILL_MODE says how:

- "book": booked at once through the scheduling core, whose confirmation SMS
  tells the resident;
- "offer": the resident is asked by SMS first (reply 1 takes it, 2 lets it
  go); an offer stands BACKFILL_OFFER_MINUTES, and when it is declined,
  expires or can no longer be booked, the next request in line is asked;
- "off": nothing.
"""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from careservice.core.auth import Actor
from careservice.core.errors import ServiceError
from careservice.core.time import utcnow
from careservice.extensions import db
from careservice.matching import scoring
from careservice.matching.batch import _village_coverage, request_weight
from careservice.matching.models import OfferStatus, SlotOffer
from careservice.people.models import Modality, Resident
from careservice.reminders import messages, quiet
from careservice.reminders.keywords import Intent
from careservice.reminders.messages import Kind
from careservice.reminders.models import Reminder
from careservice.reminders.outbox import why_not_reachable
from careservice.scheduling import booking
from careservice.scheduling.models import Appointment, CareRequest, RequestStatus, Status
from careservice.scheduling.slots import session_span

log = logging.getLogger(__name__)

TRIES = 3  # candidates tried per freed slot when booking straight away
OFFERS_PER_SLOT = 5  # residents asked, one after another, before the slot is left free
SHORTEST_OFFER = timedelta(minutes=15)  # less time than this to answer is no offer


def backfill_freed_slots(now=None) -> int:
    """Give each newly freed slot to the waitlist, and move offers on; the number
    of sessions booked (mode "book") or offers made (mode "offer")."""
    now = now or utcnow()
    moved_on = expire_offers(now)
    mode = current_app.config["BACKFILL_MODE"]
    if mode == "off":
        return moved_on
    earliest = now + timedelta(minutes=current_app.config["MIN_NOTICE_MINUTES"])
    freed = db.session.execute(
        sa.select(Appointment.id).where(Appointment.status == Status.CANCELLED,
                                        Appointment.backfill_checked_at.is_(None),
                                        Appointment.start_at >= earliest)
        .order_by(Appointment.start_at)).scalars().all()
    actor = Actor.system("scheduler:backfill")
    done = moved_on
    for appointment_id in freed:
        # Compare-and-swap: of two schedulers, one looks at each freed slot.
        taken = db.session.execute(
            sa.update(Appointment).where(Appointment.id == appointment_id,
                                         Appointment.backfill_checked_at.is_(None))
            .values(backfill_checked_at=now)
            .execution_options(synchronize_session=False)).rowcount
        db.session.commit()
        if not taken:
            continue
        slot = db.session.get(Appointment, appointment_id)
        done += _fill(actor, slot, now) if mode == "book" else offer_next(slot, now)
    return done


def _candidates(freed: Appointment, now: datetime) -> list[CareRequest]:
    """Open requests the freed slot fits (service, window, village served, resident
    free then), the highest weight first, then the longest waiting."""
    served, coverage = _village_coverage(now)
    candidates = []
    for request in db.session.execute(
            sa.select(CareRequest).where(
                CareRequest.status == RequestStatus.OPEN,
                CareRequest.service_type_id == freed.service_type_id,
                CareRequest.earliest <= freed.start_at, CareRequest.latest >= freed.end_at,
                CareRequest.resident_id != freed.resident_id)).scalars():
        if not scoring.serves(freed.provider, request.resident.region):
            continue
        if scoring.resident_busy(request.resident, freed.start_at, freed.end_at):
            continue
        weight = request_weight(request, served, coverage, freed.start_at.date())
        candidates.append((-weight, request.created_at, request.id, request))
    return [request for *_, request in sorted(candidates)]


def _book(actor: Actor, freed: Appointment, request: CareRequest, within=None) -> Appointment:
    return booking.book_appointment(actor, resident_id=request.resident_id,
                                    provider_id=freed.provider_id,
                                    service_type=freed.service_type.code,
                                    start=freed.start_at, care_request_id=request.id,
                                    within=within)


def _fill(actor: Actor, freed: Appointment, now) -> int:
    for request in _candidates(freed, now)[:TRIES]:
        try:
            _book(actor, freed, request)
            return 1
        except ServiceError as refusal:
            db.session.rollback()
            log.info("backfill of appointment %s for request %s refused: %s",
                     freed.id, request.id, refusal.message)
    return 0


# Offers by SMS


def _slot_is_free(freed: Appointment, resident_id: int) -> bool:
    duration, held = session_span(freed.service_type)
    return booking.find_refusal(freed.provider, resident_id, freed.start_at,
                                freed.start_at + duration, freed.start_at + held,
                                check_cap=True) is None


def offer_next(freed: Appointment, now: datetime) -> int:
    """Offer the freed slot to the next request in line, if the slot is still free
    and time is left to answer; 1 when an offer went out. Commits."""
    asked = db.session.execute(
        sa.select(SlotOffer.care_request_id, SlotOffer.status)
        .where(SlotOffer.freed_appointment_id == freed.id)).all()
    if (len(asked) >= OFFERS_PER_SLOT
            or any(status in (OfferStatus.PENDING, OfferStatus.ACCEPTED) for _, status in asked)):
        return 0
    asked_requests = {request_id for request_id, _ in asked}
    deadline = freed.start_at - timedelta(minutes=current_app.config["MIN_NOTICE_MINUTES"])
    busy_phones = _phones_with_pending_offers()
    for request in _candidates(freed, now):
        resident = request.resident
        if (request.id in asked_requests or why_not_reachable(resident) is not None
                or resident.phone in busy_phones):
            continue
        if not _slot_is_free(freed, resident.id):
            return 0
        send_at = quiet.next_allowed(now, resident.region.timezone,
                                     current_app.config["QUIET_HOURS"])
        expires_at = min(send_at + timedelta(minutes=current_app.config["BACKFILL_OFFER_MINUTES"]),
                         deadline)
        if expires_at - send_at < SHORTEST_OFFER:
            continue  # this resident could not answer in time (quiet hours); the next may
        offer = SlotOffer(freed_appointment_id=freed.id, care_request_id=request.id,
                          resident_id=resident.id, provider_id=freed.provider_id,
                          start_at=freed.start_at, expires_at=expires_at)
        db.session.add(offer)
        db.session.flush()
        db.session.add(_offer_sms(offer, freed, resident, send_at))
        db.session.commit()
        return 1
    db.session.commit()
    return 0


def _phones_with_pending_offers() -> set[str]:
    """One open question per phone: a reply of "1" must mean one offer."""
    return set(db.session.execute(
        sa.select(Resident.phone).join(SlotOffer, SlotOffer.resident_id == Resident.id)
        .where(SlotOffer.status == OfferStatus.PENDING)).scalars())


def _offer_sms(offer: SlotOffer, freed: Appointment, resident: Resident,
               send_at: datetime) -> Reminder:
    language = messages.choose_language(resident.languages)
    tz = resident.region.timezone
    date, time = messages.format_when(freed.start_at, tz, language)
    until_date, until_time = messages.format_when(offer.expires_at, tz, language)
    sent_date, _ = messages.format_when(send_at, tz, language)
    body = messages.render(
        Kind.SLOT_OFFER, language, name=resident.sms_name, date=date, time=time,
        until=until_time if until_date == sent_date else f"{until_date} {until_time}",
        visit=freed.modality == Modality.HOME_VISIT)
    return Reminder(dedupe_key=f"o{offer.id}:{Kind.SLOT_OFFER}", kind=Kind.SLOT_OFFER,
                    resident_id=resident.id, to=resident.phone, language=language, body=body,
                    segments=messages.segments(body), send_at=send_at)


def expire_offers(now: datetime) -> int:
    """Offers nobody answered in time expire, and their slots go to the next in
    line; the number of new offers made."""
    expired = db.session.execute(
        sa.update(SlotOffer).where(SlotOffer.status == OfferStatus.PENDING,
                                   SlotOffer.expires_at <= now)
        .values(status=OfferStatus.EXPIRED, updated_at=now)
        .returning(SlotOffer.freed_appointment_id)
        .execution_options(synchronize_session=False)).scalars().all()
    db.session.commit()
    if current_app.config["BACKFILL_MODE"] != "offer":
        return 0
    return sum(offer_next(db.session.get(Appointment, freed_id), now)
               for freed_id in sorted(set(expired)))


def pending_offer(residents: list[Resident], now: datetime) -> SlotOffer | None:
    if not residents:
        return None
    return db.session.execute(
        sa.select(SlotOffer).where(SlotOffer.resident_id.in_([r.id for r in residents]),
                                   SlotOffer.status == OfferStatus.PENDING,
                                   SlotOffer.expires_at > now)
        .order_by(SlotOffer.id.desc()).limit(1)).scalar_one_or_none()


def missed_offer(residents: list[Resident], now: datetime) -> bool:
    """An offer to one of these residents expired or lapsed within the last day."""
    if not residents:
        return False
    return db.session.execute(
        sa.select(SlotOffer.id).where(
            SlotOffer.resident_id.in_([r.id for r in residents]),
            SlotOffer.status.in_((OfferStatus.EXPIRED, OfferStatus.LAPSED)),
            SlotOffer.updated_at > now - timedelta(days=1)).limit(1)).first() is not None


class OfferGone(Exception):
    """The offer was answered or ran out meanwhile."""


def answer_offer(offer: SlotOffer, intent: str, actor: Actor,
                 within: Callable[[str], None] | None = None) -> str:
    """Take (1) or decline (2) an offer; the reply's kind. Commits. `within(kind)` runs
    in the transaction that settles the offer, when the answer takes effect."""
    now = utcnow()
    within = within or (lambda _kind: None)
    if intent == Intent.CANCEL:
        _settle(offer, OfferStatus.DECLINED, now)
        within(Kind.REPLY_OFFER_DECLINED)
        db.session.commit()
        offer_next(offer.freed_appointment, now)
        return Kind.REPLY_OFFER_DECLINED

    def accept(appointment: Appointment) -> None:
        # In the booking's own transaction: an answer racing the expiry job, or a
        # second answer, books nothing; a crash half-way leaves the offer pending.
        if not _settle(offer, OfferStatus.ACCEPTED, now, appointment_id=appointment.id):
            raise OfferGone
        within(Kind.REPLY_OFFER_TAKEN)

    try:
        _book(actor, offer.freed_appointment, offer.care_request, within=accept)
    except OfferGone:
        return Kind.REPLY_OFFER_GONE
    except ServiceError as refusal:
        log.info("offer %s could not be booked: %s", offer.id, refusal.message)
        lapsed = _settle(offer, OfferStatus.LAPSED, now)
        db.session.commit()
        if lapsed:
            offer_next(offer.freed_appointment, now)
        return Kind.REPLY_OFFER_GONE
    return Kind.REPLY_OFFER_TAKEN


def _settle(offer: SlotOffer, status: OfferStatus, now: datetime, **values) -> bool:
    """Compare-and-swap a pending offer that has not run out to `status`, in the
    caller's transaction; whether it was still pending."""
    return bool(db.session.execute(
        sa.update(SlotOffer).where(SlotOffer.id == offer.id,
                                   SlotOffer.status == OfferStatus.PENDING,
                                   SlotOffer.expires_at > now)
        .values(status=status, updated_at=now, **values)
        .execution_options(synchronize_session=False)).rowcount)
