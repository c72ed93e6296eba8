"""The conventions every /api/v1 endpoint shares (API.md "Conventions")."""

import json
import re
import threading

import pytest
import sqlalchemy as sa

from careservice.extensions import db
from careservice.people.models import Resident

RESIDENTS_URL = "/api/v1/residents"


def assert_error(response, status, code):
    assert response.status_code == status
    assert response.mimetype == "application/json"
    assert b"<html" not in response.data.lower()
    assert set(response.json) == {"error"}
    assert response.json["error"]["code"] == code
    assert isinstance(response.json["error"]["message"], str)
    assert response.json["error"]["message"]


def resident_body(village, **fields):
    body = {"name": "Ma Guilan", "birth_date": "1948-05-02", "sex": "female",
            "region_id": village.id, "phone": "+8613900139011"}
    body.update(fields)
    return body


def resident_count():
    return db.session.execute(sa.select(sa.func.count()).select_from(Resident)).scalar_one()


# The error envelope


@pytest.mark.parametrize("method, path, status, code", [
    ("get", "/api/v1/no-such-thing", 404, "not_found"),
    ("get", "/api/v1/residents/999999/nothing", 404, "not_found"),
    ("post", "/webhooks/x", 404, "not_found"),
    ("get", "/webhooks/x", 404, "not_found"),
    ("put", "/api/v1/me", 405, "method_not_allowed"),
    ("get", "/api/v1/auth/token", 405, "method_not_allowed"),
])
def test_routing_errors_use_the_json_envelope(client, method, path, status, code):
    response = getattr(client, method)(path, headers={"Accept": "text/html"})

    assert_error(response, status, code)


def test_wrong_method_names_the_allowed_ones(client):
    response = client.put("/api/v1/auth/token")

    assert_error(response, 405, "method_not_allowed")
    assert {"POST", "DELETE"} <= {m.strip() for m in response.headers["Allow"].split(",")}


@pytest.mark.parametrize("body", [b"{", b'{"username": "a",}', b"\xff\xfe not json"])
def test_malformed_json_is_400_bad_request(client, body):
    response = client.post("/api/v1/auth/token", data=body, content_type="application/json")

    assert_error(response, 400, "bad_request")


def test_json_nested_too_deeply_for_the_parser_is_400(client):
    body = b"[" * 100_000 + b"]" * 100_000

    response = client.post("/api/v1/auth/token", data=body, content_type="application/json")

    assert_error(response, 400, "bad_request")


HUGE = 2**70  # more than any database column holds


@pytest.mark.parametrize("path", [
    f"/api/v1/residents/{HUGE}", f"/api/v1/regions/{2**63}", f"/api/v1/providers/{HUGE}/slots",
    f"/api/v1/appointments/{HUGE}", f"/api/v1/care-requests/{HUGE}",
    # PostgreSQL's INTEGER ends at 2**31 - 1: one more is out of range there.
    f"/api/v1/appointments/{2**31}", f"/calendar/providers/{2**31}.ics?token=x",
    "/api/v1/service-types/gp%00consult",
])
def test_an_id_in_the_path_too_large_for_the_database_is_404(client, world, auth, path):
    response = client.get(path, headers=auth(world.users["admin"]))

    assert_error(response, 404, "not_found")


@pytest.mark.parametrize("method, path, body, field", [
    ("post", RESIDENTS_URL, {"name": "Ma Lan", "birth_date": "1950-03-04", "sex": "female",
                             "region_id": HUGE}, "region_id"),
    ("get", f"{RESIDENTS_URL}?region_id={HUGE}", None, "region_id"),
    ("get", f"{RESIDENTS_URL}?offset={HUGE}", None, "offset"),
    ("get", f"/api/v1/appointments?provider_id={2**31}", None, "provider_id"),
    ("post", RESIDENTS_URL, {"name": "Ma Lan", "birth_date": "1950-03-04", "sex": "female",
                             "region_id": 2**31}, "region_id"),
    ("post", "/api/v1/matching/batch", {"request_ids": [1, HUGE],
                                        "from": "2026-12-02T00:00:00Z",
                                        "to": "2026-12-03T00:00:00Z"}, "request_ids"),
    ("get", "/api/v1/appointments?from=9999-12-31T23:59:59-12:00", None, "from"),
    ("post", "/api/v1/care-requests", {"resident_id": 1, "service_type": "gp_consult",
                                       "earliest": "0001-01-01T00:00:00+08:00",
                                       "latest": "2026-12-09T00:00:00Z"}, "earliest"),
    # PostgreSQL refuses NUL in text: the driver would raise.
    ("post", RESIDENTS_URL, {"name": "Ma\u0000Lan", "birth_date": "1950-03-04",
                             "sex": "female", "region_id": 1}, "name"),
    ("get", f"{RESIDENTS_URL}?q=Ma%00", None, "q"),
    # A boolean is true or false: marshmallow took "yes" for true, and this would book.
    ("post", "/api/v1/matching/batch", {"request_ids": None, "commit": "yes",
                                        "from": "2026-12-02T00:00:00Z",
                                        "to": "2026-12-03T00:00:00Z"}, "commit"),
    ("post", RESIDENTS_URL, {"name": "Ma Lan", "birth_date": "1950-03-04", "sex": "female",
                             "region_id": 1, "sms_consent": "no"}, "sms_consent"),
])
def test_numbers_and_times_beyond_what_is_stored_are_422_on_the_field(
        client, world, auth, method, path, body, field):
    kwargs = {"json": body} if body is not None else {}
    response = getattr(client, method)(path, headers=auth(world.users["admin"]), **kwargs)

    assert_error(response, 422, "validation_error")
    assert field in response.json["error"]["fields"]


def test_a_body_over_one_megabyte_is_413(client):
    body = json.dumps({"username": "zhang", "password": "x" * (1024 * 1024 + 10)})

    response = client.post("/api/v1/auth/token", data=body, content_type="application/json")

    assert_error(response, 413, "payload_too_large")


def test_validation_errors_are_422_with_fields(client, world, auth):
    response = client.post(RESIDENTS_URL, headers=auth(world.users["vhw"]),
                           json=resident_body(world.village_a1, phone="12", sex="unknown",
                                              role="admin"))

    assert_error(response, 422, "validation_error")
    fields = response.json["error"]["fields"]
    assert {"phone", "sex", "role"} <= set(fields)
    assert all(isinstance(messages, list) and messages for messages in fields.values())


def test_unexpected_errors_are_500_without_a_traceback(second_app):
    other_app = second_app  # with a route of this test's own
    def explode():
        raise RuntimeError("secret internals at /srv/careservice/thing.py line 12")

    other_app.add_url_rule("/api/v1/explode", "explode", explode)

    response = other_app.test_client().get("/api/v1/explode")

    assert_error(response, 500, "internal_error")
    text = response.get_data(as_text=True)
    for leak in ("Traceback", "RuntimeError", "secret internals", ".py", "line 12"):
        assert leak not in text


# Idempotency-Key on creating POSTs


def test_repeated_key_and_body_replay_the_first_response(client, world, auth):
    headers = auth(world.users["vhw"], **{"Idempotency-Key": "visit-2026-12-01-a"})
    body = resident_body(world.village_a1)

    first = client.post(RESIDENTS_URL, headers=headers, json=body)
    second = client.post(RESIDENTS_URL, headers=headers, json=body)

    assert first.status_code == 201
    assert second.status_code == first.status_code
    assert second.json == first.json
    assert resident_count() == 4  # world's three and this one


def test_replay_ignores_the_order_of_keys_in_the_body(client, world, auth):
    headers = auth(world.users["vhw"], **{"Idempotency-Key": "k-order"})
    body = resident_body(world.village_a1)

    first = client.post(RESIDENTS_URL, headers=headers, json=body)
    again = client.post(RESIDENTS_URL, headers=headers,
                        data=json.dumps(dict(reversed(list(body.items())))),
                        content_type="application/json")

    assert again.status_code == 201
    assert again.json["id"] == first.json["id"]


def test_every_post_that_creates_honours_the_idempotency_key(app, client):
    """API.md: `Idempotency-Key` on POSTs that create. Every POST answering 201 replays,
    and the OpenAPI document says so."""
    spec = client.get("/api/v1/openapi.json").json
    documented = {path for path, operations in spec["paths"].items()
                  if any(parameter["name"] == "Idempotency-Key"
                         for parameter in operations.get("post", {}).get("parameters", []))}
    creating = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        post = getattr(getattr(view, "view_class", None), "post", None)
        responses = getattr(post, "_apidoc", {}).get("response", {}).get("responses", {})
        if 201 in responses:
            creating.append(rule.rule)
            assert getattr(post, "idempotent", False), rule.rule
    assert "/api/v1/providers/<int:provider_id>/exceptions" in creating
    assert len(creating) >= 10
    assert documented == {re.sub(r"<(?:int:)?(\w+)>", r"{\1}", path) for path in creating}


def test_same_key_with_another_body_is_refused(client, world, auth):
    headers = auth(world.users["vhw"], **{"Idempotency-Key": "k-1"})
    client.post(RESIDENTS_URL, headers=headers, json=resident_body(world.village_a1))

    response = client.post(RESIDENTS_URL, headers=headers,
                           json=resident_body(world.village_a1, name="Ma Lan"))

    assert_error(response, 422, "idempotency_key_reused")
    assert resident_count() == 4


def test_the_same_key_from_another_user_is_independent(client, world, auth):
    body = resident_body(world.village_a1)
    vhw = client.post(RESIDENTS_URL, json=body,
                      headers=auth(world.users["vhw"], **{"Idempotency-Key": "shared"}))
    admin = client.post(RESIDENTS_URL, json=body,
                        headers=auth(world.users["admin"], **{"Idempotency-Key": "shared"}))

    assert vhw.status_code == 201
    assert admin.status_code == 201
    assert admin.json["id"] != vhw.json["id"]
    assert resident_count() == 5


def test_a_failed_validation_replays_as_the_same_422(client, world, auth):
    headers = auth(world.users["vhw"], **{"Idempotency-Key": "k-bad"})
    body = resident_body(world.village_a1, birth_date="not a date")

    first = client.post(RESIDENTS_URL, headers=headers, json=body)
    second = client.post(RESIDENTS_URL, headers=headers, json=body)

    assert_error(first, 422, "validation_error")
    assert second.status_code == 422
    assert second.json == first.json
    assert resident_count() == 3


def test_two_simultaneous_requests_with_one_key_create_one_resident(app, world, auth):
    headers = auth(world.users["vhw"], **{"Idempotency-Key": "double-tap"})
    body = resident_body(world.village_a1)
    # The test's session would hold SQLite's write lock past its last read; a
    # request's own session never outlives the request.
    db.session.rollback()
    barrier = threading.Barrier(2)
    responses = [None, None]

    def post(i):
        client = app.test_client()
        with app.app_context():
            barrier.wait(timeout=10)
            responses[i] = client.post(RESIDENTS_URL, headers=headers, json=body)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert resident_count() == 4
    created = [r for r in responses if r.status_code == 201]
    assert created, [r.status_code for r in responses]
    ids = {r.json["id"] for r in created}
    assert len(ids) == 1
    for response in responses:
        if response.status_code != 201:
            assert_error(response, 409, "conflict")


# The OpenAPI document


def openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def test_openapi_lists_every_route_with_its_methods(app, client):
    document = client.get("/api/v1/openapi.json")
    assert document.status_code == 200
    paths = document.json["paths"]
    expected = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "api-docs.openapi_json":
            continue  # the document itself
        if rule.rule.startswith(("/api/v1/", "/calendar/", "/webhooks/")) or rule.rule in (
                "/healthz", "/readyz", "/metrics"):
            methods = {m.lower() for m in rule.methods} - {"head", "options"}
            expected.setdefault(openapi_path(rule.rule), set()).update(methods)
    assert {"/healthz", "/readyz", "/metrics", "/api/v1/auth/token",
            "/api/v1/residents"} <= set(expected)

    documented = {path: set(item) & {"get", "post", "put", "patch", "delete"}
                  for path, item in paths.items()}

    assert documented == expected


def test_every_documented_error_answer_has_the_error_envelope(client):
    """API.md: errors always have the one shape; the document says so for each."""
    spec = client.get("/api/v1/openapi.json").json
    shared = spec["components"]["responses"]
    bare = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            for status, answer in operation.get("responses", {}).items():
                if not str(status).startswith("4"):
                    continue
                answer = shared[answer["$ref"].rsplit("/", 1)[1]] if "$ref" in answer else answer
                schema = answer.get("content", {}).get("application/json", {}).get("schema")
                if schema != {"$ref": "#/components/schemas/Error"}:
                    bare.append(f"{method} {path} {status}")
    assert bare == []


# Encoding and request ids


def test_json_is_utf8_with_chinese_kept_readable(client, world, auth):
    headers = auth(world.users["vhw"])
    name = "马秀英"

    created = client.post(RESIDENTS_URL, headers=headers,
                          json=resident_body(world.village_a1, name=name))
    listed = client.get(RESIDENTS_URL, headers=headers, query_string={"q": "秀英"})

    for response in (created, listed):
        assert response.mimetype == "application/json"
        assert response.mimetype_params.get("charset", "utf-8").lower() == "utf-8"
        assert name.encode("utf-8") in response.data
        assert b"\\u" not in response.data
    assert json.loads(created.data.decode("utf-8"))["name"] == name
    assert [r["name"] for r in listed.json["items"]] == [name]


def test_a_chinese_request_body_is_read_as_utf8(client, world, auth):
    raw = json.dumps(resident_body(world.village_a1, name="杨凤英"), ensure_ascii=False)

    response = client.post(RESIDENTS_URL, headers=auth(world.users["vhw"]),
                           data=raw.encode("utf-8"), content_type="application/json")

    assert response.status_code == 201
    assert response.json["name"] == "杨凤英"


def test_request_id_is_echoed(client):
    response = client.get("/healthz", headers={"X-Request-ID": "vhw-app-7f3a"})
    missing = client.get("/api/v1/nothing-here", headers={"X-Request-ID": "vhw-app-7f3b"})

    assert response.headers["X-Request-ID"] == "vhw-app-7f3a"
    assert missing.headers["X-Request-ID"] == "vhw-app-7f3b"


def test_request_id_is_generated_when_missing(client):
    first = client.get("/healthz")
    second = client.get("/healthz")

    assert first.headers["X-Request-ID"]
    assert second.headers["X-Request-ID"]
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]
