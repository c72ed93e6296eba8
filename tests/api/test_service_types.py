"""/api/v1/service-types: what a session is, as admins define it and everyone reads it."""

import pytest

SERVICE_TYPES = "/api/v1/service-types"


@pytest.fixture
def admin(create_user, auth):
    """Bearer headers of an admin."""
    return auth(create_user("admin"))


def _body(**fields):
    body = {"code": "mental_health", "name": "Mental health consultation",
            "modality": "video", "duration_minutes": 45, "buffer_minutes": 15,
            "required_skill": "mental_health"}
    body.update(fields)
    return body


def _codes(client, headers):
    response = client.get(SERVICE_TYPES, headers=headers)
    assert response.status_code == 200, response.json
    return [item["code"] for item in response.json["items"]]


def _field_errors(response):
    assert response.status_code == 422, response.json
    assert response.json["error"]["code"] == "validation_error"
    return response.json["error"]["fields"]


def test_list_gives_every_service_type_by_code(client, admin, create_service_type):
    create_service_type(code="gp_consult")
    create_service_type(code="elder_home_visit", name="Elder home visit",
                        modality="home_visit", duration_minutes=60, buffer_minutes=30,
                        required_skill="elder_care")
    create_service_type(code="chronic_followup", name="Chronic follow-up", modality="phone",
                        duration_minutes=15, buffer_minutes=0, required_skill=None)

    response = client.get(SERVICE_TYPES, headers=admin)

    assert response.status_code == 200
    assert response.json["total"] == 3
    assert [item["code"] for item in response.json["items"]] == [
        "chronic_followup", "elder_home_visit", "gp_consult"]
    visit = response.json["items"][1]
    assert {key: visit[key] for key in ("name", "modality", "duration_minutes",
                                        "buffer_minutes", "required_skill")} == {
        "name": "Elder home visit", "modality": "home_visit", "duration_minutes": 60,
        "buffer_minutes": 30, "required_skill": "elder_care"}


def test_list_pages_with_limit_and_offset(client, admin, create_service_type):
    for code in ("c_three", "a_one", "b_two"):
        create_service_type(code=code)

    response = client.get(SERVICE_TYPES, headers=admin, query_string={"limit": 1, "offset": 1})

    assert response.status_code == 200
    assert [item["code"] for item in response.json["items"]] == ["b_two"]
    assert response.json["total"] == 3


def test_every_role_reads_service_types(client, world, auth, create_service_type):
    create_service_type()

    for role, user in world.users.items():
        response = client.get(SERVICE_TYPES, headers=auth(user))
        assert response.status_code == 200, role
        assert [item["code"] for item in response.json["items"]] == ["gp_consult"], role


def test_admin_creates_a_service_type(client, admin):
    response = client.post(SERVICE_TYPES, json=_body(), headers=admin)

    assert response.status_code == 201, response.json
    body = response.json
    assert {key: body[key] for key in _body()} == _body()
    assert isinstance(body["id"], int)
    assert client.get(f"{SERVICE_TYPES}/mental_health", headers=admin).json == body


def test_buffer_and_required_skill_are_optional(client, admin):
    body = _body(code="chronic_followup", modality="phone", duration_minutes=15)
    del body["buffer_minutes"], body["required_skill"]

    response = client.post(SERVICE_TYPES, json=body, headers=admin)

    assert response.status_code == 201, response.json
    assert (response.json["buffer_minutes"], response.json["required_skill"]) == (0, None)


def test_a_duplicate_code_is_refused_on_code(client, admin, create_service_type):
    create_service_type(code="gp_consult", name="GP consultation")

    response = client.post(SERVICE_TYPES, json=_body(code="gp_consult", name="Another"),
                           headers=admin)

    assert set(_field_errors(response)) == {"code"}
    assert _codes(client, admin) == ["gp_consult"]
    assert client.get(f"{SERVICE_TYPES}/gp_consult",
                      headers=admin).json["name"] == "GP consultation"


@pytest.mark.parametrize(("change", "field"), [
    ({"modality": "sms"}, "modality"),
    ({"modality": "Video"}, "modality"),
    ({"modality": None}, "modality"),
    ({"duration_minutes": 0}, "duration_minutes"),
    ({"duration_minutes": -20}, "duration_minutes"),
    ({"duration_minutes": "twenty"}, "duration_minutes"),
    ({"buffer_minutes": -5}, "buffer_minutes"),
    ({"code": "Mental Health"}, "code"),
    ({"code": "mental-health"}, "code"),
    ({"code": ""}, "code"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"required_skill": "Mental Health"}, "required_skill"),
    ({"price": 10}, "price"),
])
def test_an_invalid_service_type_is_refused_on_that_field(client, admin, change, field):
    response = client.post(SERVICE_TYPES, json=_body(**change), headers=admin)

    assert field in _field_errors(response)
    assert _codes(client, admin) == []


@pytest.mark.parametrize("missing", ["code", "name", "modality", "duration_minutes"])
def test_required_fields_are_named_when_missing(client, admin, missing):
    body = _body()
    del body[missing]

    response = client.post(SERVICE_TYPES, json=body, headers=admin)

    assert missing in _field_errors(response)


@pytest.mark.parametrize("role", ["coordinator", "vhw", "clinician", "caregiver"])
def test_only_admins_create_service_types(client, world, auth, role):
    response = client.post(SERVICE_TYPES, json=_body(), headers=auth(world.users[role]))

    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"
    assert _codes(client, auth(world.users["admin"])) == []


def test_get_by_code(client, admin, create_service_type):
    created = create_service_type(code="elder_home_visit", name="Elder home visit",
                                  modality="home_visit", duration_minutes=60,
                                  buffer_minutes=30, required_skill="elder_care")

    response = client.get(f"{SERVICE_TYPES}/elder_home_visit", headers=admin)

    assert response.status_code == 200
    assert response.json == {"id": created.id, "code": "elder_home_visit",
                             "name": "Elder home visit", "modality": "home_visit",
                             "duration_minutes": 60, "buffer_minutes": 30,
                             "required_skill": "elder_care"}


@pytest.mark.parametrize("code", ["dental", "GP_CONSULT", "gp_consult_"])
def test_an_unknown_code_is_not_found(client, admin, create_service_type, code):
    create_service_type(code="gp_consult")

    response = client.get(f"{SERVICE_TYPES}/{code}", headers=admin)

    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_service_types_need_a_bearer_token(client):
    response = client.get(SERVICE_TYPES)

    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
