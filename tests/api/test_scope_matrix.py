"""Who may read and change which record: the role and region scope matrix.

One row per (role, method, path, body): the status the caller gets, and, for
a write, whether anything was stored. Out-of-scope records are 404 exactly as
a record that does not exist, so nothing about them leaks.
"""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from careservice.extensions import db
from careservice.people.models import Provider, Region, Resident
from careservice.scheduling.models import ServiceType

ROLES = ("admin", "coordinator", "vhw", "clinician", "caregiver")
CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 422: "validation_error"}


@pytest.fixture
def scene(world, create_service_type):
    world.service_type = create_service_type()
    return world


def stored():
    """What the database holds, committed, as comparable rows."""
    db.session.rollback()
    rows = {}
    for model, columns in (
        (Resident, (Resident.id, Resident.name, Resident.region_id)),
        (Region, (Region.id, Region.name, Region.parent_id)),
        (Provider, (Provider.id, Provider.name, Provider.home_region_id)),
        (ServiceType, (ServiceType.id, ServiceType.code, ServiceType.name)),
    ):
        rows[model.__name__] = set(db.session.execute(sa.select(*columns)).all())
    return rows


def resident_path(attr):
    return lambda w: f"/api/v1/residents/{getattr(w, attr).id}"


def region_path(attr):
    return lambda w: f"/api/v1/regions/{getattr(w, attr).id}"


def provider_path(attr):
    return lambda w: f"/api/v1/providers/{getattr(w, attr).id}"


def fixed(path):
    return lambda w: path


def no_body(w):
    return None


def rename(w):
    return {"name": "Renamed By Matrix"}


def new_resident_in(attr):
    return lambda w: {"name": "Zhao Guiying", "birth_date": "1950-06-01", "sex": "female",
                      "region_id": getattr(w, attr).id, "phone": "13800138123"}


def new_region(w):
    return {"name": "Xinzhuang Village", "kind": "village", "parent_id": w.town_a.id}


def new_provider_homed_in(attr):
    return lambda w: {"kind": "clinician", "name": "Dr. Zhou", "skills": ["gp"],
                      "home_region_id": getattr(w, attr).id}


def new_service_type(w):
    return {"code": "home_care", "name": "Home care", "modality": "home_visit",
            "duration_minutes": 60, "buffer_minutes": 15, "required_skill": "elder_care"}


def rows(method, label, path, body, **expected):
    """One case per role; `expected` maps role -> status or (422, field)."""
    cases = []
    for role in ROLES:
        outcome = expected[role]
        status, field = outcome if isinstance(outcome, tuple) else (outcome, None)
        cases.append(pytest.param(role, method, path, body, status, field,
                                  id=f"{role}-{method}-{label}-{status}"))
    return cases


ALL_READ = dict.fromkeys(ROLES, 200)
ADMIN_ONLY_CREATE = {"admin": 201, "coordinator": 403, "vhw": 403, "clinician": 403,
                     "caregiver": 403}
ADMIN_ONLY_CHANGE = {**ADMIN_ONLY_CREATE, "admin": 200}
SEEN_BY = {
    # resident -> the roles that see it (everyone else gets 404)
    "resident_a1": ("admin", "coordinator", "vhw"),
    "resident_a2": ("admin", "coordinator"),
    "resident_b": ("admin",),
}

CASES = []
for attr, seers in SEEN_BY.items():
    CASES += rows("GET", attr, resident_path(attr), no_body,
                  **{role: 200 if role in seers else 404 for role in ROLES})
    CASES += rows("PATCH", attr, resident_path(attr), rename,
                  **{role: 200 if role in seers else 404 for role in ROLES})
CASES += rows("POST", "resident-in-village_a1", fixed("/api/v1/residents"),
              new_resident_in("village_a1"),
              admin=201, coordinator=201, vhw=201, clinician=403, caregiver=403)
CASES += rows("POST", "resident-in-village_b", fixed("/api/v1/residents"),
              new_resident_in("village_b"),
              admin=201, coordinator=(422, "region_id"), vhw=(422, "region_id"),
              clinician=403, caregiver=403)
CASES += rows("GET", "regions", fixed("/api/v1/regions"), no_body, **ALL_READ)
CASES += rows("GET", "county_b", region_path("county_b"), no_body, **ALL_READ)
CASES += rows("POST", "region", fixed("/api/v1/regions"), new_region, **ADMIN_ONLY_CREATE)
CASES += rows("PATCH", "county_a", region_path("county_a"), rename, **ADMIN_ONLY_CHANGE)
CASES += rows("GET", "providers", fixed("/api/v1/providers"), no_body, **ALL_READ)
CASES += rows("GET", "clinician_b", provider_path("clinician_b"), no_body, **ALL_READ)
CASES += rows("POST", "provider-homed-in-county_a", fixed("/api/v1/providers"),
              new_provider_homed_in("county_a"),
              admin=201, coordinator=201, vhw=403, clinician=403, caregiver=403)
CASES += rows("POST", "provider-homed-in-county_b", fixed("/api/v1/providers"),
              new_provider_homed_in("county_b"),
              admin=201, coordinator=(422, "home_region_id"), vhw=403, clinician=403,
              caregiver=403)
for attr in ("clinician_a", "caregiver_a"):
    CASES += rows("PATCH", attr, provider_path(attr), rename,
                  admin=200, coordinator=200, vhw=403, clinician=403, caregiver=403)
CASES += rows("PATCH", "clinician_b", provider_path("clinician_b"), rename,
              **ADMIN_ONLY_CHANGE)
CASES += rows("GET", "service-types", fixed("/api/v1/service-types"), no_body, **ALL_READ)
CASES += rows("POST", "service-type", fixed("/api/v1/service-types"), new_service_type,
              **ADMIN_ONLY_CREATE)


@pytest.mark.parametrize(("role", "method", "path", "body", "status", "field"), CASES)
def test_role_gets_the_status_its_scope_allows(client, scene, auth, role, method, path, body,
                                               status, field):
    before = stored()
    payload = body(scene)
    response = client.open(path(scene), method=method, json=payload,
                           headers=auth(scene.users[role]))

    assert response.status_code == status, response.json
    after = stored()
    if status >= 400:
        assert response.json["error"]["code"] == CODES[status]
        if field is not None:
            assert field in response.json["error"]["fields"]
        assert after == before, "a refused request changed stored data"
    elif method == "GET":
        assert after == before
    else:
        assert after != before, "an accepted write stored nothing"
        for key, value in payload.items():
            if key in ("name", "code", "kind", "region_id", "home_region_id"):
                assert response.json[key] == value


@pytest.mark.parametrize(("role", "visible"), [
    ("admin", ("resident_a1", "resident_a2", "resident_b")),
    ("coordinator", ("resident_a1", "resident_a2")),
    ("vhw", ("resident_a1",)),
    ("clinician", ()),
    ("caregiver", ()),
])
def test_resident_list_holds_only_the_residents_in_scope(client, world, auth, role, visible):
    response = client.get("/api/v1/residents", headers=auth(world.users[role]))

    assert response.status_code == 200
    assert [item["id"] for item in response.json["items"]] == [
        getattr(world, attr).id for attr in visible]
    assert response.json["total"] == len(visible)


OUT_OF_SCOPE = [
    ("vhw", "resident_a2"),
    ("vhw", "resident_b"),
    ("coordinator", "resident_b"),
    ("clinician", "resident_a1"),
    ("caregiver", "resident_a1"),
]


@pytest.mark.parametrize("method", ["GET", "PATCH"])
@pytest.mark.parametrize(("role", "attr"), OUT_OF_SCOPE)
def test_out_of_scope_resident_answers_exactly_like_a_missing_one(client, world, auth, role,
                                                                  attr, method):
    resident = getattr(world, attr)
    body = {"name": "Renamed By Matrix"} if method == "PATCH" else None
    headers = auth(world.users[role])

    hidden = client.open(f"/api/v1/residents/{resident.id}", method=method, json=body,
                         headers=headers)
    missing = client.open("/api/v1/residents/999999", method=method, json=body,
                          headers=headers)

    assert hidden.status_code == missing.status_code == 404
    assert hidden.json == missing.json
    assert hidden.json["error"]["code"] == "not_found"
    text = hidden.get_data(as_text=True)
    assert resident.name not in text and resident.phone not in text


CALENDAR_URL_SEEN_BY = {
    # provider -> the roles whose callers see its calendar_url: the feed holds every
    # session of the provider, so only the coordinator of its home region (county A)
    "clinician_a": ("admin", "coordinator", "clinician"),
    "caregiver_a": ("admin", "coordinator", "caregiver"),
    "clinician_b": ("admin",),
}
CALENDAR_CASES = [
    pytest.param(role, attr, role in seers, id=f"{role}-{attr}")
    for attr, seers in CALENDAR_URL_SEEN_BY.items() for role in ROLES
]


@pytest.mark.parametrize(("role", "attr", "shown"), CALENDAR_CASES)
def test_calendar_url_only_for_admins_the_home_coordinator_and_the_provider(
        client, world, auth, role, attr, shown):
    provider = getattr(world, attr)

    response = client.get(f"/api/v1/providers/{provider.id}", headers=auth(world.users[role]))

    assert response.status_code == 200
    assert response.json["name"] == provider.name
    if shown:
        assert response.json["calendar_url"].endswith(
            f"/calendar/providers/{provider.id}.ics?token={provider.calendar_token}")
    else:
        assert "calendar_url" not in response.json
        assert provider.calendar_token not in response.get_data(as_text=True)


@pytest.mark.parametrize(("role", "attr", "shown"), CALENDAR_CASES)
def test_provider_list_shows_calendar_url_to_the_same_callers(client, world, auth, role, attr,
                                                              shown):
    provider = getattr(world, attr)

    response = client.get("/api/v1/providers", headers=auth(world.users[role]))

    assert response.status_code == 200
    item = next(item for item in response.json["items"] if item["id"] == provider.id)
    assert ("calendar_url" in item) is shown
    if not shown:
        assert provider.calendar_token not in response.get_data(as_text=True)


ENDPOINTS = [
    pytest.param("GET", fixed("/api/v1/residents"), no_body, id="GET residents"),
    pytest.param("POST", fixed("/api/v1/residents"), new_resident_in("village_a1"),
                 id="POST residents"),
    pytest.param("GET", resident_path("resident_a1"), no_body, id="GET residents/id"),
    pytest.param("PATCH", resident_path("resident_a1"), rename, id="PATCH residents/id"),
    pytest.param("GET", fixed("/api/v1/regions"), no_body, id="GET regions"),
    pytest.param("POST", fixed("/api/v1/regions"), new_region, id="POST regions"),
    pytest.param("GET", region_path("county_a"), no_body, id="GET regions/id"),
    pytest.param("PATCH", region_path("county_a"), rename, id="PATCH regions/id"),
    pytest.param("GET", fixed("/api/v1/providers"), no_body, id="GET providers"),
    pytest.param("POST", fixed("/api/v1/providers"), new_provider_homed_in("county_a"),
                 id="POST providers"),
    pytest.param("GET", provider_path("clinician_a"), no_body, id="GET providers/id"),
    pytest.param("PATCH", provider_path("clinician_a"), rename, id="PATCH providers/id"),
    pytest.param("GET", fixed("/api/v1/service-types"), no_body, id="GET service-types"),
    pytest.param("POST", fixed("/api/v1/service-types"), new_service_type,
                 id="POST service-types"),
    pytest.param("GET", fixed("/api/v1/service-types/gp_consult"), no_body,
                 id="GET service-types/code"),
    pytest.param("GET", fixed("/api/v1/me"), no_body, id="GET me"),
]
BAD_CREDENTIALS = {
    "no-header": {},
    "garbage-token": {"Authorization": "Bearer not-a-real-token"},
    "empty-bearer": {"Authorization": "Bearer "},
    "other-scheme": {"Authorization": "Basic YWRtaW46Y29ycmVjdCBob3JzZQ=="},
}


@pytest.mark.parametrize("credentials", BAD_CREDENTIALS.values(), ids=BAD_CREDENTIALS.keys())
@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_every_endpoint_refuses_a_caller_without_a_valid_token(client, scene, method, path,
                                                               body, credentials):
    before = stored()

    response = client.open(path(scene), method=method, json=body(scene), headers=credentials)

    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
    assert response.json["error"]["message"]
    assert stored() == before


def test_a_valid_token_does_not_vouch_for_the_next_request(client, world, auth):
    accepted = client.get("/api/v1/residents", headers=auth(world.users["admin"]))
    refused = client.get("/api/v1/residents",
                         headers={"Authorization": "Bearer not-a-real-token"})

    assert accepted.status_code == 200
    assert refused.status_code == 401
    assert refused.json["error"]["code"] == "unauthorized"


def test_an_expired_token_is_refused(client, world, auth, frozen_clock):
    headers = auth(world.users["admin"])
    frozen_clock.advance(timedelta(hours=12, seconds=1))

    response = client.get("/api/v1/residents", headers=headers)

    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
