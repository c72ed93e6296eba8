"""The SMS outbox: what a booking, a reschedule and a cancellation queue, what
the texts say, who may see the rows, and the village health worker's evening digest.

The clock is frozen at 2026-12-01 09:00 UTC (17:00 in Asia/Shanghai). Ma Guilan
(resident_a1, +8613900139001) lives in Nanshan Village (village_a1), whose
village health worker is world.users["vhw"].
"""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from careservice.core.auth import Actor
from careservice.extensions import db
from careservice.people.models import Resident
from careservice.reminders import outbox
from careservice.reminders.dispatch import dispatch_due
from careservice.reminders.jobs import queue_vhw_digests
from careservice.reminders.messages import Kind
from careservice.reminders.models import Reminder
from careservice.scheduling import booking
from careservice.scheduling.models import Appointment, Status

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)      # Tue 17:00 in Shanghai
TOMORROW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)  # Wed 2 Dec, 10:00 in Shanghai
START = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)     # Thu 3 Dec, 10:00 in Shanghai
PHONE_A1 = "+8613900139001"
VHW_PHONE = "+8613700137001"
ROW_FIELDS = {"id", "kind", "channel", "to", "status", "send_at", "sent_at", "attempts",
              "segments", "provider_message_id", "last_error"}
SYSTEM = Actor.system("test_outbox")

# What a resident's SMS must never carry.
SERVICE_NAME = "Diabetes follow-up"
NOTES = "Type 2 diabetes; insulin since 2019; lives alone"


# Helpers


def rows(**filters) -> list[Reminder]:
    db.session.expire_all()
    query = sa.select(Reminder).filter_by(**filters).order_by(Reminder.send_at, Reminder.id)
    return db.session.execute(query).scalars().all()


def set_fields(record, **values):
    for name, value in values.items():
        setattr(record, name, value)
    db.session.commit()


def utc_z(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Fixtures


@pytest.fixture
def clinic(app, world, create_service_type, set_availability, frozen_clock):
    create_service_type(code="diabetes_followup", name=SERVICE_NAME)
    set_availability(world.clinician_a)
    set_fields(db.session.get(Resident, world.resident_a1.id), notes=NOTES)
    return world


@pytest.fixture
def book(clinic, create_appointment):
    def make(resident=None, start=START, provider=None, service_type="diabetes_followup"):
        return create_appointment(resident or clinic.resident_a1, provider or clinic.clinician_a,
                                  start, service_type=service_type)

    return make


@pytest.fixture
def outbox_of(client, auth, world):
    """GET /api/v1/appointments/{id}/reminders as a user (the vhw by default)."""

    def get(appointment, user=None, status=200):
        response = client.get(f"/api/v1/appointments/{appointment.id}/reminders",
                              headers=auth(user or world.users["vhw"]))
        assert response.status_code == status, response.json
        return response.json.get("items") if status == 200 else response.json

    return get


@pytest.fixture
def village(create_region, world):
    """Another village of the same township, in a zone of its own."""

    def make(timezone, name):
        return create_region("village", world.town_a, name=name, timezone=timezone)

    return make


# GET /api/v1/appointments/{id}/reminders


def test_the_vhw_sees_the_outbox_rows_of_a_booking(book, outbox_of):
    appointment = book()

    items = outbox_of(appointment)

    assert [(i["kind"], i["status"]) for i in items] == [
        ("confirmation", "pending"), ("reminder_24h", "pending"), ("reminder_2h", "pending")]
    for item in items:
        assert set(item) >= ROW_FIELDS
        assert item["channel"] == "sms"
        assert item["to"] == PHONE_A1
        assert (item["sent_at"], item["attempts"], item["provider_message_id"],
                item["last_error"]) == (None, 0, None, None)
        assert item["segments"] >= 1
    assert [i["send_at"] for i in items] == [
        "2026-12-01T09:00:00Z", "2026-12-02T02:00:00Z", "2026-12-03T00:00:00Z"]


def test_a_sent_row_shows_when_and_under_which_sid(book, outbox_of, frozen_clock, sms_outbox):
    appointment = book()

    dispatch_due(frozen_clock.now())

    [confirmation, *later] = outbox_of(appointment)
    assert confirmation["status"] == "sent"
    assert confirmation["sent_at"] == "2026-12-01T09:00:00Z"
    assert confirmation["attempts"] == 1
    assert confirmation["provider_message_id"] == sms_outbox[0]["sid"]
    assert [i["status"] for i in later] == ["pending", "pending"]


def test_a_booking_tomorrow_skips_the_reminder_that_is_already_due(book, outbox_of):
    appointment = book(start=TOMORROW)  # 24 h before was this morning

    assert [i["kind"] for i in outbox_of(appointment)] == ["confirmation", "reminder_2h"]


def test_the_clinician_of_the_appointment_sees_the_number_masked(book, outbox_of, world):
    appointment = book()

    as_vhw = outbox_of(appointment)
    as_clinician = outbox_of(appointment, world.users["clinician"])

    assert {i["to"] for i in as_clinician} == {"+86139****9001"}
    assert all(PHONE_A1 not in str(item) for item in as_clinician)
    # Nothing else is hidden from them.
    strip = [{k: v for k, v in item.items() if k != "to"} for item in as_vhw]
    assert [{k: v for k, v in item.items() if k != "to"} for item in as_clinician] == strip


def test_the_coordinator_of_the_county_sees_the_full_number(book, outbox_of, world):
    appointment = book()

    assert {i["to"] for i in outbox_of(appointment, world.users["coordinator"])} == {PHONE_A1}


def test_the_outbox_of_an_appointment_out_of_scope_is_404(book, outbox_of, world, create_user):
    appointment = book()
    vhw_elsewhere = create_user("vhw", [world.village_b])
    other_clinician = create_user("clinician", provider=world.clinician_b)
    caregiver = world.users["caregiver"]

    for user in (vhw_elsewhere, other_clinician, caregiver):
        body = outbox_of(appointment, user, status=404)
        assert body["error"]["code"] == "not_found"


def test_the_outbox_of_an_appointment_that_does_not_exist_is_404(clinic, outbox_of):
    class Missing:
        id = 999_999

    assert outbox_of(Missing, status=404)["error"]["code"] == "not_found"


def test_the_outbox_needs_a_token(book, client):
    appointment = book()

    response = client.get(f"/api/v1/appointments/{appointment.id}/reminders")

    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"


# What the texts say


def assert_minimum(body, *, name, full_name):
    """First name only; no service, no notes, no provider."""
    assert name in body
    if full_name != name:
        assert full_name not in body
    for secret in (SERVICE_NAME, "Diabetes", "diabetes", "diabetes_followup", "insulin",
                   "lives alone", "Dr. Lin", "Lin"):
        assert secret not in body, (secret, body)


def test_a_chinese_residents_sms_carry_first_name_date_time_link_and_how_to_reply(
        book, frozen_clock, sms_outbox):
    appointment = book()
    join = appointment.join_url
    assert join

    queued = rows(appointment_id=appointment.id)
    dispatch_due(frozen_clock.now())

    assert [m["body"] for m in sms_outbox] == [
        f"Ma您好，已为您安排健康预约：12月3日(周四) 10:00。视频：{join} 回复1确认，2取消，3改期。"]
    assert [r.language for r in queued] == ["zh-CN"] * 3
    for row in queued:
        assert_minimum(row.body, name="Ma", full_name="Ma Guilan")
        assert "Guilan" not in row.body
        assert "12月3日(周四) 10:00" in row.body
        assert join in row.body
        assert "回复1确认，2取消，3改期" in row.body


def test_sms_use_the_preferred_name(clinic, book, world):
    set_fields(db.session.get(Resident, world.resident_a1.id), preferred_name="Guilan")
    appointment = book()

    for row in rows(appointment_id=appointment.id):
        assert row.body.startswith(("Guilan您好", "提醒：Guilan", "Guilan，"))
        assert "Ma Guilan" not in row.body


def test_a_home_visit_sms_says_someone_will_come_and_has_no_link(
        clinic, create_service_type, set_availability, create_appointment, world):
    create_service_type(code="elder_home_visit", name="Elder home visit (dementia)",
                        modality="home_visit", duration_minutes=60, buffer_minutes=15,
                        required_skill="elder_care")
    set_availability(world.caregiver_a)
    appointment = create_appointment(world.resident_a1, world.caregiver_a, START,
                                     service_type="elder_home_visit")

    queued = rows(appointment_id=appointment.id)

    assert queued[0].body == ("Ma您好，已为您安排上门照护：12月3日(周四) 10:00。"
                              "照护员会上门。回复1确认，2取消，3改期。")
    for row in queued:
        assert "照护员会上门" in row.body
        assert "http" not in row.body
        assert "dementia" not in row.body and "Elder" not in row.body
        assert "Ma Lan" not in row.body  # the caregiver's name


def test_a_resident_in_a_language_we_do_not_write_gets_english_in_their_own_zone(
        book, village, create_resident):
    urumqi = village("Asia/Urumqi", "Kashgar Road Village")
    resident = create_resident(urumqi, name="Aynur Tursun", phone="+8613900139011",
                               languages=["ug"], notes=NOTES)
    appointment = book(resident=resident)  # 10:00 in Shanghai is 08:00 in Urumqi

    queued = rows(appointment_id=appointment.id)

    assert queued[0].language == "en"
    assert queued[0].body == (
        f"Hi Aynur, your health appointment is booked for Thu 3 Dec at 08:00. "
        f"Join: {appointment.join_url} Reply 1 to confirm, 2 to cancel, 3 to change.")
    for row in queued:
        assert_minimum(row.body, name="Aynur", full_name="Aynur Tursun")
        assert "Thu 3 Dec at 08:00" in row.body
        assert "Reply 1 to confirm, 2 to cancel, 3 to change." in row.body


def test_an_indonesian_speaker_gets_indonesian(book, village, create_resident):
    jakarta = village("Asia/Jakarta", "Desa Sukamaju")
    resident = create_resident(jakarta, name="Siti Rahayu", phone="+6281234567890",
                               languages=["id", "en"])
    appointment = book(resident=resident)

    [confirmation, *_] = rows(appointment_id=appointment.id)

    assert confirmation.body == (
        f"Halo Siti, janji temu kesehatan Anda dijadwalkan Kam 3 Des pukul 09.00. "
        f"Gabung: {appointment.join_url} Balas 1 untuk konfirmasi, 2 batal, 3 ubah jadwal.")


# One row per (appointment, kind, start)


def test_queueing_a_booking_again_adds_nothing(book, frozen_clock):
    appointment = book()
    before = [(r.id, r.kind, r.status, r.send_at) for r in rows()]

    outbox.queue_booking(appointment)
    frozen_clock.advance(timedelta(hours=1))
    outbox.queue_booking(appointment)
    db.session.commit()

    assert [(r.id, r.kind, r.status, r.send_at) for r in rows()] == before


def test_a_reschedule_voids_what_was_pending_and_queues_the_change(
        book, client, auth, world, outbox_of, frozen_clock, sms_outbox):
    old = book()
    dispatch_due(frozen_clock.now())  # the confirmation went out
    sms_outbox.clear()
    later = START + timedelta(days=1)  # Fri 4 Dec, 10:00 in Shanghai

    response = client.post(f"/api/v1/appointments/{old.id}/reschedule",
                           json={"start": later.isoformat()}, headers=auth(world.users["vhw"]))

    assert response.status_code == 201, response.json
    new = db.session.get(Appointment, response.json["id"])
    assert [(i["kind"], i["status"]) for i in outbox_of(old)] == [
        ("confirmation", "sent"), ("reminder_24h", "cancelled"), ("reminder_2h", "cancelled")]
    assert all(i["last_error"] for i in outbox_of(old) if i["status"] == "cancelled")
    assert [(i["kind"], i["status"], i["send_at"]) for i in outbox_of(new)] == [
        ("change", "pending", utc_z(NOW)),
        ("reminder_24h", "pending", utc_z(later - timedelta(hours=24))),
        ("reminder_2h", "pending", utc_z(later - timedelta(hours=2)))]
    [change] = rows(appointment_id=new.id, kind=Kind.CHANGE)
    assert "12月4日(周五) 10:00" in change.body
    assert new.join_url in change.body

    dispatch_due(frozen_clock.now())
    assert [m["body"] for m in sms_outbox] == [change.body]

    # A day on, only the new session's 24 h reminder goes, not the old one's.
    frozen_clock.set(START - timedelta(hours=23))
    dispatch_due(frozen_clock.now())
    assert len(sms_outbox) == 1
    frozen_clock.set(later - timedelta(hours=23))
    dispatch_due(frozen_clock.now())
    assert len(sms_outbox) == 2 and "12月4日(周五) 10:00" in sms_outbox[1]["body"]


def test_a_cancellation_voids_the_reminders_and_tells_the_resident(
        book, client, auth, world, outbox_of, frozen_clock, sms_outbox):
    appointment = book()

    response = client.post(f"/api/v1/appointments/{appointment.id}/cancel",
                           json={"reason": "resident in hospital"},
                           headers=auth(world.users["vhw"]))

    assert response.status_code == 200, response.json
    assert [(i["kind"], i["status"]) for i in outbox_of(appointment)] == [
        ("confirmation", "cancelled"), ("cancellation", "pending"),
        ("reminder_24h", "cancelled"), ("reminder_2h", "cancelled")]
    dispatch_due(frozen_clock.now())
    [sent] = sms_outbox
    assert sent["body"] == "Ma您好，您12月3日(周四) 10:00的健康预约已取消。如有疑问请联系村医。"
    assert "hospital" not in sent["body"]


@pytest.mark.parametrize(("change", "why"), [
    ({"sms_consent": False}, "consent"),
    ({"opted_out_at": NOW - timedelta(days=2)}, "opted out"),
    ({"phone": None}, "no phone"),
])
def test_a_resident_we_may_not_text_gets_suppressed_rows_saying_why(
        change, why, clinic, book, world, outbox_of, frozen_clock, sms_outbox):
    set_fields(db.session.get(Resident, world.resident_a1.id), **change)

    appointment = book()

    items = outbox_of(appointment)
    assert [i["kind"] for i in items] == ["confirmation", "reminder_24h", "reminder_2h"]
    assert {i["status"] for i in items} == {"suppressed"}
    assert all(why in i["last_error"] for i in items)
    dispatch_due(frozen_clock.now())
    frozen_clock.set(START - timedelta(hours=2))
    dispatch_due(frozen_clock.now())
    assert sms_outbox == []


def test_a_booking_made_in_quiet_hours_is_confirmed_in_the_morning_of_the_residents_zone(
        book, village, create_resident, frozen_clock, outbox_of, sms_outbox, world):
    urumqi = village("Asia/Urumqi", "Kashgar Road Village")
    westerner = create_resident(urumqi, name="Aynur Tursun", phone="+8613900139011")
    frozen_clock.set(datetime(2026, 12, 1, 14, 0, tzinfo=UTC))  # 22:00 Shanghai, 20:00 Urumqi

    in_shanghai = book()
    in_urumqi = book(resident=westerner, start=START + timedelta(hours=1))

    coordinator = world.users["coordinator"]
    assert outbox_of(in_shanghai, coordinator)[0]["send_at"] == "2026-12-02T00:00:00Z"  # 08:00
    assert outbox_of(in_urumqi, coordinator)[0]["send_at"] == "2026-12-01T14:00:00Z"  # at once
    dispatch_due(frozen_clock.now())
    assert [m["to"] for m in sms_outbox] == ["+8613900139011"]
    frozen_clock.set(datetime(2026, 12, 2, 0, 0, tzinfo=UTC))
    dispatch_due(frozen_clock.now())
    assert [m["to"] for m in sms_outbox] == ["+8613900139011", PHONE_A1]


# The village health worker's evening digest


@pytest.fixture
def vhw(app, world):
    user = world.users["vhw"]
    set_fields(user, phone=VHW_PHONE, language="zh-CN")
    return user


@pytest.fixture
def tomorrows_sessions(clinic, book, world, create_resident, create_service_type,
                       set_availability, create_appointment):
    """Tomorrow (Wed 2 Dec) in Nanshan Village: Ma Guilan at 10:00 (video), Zhang Shulan
    at 14:00 (home visit); Hu Meilan's 12:00 was cancelled. Also Ma on Thursday, and
    Yang Fengying of another county tomorrow."""
    create_service_type(code="elder_home_visit", name="Elder home visit",
                        modality="home_visit", duration_minutes=60, buffer_minutes=15,
                        required_skill="elder_care")
    set_availability(world.caregiver_a)
    set_availability(world.clinician_b)
    zhang = create_resident(world.village_a1, name="Zhang Shulan", phone="+8613900139021")
    hu = create_resident(world.village_a1, name="Hu Meilan", phone="+8613900139022")
    book(start=TOMORROW)
    create_appointment(zhang, world.caregiver_a, TOMORROW + timedelta(hours=4),
                       service_type="elder_home_visit")
    gone = book(resident=hu, start=TOMORROW + timedelta(hours=2))
    booking.change_status(SYSTEM, gone.id, Status.CANCELLED, reason="moved away")
    book(start=START)
    book(resident=world.resident_b, provider=world.clinician_b, start=TOMORROW)


def digests():
    return rows(kind=Kind.VHW_DIGEST)


def test_at_six_in_the_evening_the_vhw_gets_tomorrows_sessions(
        vhw, tomorrows_sessions, frozen_clock, sms_outbox):
    dispatch_due(frozen_clock.now())  # the residents' booking confirmations
    sms_outbox.clear()
    frozen_clock.set(datetime(2026, 12, 1, 10, 0, tzinfo=UTC))  # 18:00 in Shanghai

    assert queue_vhw_digests() == 1

    [digest] = digests()
    assert (digest.to, digest.user_id, digest.status) == (VHW_PHONE, vhw.id, "pending")
    assert digest.body == "12月2日(周三)共2个预约：10:00 Ma 视频；14:00 Zhang 上门"
    for absent in ("Guilan", "Shulan", "Hu", "Yang", "12:00"):
        assert absent not in digest.body
    dispatch_due(frozen_clock.now())
    assert [(m["to"], m["body"]) for m in sms_outbox] == [(VHW_PHONE, digest.body)]


def test_no_digest_before_six_in_the_evening(vhw, tomorrows_sessions, frozen_clock):
    assert queue_vhw_digests() == 0  # 17:00 in Shanghai
    frozen_clock.set(datetime(2026, 12, 1, 9, 59, 59, tzinfo=UTC))
    assert queue_vhw_digests() == 0

    assert digests() == []


def test_the_digest_is_queued_once_an_evening(vhw, tomorrows_sessions, frozen_clock):
    for utc_hour, minute in ((10, 0), (10, 15), (12, 30), (15, 45)):  # 18:00 to 23:45 local
        frozen_clock.set(datetime(2026, 12, 1, utc_hour, minute, tzinfo=UTC))
        queue_vhw_digests()

    assert len(digests()) == 1


def test_no_digest_for_an_evening_without_sessions(vhw, clinic, book, frozen_clock):
    book(start=START)  # the day after tomorrow
    frozen_clock.set(datetime(2026, 12, 1, 10, 0, tzinfo=UTC))

    assert queue_vhw_digests() == 0
    assert digests() == []


def test_no_digest_for_a_vhw_without_a_phone(world, tomorrows_sessions, frozen_clock):
    assert world.users["vhw"].phone is None
    frozen_clock.set(datetime(2026, 12, 1, 10, 0, tzinfo=UTC))

    assert queue_vhw_digests() == 0
    assert digests() == []


def test_each_vhw_gets_the_sessions_of_their_own_villages(
        vhw, tomorrows_sessions, world, create_user, frozen_clock):
    other = create_user("vhw", [world.village_b])
    set_fields(other, phone="+8613700137009")
    frozen_clock.set(datetime(2026, 12, 1, 10, 0, tzinfo=UTC))

    assert queue_vhw_digests() == 2

    bodies = {d.to: d.body for d in digests()}
    assert "Yang" in bodies["+8613700137009"] and "Ma" not in bodies["+8613700137009"]
    assert "Yang" not in bodies[VHW_PHONE]
