"""Twilio's webhooks: signatures, delivery status callbacks, and residents' SMS replies.

The clock is frozen at 2026-12-01 09:00 UTC (17:00 in Asia/Shanghai, every
village's zone here). Ma Guilan (resident_a1, +8613900139001) lives in
Nanshan Village, whose village health worker (world.users["vhw"]) is given a
phone; her clinician works 08:00-18:00 every day.
"""

import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import current_app
from twilio.request_validator import RequestValidator

from careservice.extensions import db
from careservice.people.models import Resident
from careservice.reminders import keywords, messages
from careservice.reminders.dispatch import dispatch_due
from careservice.reminders.keywords import Intent
from careservice.reminders.messages import Kind, render
from careservice.reminders.models import InboundMessage, Reminder
from careservice.scheduling.models import Appointment, CareRequest

STATUS = "/webhooks/twilio/status"
INBOUND = "/webhooks/twilio/inbound"
ACCOUNT_SID = "ACtestingtestingtestingtestingtest"
OUR_NUMBER = "+15005550006"

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)      # 17:00 in Shanghai
START = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)    # Wed 2 Dec, 10:00 in Shanghai
LATER = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)    # Thu 3 Dec, 10:00 in Shanghai
PHONE_A1 = "+8613900139001"
VHW_PHONE = "+8613700137001"
NUMBER_ERRORS = (30003, 30004, 30005, 30006, 30007, 30008)


# Helpers


def inbound_form(body, *, from_=PHONE_A1, sid=None):
    """What Twilio posts for an incoming SMS."""
    sid = sid or "SM" + uuid.uuid4().hex
    return {"MessageSid": sid, "SmsMessageSid": sid, "SmsSid": sid, "AccountSid": ACCOUNT_SID,
            "From": from_, "To": OUR_NUMBER, "Body": body, "NumMedia": "0",
            "NumSegments": "1", "FromCountry": "CN", "ApiVersion": "2010-04-01"}


def status_form(sid, status, error_code=None, to=PHONE_A1):
    """What Twilio posts to a message's StatusCallback."""
    form = {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
            "AccountSid": ACCOUNT_SID, "From": OUR_NUMBER, "To": to, "ApiVersion": "2010-04-01"}
    if error_code is not None:
        form["ErrorCode"] = str(error_code)
    return form


def twiml_messages(response) -> list[str]:
    """The <Message> texts of a TwiML answer (checking it is one)."""
    assert response.status_code == 200, response.data
    assert "xml" in response.content_type
    root = ET.fromstring(response.data)
    assert root.tag == "Response"
    assert all(child.tag == "Message" for child in root)
    return [child.text for child in root]


def reply_to(response) -> str:
    messages = twiml_messages(response)
    assert len(messages) == 1, messages
    return messages[0]


def status_of(appointment) -> str:
    return db.session.get(Appointment, appointment.id).status


def rows(**filters) -> list[Reminder]:
    query = sa.select(Reminder).filter_by(**filters).order_by(Reminder.id)
    return db.session.execute(query).scalars().all()


def care_requests(resident) -> list[CareRequest]:
    return db.session.execute(sa.select(CareRequest).where(
        CareRequest.resident_id == resident.id).order_by(CareRequest.id)).scalars().all()


def snapshot():
    """Everything an SMS reply could change."""
    db.session.expire_all()
    return (
        db.session.execute(sa.select(Appointment.id, Appointment.status, Appointment.start_at)
                           .order_by(Appointment.id)).all(),
        db.session.execute(sa.select(Reminder.id, Reminder.kind, Reminder.status, Reminder.to)
                           .order_by(Reminder.id)).all(),
        db.session.execute(sa.select(CareRequest.id, CareRequest.status)
                           .order_by(CareRequest.id)).all(),
        db.session.execute(sa.select(Resident.id, Resident.opted_out_at, Resident.sms_consent)
                           .order_by(Resident.id)).all(),
    )


def set_fields(record, **values):
    for name, value in values.items():
        setattr(record, name, value)
    db.session.commit()


# Fixtures


@pytest.fixture
def clinic(world, create_service_type, set_availability, frozen_clock):
    create_service_type()
    set_availability(world.clinician_a)
    set_fields(world.users["vhw"], phone=VHW_PHONE, language="zh-CN")
    return world


@pytest.fixture
def book(clinic, create_appointment):
    def make(resident=None, start=START, provider=None):
        return create_appointment(resident or clinic.resident_a1, provider or clinic.clinician_a,
                                  start)

    return make


@pytest.fixture
def sms(twilio_post):
    """A resident texts us; the response."""

    def send(body, *, from_=PHONE_A1, sid=None):
        return twilio_post(INBOUND, inbound_form(body, from_=from_, sid=sid))

    return send


@pytest.fixture
def callback(twilio_post):
    """Twilio reports a message's status; the webhook must answer 200."""

    def post(sid, status, error_code=None):
        response = twilio_post(STATUS, status_form(sid, status, error_code))
        assert response.status_code == 200, response.data
        return response

    return post


@pytest.fixture
def sent(book, frozen_clock, sms_outbox):
    """Ma Guilan's booking confirmation, handed to Twilio: (appointment, its SID)."""
    appointment = book()
    assert dispatch_due(frozen_clock.now()).sent == 1
    assert [m["to"] for m in sms_outbox] == [PHONE_A1]
    return appointment, sms_outbox[0]["sid"]


@pytest.fixture
def outbox_row(client, auth, world):
    """The appointment's outbox row of a kind, as the village health worker sees it."""

    def get(appointment, kind=Kind.CONFIRMATION):
        response = client.get(f"/api/v1/appointments/{appointment.id}/reminders",
                              headers=auth(world.users["vhw"]))
        assert response.status_code == 200, response.json
        [row] = [item for item in response.json["items"] if item["kind"] == kind]
        return row

    return get


# Signatures


def sign(url, form, token=None):
    """Twilio's signature of a form posted to url, with our auth token unless told."""
    token = token or current_app.config["TWILIO_AUTH_TOKEN"]
    return RequestValidator(token).compute_signature(url, form)


BAD_SIGNATURES = {
    "empty": lambda app, path, form: ("", form),
    "garbage": lambda app, path, form: ("bm90IGEgc2lnbmF0dXJlIGF0IGFsbA==", form),
    "another auth token": lambda app, path, form: (
        sign(app.config["PUBLIC_URL"] + path, form, token="someone-elses-token"), form),
    "another host": lambda app, path, form: (sign("https://attacker.example" + path, form), form),
    "https instead of http": lambda app, path, form: (
        sign(app.config["PUBLIC_URL"].replace("http:", "https:") + path, form), form),
    "the other webhook": lambda app, path, form: (
        sign(app.config["PUBLIC_URL"] + (INBOUND if path == STATUS else STATUS), form), form),
    "a field changed after signing": lambda app, path, form: (
        sign(app.config["PUBLIC_URL"] + path, form),
        {**form, **({"Body": "2"} if path == INBOUND else
                    {"MessageStatus": "undelivered", "ErrorCode": "30003"})}),
    "a field added after signing": lambda app, path, form: (
        sign(app.config["PUBLIC_URL"] + path, form), {**form, "ErrorCode": "30005"}),
    "a field removed after signing": lambda app, path, form: (
        sign(app.config["PUBLIC_URL"] + path, form),
        {key: value for key, value in form.items() if key != "AccountSid"}),
}


def webhook_form(path, sid):
    # A reply that would confirm; a callback that would mark the SMS delivered.
    return inbound_form("1") if path == INBOUND else status_form(sid, "delivered")


def assert_forbidden(response):
    assert response.status_code == 403
    assert response.is_json
    assert response.json["error"]["code"] == "forbidden"
    assert response.json["error"]["message"]


@pytest.mark.parametrize("path", [STATUS, INBOUND])
def test_a_webhook_without_a_signature_is_refused(path, client, sent, outbox_row):
    appointment, sid = sent

    response = client.post(path, data=webhook_form(path, sid))

    assert_forbidden(response)
    assert status_of(appointment) == "booked"
    assert outbox_row(appointment)["status"] == "sent"


@pytest.mark.parametrize("case", list(BAD_SIGNATURES))
@pytest.mark.parametrize("path", [STATUS, INBOUND])
def test_a_webhook_with_a_bad_signature_is_refused_and_changes_nothing(
        path, case, app, twilio_post, sent, outbox_row):
    appointment, sid = sent
    signature, form = BAD_SIGNATURES[case](app, path, webhook_form(path, sid))
    before = snapshot()

    response = twilio_post(path, form, signature=signature)

    assert_forbidden(response)
    assert snapshot() == before
    assert status_of(appointment) == "booked"
    assert outbox_row(appointment)["status"] == "sent"
    assert db.session.execute(sa.select(sa.func.count()).select_from(InboundMessage)).scalar() == 0


def test_a_validly_signed_status_callback_is_accepted(twilio_post, sent, outbox_row):
    appointment, sid = sent

    response = twilio_post(STATUS, status_form(sid, "delivered"))

    assert response.status_code == 200
    assert outbox_row(appointment)["status"] == "delivered"


def test_a_validly_signed_reply_is_accepted(sms, sent):
    appointment, _ = sent

    response = sms("1")

    assert reply_to(response) == render(Kind.REPLY_CONFIRMED, "zh-CN")
    assert status_of(appointment) == "confirmed"


# Delivery status callbacks


def test_status_callbacks_move_a_reminder_forward(sent, callback, outbox_row):
    appointment, sid = sent
    row = outbox_row(appointment)
    assert (row["status"], row["provider_message_id"], row["attempts"]) == ("sent", sid, 1)
    assert row["sent_at"] == "2026-12-01T09:00:00Z"

    callback(sid, "queued")
    assert outbox_row(appointment)["status"] == "sent"
    callback(sid, "sent")
    assert outbox_row(appointment)["status"] == "sent"
    callback(sid, "delivered")

    row = outbox_row(appointment)
    assert row["status"] == "delivered"
    assert row["provider_message_id"] == sid
    assert row["last_error"] is None


def test_a_late_sent_after_delivered_changes_nothing(sent, callback, outbox_row):
    appointment, sid = sent
    callback(sid, "sent")
    callback(sid, "delivered")

    callback(sid, "sent")
    callback(sid, "queued")

    assert outbox_row(appointment)["status"] == "delivered"


def test_callbacks_out_of_order_end_delivered(sent, callback, outbox_row):
    appointment, sid = sent

    callback(sid, "delivered")
    callback(sid, "sent")

    assert outbox_row(appointment)["status"] == "delivered"


def test_a_late_sent_after_undelivered_keeps_it_undelivered(sent, callback, outbox_row):
    appointment, sid = sent

    callback(sid, "undelivered", 30003)
    callback(sid, "sent")

    row = outbox_row(appointment)
    assert row["status"] == "undelivered"
    assert "30003" in row["last_error"]


def resident_as_vhw(client, auth, world, resident):
    response = client.get(f"/api/v1/residents/{resident.id}", headers=auth(world.users["vhw"]))
    assert response.status_code == 200, response.json
    return response.json


@pytest.mark.parametrize(("twilio_status", "code"),
                         [("undelivered", code) for code in NUMBER_ERRORS]
                         + [("failed", 30006)])
def test_a_number_that_cannot_take_sms_is_flagged_for_the_vhw(
        twilio_status, code, sent, callback, outbox_row, client, auth, world):
    appointment, sid = sent
    assert resident_as_vhw(client, auth, world, world.resident_a1)["sms_problem"] is None

    callback(sid, "sent")
    callback(sid, twilio_status, code)

    row = outbox_row(appointment)
    assert row["status"] == twilio_status
    assert str(code) in row["last_error"]
    resident = resident_as_vhw(client, auth, world, world.resident_a1)
    assert resident["sms_problem_at"] == "2026-12-01T09:00:00Z"
    assert str(code) in resident["sms_problem"]
    # The flag is on that resident only.
    assert db.session.get(Resident, world.resident_a2.id).sms_problem is None


@pytest.mark.parametrize("code", [30001, None])  # queue overflow; no code at all
def test_an_undelivered_sms_for_another_reason_does_not_flag_the_resident(
        code, sent, callback, outbox_row, client, auth, world):
    appointment, sid = sent

    callback(sid, "undelivered", code)

    assert outbox_row(appointment)["status"] == "undelivered"
    resident = resident_as_vhw(client, auth, world, world.resident_a1)
    assert resident["sms_problem"] is None
    assert resident["sms_problem_at"] is None


def test_a_callback_for_an_unknown_message_answers_200_and_changes_nothing(
        sent, callback, outbox_row, client, auth, world):
    appointment, _ = sent
    before = snapshot()

    callback("SM" + "0" * 32, "undelivered", 30003)
    callback("SM" + "f" * 32, "delivered")

    assert snapshot() == before
    assert outbox_row(appointment)["status"] == "sent"
    assert resident_as_vhw(client, auth, world, world.resident_a1)["sms_problem"] is None


def test_a_callback_with_a_status_we_do_not_know_changes_nothing(sent, callback, outbox_row):
    appointment, sid = sent

    callback(sid, "teleported")

    assert outbox_row(appointment)["status"] == "sent"


@pytest.mark.parametrize("error_code", ["²", "١٢", "9" * 5000, "99999999999"])
def test_an_error_code_that_is_no_twilio_code_is_ignored(sent, callback, outbox_row,
                                                         error_code):
    appointment, sid = sent

    callback(sid, "undelivered", error_code)

    row = outbox_row(appointment)
    assert (row["status"], row["last_error"]) == ("undelivered", None)


def test_nul_characters_in_a_form_are_dropped(sent, callback, sms, book, outbox_row):
    """No SMS carries NUL, and PostgreSQL refuses it in text."""
    appointment, sid = sent

    callback(sid + "\x00", "delivered")
    response = sms("hel\x00lo", from_="+86139001390\x0001")

    assert response.status_code == 200
    assert reply_to(response) == render(Kind.REPLY_UNKNOWN, "zh-CN")
    assert outbox_row(appointment)["status"] == "delivered"  # the SID, its NUL dropped


def test_repeating_a_callback_is_harmless(sent, callback, outbox_row, frozen_clock, client,
                                          auth, world):
    appointment, sid = sent
    callback(sid, "undelivered", 30005)
    first = resident_as_vhw(client, auth, world, world.resident_a1)

    frozen_clock.advance(timedelta(minutes=5))
    callback(sid, "undelivered", 30005)
    callback(sid, "undelivered", 30005)

    row = outbox_row(appointment)
    assert row["status"] == "undelivered"
    assert row["attempts"] == 1
    again = resident_as_vhw(client, auth, world, world.resident_a1)
    assert (again["sms_problem"], again["sms_problem_at"]) == (
        first["sms_problem"], first["sms_problem_at"])


def test_repeating_a_delivered_callback_is_harmless(sent, callback, outbox_row):
    appointment, sid = sent

    for _ in range(3):
        callback(sid, "delivered")

    assert outbox_row(appointment)["status"] == "delivered"


# Replies: every keyword, in the language it belongs to, as people type it

# The keywords a resident may send, by the language they are written in.
# Digits work in every language (every SMS says "Reply 1 to confirm...").
TABLE = {
    "en": {
        Intent.CONFIRM: ("1", "YES", "Y", "OK", "OKAY", "CONFIRM"),
        Intent.CANCEL: ("2", "NO", "N", "CANCEL"),
        Intent.RESCHEDULE: ("3", "R", "RESCHEDULE", "CHANGE"),
        Intent.STOP: ("STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT"),
        Intent.START: ("START", "UNSTOP"),
        Intent.HELP: ("HELP", "INFO"),
    },
    "zh-CN": {
        Intent.CONFIRM: ("1", "确认", "是"),
        Intent.CANCEL: ("2", "取消"),
        Intent.RESCHEDULE: ("3", "改期"),
        Intent.STOP: ("TD", "退订", "停止"),
        Intent.START: ("开始",),
        Intent.HELP: ("帮助",),
    },
    "id": {
        Intent.CONFIRM: ("1", "YA"),
        Intent.CANCEL: ("2", "BATAL"),
        Intent.RESCHEDULE: ("3", "UBAH", "UBAH JADWAL"),
        Intent.STOP: ("BERHENTI",),
        Intent.START: ("MULAI",),
        Intent.HELP: ("BANTUAN",),
    },
}
WRITINGS = {
    "as-typed": lambda word: word,
    "lower-padded": lambda word: f"  {word.lower()} \n",
    "title-spaced": lambda word: f"\t{word.title()}  ",
}
REPLY_KIND = {Intent.CONFIRM: Kind.REPLY_CONFIRMED, Intent.CANCEL: Kind.REPLY_CANCELLED,
              Intent.RESCHEDULE: Kind.REPLY_RESCHEDULE, Intent.STOP: Kind.REPLY_STOPPED,
              Intent.START: Kind.REPLY_STARTED, Intent.HELP: Kind.REPLY_HELP}


def cases(intent):
    """(language, text) for every keyword of the intent, the writings taken in turn
    (so every intent meets each of them; test_keywords.py crosses them all)."""
    out = []
    names = list(WRITINGS)
    for shift, (language, by_intent) in enumerate(TABLE.items()):
        for index, word in enumerate(by_intent[intent]):
            writing = names[(index + shift) % len(names)]
            out.append(pytest.param(language, WRITINGS[writing](word),
                                    id=f"{language}-{word}-{writing}"))
    return out


def test_the_table_holds_every_keyword_the_service_knows():
    for intent, words in keywords.KEYWORDS.items():
        table = {word for by_intent in TABLE.values() for word in by_intent[intent]}
        assert table >= set(words), (intent, set(words) - table)
        assert set(words) >= table, (intent, table - set(words))


@pytest.fixture
def speaks(world):
    """Ma Guilan's languages, first one first."""

    def set_languages(*languages):
        set_fields(db.session.get(Resident, world.resident_a1.id), languages=list(languages))

    return set_languages


@pytest.mark.parametrize(("language", "text"), cases(Intent.CONFIRM))
def test_a_confirm_reply_confirms_the_next_appointment(language, text, speaks, book, sms):
    speaks(language)
    appointment = book()

    reply = reply_to(sms(text))

    assert reply == render(Kind.REPLY_CONFIRMED, language)
    assert status_of(appointment) == "confirmed"


@pytest.mark.parametrize(("language", "text"), cases(Intent.CANCEL))
def test_a_cancel_reply_cancels_the_next_appointment_and_says_so_by_sms(
        language, text, speaks, book, sms):
    speaks(language)
    appointment = book()

    reply = reply_to(sms(text))

    assert reply == render(Kind.REPLY_CANCELLED, language)
    cancelled = db.session.get(Appointment, appointment.id)
    assert cancelled.status == "cancelled"
    assert "SMS" in cancelled.cancel_reason
    [notice] = rows(appointment_id=appointment.id, kind=Kind.CANCELLATION)
    assert (notice.status, notice.to, notice.language) == ("pending", PHONE_A1, language)
    assert {r.status for r in rows(appointment_id=appointment.id)
            if r.kind != Kind.CANCELLATION} == {"cancelled"}


@pytest.mark.parametrize(("language", "text"), cases(Intent.RESCHEDULE))
def test_a_reschedule_reply_opens_a_care_request_and_tells_the_vhw(
        language, text, speaks, book, sms, world):
    speaks(language)
    appointment = book()

    reply = reply_to(sms(text))

    assert reply == render(Kind.REPLY_RESCHEDULE, language)
    [request] = care_requests(world.resident_a1)
    assert request.status == "open"
    assert request.service_type_id == appointment.service_type_id
    assert request.latest > START
    [notice] = rows(kind=Kind.VHW_NOTICE)
    assert (notice.to, notice.status, notice.user_id) == (
        VHW_PHONE, "pending", world.users["vhw"].id)
    assert "Ma" in notice.body and "Guilan" not in notice.body
    # Until someone finds a new time, the session stands.
    assert status_of(appointment) == "booked"


@pytest.mark.parametrize(("language", "text"), cases(Intent.STOP))
def test_a_stop_reply_opts_the_number_out_and_suppresses_what_was_queued(
        language, text, speaks, book, sms, world):
    speaks(language)
    appointment = book()
    assert {r.status for r in rows(appointment_id=appointment.id)} == {"pending"}

    reply = reply_to(sms(text))

    assert reply == render(Kind.REPLY_STOPPED, language)
    assert db.session.get(Resident, world.resident_a1.id).opted_out_at == NOW
    queued = rows(appointment_id=appointment.id)
    assert queued and {r.status for r in queued} == {"suppressed"}
    assert all("STOP" in r.last_error for r in queued)
    assert status_of(appointment) == "booked"


@pytest.mark.parametrize(("language", "text"), cases(Intent.START))
def test_a_start_reply_opts_the_number_back_in(language, text, speaks, clinic, sms, world):
    speaks(language)
    set_fields(db.session.get(Resident, world.resident_a1.id), opted_out_at=NOW - timedelta(days=3))

    reply = reply_to(sms(text))

    assert reply == render(Kind.REPLY_STARTED, language)
    assert db.session.get(Resident, world.resident_a1.id).opted_out_at is None


@pytest.mark.parametrize(("language", "text"), cases(Intent.HELP))
def test_a_help_reply_explains_and_changes_nothing(language, text, speaks, book, sms):
    speaks(language)
    book()
    before = snapshot()

    reply = reply_to(sms(text))

    assert reply == render(Kind.REPLY_HELP, language)
    assert snapshot() == before


@pytest.mark.parametrize("text", [
    "", "   ", "hello", "Who is this?", "no problem", "yes but not today", "yes no", "好的",
    "👍", "1 2", "3 o'clock", "STOP IT NOW",
])
def test_a_reply_we_cannot_read_asks_again_and_changes_nothing(text, book, sms):
    book()
    before = snapshot()

    reply = reply_to(sms(text))

    assert reply == render(Kind.REPLY_UNKNOWN, "zh-CN")
    assert snapshot() == before


# Replies: which appointment, which language, which number


def test_the_reply_is_in_the_residents_first_language(speaks, book, sms):
    speaks("id", "zh-CN", "en")
    appointment = book()

    assert reply_to(sms("1")) == "Terima kasih, janji temu Anda sudah dikonfirmasi."
    assert status_of(appointment) == "confirmed"


def test_a_resident_in_a_language_we_do_not_write_gets_english(speaks, book, sms):
    speaks("ug")
    book()

    assert reply_to(sms("是")) == "Thank you, your appointment is confirmed."


def test_a_chinese_resident_gets_chinese(book, sms):
    book()

    assert reply_to(sms("2")) == "您的预约已取消，谢谢告知。"


@pytest.mark.parametrize("text", ["1", "2", "3"])
def test_a_number_with_no_upcoming_appointment_is_told_so(text, clinic, sms, world):
    before = snapshot()

    reply = reply_to(sms(text))

    assert reply == "您目前没有待进行的预约。"
    assert snapshot() == before
    assert care_requests(world.resident_a1) == []


def test_cancelled_and_past_appointments_are_not_upcoming(book, sms, frozen_clock, world):
    gone = book()
    sms("2")  # cancels it
    assert status_of(gone) == "cancelled"
    past = book(start=START + timedelta(hours=3))
    frozen_clock.set(START + timedelta(hours=4))  # it has started and ended
    before = snapshot()

    reply = reply_to(sms("1"))

    assert reply == render(Kind.REPLY_NO_APPOINTMENT, "zh-CN")
    assert snapshot() == before
    assert status_of(past) == "booked"


def test_an_unknown_number_is_told_in_english_it_has_no_appointment(book, sms):
    book()
    before = snapshot()

    reply = reply_to(sms("1", from_="+447700900123"))

    assert reply == "You have no upcoming appointment with us."
    assert snapshot() == before


def test_the_reply_applies_to_the_next_upcoming_appointment(book, sms):
    later = book(start=LATER)          # booked first
    sooner = book(start=START)         # but sooner

    assert reply_to(sms("1")) == render(Kind.REPLY_CONFIRMED, "zh-CN")
    assert (status_of(sooner), status_of(later)) == ("confirmed", "booked")

    assert reply_to(sms("2")) == render(Kind.REPLY_CANCELLED, "zh-CN")
    assert (status_of(sooner), status_of(later)) == ("cancelled", "booked")

    # With the sooner one gone, the next reply is about the later one.
    assert reply_to(sms("1")) == render(Kind.REPLY_CONFIRMED, "zh-CN")
    assert status_of(later) == "confirmed"


def test_confirming_twice_keeps_it_confirmed(book, sms):
    appointment = book()

    sms("1")
    reply = reply_to(sms("yes"))

    assert reply == render(Kind.REPLY_CONFIRMED, "zh-CN")
    assert status_of(appointment) == "confirmed"


def test_a_confirmed_appointment_can_still_be_cancelled_by_sms(book, sms):
    appointment = book()
    sms("1")

    assert reply_to(sms("取消")) == render(Kind.REPLY_CANCELLED, "zh-CN")
    assert status_of(appointment) == "cancelled"


def test_on_a_shared_phone_the_earliest_upcoming_of_either_resident_changes(book, sms, world):
    set_fields(db.session.get(Resident, world.resident_a2.id), phone=PHONE_A1)
    husbands = book(resident=world.resident_a1, start=LATER)
    wifes = book(resident=world.resident_a2, start=START)

    assert reply_to(sms("1")) == render(Kind.REPLY_CONFIRMED, "zh-CN")

    assert (status_of(wifes), status_of(husbands)) == ("confirmed", "booked")


def test_stop_on_a_shared_phone_opts_out_everyone_with_that_number(book, sms, world,
                                                                   set_availability):
    set_availability(world.clinician_b)
    set_fields(db.session.get(Resident, world.resident_a2.id), phone=PHONE_A1)
    first = book(resident=world.resident_a1, start=START)
    second = book(resident=world.resident_a2, start=LATER)
    other = book(resident=world.resident_b, start=START, provider=world.clinician_b)

    assert reply_to(sms("STOP")) == render(Kind.REPLY_STOPPED, "zh-CN")

    residents = {r.id: r for r in db.session.execute(sa.select(Resident)).scalars()}
    assert residents[world.resident_a1.id].opted_out_at == NOW
    assert residents[world.resident_a2.id].opted_out_at == NOW
    assert residents[world.resident_b.id].opted_out_at is None
    assert {r.status for r in rows(appointment_id=first.id)} == {"suppressed"}
    assert {r.status for r in rows(appointment_id=second.id)} == {"suppressed"}
    assert {r.status for r in rows(appointment_id=other.id)} == {"pending"}


def test_after_stop_nothing_is_sent_until_start(book, sms, frozen_clock, sms_outbox, world):
    sms("退订")

    stopped = book(start=START)
    assert {(r.kind, r.status) for r in rows(appointment_id=stopped.id)} == {
        ("confirmation", "suppressed"), ("reminder_2h", "suppressed")}
    assert all("opted out" in r.last_error for r in rows(appointment_id=stopped.id))
    dispatch_due(frozen_clock.now())
    assert sms_outbox == []

    assert reply_to(sms("开始")) == render(Kind.REPLY_STARTED, "zh-CN")
    resumed = book(start=LATER)
    assert {r.status for r in rows(appointment_id=resumed.id)} == {"pending"}
    dispatch_due(frozen_clock.now())
    assert [m["to"] for m in sms_outbox] == [PHONE_A1]
    assert "12月3日" in sms_outbox[0]["body"]


def test_stop_from_an_unknown_number_is_acknowledged(book, sms):
    book()
    before = snapshot()

    assert reply_to(sms("STOP", from_="+447700900123")) == render(Kind.REPLY_STOPPED, "en")
    assert snapshot() == before


def test_a_reschedule_request_reaches_only_vhws_of_the_village_with_a_phone(
        book, sms, world, create_user, frozen_clock, sms_outbox):
    no_phone = create_user("vhw", [world.village_a1])
    elsewhere = create_user("vhw", [world.village_b])
    set_fields(elsewhere, phone="+8613700137009")
    coordinator = world.users["coordinator"]
    set_fields(coordinator, phone="+8613700137008")
    book()

    sms("3")

    notices = rows(kind=Kind.VHW_NOTICE)
    assert [(n.user_id, n.to) for n in notices] == [(world.users["vhw"].id, VHW_PHONE)]
    assert no_phone.id not in {n.user_id for n in notices}
    dispatch_due(frozen_clock.now())
    [to_vhw] = [m for m in sms_outbox if m["to"] == VHW_PHONE]
    # In the vhw's own language, with the resident's first name only.
    assert to_vhw["body"] == "居民Ma：请求改期。请跟进。"


def test_a_cancel_by_sms_sends_the_cancellation_notice(book, sms, frozen_clock, sms_outbox):
    book()

    sms("BATAL")

    dispatch_due(frozen_clock.now())
    assert [m["to"] for m in sms_outbox] == [PHONE_A1]
    assert "已取消" in sms_outbox[0]["body"]
    assert "Guilan" not in sms_outbox[0]["body"]


@pytest.mark.parametrize("text", ["2", "3"])
def test_the_same_message_posted_twice_acts_once_and_answers_the_same(text, book, sms, world):
    appointment = book()
    sid = "SM" + uuid.uuid4().hex

    first = reply_to(sms(text, sid=sid))
    after_first = snapshot()
    second = reply_to(sms(text, sid=sid))

    assert second == first
    assert snapshot() == after_first
    cancelling, rescheduling = (1, 0) if text == "2" else (0, 1)
    assert len(rows(appointment_id=appointment.id, kind=Kind.CANCELLATION)) == cancelling
    assert len(care_requests(world.resident_a1)) == rescheduling
    assert len(rows(kind=Kind.VHW_NOTICE)) == rescheduling


@pytest.mark.parametrize("text", ["1", "2"])
def test_a_crash_before_the_message_is_kept_undoes_what_it_did(text, book, sms, crash_on_keeping):
    """Twilio retries a reply whose answer never came. Had the change been committed
    without the message, the retry would act again: a second "2" would cancel the next
    appointment too."""
    first, second = book(), book(start=LATER)
    sid = "SM" + uuid.uuid4().hex
    stop = crash_on_keeping(InboundMessage)
    assert sms(text, sid=sid).status_code == 500
    stop()
    db.session.rollback()
    assert (status_of(first), status_of(second)) == ("booked", "booked")
    assert rows(appointment_id=first.id, kind=Kind.CANCELLATION) == []

    reply = reply_to(sms(text, sid=sid))

    done = "confirmed" if text == "1" else "cancelled"
    assert reply == render(Kind.REPLY_CONFIRMED if text == "1" else Kind.REPLY_CANCELLED,
                           "zh-CN")
    assert (status_of(first), status_of(second)) == (done, "booked")
    assert reply_to(sms(text, sid=sid)) == reply
    assert (status_of(first), status_of(second)) == (done, "booked")


def test_asking_twice_to_reschedule_in_the_same_second_is_answered_both_times(book, sms, world):
    # A phone on a weak network sends the text twice; the carrier hands both to
    # Twilio, which posts them as two messages (two SIDs) within the same second.
    appointment = book()

    first = sms("3")
    second = sms("改期")

    assert reply_to(first) == render(Kind.REPLY_RESCHEDULE, "zh-CN")
    assert reply_to(second) == render(Kind.REPLY_RESCHEDULE, "zh-CN")
    assert [r.status for r in care_requests(world.resident_a1)][:1] == ["open"]
    assert [n.to for n in rows(kind=Kind.VHW_NOTICE)][:1] == [VHW_PHONE]
    assert status_of(appointment) == "booked"


def test_a_retried_stop_after_start_does_not_opt_out_again(book, sms, world):
    book()
    sid = "SM" + uuid.uuid4().hex
    sms("STOP", sid=sid)
    sms("START")

    assert reply_to(sms("STOP", sid=sid)) == render(Kind.REPLY_STOPPED, "zh-CN")

    assert db.session.get(Resident, world.resident_a1.id).opted_out_at is None


def test_on_a_shared_phone_the_answer_is_in_the_language_of_the_session_owner(
        app, world, twilio_post, create_resident, create_service_type, set_availability,
        create_appointment, frozen_clock):
    create_service_type()
    set_availability(world.clinician_a)
    # resident_a1 (zh-CN, lower id) shares the phone with an Indonesian speaker who has
    # the only upcoming session.
    speaker = create_resident(world.village_a1, name="Siti Aminah",
                              phone=world.resident_a1.phone, languages=["id"])
    create_appointment(speaker, world.clinician_a, datetime(2026, 12, 3, 2, 0, tzinfo=UTC))

    response = twilio_post("/webhooks/twilio/inbound", {
        "MessageSid": "SM" + "5" * 32, "From": world.resident_a1.phone, "To": "+15005550006",
        "Body": "1"})

    assert response.status_code == 200
    assert messages.render("reply_confirmed", "id") in response.get_data(as_text=True)
