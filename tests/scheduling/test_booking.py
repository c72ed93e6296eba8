"""/api/v1/appointments: booking, conflicts, scope, the lifecycle, rescheduling
and recording, as village health workers, coordinators and providers meet them.

The clock is frozen at 2026-12-01 09:00 UTC (17:00 in Asia/Shanghai, the
providers' zone); providers work 08:00-18:00 local, so the next bookable day
is 2026-12-02 and START (10:00 local) lies well inside notice and horizon.
"""

import re
import threading
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from careservice.core.auth import Actor
from careservice.extensions import db
from careservice.people import services as people
from careservice.scheduling import booking
from careservice.scheduling.models import Status

APPOINTMENTS = "/api/v1/appointments"
RECORD = f"{APPOINTMENTS}/record"
SHANGHAI = ZoneInfo("Asia/Shanghai")
SYSTEM = Actor.system("test_booking")

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
START = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
PAST = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)  # the day before yesterday, 10:00 local

API_FIELDS = {"id", "resident_id", "provider_id", "service_type", "start", "end", "modality",
              "join_url", "status", "booked_by", "on_behalf", "series_id",
              "rescheduled_from_id", "cancel_reason", "created_at", "updated_at", "recorded"}
RESIDENT_PROVIDER_FIELDS = {"id", "preferred_name", "birth_date", "sex", "region_id",
                            "languages"}


# Helpers


def at(minutes: int = 0, base: datetime = START) -> datetime:
    return base + timedelta(minutes=minutes)


def wire(instant: datetime) -> str:
    """How a client in Ningxia sends an instant: local time with its offset."""
    return instant.astimezone(SHANGHAI).isoformat()


def utc_z(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def booking_body(resident, provider, start, service_type="gp_consult", **extra):
    body = {"resident_id": resident.id, "provider_id": provider.id,
            "service_type": service_type, "start": wire(start)}
    body.update(extra)
    return body


def assert_error(response, status, code):
    assert response.status_code == status, response.json
    assert response.json["error"]["code"] == code
    assert response.json["error"]["message"]


def field_errors(response):
    assert_error(response, 422, "validation_error")
    return response.json["error"]["fields"]


def live_overlaps(party: str, end_column: str):
    """Pairs of live appointments of one provider (or resident) that overlap."""
    return db.session.execute(sa.text(
        f"SELECT a.id, b.id FROM appointments a JOIN appointments b "
        f"ON a.{party} = b.{party} AND a.id < b.id "
        f"WHERE a.status <> 'cancelled' AND b.status <> 'cancelled' "
        f"AND a.start_at < b.{end_column} AND b.start_at < a.{end_column}"
    )).all()


def appointment_count() -> int:
    db.session.rollback()
    return db.session.execute(sa.text("SELECT count(*) FROM appointments")).scalar_one()


# Fixtures


@pytest.fixture(autouse=True)
def no_double_booking_left_behind(app):
    """Whatever a test did, the table never holds overlapping live sessions."""
    yield
    db.session.rollback()
    assert live_overlaps("provider_id", "block_end_at") == []
    assert live_overlaps("resident_id", "end_at") == []


@pytest.fixture
def scene(frozen_clock, world, create_service_type, set_availability):
    """The world, a GP video consult (20 + 5 min), an elder-care home visit (60 min),
    and every provider available every day 08:00-18:00 local."""
    create_service_type()
    create_service_type(code="elder_home_visit", name="Home visit", modality="home_visit",
                        duration_minutes=60, buffer_minutes=0, required_skill="elder_care")
    for provider in (world.clinician_a, world.clinician_b, world.caregiver_a):
        set_availability(provider)
    return world


@pytest.fixture
def as_role(scene, auth):
    """Bearer headers for a role of the world, issued at the clock's current time."""

    def headers(role, **extra):
        return auth(scene.users[role], **extra)

    return headers


@pytest.fixture
def book(client, as_role):
    def post(resident, provider, start, role="admin", service_type="gp_consult", **extra):
        return client.post(APPOINTMENTS, json=booking_body(resident, provider, start,
                                                           service_type, **extra),
                           headers=as_role(role))

    return post


@pytest.fixture
def show(client, as_role):
    def get(appointment_id, role="admin"):
        return client.get(f"{APPOINTMENTS}/{appointment_id}", headers=as_role(role))

    return get


# Booking: what comes back


def test_vhw_booking_returns_every_field_of_the_appointment(scene, book):
    w = scene

    response = book(w.resident_a1, w.clinician_a, START, role="vhw")

    assert response.status_code == 201, response.json
    body = response.json
    assert set(body) >= API_FIELDS
    assert isinstance(body["id"], int)
    assert body["resident_id"] == w.resident_a1.id
    assert body["provider_id"] == w.clinician_a.id
    assert body["service_type"] == "gp_consult"
    assert body["start"] == "2026-12-02T02:00:00Z"
    assert body["end"] == "2026-12-02T02:20:00Z"
    assert body["modality"] == "video"
    assert body["join_url"]
    assert body["status"] == "booked"
    assert body["booked_by"] == w.users["vhw"].id
    assert body["on_behalf"] is True
    assert body["series_id"] is None
    assert body["rescheduled_from_id"] is None
    assert body["cancel_reason"] is None
    assert body["recorded"] is False
    assert body["created_at"] == body["updated_at"] == "2026-12-01T09:00:00Z"


def test_a_booking_can_be_read_back_as_it_was_returned(scene, book, show):
    created = book(scene.resident_a1, scene.clinician_a, START, role="vhw").json

    response = show(created["id"], role="vhw")

    assert response.status_code == 200
    assert response.json == created


def test_clinician_booking_their_own_session_is_not_on_behalf(scene, book, create_appointment):
    w = scene
    create_appointment(w.resident_a1, w.clinician_a, START)  # the clinician's resident now

    response = book(w.resident_a1, w.clinician_a, at(120), role="clinician")

    assert response.status_code == 201, response.json
    assert response.json["on_behalf"] is False
    assert response.json["booked_by"] == w.users["clinician"].id


def test_admin_booking_is_on_behalf(scene, book):
    response = book(scene.resident_b, scene.clinician_b, START, role="admin")

    assert response.status_code == 201, response.json
    assert response.json["on_behalf"] is True
    assert response.json["booked_by"] == scene.users["admin"].id


def test_join_url_is_unguessable_per_booking_and_follows_the_setting(app, scene, book,
                                                                     monkeypatch):
    monkeypatch.setitem(app.config, "JOIN_URL_TEMPLATE", "https://rooms.example.test/j/{token}")
    w = scene

    first = book(w.resident_a1, w.clinician_a, START).json["join_url"]
    second = book(w.resident_a2, w.clinician_a, at(60)).json["join_url"]

    pattern = re.compile(r"^https://rooms\.example\.test/j/([A-Za-z0-9_-]{16,})$")
    assert pattern.match(first), first
    assert pattern.match(second), second
    assert first != second
    assert pattern.match(first).group(1) not in (str(w.resident_a1.id), str(w.clinician_a.id))


def test_phone_consult_has_no_join_url(scene, book, create_service_type):
    create_service_type(code="chronic_followup", name="Chronic follow-up", modality="phone",
                        duration_minutes=15, buffer_minutes=5, required_skill="gp")

    response = book(scene.resident_a1, scene.clinician_a, START, service_type="chronic_followup")

    assert response.status_code == 201, response.json
    assert response.json["modality"] == "phone"
    assert response.json["join_url"] is None
    assert response.json["end"] == "2026-12-02T02:15:00Z"


@pytest.fixture
def mapped(scene, create_region, create_resident):
    """Coordinates: the caregiver lives in village a1; a2 lies 0.1 degree of
    latitude north (11.1 km), a3 0.3 degree north (33.4 km, 22.2 km from a2)."""
    w = scene
    people.update_region(SYSTEM, w.village_a1.id, {"latitude": 36.0, "longitude": 106.0})
    people.update_region(SYSTEM, w.village_a2.id, {"latitude": 36.1, "longitude": 106.0})
    w.village_a3 = create_region("village", w.town_a, name="Xinzhuang Village",
                                 latitude=36.3, longitude=106.0)
    w.resident_a3 = create_resident(w.village_a3, name="Zhou Lan", phone="+8613900139004")
    return w


def minutes_at(speed_kmh: float, km: float) -> float:
    return km / speed_kmh * 60


def test_home_visit_carries_village_and_travel_from_home_then_previous_visit(mapped, book):
    w = mapped

    first = book(w.resident_a2, w.caregiver_a, START, role="coordinator",
                 service_type="elder_home_visit")
    second = book(w.resident_a3, w.caregiver_a, at(180), role="coordinator",
                  service_type="elder_home_visit")
    next_day = book(w.resident_a2, w.caregiver_a, at(24 * 60), role="coordinator",
                    service_type="elder_home_visit")

    for response in (first, second, next_day):
        assert response.status_code == 201, response.json
        assert response.json["modality"] == "home_visit"
        assert response.json["join_url"] is None
    assert first.json["end"] == "2026-12-02T03:00:00Z"
    assert first.json["visit_region_id"] == w.village_a2.id
    assert second.json["visit_region_id"] == w.village_a3.id
    # Home (a1) to a2: 11.1 km at 30 km/h.
    assert abs(first.json["travel_minutes"] - minutes_at(30, 11.12)) <= 1
    # From the morning's visit in a2, not from home (33.4 km, 67 minutes).
    assert abs(second.json["travel_minutes"] - minutes_at(30, 22.24)) <= 1
    # A new day starts from home again, not from yesterday's last visit in a3.
    assert abs(next_day.json["travel_minutes"] - minutes_at(30, 11.12)) <= 1


def test_travel_minutes_follow_the_speed_setting(app, mapped, book, monkeypatch):
    monkeypatch.setitem(app.config, "TRAVEL_SPEED_KMH", 15)

    response = book(mapped.resident_a2, mapped.caregiver_a, START,
                    service_type="elder_home_visit")

    assert response.status_code == 201, response.json
    assert abs(response.json["travel_minutes"] - minutes_at(15, 11.12)) <= 1


# Booking: conflicts


@pytest.mark.parametrize("offset, status", [
    (0, 409),      # the same slot
    (10, 409),     # inside the session
    (20, 409),     # right after the session, in its 5-minute buffer
    (24, 409),     # still in the buffer
    (25, 201),     # the buffer is over
    (-20, 409),    # the new session's own buffer runs into the booked one
    (-25, 201),    # session and buffer end as the booked one starts
])
def test_provider_time_is_held_for_the_session_and_its_buffer(scene, book, offset, status):
    w = scene
    assert book(w.resident_a1, w.clinician_a, START).status_code == 201

    response = book(w.resident_a2, w.clinician_a, at(offset))

    if status == 409:
        assert_error(response, 409, "slot_unavailable")
        assert appointment_count() == 1
    else:
        assert response.status_code == 201, response.json


@pytest.mark.parametrize("offset, status", [(0, 409), (10, 409), (-10, 409), (20, 201),
                                            (-20, 201)])
def test_resident_busy_with_another_provider_is_refused(scene, book, offset, status):
    w = scene
    assert book(w.resident_a1, w.clinician_a, START).status_code == 201

    response = book(w.resident_a1, w.clinician_b, at(offset))

    if status == 409:
        assert_error(response, 409, "slot_unavailable")
        assert appointment_count() == 1
    else:
        assert response.status_code == 201, response.json


def test_back_to_back_sessions_without_buffer_are_both_accepted(scene, book,
                                                                create_service_type):
    create_service_type(code="quick_check", name="Quick check", duration_minutes=20,
                        buffer_minutes=0)

    first = book(scene.resident_a1, scene.clinician_a, START, service_type="quick_check")
    second = book(scene.resident_a2, scene.clinician_a, at(20), service_type="quick_check")

    assert first.status_code == 201, first.json
    assert second.status_code == 201, second.json
    assert first.json["end"] == second.json["start"]


@pytest.mark.parametrize("local_time, status", [
    ("07:40", 409),  # before the window opens
    ("08:00", 201),
    ("17:35", 201),  # session and buffer end at 18:00
    ("17:40", 409),  # the session fits, its buffer does not
    ("18:00", 409),
    ("21:00", 409),
])
def test_booking_must_fit_the_providers_availability(scene, book, local_time, status):
    hour, minute = map(int, local_time.split(":"))
    start = datetime(2026, 12, 2, hour, minute, tzinfo=SHANGHAI)

    response = book(scene.resident_a1, scene.clinician_a, start)

    if status == 409:
        assert_error(response, 409, "slot_unavailable")
    else:
        assert response.status_code == 201, response.json


@pytest.mark.parametrize("start, status", [
    (datetime(2026, 12, 2, 1, 55, tzinfo=UTC), 409),  # 115 minutes ahead
    (datetime(2026, 12, 2, 2, 0, tzinfo=UTC), 201),   # exactly the 120-minute notice
])
def test_booking_needs_the_minimum_notice(scene, book, frozen_clock, start, status):
    frozen_clock.set(datetime(2026, 12, 2, 0, 0, tzinfo=UTC))  # 08:00 local

    response = book(scene.resident_a1, scene.clinician_a, start)

    if status == 409:
        assert_error(response, 409, "slot_unavailable")
    else:
        assert response.status_code == 201, response.json


@pytest.mark.parametrize("start, status", [
    (datetime(2027, 3, 1, 2, 0, tzinfo=UTC), 201),   # 89 days ahead
    (datetime(2027, 3, 1, 9, 0, tzinfo=UTC), 201),   # exactly 90 days
    (datetime(2027, 3, 1, 9, 25, tzinfo=UTC), 409),  # 25 minutes past the horizon
    (datetime(2027, 3, 2, 2, 0, tzinfo=UTC), 409),
])
def test_booking_stops_at_the_horizon(scene, book, start, status):
    response = book(scene.resident_a1, scene.clinician_a, start)

    if status == 409:
        assert_error(response, 409, "slot_unavailable")
    else:
        assert response.status_code == 201, response.json


def test_provider_daily_cap_is_enforced_per_local_day(scene, book, create_provider,
                                                      set_availability, create_appointment):
    w = scene
    capped = create_provider(w.county_a, name="Dr. Cap", max_sessions_per_day=2,
                             service_region_ids=[w.county_a.id])
    set_availability(capped)
    morning = create_appointment(w.resident_a1, capped, START)
    create_appointment(w.resident_a2, capped, at(60))

    full = book(w.resident_a1, capped, at(120))
    tomorrow = book(w.resident_a1, capped, at(24 * 60))

    assert_error(full, 409, "slot_unavailable")
    assert tomorrow.status_code == 201, tomorrow.json
    booking.change_status(SYSTEM, morning.id, Status.CANCELLED, reason="ill")
    freed = book(w.resident_a1, capped, at(120))
    assert freed.status_code == 201, freed.json


def test_daily_cap_counts_the_providers_local_day_not_the_utc_day(
        scene, book, create_provider, set_availability, create_appointment):
    w = scene
    capped = create_provider(w.county_a, name="Dr. Early", max_sessions_per_day=1,
                             service_region_ids=[w.county_a.id])
    set_availability(capped, start=time(6))
    create_appointment(w.resident_a1, capped, datetime(2026, 12, 2, 12, 0, tzinfo=SHANGHAI))

    # 07:00 on the same local day, though the day before in UTC.
    same_day = book(w.resident_a2, capped, datetime(2026, 12, 2, 7, 0, tzinfo=SHANGHAI))
    # 07:00 the next local day, though the same day in UTC.
    next_day = book(w.resident_a2, capped, datetime(2026, 12, 3, 7, 0, tzinfo=SHANGHAI))

    assert_error(same_day, 409, "slot_unavailable")
    assert next_day.status_code == 201, next_day.json


# Booking: validation


@pytest.mark.parametrize("role, change, field", [
    ("admin", lambda w: {"resident_id": 999999}, "resident_id"),
    ("vhw", lambda w: {"resident_id": w.resident_a2.id}, "resident_id"),
    ("vhw", lambda w: {"resident_id": w.resident_b.id}, "resident_id"),
    ("coordinator", lambda w: {"resident_id": w.resident_b.id}, "resident_id"),
    ("admin", lambda w: {"provider_id": 999999}, "provider_id"),
    ("admin", lambda w: {"service_type": "no_such_service"}, "service_type"),
    ("admin", lambda w: {"service_type": "mental_health"}, "provider_id"),
    ("admin", lambda w: {"provider_id": w.caregiver_a.id}, "provider_id"),
    ("admin", lambda w: {"start": "2026-12-02T10:00:00"}, "start"),
    ("admin", lambda w: {"start": "tomorrow at ten"}, "start"),
    ("admin", lambda w: {"priority": "high"}, "priority"),
], ids=["unknown-resident", "vhw-other-village", "vhw-other-county", "coordinator-other-county",
        "unknown-provider", "unknown-service", "provider-lacks-skill", "provider-lacks-modality",
        "start-without-offset", "start-not-a-time", "unknown-field"])
def test_invalid_booking_is_422_on_the_field(scene, client, as_role, create_service_type,
                                             role, change, field):
    w = scene
    create_service_type(code="mental_health", name="Mental health", duration_minutes=45,
                        required_skill="mental_health")
    body = booking_body(w.resident_a1, w.clinician_a, START)
    body.update(change(w))

    response = client.post(APPOINTMENTS, json=body, headers=as_role(role))

    assert field in field_errors(response)
    assert appointment_count() == 0


def test_missing_fields_are_named(scene, client, as_role):
    response = client.post(APPOINTMENTS, json={}, headers=as_role("admin"))

    assert {"resident_id", "provider_id", "service_type", "start"} <= set(field_errors(response))


# Booking: Idempotency-Key


def test_repeated_idempotency_key_books_once_and_replays_the_answer(scene, client, as_role):
    headers = as_role("vhw", **{"Idempotency-Key": "press-send-1"})
    body = booking_body(scene.resident_a1, scene.clinician_a, START)

    first = client.post(APPOINTMENTS, json=body, headers=headers)
    second = client.post(APPOINTMENTS, json=body, headers=headers)

    assert first.status_code == second.status_code == 201
    assert second.json == first.json
    listed = client.get(APPOINTMENTS, headers=as_role("admin")).json
    assert listed["total"] == 1
    assert listed["items"][0]["id"] == first.json["id"]


def test_idempotency_key_reused_with_another_body_is_refused(scene, client, as_role):
    headers = as_role("vhw", **{"Idempotency-Key": "press-send-2"})
    first = client.post(APPOINTMENTS, headers=headers,
                        json=booking_body(scene.resident_a1, scene.clinician_a, START))

    other = client.post(APPOINTMENTS, headers=headers,
                        json=booking_body(scene.resident_a1, scene.clinician_a, at(60)))

    assert first.status_code == 201, first.json
    assert_error(other, 422, "idempotency_key_reused")
    assert appointment_count() == 1


# Scope


@pytest.fixture
def booked(scene, create_appointment):
    """Four sessions: a1 with clinician a, a2 with clinician b and with the
    caregiver, b with clinician b."""
    w = scene
    made = {
        "a1_clinician_a": create_appointment(w.resident_a1, w.clinician_a, START),
        "a2_clinician_b": create_appointment(w.resident_a2, w.clinician_b, at(60)),
        "b_clinician_b": create_appointment(w.resident_b, w.clinician_b, at(120)),
        "a2_caregiver_a": create_appointment(w.resident_a2, w.caregiver_a, at(180),
                                             service_type="elder_home_visit"),
    }
    return {name: appointment.id for name, appointment in made.items()}


SEES = {
    "admin": {"a1_clinician_a", "a2_clinician_b", "b_clinician_b", "a2_caregiver_a"},
    "coordinator": {"a1_clinician_a", "a2_clinician_b", "a2_caregiver_a"},
    "vhw": {"a1_clinician_a"},
    "clinician": {"a1_clinician_a"},
    "caregiver": {"a2_caregiver_a"},
}


def _names(booked, items):
    by_id = {appointment_id: name for name, appointment_id in booked.items()}
    return {by_id[item["id"]] for item in items}


@pytest.mark.parametrize("role", sorted(SEES))
def test_each_role_lists_only_the_appointments_it_may_see(booked, client, as_role, role):
    response = client.get(APPOINTMENTS, headers=as_role(role))

    assert response.status_code == 200
    assert _names(booked, response.json["items"]) == SEES[role]
    assert response.json["total"] == len(SEES[role])


@pytest.mark.parametrize("role", sorted(SEES))
def test_an_appointment_out_of_scope_is_not_found(booked, show, role):
    for name, appointment_id in booked.items():
        response = show(appointment_id, role=role)
        if name in SEES[role]:
            assert response.status_code == 200, (name, response.json)
        else:
            assert_error(response, 404, "not_found")


@pytest.mark.parametrize("action, body", [
    ("confirm", None), ("check-in", None), ("cancel", {"reason": "mine now"}),
    ("reschedule", {"start": wire(at(240))}),
])
def test_clinician_acting_on_another_providers_appointment_is_not_found(
        booked, client, as_role, show, action, body):
    target = booked["b_clinician_b"]

    response = client.post(f"{APPOINTMENTS}/{target}/{action}", json=body,
                           headers=as_role("clinician"))

    assert_error(response, 404, "not_found")
    assert show(target).json["status"] == "booked"
    assert appointment_count() == 4


def test_vhw_books_only_their_own_villages_residents(scene, book):
    mine = book(scene.resident_a1, scene.clinician_a, START, role="vhw")
    other = book(scene.resident_a2, scene.clinician_a, at(60), role="vhw")

    assert mine.status_code == 201, mine.json
    assert "resident_id" in field_errors(other)


def test_clinician_sees_a_resident_only_once_booked_and_only_the_reduced_fields(
        scene, client, as_role, book):
    w = scene
    url = f"/api/v1/residents/{w.resident_a1.id}"
    assert_error(client.get(url, headers=as_role("clinician")), 404, "not_found")

    assert book(w.resident_a1, w.clinician_a, START, role="vhw").status_code == 201

    response = client.get(url, headers=as_role("clinician"))
    assert response.status_code == 200, response.json
    assert set(response.json) == RESIDENT_PROVIDER_FIELDS
    assert response.json["preferred_name"] == "Ma"
    assert response.json["region_id"] == w.village_a1.id
    listed = client.get("/api/v1/residents", headers=as_role("clinician")).json
    assert [item["id"] for item in listed["items"]] == [w.resident_a1.id]
    assert set(listed["items"][0]) == RESIDENT_PROVIDER_FIELDS
    other = client.get(f"/api/v1/residents/{w.resident_a2.id}", headers=as_role("clinician"))
    assert_error(other, 404, "not_found")


# Listing: filters and pages


@pytest.fixture
def varied(booked):
    """The four sessions with a1's confirmed and b's cancelled."""
    booking.change_status(SYSTEM, booked["a1_clinician_a"], Status.CONFIRMED)
    booking.change_status(SYSTEM, booked["b_clinician_b"], Status.CANCELLED, reason="moved away")
    return booked


@pytest.mark.parametrize("query, expected", [
    (lambda w: {"provider_id": w.clinician_b.id}, {"a2_clinician_b", "b_clinician_b"}),
    (lambda w: {"resident_id": w.resident_a2.id}, {"a2_clinician_b", "a2_caregiver_a"}),
    (lambda w: {"region_id": w.village_a1.id}, {"a1_clinician_a"}),
    (lambda w: {"region_id": w.county_a.id},
     {"a1_clinician_a", "a2_clinician_b", "a2_caregiver_a"}),
    (lambda w: {"region_id": w.county_b.id}, {"b_clinician_b"}),
    (lambda w: {"status": "booked"}, {"a2_clinician_b", "a2_caregiver_a"}),
    (lambda w: {"status": "confirmed,cancelled"}, {"a1_clinician_a", "b_clinician_b"}),
    (lambda w: {"status": ["confirmed", "cancelled"]}, {"a1_clinician_a", "b_clinician_b"}),
    (lambda w: {"from": wire(at(60)), "to": wire(at(180))}, {"a2_clinician_b", "b_clinician_b"}),
    (lambda w: {"from": wire(at(61))}, {"b_clinician_b", "a2_caregiver_a"}),
    (lambda w: {"to": wire(at(60))}, {"a1_clinician_a"}),
    (lambda w: {"provider_id": w.clinician_b.id, "status": "booked,confirmed"},
     {"a2_clinician_b"}),
], ids=["provider", "resident", "village", "county", "other-county", "status",
        "statuses", "statuses-repeated", "from-to", "from", "to", "provider-and-status"])
def test_list_filters(scene, varied, client, as_role, query, expected):
    response = client.get(APPOINTMENTS, query_string=query(scene), headers=as_role("admin"))

    assert response.status_code == 200, response.json
    assert _names(varied, response.json["items"]) == expected
    assert response.json["total"] == len(expected)


def test_a_list_range_that_ends_before_it_begins_is_422_on_to(scene, client, as_role):
    response = client.get(APPOINTMENTS, query_string={"from": wire(at(60)), "to": wire(at(60))},
                          headers=as_role("admin"))

    assert "to" in field_errors(response)


def test_filters_never_widen_a_coordinators_scope(scene, varied, client, as_role):
    response = client.get(APPOINTMENTS, query_string={"region_id": scene.county_b.id},
                          headers=as_role("coordinator"))

    assert response.status_code == 200
    assert response.json == {"items": [], "total": 0}


def test_list_is_by_start_and_paged_with_the_full_total(booked, client, as_role):
    headers = as_role("admin")

    first = client.get(APPOINTMENTS, query_string={"limit": 3}, headers=headers).json
    rest = client.get(APPOINTMENTS, query_string={"limit": 3, "offset": 3}, headers=headers).json

    assert first["total"] == rest["total"] == 4
    assert len(first["items"]) == 3 and len(rest["items"]) == 1
    starts = [item["start"] for item in first["items"] + rest["items"]]
    assert starts == sorted(starts)
    assert {item["id"] for item in first["items"] + rest["items"]} == set(booked.values())


# Lifecycle


# How to reach each status from booked at START: (minutes from START, target).
PATHS = {
    "booked": [],
    "confirmed": [(-600, Status.CONFIRMED)],
    "checked_in": [(-30, Status.CHECKED_IN)],
    "completed": [(-30, Status.CHECKED_IN), (-20, Status.COMPLETED)],
    "no_show": [(1, Status.NO_SHOW)],
    "cancelled": [(-600, Status.CANCELLED)],
}


def drive(clock, appointment_id, status):
    for minutes, target in PATHS[status]:
        clock.set(at(minutes))
        booking.change_status(SYSTEM, appointment_id, target)


LIFECYCLE = [
    # (starting status, action, minutes from the start, resulting status or None for 409)
    ("booked", "confirm", -600, "confirmed"),
    ("confirmed", "confirm", -600, None),
    ("booked", "check-in", -60, "checked_in"),       # check-in opens an hour before
    ("booked", "check-in", -61, None),
    ("confirmed", "check-in", 19, "checked_in"),     # ... and stays open until the end
    ("booked", "check-in", 20, None),
    ("checked_in", "check-in", 5, None),
    ("checked_in", "complete", 15, "completed"),
    ("booked", "complete", 15, None),
    ("confirmed", "complete", 15, None),
    ("booked", "no-show", 1, "no_show"),
    ("confirmed", "no-show", 30, "no_show"),
    ("booked", "no-show", -1, None),
    ("confirmed", "no-show", -30, None),
    ("checked_in", "no-show", 10, None),
    ("booked", "cancel", -1, "cancelled"),
    ("confirmed", "cancel", -600, "cancelled"),
    ("booked", "cancel", 0, None),
    ("confirmed", "cancel", 5, None),
] + [
    (final, action, minutes, None)
    for final in ("completed", "no_show", "cancelled")
    for action, minutes in (("confirm", -30), ("check-in", -30), ("complete", 10),
                            ("no-show", 10), ("cancel", -30))
]


@pytest.mark.parametrize("status, action, minutes, result", LIFECYCLE,
                         ids=[f"{s}-{a}-at{m:+d}m" for s, a, m, _ in LIFECYCLE])
def test_lifecycle_action(scene, client, as_role, show, create_appointment, frozen_clock,
                          status, action, minutes, result):
    appointment = create_appointment(scene.resident_a1, scene.clinician_a, START)
    drive(frozen_clock, appointment.id, status)
    frozen_clock.set(at(minutes))
    body = {"reason": "Resident is in hospital"} if action == "cancel" else None

    response = client.post(f"{APPOINTMENTS}/{appointment.id}/{action}", json=body,
                           headers=as_role("admin"))

    if result is None:
        assert_error(response, 409, "invalid_transition")
        assert show(appointment.id).json["status"] == status
    else:
        assert response.status_code == 200, response.json
        assert response.json["status"] == result
        assert response.json["updated_at"] == utc_z(at(minutes))
        assert show(appointment.id).json == response.json
        if action == "cancel":
            assert response.json["cancel_reason"] == "Resident is in hospital"


@pytest.mark.parametrize("action, status, minutes, result", [
    ("complete", "checked_in", 15, "completed"),
    ("no-show", "booked", 10, "no_show"),
    ("no-show", "confirmed", 10, "no_show"),
])
def test_vhw_may_not_record_the_outcome_but_the_clinician_may(
        scene, client, as_role, show, create_appointment, frozen_clock,
        action, status, minutes, result):
    appointment = create_appointment(scene.resident_a1, scene.clinician_a, START)
    drive(frozen_clock, appointment.id, status)
    frozen_clock.set(at(minutes))
    url = f"{APPOINTMENTS}/{appointment.id}/{action}"

    by_vhw = client.post(url, headers=as_role("vhw"))
    assert_error(by_vhw, 403, "forbidden")
    assert show(appointment.id).json["status"] == status

    by_clinician = client.post(url, headers=as_role("clinician"))
    assert by_clinician.status_code == 200, by_clinician.json
    assert by_clinician.json["status"] == result


def test_vhw_runs_the_rest_of_the_day_of_a_session(scene, client, as_role, create_appointment,
                                                   frozen_clock):
    appointment = create_appointment(scene.resident_a1, scene.clinician_a, START)
    url = f"{APPOINTMENTS}/{appointment.id}"

    confirmed = client.post(f"{url}/confirm", headers=as_role("vhw"))
    frozen_clock.set(at(-10))
    checked_in = client.post(f"{url}/check-in", headers=as_role("vhw"))

    assert confirmed.status_code == 200 and confirmed.json["status"] == "confirmed"
    assert checked_in.status_code == 200 and checked_in.json["status"] == "checked_in"


# Rescheduling


@pytest.mark.parametrize("status", ["booked", "confirmed"])
def test_reschedule_books_the_new_time_and_cancels_the_old(scene, client, as_role, show,
                                                           create_appointment, frozen_clock,
                                                           status):
    old = create_appointment(scene.resident_a1, scene.clinician_a, START)
    drive(frozen_clock, old.id, status)

    response = client.post(f"{APPOINTMENTS}/{old.id}/reschedule", json={"start": wire(at(120))},
                           headers=as_role("vhw"))

    assert response.status_code == 201, response.json
    new = response.json
    assert new["id"] != old.id
    assert new["rescheduled_from_id"] == old.id
    assert (new["resident_id"], new["provider_id"], new["service_type"]) == (
        scene.resident_a1.id, scene.clinician_a.id, "gp_consult")
    assert (new["start"], new["end"]) == ("2026-12-02T04:00:00Z", "2026-12-02T04:20:00Z")
    assert new["status"] == "booked"
    assert new["join_url"]
    assert show(old.id).json["status"] == "cancelled"
    assert show(new["id"]).json == new


def test_a_reschedule_sent_twice_with_one_key_moves_once_and_replays(
        scene, client, as_role, show, create_appointment):
    """A vhw on 2G presses Send twice: the second gets the first answer, not a 409."""
    old = create_appointment(scene.resident_a1, scene.clinician_a, START)
    headers = {**as_role("vhw"), "Idempotency-Key": "move-1"}
    url = f"{APPOINTMENTS}/{old.id}/reschedule"

    first = client.post(url, json={"start": wire(at(120))}, headers=headers)
    again = client.post(url, json={"start": wire(at(120))}, headers=headers)
    other = client.post(url, json={"start": wire(at(150))}, headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.json == first.json
    assert other.status_code == 422
    assert other.json["error"]["code"] == "idempotency_key_reused"
    assert show(first.json["id"]).json["status"] == "booked"


def test_reschedule_into_a_taken_slot_leaves_the_old_session_alone(
        scene, client, as_role, show, create_appointment):
    old = create_appointment(scene.resident_a1, scene.clinician_a, START)
    create_appointment(scene.resident_a2, scene.clinician_a, at(120))
    before = show(old.id).json

    response = client.post(f"{APPOINTMENTS}/{old.id}/reschedule", json={"start": wire(at(130))},
                           headers=as_role("admin"))

    assert_error(response, 409, "slot_unavailable")
    assert show(old.id).json == before
    assert before["status"] == "booked"
    assert appointment_count() == 2


@pytest.mark.parametrize("minutes", [10, -10])
def test_reschedule_by_ten_minutes_overlapping_itself_works(scene, client, as_role, show,
                                                            create_appointment, minutes):
    old = create_appointment(scene.resident_a1, scene.clinician_a, START)

    response = client.post(f"{APPOINTMENTS}/{old.id}/reschedule",
                           json={"start": wire(at(minutes))}, headers=as_role("admin"))

    assert response.status_code == 201, response.json
    assert response.json["start"] == utc_z(at(minutes))
    assert show(old.id).json["status"] == "cancelled"


@pytest.mark.parametrize("status, minutes", [
    ("cancelled", -600), ("completed", -10), ("checked_in", -10), ("no_show", 10),
    ("booked", 5),  # the session has started
])
def test_reschedule_of_a_cancelled_finished_or_started_session_is_refused(
        scene, client, as_role, show, create_appointment, frozen_clock, status, minutes):
    old = create_appointment(scene.resident_a1, scene.clinician_a, START)
    drive(frozen_clock, old.id, status)
    frozen_clock.set(at(minutes))

    response = client.post(f"{APPOINTMENTS}/{old.id}/reschedule",
                           json={"start": wire(at(24 * 60))}, headers=as_role("admin"))

    assert_error(response, 409, "invalid_transition")
    assert show(old.id).json["status"] == status
    assert appointment_count() == 1


def test_reschedule_to_another_eligible_provider(scene, client, as_role, show,
                                                 create_appointment):
    old = create_appointment(scene.resident_a1, scene.clinician_a, START)

    response = client.post(f"{APPOINTMENTS}/{old.id}/reschedule",
                           json={"start": wire(START), "provider_id": scene.clinician_b.id},
                           headers=as_role("coordinator"))

    assert response.status_code == 201, response.json
    assert response.json["provider_id"] == scene.clinician_b.id
    assert response.json["start"] == utc_z(START)
    assert response.json["rescheduled_from_id"] == old.id
    assert show(old.id).json["status"] == "cancelled"


def test_reschedule_to_a_provider_who_does_not_offer_the_service_is_refused(
        scene, client, as_role, show, create_appointment):
    old = create_appointment(scene.resident_a1, scene.clinician_a, START)

    response = client.post(f"{APPOINTMENTS}/{old.id}/reschedule",
                           json={"start": wire(START), "provider_id": scene.caregiver_a.id},
                           headers=as_role("admin"))

    assert "provider_id" in field_errors(response)
    assert show(old.id).json["status"] == "booked"


def test_reschedule_still_respects_notice_and_availability(scene, client, as_role, show,
                                                           create_appointment):
    old = create_appointment(scene.resident_a1, scene.clinician_a, START)
    url = f"{APPOINTMENTS}/{old.id}/reschedule"

    too_soon = client.post(url, json={"start": wire(at(30, NOW))}, headers=as_role("admin"))
    at_night = client.post(url, json={"start": wire(at(12 * 60))}, headers=as_role("admin"))

    assert_error(too_soon, 409, "slot_unavailable")
    assert_error(at_night, 409, "slot_unavailable")
    assert show(old.id).json["status"] == "booked"


def test_reschedule_within_a_full_day_works(scene, client, as_role, create_provider,
                                            set_availability, create_appointment):
    w = scene
    capped = create_provider(w.county_a, name="Dr. One", max_sessions_per_day=1)
    set_availability(capped)
    old = create_appointment(w.resident_a1, capped, START)

    response = client.post(f"{APPOINTMENTS}/{old.id}/reschedule", json={"start": wire(at(120))},
                           headers=as_role("admin"))

    assert response.status_code == 201, response.json


# Recording sessions that already happened


def record_body(resident, provider, start, outcome="completed", **extra):
    body = {"resident_id": resident.id, "provider_id": provider.id,
            "service_type": "gp_consult", "start": wire(start), "outcome": outcome}
    body.update(extra)
    return body


@pytest.mark.parametrize("outcome", ["completed", "no_show"])
def test_vhw_records_a_past_session_of_their_resident(scene, client, as_role, show, outcome):
    response = client.post(RECORD, headers=as_role("vhw"), json=record_body(
        scene.resident_a1, scene.clinician_a, PAST, outcome, notes="Seen at the clinic"))

    assert response.status_code == 201, response.json
    body = response.json
    assert body["recorded"] is True
    assert body["status"] == outcome
    assert (body["start"], body["end"]) == ("2026-11-30T02:00:00Z", "2026-11-30T02:20:00Z")
    assert body["booked_by"] == scene.users["vhw"].id
    assert show(body["id"]).json["recorded"] is True


def test_recording_needs_no_availability(scene, client, as_role):
    night = datetime(2026, 11, 29, 23, 30, tzinfo=SHANGHAI)

    response = client.post(RECORD, headers=as_role("admin"),
                           json=record_body(scene.resident_a1, scene.clinician_a, night))

    assert response.status_code == 201, response.json


def test_recording_a_future_session_is_422_on_start(scene, client, as_role):
    response = client.post(RECORD, headers=as_role("admin"),
                           json=record_body(scene.resident_a1, scene.clinician_a, at(10, NOW)))

    assert "start" in field_errors(response)
    assert appointment_count() == 0


@pytest.mark.parametrize("who", ["provider", "resident"])
def test_recording_over_another_session_is_refused(scene, client, as_role, who):
    w = scene
    first = client.post(RECORD, headers=as_role("admin"),
                        json=record_body(w.resident_a1, w.clinician_a, PAST))
    assert first.status_code == 201, first.json
    clash = (record_body(w.resident_a2, w.clinician_a, at(10, PAST)) if who == "provider"
             else record_body(w.resident_a1, w.clinician_b, at(10, PAST)))

    response = client.post(RECORD, headers=as_role("admin"), json=clash)

    assert_error(response, 409, "slot_unavailable")
    assert appointment_count() == 1


def test_vhw_cannot_record_for_a_resident_outside_their_village(scene, client, as_role):
    response = client.post(RECORD, headers=as_role("vhw"),
                           json=record_body(scene.resident_b, scene.clinician_b, PAST))

    assert "resident_id" in field_errors(response)


def test_clinician_records_their_own_session(scene, client, as_role, create_appointment):
    create_appointment(scene.resident_a1, scene.clinician_a, START)

    response = client.post(RECORD, headers=as_role("clinician"),
                           json=record_body(scene.resident_a1, scene.clinician_a, PAST))

    assert response.status_code == 201, response.json
    assert response.json["recorded"] is True
    assert response.json["on_behalf"] is False


def test_a_provider_records_a_visit_with_a_resident_they_have_not_seen_before(
        scene, client, as_role):
    """A home visit delivered offline to a new resident of a village the caregiver serves;
    a clinician's first session with a resident of their county."""
    visit = client.post(RECORD, headers=as_role("caregiver"), json=record_body(
        scene.resident_a1, scene.caregiver_a, PAST, service_type="elder_home_visit"))
    first = client.post(APPOINTMENTS, headers=as_role("clinician"), json=booking_body(
        scene.resident_a2, scene.clinician_a, START))

    assert visit.status_code == 201, visit.json
    assert (visit.json["recorded"], visit.json["on_behalf"]) == (True, False)
    assert first.status_code == 201, first.json
    assert first.json["on_behalf"] is False


def test_a_provider_may_not_name_a_resident_of_a_village_they_do_not_serve(
        scene, client, as_role):
    response = client.post(RECORD, headers=as_role("caregiver"), json=record_body(
        scene.resident_b, scene.caregiver_a, PAST, service_type="elder_home_visit"))

    assert "resident_id" in field_errors(response)
    assert appointment_count() == 0


def test_clinician_cannot_record_for_another_provider(scene, client, as_role,
                                                      create_appointment):
    create_appointment(scene.resident_a1, scene.clinician_a, START)

    response = client.post(RECORD, headers=as_role("clinician"),
                           json=record_body(scene.resident_a1, scene.clinician_b, PAST))

    # A body id the caller may not act on is 422 on that field (API.md).
    assert_error(response, 422, "validation_error")
    assert "provider_id" in response.json["error"]["fields"]
    assert appointment_count() == 1


def test_recorded_outcome_must_be_completed_or_no_show(scene, client, as_role):
    response = client.post(RECORD, headers=as_role("admin"), json=record_body(
        scene.resident_a1, scene.clinician_a, PAST, outcome="cancelled"))

    assert "outcome" in field_errors(response)


# The database guard


def test_racing_bookings_for_one_provider_leave_one_session(app, scene, auth, create_resident):
    w = scene
    residents = [create_resident(w.village_a1, name=f"Resident {i}",
                                 phone=f"+861390013910{i}") for i in range(6)]
    headers = auth(w.users["vhw"])
    bodies = [booking_body(resident, w.clinician_a, at(3 * i))
              for i, resident in enumerate(residents)]
    db.session.rollback()
    barrier = threading.Barrier(len(bodies))
    results = []

    def press(body):
        with app.app_context():
            client = app.test_client()
            barrier.wait()
            response = client.post(APPOINTMENTS, json=body, headers=headers)
            results.append((response.status_code, response.json))

    threads = [threading.Thread(target=press, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    statuses = sorted(status for status, _ in results)
    assert statuses == [201] + [409] * (len(bodies) - 1), results
    assert all(body["error"]["code"] == "slot_unavailable"
               for status, body in results if status == 409)
    assert appointment_count() == 1


def test_after_a_busy_day_no_two_live_sessions_overlap(scene, client, as_role, book):
    w = scene
    admin = as_role("admin")
    first = book(w.resident_a1, w.clinician_a, START)
    codes = [first.status_code]
    codes += [book(w.resident_a2, w.clinician_a, at(offset)).status_code
              for offset in (0, 5, 10, 20, 24)]
    codes.append(client.post(f"{APPOINTMENTS}/{first.json['id']}/reschedule",
                             json={"start": wire(at(10))}, headers=admin).status_code)
    codes += [book(w.resident_a2, w.clinician_a, at(35)).status_code,
              book(w.resident_a2, w.clinician_a, at(30)).status_code,
              book(w.resident_a1, w.clinician_b, at(20)).status_code,
              book(w.resident_a1, w.clinician_b, at(35)).status_code]
    codes += [client.post(RECORD, headers=admin, json=body).status_code for body in (
        record_body(w.resident_b, w.clinician_b, PAST),
        record_body(w.resident_a2, w.clinician_b, at(15, PAST)))]

    assert codes == [201, 409, 409, 409, 409, 409, 201, 201, 409, 409, 201, 201, 409]
    db.session.rollback()
    assert live_overlaps("provider_id", "block_end_at") == []
    assert live_overlaps("resident_id", "end_at") == []
    assert db.session.execute(sa.text(
        "SELECT count(*) FROM appointments WHERE status <> 'cancelled'")).scalar_one() == 4


# Calendars are cached per process: a change anywhere is seen everywhere at once


def release_sqlite_write_lock(scene):
    """End this test's own transaction, which on SQLite holds the write lock the
    other app needs, and keep the scene's objects readable without a new one."""
    for party in (scene.resident_a1, scene.resident_a2, scene.clinician_a):
        assert party.id
    db.session.expunge_all()
    db.session.rollback()


def test_rules_changed_in_another_process_apply_to_the_next_booking(
        scene, book, as_role, second_app, frozen_clock):
    assert book(scene.resident_a1, scene.clinician_a, START).status_code == 201  # cached here
    mornings = [{"weekday": day, "start": "08:00", "end": "10:00"} for day in range(7)]
    admin, rules = as_role("admin"), f"/api/v1/providers/{scene.clinician_a.id}/availability"
    release_sqlite_write_lock(scene)

    with second_app.test_client() as other:
        changed = other.put(rules,
                            json={"rules": mornings}, headers=admin)
    assert changed.status_code == 200, changed.json

    afternoon = book(scene.resident_a2, scene.clinician_a, at(240))  # 14:00 local
    assert_error(afternoon, 409, "slot_unavailable")
    assert book(scene.resident_a2, scene.clinician_a, at(-60)).status_code == 201  # 09:00


@pytest.mark.parametrize("kind, local_start", [("unavailable", time(10)),  # inside the rule
                                                ("extra", time(19))])       # outside it
def test_exceptions_added_and_removed_in_another_process_apply_at_once(
        scene, book, as_role, second_app, frozen_clock, kind, local_start):
    start = datetime(2026, 12, 2, local_start.hour, tzinfo=SHANGHAI)
    probe = datetime(2026, 12, 3, local_start.hour, tzinfo=SHANGHAI)  # same hour, next day
    exceptions = f"/api/v1/providers/{scene.clinician_a.id}/exceptions"
    opens_here = kind == "unavailable"
    admin = as_role("admin")
    # Load the calendar into this process's cache, then change it in the other one.
    assert book(scene.resident_a1, scene.clinician_a, probe).status_code == (
        201 if opens_here else 409)
    release_sqlite_write_lock(scene)

    with second_app.test_client() as other:
        added = other.post(exceptions, headers=admin, json={
            "start": wire(start - timedelta(hours=1)), "end": wire(start + timedelta(hours=2)),
            "kind": kind})
        assert added.status_code == 201, added.json
        during = book(scene.resident_a1, scene.clinician_a, start)
        removed = other.delete(f"{exceptions}/{added.json['id']}", headers=admin)
        assert removed.status_code == 204
    after = book(scene.resident_a2, scene.clinician_a, start + timedelta(hours=1))

    if opens_here:  # time off: refused while it stands, bookable once it is gone
        assert_error(during, 409, "slot_unavailable")
        assert after.status_code == 201, after.json
    else:  # extra hours: bookable while they stand, refused once they are gone
        assert during.status_code == 201, during.json
        assert_error(after, 409, "slot_unavailable")
