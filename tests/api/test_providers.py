"""/api/v1/providers: clinicians and caregivers as admins manage them over HTTP."""

import json
import re

import pytest
import sqlalchemy as sa

from careservice.core.models import AuditEvent
from careservice.extensions import db
from tests.scheduling.test_races import run_concurrently

PROVIDERS = "/api/v1/providers"


@pytest.fixture
def admin_user(create_user):
    return create_user("admin")


@pytest.fixture
def admin(admin_user, auth):
    """Bearer headers of an admin."""
    return auth(admin_user)


@pytest.fixture
def home(create_region):
    """A county in a province on Urumqi time, so inheriting it is visible."""
    province = create_region("province", timezone="Asia/Urumqi")
    return create_region("county", province)


def _body(home_region, kind="clinician", **fields):
    body = {"kind": kind, "name": "Dr. Zhao Wei", "home_region_id": home_region.id}
    body.update(fields)
    return body


def _post(client, headers, body):
    return client.post(PROVIDERS, json=body, headers=headers)


def _patch(client, headers, provider_id, **body):
    return client.patch(f"{PROVIDERS}/{provider_id}", json=body, headers=headers)


def _get(client, headers, provider_id):
    response = client.get(f"{PROVIDERS}/{provider_id}", headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def _field_errors(response):
    assert response.status_code == 422, response.json
    assert response.json["error"]["code"] == "validation_error"
    return response.json["error"]["fields"]


def _total(client, headers):
    return client.get(PROVIDERS, headers=headers).json["total"]


# Creating


def test_clinician_is_created_with_defaults_from_kind_and_home_region(client, admin, home):
    response = _post(client, admin, _body(home))

    assert response.status_code == 201, response.json
    body = response.json
    assert body["kind"] == "clinician"
    assert body["name"] == "Dr. Zhao Wei"
    assert body["timezone"] == "Asia/Urumqi"
    assert body["modalities"] == ["video", "phone"]
    assert body["home_region_id"] == home.id
    assert body["service_region_ids"] == []
    assert body["active"] is True
    assert body["max_sessions_per_day"] >= 1
    assert body["languages"] == ["zh-CN"]
    assert body["phone"] is None and body["email"] is None
    assert _get(client, admin, body["id"]) == body


def test_caregiver_defaults_to_home_visits(client, admin, home):
    response = _post(client, admin, _body(home, "caregiver", name="Ma Lan",
                                          skills=["elder_care"]))

    assert response.status_code == 201, response.json
    assert response.json["kind"] == "caregiver"
    assert response.json["modalities"] == ["home_visit"]
    assert response.json["skills"] == ["elder_care"]
    assert response.json["timezone"] == "Asia/Urumqi"


def test_explicit_values_are_kept(client, admin, home):
    response = _post(client, admin, _body(
        home, modalities=["video"], timezone="Asia/Shanghai", languages=["en", "zh-CN"],
        skills=["gp", "mental_health"], max_sessions_per_day=12,
        email="zhao.wei@example.org"))

    assert response.status_code == 201, response.json
    body = response.json
    assert (body["modalities"], body["timezone"], body["languages"], body["skills"],
            body["max_sessions_per_day"], body["email"]) == (
        ["video"], "Asia/Shanghai", ["en", "zh-CN"], ["gp", "mental_health"], 12,
        "zhao.wei@example.org")


@pytest.mark.parametrize("modalities", [["video"], ["phone"], ["video", "phone"]])
def test_caregiver_without_home_visits_is_refused(client, admin, home, modalities):
    response = _post(client, admin, _body(home, "caregiver", modalities=modalities))

    assert "modalities" in _field_errors(response)
    assert _total(client, admin) == 0


def test_caregiver_with_home_visits_and_phone_is_accepted(client, admin, home):
    response = _post(client, admin, _body(home, "caregiver", modalities=["home_visit", "phone"]))

    assert response.status_code == 201, response.json
    assert response.json["modalities"] == ["home_visit", "phone"]


@pytest.mark.parametrize("change", [
    {"modalities": ["video"]},
    {"modalities": ["phone", "video"]},
    {"kind": "caregiver", "modalities": ["video"]},
])
def test_patch_removing_home_visits_from_a_caregiver_is_refused(client, admin, home,
                                                                create_provider, change):
    caregiver = create_provider(home, kind="caregiver", skills=["elder_care"])

    response = _patch(client, admin, caregiver.id, **change)

    assert "modalities" in _field_errors(response)
    stored = _get(client, admin, caregiver.id)
    assert (stored["kind"], stored["modalities"]) == ("caregiver", ["home_visit"])


def test_patch_turning_a_video_clinician_into_a_caregiver_is_refused(client, admin, home,
                                                                     create_provider):
    clinician = create_provider(home)

    response = _patch(client, admin, clinician.id, kind="caregiver")

    assert "modalities" in _field_errors(response)
    assert _get(client, admin, clinician.id)["kind"] == "clinician"


def test_patch_may_add_modalities_to_a_caregiver(client, admin, home, create_provider):
    caregiver = create_provider(home, kind="caregiver", skills=["elder_care"])

    response = _patch(client, admin, caregiver.id, modalities=["home_visit", "phone"])

    assert response.status_code == 200, response.json
    assert _get(client, admin, caregiver.id)["modalities"] == ["home_visit", "phone"]


# Fields


def test_service_regions_round_trip(client, admin, home, create_region):
    town = create_region("township", home)
    village = create_region("village", town)

    created = _post(client, admin, _body(home, service_region_ids=[village.id, town.id]))

    assert created.status_code == 201, created.json
    provider_id = created.json["id"]
    assert sorted(created.json["service_region_ids"]) == sorted([town.id, village.id])
    assert sorted(_get(client, admin, provider_id)["service_region_ids"]) == sorted(
        [town.id, village.id])

    patched = _patch(client, admin, provider_id, service_region_ids=[home.id])

    assert patched.status_code == 200, patched.json
    assert _get(client, admin, provider_id)["service_region_ids"] == [home.id]
    assert _patch(client, admin, provider_id, service_region_ids=[]).status_code == 200
    assert _get(client, admin, provider_id)["service_region_ids"] == []


@pytest.mark.parametrize("before, after", [([0], [0, 1]), ([0, 1], [0])])
def test_the_same_service_regions_sent_twice_at_once_are_set_once(
        app, admin, home, create_region, create_provider, before, after):
    regions = [home, create_region("township", home)]
    provider = create_provider(home, service_region_ids=[regions[i].id for i in before])
    wanted = [regions[i].id for i in after]
    body = {"service_region_ids": wanted}

    results = run_concurrently(app, [("PATCH", f"{PROVIDERS}/{provider.id}", body, admin)] * 4)

    assert [status for status, _ in results] == [200] * 4, results
    assert all(sorted(answer["service_region_ids"]) == sorted(wanted) for _, answer in results)


def test_an_unknown_service_region_is_refused(client, admin, home):
    response = _post(client, admin, _body(home, service_region_ids=[home.id, home.id + 1000]))

    assert "service_region_ids" in _field_errors(response)
    assert _total(client, admin) == 0


def test_patching_an_unknown_service_region_is_refused(client, admin, home, create_provider):
    provider = create_provider(home, service_region_ids=[home.id])

    response = _patch(client, admin, provider.id, service_region_ids=[home.id + 1000])

    assert "service_region_ids" in _field_errors(response)
    assert _get(client, admin, provider.id)["service_region_ids"] == [home.id]


def test_an_unknown_home_region_is_refused(client, admin, home):
    response = _post(client, admin, _body(home, home_region_id=home.id + 1000))

    assert "home_region_id" in _field_errors(response)
    assert _total(client, admin) == 0


@pytest.mark.parametrize(("skills", "status"), [
    (["gp", "elder_care", "mental_health2"], 201),
    ([], 201),
    (["GP"], 422),
    (["gp consult"], 422),
    (["gp-consult"], 422),
    (["1gp"], 422),
    ([""], 422),
    (["gp", "gp"], 422),
    (["x" * 41], 422),
    ("gp", 422),
])
def test_skills_are_lower_snake_case_codes(client, admin, home, skills, status):
    response = _post(client, admin, _body(home, skills=skills))

    assert response.status_code == status, response.json
    if status == 201:
        assert response.json["skills"] == skills
    else:
        assert any(name.split(".")[0] == "skills" for name in _field_errors(response))


@pytest.mark.parametrize(("phone", "stored"), [
    ("13800138000", "+8613800138000"),
    ("138 0013 8000", "+8613800138000"),
    ("+86 138-0013-8000", "+8613800138000"),
    ("+62 812-3456-7890", "+6281234567890"),
    (None, None),
])
def test_phone_is_normalised_to_e164(client, admin, home, phone, stored):
    response = _post(client, admin, _body(home, phone=phone))

    assert response.status_code == 201, response.json
    assert response.json["phone"] == stored
    assert _get(client, admin, response.json["id"])["phone"] == stored


@pytest.mark.parametrize("phone", ["12345", "not a phone", "+86 138", ""])
def test_an_invalid_phone_is_refused(client, admin, home, phone):
    response = _post(client, admin, _body(home, phone=phone))

    assert "phone" in _field_errors(response)
    assert _total(client, admin) == 0


def test_patching_a_phone_normalises_it(client, admin, home, create_provider):
    provider = create_provider(home)

    response = _patch(client, admin, provider.id, phone="139 0013 9001")

    assert response.status_code == 200, response.json
    assert _get(client, admin, provider.id)["phone"] == "+8613900139001"


@pytest.mark.parametrize("email", ["not-an-email", "zhao@", "@example.org", "a b@example.org"])
def test_a_bad_email_is_refused(client, admin, home, email):
    response = _post(client, admin, _body(home, email=email))

    assert "email" in _field_errors(response)
    assert _total(client, admin) == 0


@pytest.mark.parametrize(("cap", "status"), [(0, 422), (-1, 422), (1, 201), (101, 422)])
def test_max_sessions_per_day_must_be_positive(client, admin, home, cap, status):
    response = _post(client, admin, _body(home, max_sessions_per_day=cap))

    assert response.status_code == status, response.json
    if status == 422:
        assert "max_sessions_per_day" in _field_errors(response)
    else:
        assert response.json["max_sessions_per_day"] == cap


def test_patching_max_sessions_per_day_to_zero_is_refused(client, admin, home, create_provider):
    provider = create_provider(home, max_sessions_per_day=6)

    response = _patch(client, admin, provider.id, max_sessions_per_day=0)

    assert "max_sessions_per_day" in _field_errors(response)
    assert _get(client, admin, provider.id)["max_sessions_per_day"] == 6


@pytest.mark.parametrize("extra", [
    {"calendar_token": "chosen-by-me"},
    {"id": 99},
    {"calendar_url": "http://evil.example/feed.ics"},
    {"specialty": "cardiology"},
])
def test_unknown_fields_are_refused(client, admin, home, create_provider, extra):
    created = _post(client, admin, _body(home, **extra))
    assert set(extra) <= set(_field_errors(created))
    assert _total(client, admin) == 0

    provider = create_provider(home)
    patched = _patch(client, admin, provider.id, **extra)
    assert set(extra) <= set(_field_errors(patched))


@pytest.mark.parametrize("missing", ["kind", "name", "home_region_id"])
def test_required_fields_are_named_when_missing(client, admin, home, missing):
    body = _body(home)
    del body[missing]

    assert missing in _field_errors(_post(client, admin, body))


def test_patch_active_false_deactivates_and_true_reactivates(client, admin, home,
                                                             create_provider):
    provider = create_provider(home)

    response = _patch(client, admin, provider.id, active=False)

    assert response.status_code == 200, response.json
    assert response.json["active"] is False
    assert _get(client, admin, provider.id)["active"] is False
    assert _patch(client, admin, provider.id, active=True).json["active"] is True
    assert _get(client, admin, provider.id)["active"] is True


@pytest.mark.parametrize("field", ["kind", "name", "timezone", "home_region_id", "active",
                                   "modalities", "max_sessions_per_day"])
def test_patching_a_required_field_to_null_is_refused(client, admin, home, create_provider,
                                                      field):
    provider = create_provider(home)
    before = _get(client, admin, provider.id)

    response = _patch(client, admin, provider.id, **{field: None})

    assert field in _field_errors(response)
    assert _get(client, admin, provider.id) == before


# Listing


def _ids(client, headers, **query):
    response = client.get(PROVIDERS, headers=headers, query_string=query)
    assert response.status_code == 200, response.json
    assert response.json["total"] == len(response.json["items"])
    return [item["id"] for item in response.json["items"]]


def test_list_filters_by_kind_and_active(client, admin, home, create_provider):
    clinician = create_provider(home)
    caregiver = create_provider(home, kind="caregiver", skills=["elder_care"])
    retired = create_provider(home, active=False)

    assert _ids(client, admin) == [clinician.id, caregiver.id, retired.id]
    assert _ids(client, admin, kind="clinician") == [clinician.id, retired.id]
    assert _ids(client, admin, kind="caregiver") == [caregiver.id]
    assert _ids(client, admin, active="true") == [clinician.id, caregiver.id]
    assert _ids(client, admin, active="false") == [retired.id]
    assert _ids(client, admin, kind="clinician", active="true") == [clinician.id]


def test_list_region_filter_matches_home_served_below_or_serving_around(client, admin,
                                                                   create_region,
                                                                   create_provider):
    province = create_region("province")
    county_1 = create_region("county", province)
    county_2 = create_region("county", province)
    town_1 = create_region("township", county_1)
    village_1 = create_region("village", town_1)
    serves_town_1 = create_provider(county_2, service_region_ids=[town_1.id])
    lives_in_village_1 = create_provider(village_1, kind="caregiver",
                                         service_region_ids=[village_1.id])
    stays_in_county_2 = create_provider(county_2)

    assert _ids(client, admin, region_id=province.id) == [
        serves_town_1.id, lives_in_village_1.id, stays_in_county_2.id]
    assert _ids(client, admin, region_id=county_1.id) == [
        serves_town_1.id, lives_in_village_1.id]
    assert _ids(client, admin, region_id=county_2.id) == [
        serves_town_1.id, stays_in_county_2.id]
    # Serving the township means serving each of its villages.
    assert _ids(client, admin, region_id=village_1.id) == [
        serves_town_1.id, lives_in_village_1.id]
    assert _ids(client, admin, region_id=county_1.id, kind="clinician") == [serves_town_1.id]


@pytest.mark.parametrize("query", [{"kind": "nurse"}, {"active": "maybe"},
                                   {"region_id": "north"}])
def test_list_filter_with_a_bad_value_is_refused(client, admin, query):
    response = client.get(PROVIDERS, headers=admin, query_string=query)

    assert set(query) <= set(_field_errors(response))


@pytest.mark.parametrize("method", ["get", "patch"])
def test_an_unknown_provider_id_in_the_path_is_not_found(client, admin, home, create_provider,
                                                         method):
    provider = create_provider(home)

    response = getattr(client, method)(f"{PROVIDERS}/{provider.id + 1000}", headers=admin,
                                       json={"active": False})

    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


# Calendar feed link


def test_calendar_url_carries_the_provider_id_and_a_distinct_token(client, admin, home, app):
    first = _post(client, admin, _body(home)).json
    second = _post(client, admin, _body(home, "caregiver", name="Ma Lan")).json
    base = re.escape(app.config["PUBLIC_URL"])

    tokens = []
    for provider in (first, second):
        match = re.fullmatch(rf"{base}/calendar/providers/{provider['id']}\.ics\?token=(\S+)",
                             provider["calendar_url"])
        assert match, provider["calendar_url"]
        assert len(match.group(1)) >= 20
        tokens.append(match.group(1))
        assert _get(client, admin, provider["id"])["calendar_url"] == provider["calendar_url"]
    assert tokens[0] != tokens[1]


def test_calendar_url_is_shown_to_the_provider_and_coordinators_only(client, world, auth):
    own = world.clinician_a.id
    seen = {role: "calendar_url" in _get(client, auth(user), own)
            for role, user in world.users.items()}

    assert seen == {"admin": True, "coordinator": True, "clinician": True,
                    "vhw": False, "caregiver": False}
    listing = client.get(PROVIDERS, headers=auth(world.users["vhw"])).json["items"]
    assert listing and all("calendar_url" not in item for item in listing)


# Who may manage providers


def test_a_vhw_may_not_add_providers(client, world, auth):
    response = _post(client, auth(world.users["vhw"]), _body(world.village_a1))

    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"


def test_a_coordinator_adds_providers_only_in_their_regions(client, world, auth):
    coordinator = auth(world.users["coordinator"])

    inside = _post(client, coordinator, _body(world.town_a))
    outside = _post(client, coordinator, _body(world.town_b))

    assert inside.status_code == 201, inside.json
    assert "home_region_id" in _field_errors(outside)


def test_a_coordinator_gives_service_regions_only_inside_their_regions(client, world, auth):
    coordinator = auth(world.users["coordinator"])
    before = _total(client, coordinator)

    outside = _post(client, coordinator,
                    _body(world.town_a, service_region_ids=[world.town_a.id, world.town_b.id]))
    above = _post(client, coordinator,
                  _body(world.town_a, service_region_ids=[world.province.id]))
    inside = _post(client, coordinator,
                   _body(world.town_a, service_region_ids=[world.village_a1.id]))

    assert "service_region_ids" in _field_errors(outside)
    assert "service_region_ids" in _field_errors(above)
    assert inside.status_code == 201, inside.json
    assert _total(client, coordinator) == before + 1


@pytest.mark.parametrize(("field", "value"), [
    ("service_region_ids", lambda w: [w.county_a.id, w.village_b.id]),
    ("service_region_ids", lambda w: [w.province.id]),
    ("home_region_id", lambda w: w.town_b.id),
], ids=["serving-another-county", "serving-the-province", "homed-in-another-county"])
def test_a_coordinator_may_not_move_a_provider_out_of_their_regions(client, world, auth,
                                                                    field, value):
    coordinator = auth(world.users["coordinator"])
    provider = world.clinician_a.id
    before = _get(client, coordinator, provider)

    response = _patch(client, coordinator, provider, **{field: value(world)})

    assert field in _field_errors(response)
    assert _get(client, coordinator, provider) == before


def test_a_coordinator_keeps_service_regions_an_admin_gave_outside_theirs(client, world, auth):
    admin, coordinator = auth(world.users["admin"]), auth(world.users["coordinator"])
    provider = world.clinician_a.id
    assert _patch(client, admin, provider,
                  service_region_ids=[world.county_a.id, world.county_b.id]).status_code == 200

    response = _patch(client, coordinator, provider,
                      service_region_ids=[world.town_a.id, world.county_b.id])

    assert response.status_code == 200, response.json
    assert response.json["service_region_ids"] == [world.town_a.id, world.county_b.id]
    admin_anywhere = _patch(client, admin, provider, service_region_ids=[world.village_b.id])
    assert admin_anywhere.json["service_region_ids"] == [world.village_b.id]


# Audit


def _provider_events(provider_id):
    db.session.rollback()
    return db.session.execute(
        sa.select(AuditEvent).where(AuditEvent.entity == "provider",
                                    AuditEvent.entity_id == provider_id)
        .order_by(AuditEvent.id)
    ).scalars().all()


def test_every_create_and_update_of_a_provider_is_audited_without_name_or_phone(
        client, admin, admin_user, home):
    name, phone = "Dr. Zhao Wei", "+8613800138000"
    created = _post(client, admin, _body(home, name=name, phone="138 0013 8000"))
    assert created.status_code == 201, created.json
    provider_id = created.json["id"]
    assert _patch(client, admin, provider_id, name="Dr. Qian Li",
                  phone="13900139001").status_code == 200
    assert _patch(client, admin, provider_id, active=False).status_code == 200

    events = _provider_events(provider_id)

    assert [event.action for event in events] == [
        "provider.create", "provider.update", "provider.update"]
    assert {event.actor_id for event in events} == {admin_user.id}
    for event in events:
        stored = json.dumps({"detail": event.detail, "request_id": event.request_id},
                            ensure_ascii=False)
        for secret in (name, "Zhao", "Dr. Qian Li", "Qian", phone, "13800138000",
                       "+8613900139001", "13900139001"):
            assert secret not in stored


def test_a_refused_update_is_not_audited(client, admin, home, create_provider):
    provider = create_provider(home, kind="caregiver", skills=["elder_care"])
    before = len(_provider_events(provider.id))

    assert _patch(client, admin, provider.id, modalities=["video"]).status_code == 422
    assert _patch(client, admin, provider.id, max_sessions_per_day=0).status_code == 422

    assert len(_provider_events(provider.id)) == before
