"""POST/DELETE /api/v1/auth/token and GET /api/v1/me (API.md "Auth and users")."""

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from careservice.core.auth import hash_token
from careservice.core.models import ApiToken, AuditEvent
from careservice.extensions import db
from tests.conftest import PASSWORD

TOKEN_URL = "/api/v1/auth/token"


def login(client, username, password=PASSWORD):
    return client.post(TOKEN_URL, json={"username": username, "password": password})


def test_good_credentials_give_a_token_expiring_after_the_configured_hours(
        app, client, create_user, frozen_clock):
    user = create_user("admin", username="zhang")

    response = login(client, "zhang")

    assert response.status_code == 200
    body = response.json
    assert isinstance(body["token"], str) and len(body["token"]) >= 32
    assert body["expires_at"].endswith("Z")
    expires_at = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    expected = frozen_clock.now() + timedelta(hours=app.config["TOKEN_TTL_HOURS"])
    assert abs(expires_at - expected) <= timedelta(seconds=1)
    assert body["user"] == {"id": user.id, "username": "zhang", "role": "admin"}


@pytest.mark.parametrize("username, password", [
    ("zhang", "wrong password"),
    ("nobody", PASSWORD),
])
def test_wrong_password_and_unknown_user_get_the_same_401(client, create_user,
                                                          username, password):
    create_user("admin", username="zhang")
    reference = login(client, "zhang", "another wrong one")

    response = login(client, username, password)

    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
    assert response.json["error"]["message"] == reference.json["error"]["message"]
    assert "token" not in response.json


@pytest.mark.parametrize("body, missing", [
    ({}, {"username", "password"}),
    ({"username": "zhang"}, {"password"}),
    ({"password": PASSWORD}, {"username"}),
])
def test_missing_login_fields_are_422_naming_them(client, create_user, body, missing):
    create_user("admin", username="zhang")

    response = client.post(TOKEN_URL, json=body)

    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"
    assert missing <= set(response.json["error"]["fields"])


def test_sixth_attempt_after_five_failures_is_rate_limited_even_with_the_right_password(
        client, create_user, frozen_clock):
    create_user("admin", username="zhang")
    for _ in range(5):
        assert login(client, "zhang", "guess").status_code == 401

    response = login(client, "zhang")

    assert response.status_code == 429
    assert response.json["error"]["code"] == "rate_limited"
    assert int(response.headers["Retry-After"]) > 0
    assert "token" not in response.json


def test_failed_logins_are_counted_across_app_copies_on_one_database(
        app, client, second_app, create_user, frozen_clock):
    create_user("admin", username="zhang")
    other = second_app.test_client()
    for attempt in range(5):
        copy = client if attempt % 2 == 0 else other
        assert login(copy, "zhang", "guess").status_code == 401

    assert login(other, "zhang").status_code == 429
    assert login(client, "zhang").status_code == 429


def test_login_works_again_a_minute_after_the_limit(client, create_user, frozen_clock):
    create_user("admin", username="zhang")
    for _ in range(5):
        login(client, "zhang", "guess")
    assert login(client, "zhang").status_code == 429

    frozen_clock.advance(timedelta(seconds=61))

    response = login(client, "zhang")
    assert response.status_code == 200
    assert response.json["token"]


def test_failures_for_one_username_do_not_lock_out_another(client, create_user, frozen_clock):
    create_user("admin", username="zhang")
    create_user("admin", username="li")
    for _ in range(6):
        login(client, "zhang", "guess")

    assert login(client, "li").status_code == 200


def test_a_good_login_clears_the_failures_of_that_username(client, create_user, frozen_clock):
    create_user("admin", username="zhang")
    for _ in range(4):
        assert login(client, "zhang", "guess").status_code == 401
    assert login(client, "zhang").status_code == 200

    for _ in range(4):
        assert login(client, "zhang", "guess").status_code == 401

    assert login(client, "zhang").status_code == 200


def test_token_is_stored_only_as_its_sha256(client, create_user):
    create_user("admin", username="zhang")

    token = login(client, "zhang").json["token"]

    rows = db.session.execute(sa.select(ApiToken)).scalars().all()
    assert [row.token_hash for row in rows] == [hash_token(token)]
    for row in rows:
        assert token not in " ".join(str(getattr(row, column.key))
                                     for column in ApiToken.__table__.columns)


def test_token_works_until_it_expires(app, client, create_user, frozen_clock):
    create_user("admin", username="zhang")
    token = login(client, "zhang").json["token"]
    headers = {"Authorization": f"Bearer {token}"}
    frozen_clock.advance(timedelta(hours=app.config["TOKEN_TTL_HOURS"]) - timedelta(minutes=1))
    assert client.get("/api/v1/me", headers=headers).status_code == 200

    frozen_clock.advance(timedelta(minutes=2))

    response = client.get("/api/v1/me", headers=headers)
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer not-a-token"},
    {"Authorization": "Basic emhhbmc6cGFzcw=="},
])
def test_me_without_a_valid_token_is_401(client, headers):
    response = client.get("/api/v1/me", headers=headers)

    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"


def test_logout_revokes_the_token(client, create_user):
    create_user("admin", username="zhang")
    token = login(client, "zhang").json["token"]
    other_token = login(client, "zhang").json["token"]
    headers = {"Authorization": f"Bearer {token}"}

    response = client.delete(TOKEN_URL, headers=headers)

    assert response.status_code == 204
    assert client.get("/api/v1/me", headers=headers).status_code == 401
    assert client.delete(TOKEN_URL, headers=headers).status_code == 401
    other = client.get("/api/v1/me", headers={"Authorization": f"Bearer {other_token}"})
    assert other.status_code == 200


def test_me_gives_role_region_scope_and_provider(client, world):
    vhw = login(client, "vhw").json["token"]
    clinician = login(client, "clinician").json["token"]

    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {vhw}"})
    them = client.get("/api/v1/me", headers={"Authorization": f"Bearer {clinician}"})

    assert me.status_code == 200
    assert me.json["username"] == "vhw"
    assert me.json["role"] == "vhw"
    assert me.json["region_ids"] == [world.village_a1.id]
    assert me.json["provider_id"] is None
    assert them.json["role"] == "clinician"
    assert them.json["region_ids"] == []
    assert them.json["provider_id"] == world.clinician_a.id


def test_inactive_user_cannot_log_in(client, create_user):
    user = create_user("admin", username="zhang")
    user.active = False
    db.session.commit()

    response = login(client, "zhang")

    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"


def test_inactive_user_token_stops_working(client, create_user, auth):
    user = create_user("admin", username="zhang")
    headers = auth(user)
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    user.active = False
    db.session.commit()

    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_logins_are_audited_without_username_or_password(client, create_user):
    user = create_user("admin", username="zhangwei")
    login(client, "zhangwei", "wrong-secret-123")
    login(client, "nosuchperson", "other-secret-456")
    login(client, "zhangwei")

    events = db.session.execute(
        sa.select(AuditEvent).where(AuditEvent.action.like("login.%")).order_by(AuditEvent.id)
    ).scalars().all()

    assert [e.action for e in events] == ["login.failure", "login.failure", "login.success"]
    assert events[0].entity_id == user.id
    assert events[2].entity_id == user.id
    assert events[2].actor_id == user.id
    for event in events:
        text = repr(event.detail)
        for secret in ("zhangwei", "nosuchperson", "wrong-secret-123", "other-secret-456",
                       PASSWORD):
            assert secret not in text
