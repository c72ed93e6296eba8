"""Residents over HTTP: registration, validation, names for SMS, search, paging, audit."""

import json
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from careservice.core.models import AuditEvent
from careservice.extensions import db
from careservice.people.models import Resident

URL = "/api/v1/residents"


@pytest.fixture
def vhw(world, auth):
    """Headers of the village health worker of village_a1."""
    return auth(world.users["vhw"])


@pytest.fixture
def admin(world, auth):
    return auth(world.users["admin"])


def body(world, **fields):
    data = {"name": "Zhao Guiying", "birth_date": "1950-06-01", "sex": "female",
            "region_id": world.village_a1.id}
    data.update(fields)
    return data


def stored_resident(resident_id):
    db.session.rollback()
    return db.session.get(Resident, resident_id)


def resident_count():
    db.session.rollback()
    return db.session.execute(sa.select(sa.func.count()).select_from(Resident)).scalar_one()


def assert_refused(response, field):
    assert response.status_code == 422, response.json
    assert response.json["error"]["code"] == "validation_error"
    assert field in response.json["error"]["fields"], response.json


# Creating


def test_create_answers_201_with_the_stored_resident(client, world, vhw):
    response = client.post(URL, json=body(world, phone="13800138000", languages=["zh-CN", "en"],
                                          sms_consent=False, notes="Lives alone."),
                           headers=vhw)

    assert response.status_code == 201
    created = response.json
    assert created["name"] == "Zhao Guiying"
    assert created["birth_date"] == "1950-06-01"
    assert created["sex"] == "female"
    assert created["region_id"] == world.village_a1.id
    assert created["languages"] == ["zh-CN", "en"]
    assert created["sms_consent"] is False
    assert created["opted_out_at"] is None
    assert created["notes"] == "Lives alone."
    again = client.get(f"{URL}/{created['id']}", headers=vhw)
    assert again.status_code == 200
    assert again.json == created


def test_create_defaults_languages_and_sms_consent(client, world, vhw):
    response = client.post(URL, json=body(world), headers=vhw)

    assert response.status_code == 201
    assert response.json["languages"] == ["zh-CN"]
    assert response.json["sms_consent"] is True
    assert response.json["phone"] is None


@pytest.mark.parametrize("raw", ["138 0013 8000", "+86 138-0013-8000", "13800138000",
                                 "+8613800138000"])
def test_create_normalises_the_phone_to_e164(client, world, vhw, raw):
    response = client.post(URL, json=body(world, phone=raw), headers=vhw)

    assert response.status_code == 201
    assert response.json["phone"] == "+8613800138000"
    assert stored_resident(response.json["id"]).phone == "+8613800138000"


INVALID_PHONES = [
    pytest.param("12345", id="too-short"),
    pytest.param("138 0013 800", id="a-digit-missing"),
    pytest.param("010-1234", id="landline-looking-junk"),
    pytest.param("0000 0000", id="zeros"),
    pytest.param("+86 000 0000 0000", id="zeros-with-country-code"),
    pytest.param("call me", id="words"),
    pytest.param("abc", id="letters"),
    pytest.param("138ABCD8000", id="letters-inside-digits"),
    pytest.param("", id="empty"),
]


@pytest.mark.parametrize("raw", INVALID_PHONES)
def test_create_refuses_an_invalid_phone(client, world, vhw, raw):
    before = resident_count()

    response = client.post(URL, json=body(world, phone=raw), headers=vhw)

    assert_refused(response, "phone")
    assert resident_count() == before


@pytest.mark.parametrize(("given", "kept"), [
    (["zh-cn"], ["zh-CN"]),
    (["EN", "id"], ["en", "id"]),
    (["id", "zh-CN", "en"], ["id", "zh-CN", "en"]),
])
def test_create_keeps_configured_languages_in_their_canonical_case(client, world, vhw, given,
                                                                   kept):
    response = client.post(URL, json=body(world, languages=given), headers=vhw)

    assert response.status_code == 201
    assert response.json["languages"] == kept
    assert stored_resident(response.json["id"]).languages == kept


@pytest.mark.parametrize("languages", [["fr"], ["zh-CN", "fr"], ["zh"], [], ["en", "EN"]])
def test_create_refuses_languages_outside_the_configured_list(client, world, vhw, languages):
    response = client.post(URL, json=body(world, languages=languages), headers=vhw)

    assert response.status_code == 422
    assert any(name.startswith("languages") for name in response.json["error"]["fields"])
    assert resident_count() == 3


def test_create_refuses_a_birth_date_in_the_future(frozen_clock, client, world, vhw):
    response = client.post(URL, json=body(world, birth_date="2026-12-02"), headers=vhw)

    assert_refused(response, "birth_date")
    assert resident_count() == 3


def test_create_accepts_a_birth_date_of_today(frozen_clock, client, world, vhw):
    response = client.post(URL, json=body(world, birth_date="2026-12-01"), headers=vhw)

    assert response.status_code == 201
    assert response.json["birth_date"] == "2026-12-01"


@pytest.mark.parametrize(("field", "value"), [
    ("role", "admin"),
    ("id", 12345),
    ("opted_out_at", "2026-01-01T00:00:00Z"),
    ("created_at", "2026-01-01T00:00:00Z"),
])
def test_create_refuses_an_unknown_or_read_only_field_by_name(client, world, vhw, field, value):
    response = client.post(URL, json=body(world, **{field: value}), headers=vhw)

    assert_refused(response, field)
    assert resident_count() == 3


@pytest.mark.parametrize("field", ["name", "birth_date", "sex", "region_id"])
def test_create_refuses_a_missing_required_field_by_name(client, world, vhw, field):
    data = body(world)
    del data[field]

    response = client.post(URL, json=data, headers=vhw)

    assert_refused(response, field)
    assert resident_count() == 3


def test_create_with_an_empty_body_names_every_required_field(client, world, vhw):
    response = client.post(URL, json={}, headers=vhw)

    assert response.status_code == 422
    assert {"name", "birth_date", "sex", "region_id"} <= set(response.json["error"]["fields"])


@pytest.mark.parametrize("region", ["town_a", "county_a"])
def test_create_refuses_a_home_that_is_not_a_village(client, world, admin, region):
    response = client.post(URL, json=body(world, region_id=getattr(world, region).id),
                           headers=admin)

    assert_refused(response, "region_id")
    assert resident_count() == 3


def test_create_refuses_a_region_that_does_not_exist(client, world, admin):
    response = client.post(URL, json=body(world, region_id=999999), headers=admin)

    assert_refused(response, "region_id")
    assert resident_count() == 3


# Names


@pytest.mark.parametrize(("name", "preferred"), [
    ("Wang Xiuying", "Wang"),
    ("王秀英", "王秀英"),
    ("  Li  Jianguo  ", "Li"),
])
def test_preferred_name_defaults_to_the_first_word_of_the_name(client, world, vhw, name,
                                                               preferred):
    response = client.post(URL, json=body(world, name=name), headers=vhw)

    assert response.status_code == 201
    assert response.json["preferred_name"] == preferred


def test_a_given_preferred_name_is_kept(client, world, vhw):
    response = client.post(URL, json=body(world, name="Wang Xiuying", preferred_name="Auntie Wang"),
                           headers=vhw)

    assert response.status_code == 201
    assert response.json["preferred_name"] == "Auntie Wang"


def test_patch_preferred_name_null_returns_to_the_default(client, world, vhw, create_resident):
    resident = create_resident(world.village_a1, name="Wang Xiuying", preferred_name="Auntie")

    response = client.patch(f"{URL}/{resident.id}", json={"preferred_name": None}, headers=vhw)

    assert response.status_code == 200
    assert response.json["preferred_name"] == "Wang"
    assert client.get(f"{URL}/{resident.id}", headers=vhw).json["preferred_name"] == "Wang"


def test_default_preferred_name_follows_a_new_name(client, world, vhw, create_resident):
    resident = create_resident(world.village_a1, name="Wang Xiuying")

    response = client.patch(f"{URL}/{resident.id}", json={"name": "Zhang Lihua"}, headers=vhw)

    assert response.status_code == 200
    assert response.json["preferred_name"] == "Zhang"


# Changing


def test_patch_changes_name_and_phone(client, world, vhw):
    resident = world.resident_a1

    response = client.patch(f"{URL}/{resident.id}",
                            json={"name": "Ma Guiying", "phone": "139 0013 9555"}, headers=vhw)

    assert response.status_code == 200
    assert response.json["name"] == "Ma Guiying"
    assert response.json["phone"] == "+8613900139555"
    stored = stored_resident(resident.id)
    assert (stored.name, stored.phone) == ("Ma Guiying", "+8613900139555")
    assert stored.birth_date == date(1944, 3, 2)


def test_patch_with_a_null_name_is_refused(client, world, vhw):
    resident = world.resident_a1

    response = client.patch(f"{URL}/{resident.id}", json={"name": None}, headers=vhw)

    assert_refused(response, "name")
    assert stored_resident(resident.id).name == "Ma Guilan"


def test_patch_with_an_invalid_phone_is_refused(client, world, vhw):
    resident = world.resident_a1

    response = client.patch(f"{URL}/{resident.id}", json={"phone": "12345"}, headers=vhw)

    assert_refused(response, "phone")
    assert stored_resident(resident.id).phone == "+8613900139001"


@pytest.mark.parametrize(("field", "value"), [("role", "admin"), ("id", 999)])
def test_patch_refuses_an_unknown_field_by_name(client, world, vhw, field, value):
    resident = world.resident_a1

    response = client.patch(f"{URL}/{resident.id}", json={field: value}, headers=vhw)

    assert_refused(response, field)
    assert stored_resident(resident.id).id == resident.id


def test_patch_may_not_move_a_resident_out_of_the_callers_regions(client, world, vhw):
    resident = world.resident_a1

    response = client.patch(f"{URL}/{resident.id}", json={"region_id": world.village_b.id},
                            headers=vhw)

    assert_refused(response, "region_id")
    assert stored_resident(resident.id).region_id == world.village_a1.id


# Filters


def listed(client, headers, **params):
    response = client.get(URL, query_string=params, headers=headers)
    assert response.status_code == 200, response.json
    return [item["id"] for item in response.json["items"]]


@pytest.mark.parametrize(("region", "expected"), [
    ("province", ("resident_a1", "resident_a2", "resident_b")),
    ("county_a", ("resident_a1", "resident_a2")),
    ("town_a", ("resident_a1", "resident_a2")),
    ("village_a2", ("resident_a2",)),
    ("town_b", ("resident_b",)),
])
def test_region_filter_includes_sub_regions(client, world, admin, region, expected):
    ids = listed(client, admin, region_id=getattr(world, region).id)

    assert ids == [getattr(world, attr).id for attr in expected]


def test_region_filter_stays_inside_the_callers_scope(client, world, vhw):
    assert listed(client, vhw, region_id=world.town_a.id) == [world.resident_a1.id]
    assert listed(client, vhw, region_id=world.village_b.id) == []


def test_region_filter_for_a_region_that_does_not_exist_lists_nobody(client, world, admin):
    assert listed(client, admin, region_id=999999) == []


@pytest.mark.parametrize(("q", "expected"), [
    ("Guilan", ("resident_a1",)),
    ("guilan", ("resident_a1",)),
    ("JIAN", ("resident_a2",)),
    ("ing", ("resident_b",)),
    ("gu", ("resident_a1", "resident_a2")),
    ("0139001", ("resident_a1",)),
    ("0013 9002", ("resident_a2",)),
    ("139-0013-9003", ("resident_b",)),
    ("1390013900", ("resident_a1", "resident_a2", "resident_b")),
    ("Nobody", ()),
])
def test_q_matches_part_of_a_name_or_the_digits_of_a_phone(client, world, admin, q, expected):
    assert listed(client, admin, q=q) == [getattr(world, attr).id for attr in expected]


@pytest.mark.parametrize("q", ["0951 2034567", "09512034567", "0951-203-4567",
                               "+86 951 2034567", "+869512034567", "9512034567", "2034567"])
def test_q_finds_a_phone_typed_in_national_or_international_format(client, world, vhw, q):
    created = client.post(URL, json=body(world, phone="0951 2034567"), headers=vhw).json
    assert created["phone"] == "+869512034567"

    assert listed(client, vhw, q=q) == [created["id"]]


def test_q_matches_part_of_a_chinese_name(client, world, admin, create_resident):
    resident = create_resident(world.village_a1, name="王秀英", phone=None)

    assert listed(client, admin, q="秀英") == [resident.id]


def test_q_and_region_filter_combine(client, world, admin):
    assert listed(client, admin, q="1390013900", region_id=world.town_a.id) == [
        world.resident_a1.id, world.resident_a2.id]


# What a provider may search on


@pytest.fixture
def clinician_sessions(frozen_clock, world, create_service_type, set_availability,
                       create_resident, create_appointment):
    """The clinician's residents: resident_a1 (shown as "Ma") and Zhao Guiying, shown
    as "Auntie Zhao"; resident_a2 has no session with them."""
    create_service_type()
    set_availability(world.clinician_a)
    zhao = create_resident(world.village_a1, name="Zhao Guiying", preferred_name="Auntie Zhao",
                           phone="+8613700137555")
    start = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
    create_appointment(world.resident_a1, world.clinician_a, start)
    create_appointment(zhao, world.clinician_a, start + timedelta(hours=1))
    return zhao


@pytest.mark.parametrize(("q", "expected"), [
    ("Ma", ("resident_a1",)),
    ("auntie", ("zhao",)),
    ("Zhao", ("zhao",)),
    ("Guilan", ()),
    ("Ma Guilan", ()),
    ("Guiying", ()),
    ("Zhao Guiying", ()),
    ("13900139001", ()),
    ("0139001", ()),
    ("+86 137 0013 7555", ()),
    ("Jianguo", ()),
])
def test_a_provider_searches_only_the_names_they_are_shown(client, world, auth,
                                                           clinician_sessions, q, expected):
    residents = {"resident_a1": world.resident_a1, "zhao": clinician_sessions}

    assert listed(client, auth(world.users["clinician"]), q=q) == [
        residents[name].id for name in expected]


def test_a_provider_still_lists_the_resident_of_a_cancelled_session(
        client, world, auth, clinician_sessions):
    """They still see that cancelled session (their own), so they see who it was for."""
    admin = auth(world.users["admin"])
    clinician = auth(world.users["clinician"])
    sessions = client.get("/api/v1/appointments", headers=admin,
                          query_string={"resident_id": clinician_sessions.id}).json["items"]
    cancelled = client.post(f"/api/v1/appointments/{sessions[0]['id']}/cancel",
                            json={"reason": "Moved to her daughter's"}, headers=admin)
    assert cancelled.status_code == 200, cancelled.json

    assert clinician_sessions.id in listed(client, clinician)
    mine = client.get(f"/api/v1/appointments/{sessions[0]['id']}", headers=clinician)
    assert mine.json["status"] == "cancelled"


# Paging


@pytest.fixture
def many(world, create_resident):
    """55 more residents in village_a1, 58 in all for the admin."""
    return [create_resident(world.village_a1, name=f"Resident {n:02d}", phone=None)
            for n in range(55)]


def test_list_defaults_to_50_items_with_the_full_total(client, world, admin, many):
    response = client.get(URL, headers=admin)

    assert response.status_code == 200
    assert len(response.json["items"]) == 50
    assert response.json["total"] == 58


def test_pages_cover_every_resident_once_in_order(client, world, admin, many):
    seen = []
    for offset in range(0, 58, 20):
        response = client.get(URL, query_string={"limit": 20, "offset": offset}, headers=admin)
        assert response.status_code == 200
        assert response.json["total"] == 58
        seen += [item["id"] for item in response.json["items"]]

    all_ids = sorted([world.resident_a1.id, world.resident_a2.id, world.resident_b.id]
                     + [resident.id for resident in many])
    assert seen == all_ids


def test_offset_past_the_end_gives_an_empty_page_with_the_total(client, world, admin):
    response = client.get(URL, query_string={"offset": 10}, headers=admin)

    assert response.status_code == 200
    assert response.json == {"items": [], "total": 3}


def test_limit_500_is_allowed(client, world, admin):
    response = client.get(URL, query_string={"limit": 500}, headers=admin)

    assert response.status_code == 200
    assert response.json["total"] == 3


@pytest.mark.parametrize(("params", "field"), [
    ({"limit": 0}, "limit"),
    ({"limit": 501}, "limit"),
    ({"limit": -1}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"offset": -1}, "offset"),
    ({"region_id": "village"}, "region_id"),
])
def test_bad_paging_or_filter_values_are_refused(client, world, admin, params, field):
    response = client.get(URL, query_string=params, headers=admin)

    assert_refused(response, field)


# Audit trail


def audit_events(request_id):
    db.session.rollback()
    return db.session.execute(
        sa.select(AuditEvent).where(AuditEvent.request_id == request_id).order_by(AuditEvent.id)
    ).scalars().all()


def as_json(event):
    """The event row, every column, as the JSON an auditor would export."""
    return json.dumps({column.name: getattr(event, column.key)
                       for column in AuditEvent.__table__.columns},
                      default=str, ensure_ascii=False)


SECRET_NAME = "Qiu Meilan"
SECRET_PHONE = "+8613700137999"
SECRET_NOTES = "Daughter Qiu Hong works in Yinchuan; key under the flowerpot."


@pytest.fixture
def private(world, create_resident):
    return create_resident(world.village_a1, name=SECRET_NAME, phone=SECRET_PHONE,
                           notes=SECRET_NOTES)


def read_one(client, world, private, headers):
    return client.get(f"{URL}/{private.id}", headers=headers), "resident.read", private.id


def read_list(client, world, private, headers):
    return client.get(URL, query_string={"q": "Qiu"}, headers=headers), "resident.list", None


def create(client, world, private, headers):
    response = client.post(URL, json=body(world, name=SECRET_NAME, phone="137 0013 7999",
                                          notes=SECRET_NOTES), headers=headers)
    return response, "resident.create", response.json["id"]


def update(client, world, private, headers):
    response = client.patch(f"{URL}/{private.id}",
                            json={"name": SECRET_NAME, "phone": SECRET_PHONE,
                                  "notes": SECRET_NOTES},
                            headers=headers)
    return response, "resident.update", private.id


@pytest.mark.parametrize("act", [read_one, read_list, create, update],
                         ids=["get", "list", "create", "update"])
def test_each_access_writes_an_audit_event_without_personal_data(client, world, auth, private,
                                                                 act):
    user = world.users["vhw"]
    request_id = f"req-{act.__name__}-7f3a"

    response, action, entity_id = act(client, world, private, auth(user, **{"X-Request-ID":
                                                                              request_id}))

    assert response.status_code in (200, 201), response.json
    assert response.headers["X-Request-ID"] == request_id
    events = audit_events(request_id)
    assert [(e.action, e.entity, e.entity_id, e.actor_id) for e in events] == [
        (action, "resident", entity_id, user.id)]
    exported = as_json(events[0])
    for secret in (SECRET_NAME, "Qiu", "Meilan", SECRET_PHONE, "13700137999", SECRET_NOTES,
                   "flowerpot"):
        assert secret not in exported


def test_each_request_is_audited_under_its_own_request_id(client, world, auth, private):
    first = client.get(f"{URL}/{private.id}", headers=auth(world.users["vhw"],
                                                           **{"X-Request-ID": "first-req"}))
    second = client.get(f"{URL}/{private.id}", headers=auth(world.users["admin"],
                                                            **{"X-Request-ID": "second-req"}))

    assert first.status_code == second.status_code == 200
    assert [(e.action, e.actor_id) for e in audit_events("first-req")] == [
        ("resident.read", world.users["vhw"].id)]
    assert [(e.action, e.actor_id) for e in audit_events("second-req")] == [
        ("resident.read", world.users["admin"].id)]


def test_a_refused_read_leaves_no_read_event(client, world, auth):
    response = client.get(f"{URL}/{world.resident_b.id}",
                          headers=auth(world.users["vhw"], **{"X-Request-ID": "peek"}))

    assert response.status_code == 404
    assert audit_events("peek") == []
