"""Waitlist backfill by SMS offer (BACKFILL_MODE=offer): the resident first in
line is asked, "1" books the slot, "2" or silence passes it to the next.

The clock is frozen at 2026-12-01 09:00 UTC (17:00 in Asia/Shanghai, every
village's zone); the freed slot is Thu 3 Dec 10:00 local with clinician_a.
"""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from careservice.extensions import db
from careservice.matching.backfill import answer_offer, backfill_freed_slots
from careservice.matching.models import OfferStatus, SlotOffer
from careservice.reminders.keywords import Intent
from careservice.reminders.messages import Kind
from careservice.reminders.models import InboundMessage, Reminder
from careservice.reminders.replies import SMS_ACTOR
from careservice.scheduling import booking
from careservice.scheduling.models import Appointment, CareRequest, Status
from tests.matching.conftest import SYSTEM, TEN

INBOUND = "/webhooks/twilio/inbound"


@pytest.fixture(autouse=True)
def offer_mode(app, monkeypatch):
    monkeypatch.setitem(app.config, "BACKFILL_MODE", "offer")
    monkeypatch.setitem(app.config, "BACKFILL_OFFER_MINUTES", 120)
    monkeypatch.setitem(app.config, "QUIET_HOURS", "21:00-08:00")


@pytest.fixture
def sms_reply(twilio_post):
    def send(phone, body):
        sid = "SM" + uuid.uuid4().hex
        response = twilio_post(INBOUND, {"MessageSid": sid, "From": phone, "To": "+15005550006",
                                         "Body": body, "AccountSid": "AC" + "0" * 32})
        assert response.status_code == 200, response.data
        return response.get_data(as_text=True)

    return send


def offers():
    db.session.expire_all()
    return db.session.execute(sa.select(SlotOffer).order_by(SlotOffer.id)).scalars().all()


def offer_texts():
    return db.session.execute(sa.select(Reminder).where(Reminder.kind == Kind.SLOT_OFFER)
                              .order_by(Reminder.id)).scalars().all()


def live_at_ten():
    db.session.expire_all()
    return db.session.execute(sa.select(Appointment).where(
        Appointment.start_at == TEN, Appointment.status != Status.CANCELLED)).scalars().all()


def test_the_first_in_line_is_asked_by_sms_and_nothing_is_booked_yet(request_for,
        world, freed_slot, create_resident):
    routine = request_for(world.resident_a2)
    other = create_resident(world.village_a1, name="Ma Fengying", phone="+8613900139009",
                            languages=["en"])
    urgent = request_for(other, urgency="urgent")

    assert backfill_freed_slots() == 1

    [offer] = offers()
    assert (offer.care_request_id, offer.resident_id, offer.status) == (
        urgent.id, other.id, OfferStatus.PENDING)
    assert offer.expires_at == datetime(2026, 12, 1, 11, 0, tzinfo=UTC)  # 2 hours to answer
    [text] = offer_texts()
    assert text.to == "+8613900139009" and text.status == "pending"
    assert text.body == ("Hi Ma, a health appointment is free on Thu 3 Dec at 10:00. "
                         "Reply 1 to take it, 2 to let it go, by 19:00.")
    assert live_at_ten() == []
    assert db.session.get(CareRequest, routine.id).status == "open"
    assert backfill_freed_slots() == 0  # asked once; the offer stands


def test_replying_1_books_the_slot_and_links_the_request(request_for, world, freed_slot, sms_reply):
    request = request_for(world.resident_a2)
    backfill_freed_slots()

    answer = sms_reply("+8613900139002", "1")

    assert "已为您预约" in answer
    [taken] = live_at_ten()
    assert (taken.resident_id, taken.provider_id) == (world.resident_a2.id, world.clinician_a.id)
    [offer] = offers()
    assert (offer.status, offer.appointment_id) == (OfferStatus.ACCEPTED, taken.id)
    assert db.session.get(CareRequest, request.id).status == "booked"
    # The booking's own confirmation SMS follows, as for any booking.
    kinds = {r.kind for r in db.session.execute(sa.select(Reminder).where(
        Reminder.appointment_id == taken.id)).scalars()}
    assert Kind.CONFIRMATION in kinds


def test_a_failure_while_booking_an_accepted_offer_leaves_it_pending(
        request_for, world, freed_slot, monkeypatch):
    request = request_for(world.resident_a2)
    backfill_freed_slots()
    [offer] = offers()

    def broken(*_args, **_kwargs):
        raise RuntimeError("the process died here")

    monkeypatch.setattr(booking.audit, "record", broken)
    with pytest.raises(RuntimeError):
        answer_offer(offer, Intent.CONFIRM, SMS_ACTOR)

    # Nothing half-done: no session, the offer still open to a "1" that works.
    assert live_at_ten() == []
    [offer] = offers()
    assert (offer.status, offer.appointment_id) == (OfferStatus.PENDING, None)
    assert db.session.get(CareRequest, request.id).status == "open"
    monkeypatch.undo()
    assert answer_offer(offer, Intent.CONFIRM, SMS_ACTOR) == Kind.REPLY_OFFER_TAKEN
    [taken] = live_at_ten()
    assert offers()[0].appointment_id == taken.id


@pytest.mark.parametrize("text", ["1", "2"])
def test_a_crash_before_the_answer_is_kept_undoes_it_and_the_retry_answers_once(
        text, request_for, world, freed_slot, create_appointment, twilio_post, crash_on_keeping):
    """Twilio retries a reply whose answer never came. Had the offer been settled without
    the message kept, the retry would find no offer and take "2" as cancelling the
    resident's next appointment."""
    request_for(world.resident_a2)
    upcoming = create_appointment(world.resident_a2, world.clinician_a, TEN + timedelta(days=1))
    backfill_freed_slots()
    form = {"MessageSid": "SM" + uuid.uuid4().hex, "From": "+8613900139002",
            "To": "+15005550006", "Body": text, "AccountSid": "AC" + "0" * 32}
    stop = crash_on_keeping(InboundMessage)
    assert twilio_post(INBOUND, form).status_code == 500
    stop()
    db.session.rollback()
    assert [offer.status for offer in offers()] == [OfferStatus.PENDING]
    assert live_at_ten() == []

    first = twilio_post(INBOUND, form).get_data(as_text=True)
    again = twilio_post(INBOUND, form).get_data(as_text=True)

    assert again == first
    [offer] = offers()
    taken = live_at_ten()
    if text == "1":
        assert offer.status == OfferStatus.ACCEPTED
        assert [a.resident_id for a in taken] == [world.resident_a2.id]
    else:
        assert offer.status == OfferStatus.DECLINED and taken == []
    assert db.session.get(Appointment, upcoming.id).status == Status.BOOKED


def test_replying_2_passes_the_slot_to_the_next_in_line(
        request_for, world, freed_slot, create_resident, sms_reply):
    first = request_for(world.resident_a2, urgency="urgent")
    other = create_resident(world.village_a1, name="Ma Fengying", phone="+8613900139009")
    second = request_for(other)
    backfill_freed_slots()

    answer = sms_reply("+8613900139002", "2")

    assert "候补" in answer
    declined, asked = offers()
    assert (declined.care_request_id, declined.status) == (first.id, OfferStatus.DECLINED)
    assert (asked.care_request_id, asked.status) == (second.id, OfferStatus.PENDING)
    assert [t.to for t in offer_texts()] == ["+8613900139002", "+8613900139009"]
    assert live_at_ten() == []
    assert db.session.get(CareRequest, first.id).status == "open"  # still waiting


def test_an_unanswered_offer_expires_and_the_next_is_asked(
        request_for, world, freed_slot, create_resident, frozen_clock, sms_reply):
    request_for(world.resident_a2, urgency="urgent")
    other = create_resident(world.village_a1, name="Ma Fengying", phone="+8613900139009")
    second = request_for(other)
    backfill_freed_slots()

    frozen_clock.set(datetime(2026, 12, 1, 11, 0, tzinfo=UTC))
    assert backfill_freed_slots() == 1

    expired, asked = offers()
    assert expired.status == OfferStatus.EXPIRED
    assert (asked.care_request_id, asked.status) == (second.id, OfferStatus.PENDING)
    # A late "1" from the first resident books nothing.
    late = sms_reply("+8613900139002", "1")
    assert live_at_ten() == []
    assert "该时间已被占用" in late  # told the offer is gone, not "no appointment"


def test_a_slot_taken_meanwhile_is_not_forced(
        request_for, world, freed_slot, create_appointment, sms_reply):
    request = request_for(world.resident_a2)
    backfill_freed_slots()
    create_appointment(world.resident_a1, world.clinician_a, TEN)  # booked by hand meanwhile

    answer = sms_reply("+8613900139002", "1")

    assert "已被占用" in answer
    [mine] = offers()
    assert mine.status == OfferStatus.LAPSED
    assert [a.resident_id for a in live_at_ten()] == [world.resident_a1.id]
    assert db.session.get(CareRequest, request.id).status == "open"


def test_residents_who_cannot_get_sms_are_skipped(request_for, world, freed_slot, create_resident):
    silent = create_resident(world.village_a1, name="Ma Fengying", phone="+8613900139009",
                             sms_consent=False)
    request_for(silent, urgency="urgent")
    reachable = request_for(world.resident_a2)

    backfill_freed_slots()

    [offer] = offers()
    assert offer.care_request_id == reachable.id


def test_an_offer_made_in_quiet_hours_waits_for_the_morning(
        request_for, world, freed_slot, frozen_clock):
    frozen_clock.set(datetime(2026, 12, 1, 14, 0, tzinfo=UTC))  # 22:00 local
    request_for(world.resident_a2)

    backfill_freed_slots()

    [offer] = offers()
    [text] = offer_texts()
    assert text.send_at == datetime(2026, 12, 2, 0, 0, tzinfo=UTC)  # 08:00 local
    assert offer.expires_at == text.send_at + timedelta(hours=2)
    assert "10:00前回复1预约" in text.body  # Li Jianguo reads Chinese


def test_one_question_at_a_time_per_phone(
        request_for, world, freed_slot, create_appointment, sms_reply):
    """Two freed slots and one resident waiting: the second is not offered to the
    same phone while the first offer stands, so "1" can only mean one thing."""
    request_for(world.resident_a2)
    backfill_freed_slots()
    eleven = create_appointment(world.resident_a1, world.clinician_a, TEN + timedelta(hours=1))
    booking.change_status(SYSTEM, eleven.id, Status.CANCELLED, reason="unwell")

    assert backfill_freed_slots() == 0
    assert len(offers()) == 1
