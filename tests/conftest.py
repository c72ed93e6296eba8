"""Fixtures: one migrated database per run, emptied after every test.

The suite runs on SQLite by default; set CARESERVICE_TEST_DATABASE_URL to a
PostgreSQL URL (.ci/run does) to run the same tests there. With
CARESERVICE_REQUIRE_POSTGRES=1 an unreachable PostgreSQL fails the run
instead of skipping.
"""

import ipaddress
import os
import socket
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa
from flask import has_app_context
from flask.testing import FlaskClient
from flask_migrate import upgrade

from careservice import create_app
from careservice.core.auth import Actor
from careservice.core.time import clock
from careservice.extensions import db
from careservice.people import services, users
from careservice.scheduling import services as scheduling

TEST_DATABASE_URL = os.environ.get("CARESERVICE_TEST_DATABASE_URL", "")
REQUIRE_POSTGRES = os.environ.get("CARESERVICE_REQUIRE_POSTGRES") == "1"
PASSWORD = "correct horse battery"
SYSTEM = Actor.system("tests")


def pytest_report_header(config):
    if TEST_DATABASE_URL:
        return f"careservice database: {sa.make_url(TEST_DATABASE_URL).render_as_string()}"
    return "careservice database: SQLite (PostgreSQL skipped: set CARESERVICE_TEST_DATABASE_URL)"


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Fail any test that would reach past this machine (Twilio, DNS, anything)."""
    real_connect = socket.socket.connect

    def guarded(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            try:
                loopback = ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = host == "localhost"
            if not loopback:
                raise AssertionError(f"test tried to reach the network: {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)

    real_getaddrinfo = socket.getaddrinfo

    def local_names_only(host, *args, **kwargs):
        # Fail fast on api.twilio.com and friends, before any DNS lookup.
        if host not in (None, "localhost", "127.0.0.1", "::1", b"localhost", b"127.0.0.1"):
            raise AssertionError(f"test tried to resolve {host!r}: only 127.0.0.1 is allowed")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", local_names_only)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    if not TEST_DATABASE_URL:
        if REQUIRE_POSTGRES:
            pytest.exit("CARESERVICE_REQUIRE_POSTGRES=1 but no CARESERVICE_TEST_DATABASE_URL",
                        returncode=1)
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    try:
        engine = sa.create_engine(TEST_DATABASE_URL)
        with engine.connect():
            pass
        engine.dispose()
    except sa.exc.OperationalError as error:
        pytest.exit(f"PostgreSQL unreachable at {TEST_DATABASE_URL}: {error}", returncode=1)
    return TEST_DATABASE_URL


class PerRequestClient(FlaskClient):
    """Each request in its own app context, hence its own `g` and session, as in
    production; without this Flask would reuse the test's app context, and the
    first request's actor and session would answer for every later one."""

    def open(self, *args, **kwargs):
        # End the test's own transaction first: on SQLite it holds the write lock.
        # (A request from another thread has no app context here, and nothing to end.)
        outer = has_app_context()
        if outer:
            db.session.rollback()
        try:
            with self.application.app_context():
                return super().open(*args, **kwargs)
        finally:
            if outer:  # the request may have changed what the test holds
                db.session.expire_all()


@pytest.fixture(scope="session")
def app(database_url):
    app = create_app({"ENV": "testing", "DATABASE_URL": database_url})
    app.test_client_class = PerRequestClient
    with app.app_context():
        upgrade()
        _empty_tables()
    return app


def _empty_tables():
    """Delete every row, children first, and restart the ids at 1. On PostgreSQL
    this is DELETE and setval, not TRUNCATE: TRUNCATE gives every table new files,
    and syncing twenty of them after each test cost a quarter of a second."""
    tables = [t for t in reversed(db.metadata.sorted_tables)]
    with db.engine.begin() as connection:
        for table in tables:
            connection.execute(table.delete())
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text(
                "SELECT setval(c.oid, 1, false) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind = 'S' AND n.nspname = current_schema()"))


@pytest.fixture(autouse=True)
def _app_context(request):
    """Every test that uses the app runs in its context and leaves the database empty."""
    if "app" not in request.fixturenames:
        yield
        return
    app = request.getfixturevalue("app")
    with app.app_context():
        yield
        db.session.rollback()
        db.session.remove()
        _empty_tables()
    clock.reset()


@pytest.fixture
def frozen_clock():
    """The service clock, fixed at 2026-12-01 09:00 UTC until the test moves it."""
    clock.set(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    yield clock
    clock.reset()


@pytest.fixture
def client(app):
    return app.test_client()


# Factories: sensible defaults, any field overridable.


@pytest.fixture
def create_region():
    counter = iter(range(1, 10_000))

    def make(kind="village", parent=None, **fields):
        data = {"name": f"{kind.title()} {next(counter)}", "kind": kind,
                "parent_id": parent.id if parent is not None else None}
        if parent is None:
            data.update(zone="west", setting="rural")
        data.update(fields)
        return services.create_region(SYSTEM, data)

    return make


@pytest.fixture
def create_resident():
    def make(region, **fields):
        data = {"name": "Wang Xiuying", "birth_date": date(1944, 3, 2), "sex": "female",
                "region_id": region.id, "phone": "+8613800138000", "languages": ["zh-CN"]}
        data.update(fields)
        return services.create_resident(SYSTEM, data)

    return make


@pytest.fixture
def second_app(app):
    """Another copy of the service on the same database, like a second gunicorn worker."""
    other = create_app({"ENV": "testing", "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"]})
    yield other
    with other.app_context():
        db.engine.dispose()


@pytest.fixture
def create_provider():
    def make(home_region, kind="clinician", **fields):
        data = {"kind": kind, "name": "Dr. Lin", "home_region_id": home_region.id,
                "skills": ["gp"], "languages": ["zh-CN", "en"]}
        data.update(fields)
        return services.create_provider(SYSTEM, data)

    return make


@pytest.fixture
def create_user():
    counter = iter(range(1, 10_000))

    def make(role="admin", regions=(), provider=None, username=None, password=PASSWORD):
        return users.create_user(
            SYSTEM, username or f"{role}{next(counter)}", password, role,
            region_ids=[region.id for region in regions],
            provider_id=provider.id if provider is not None else None,
        )

    return make


@pytest.fixture
def create_service_type():
    def make(**fields):
        data = {"code": "gp_consult", "name": "GP consultation", "modality": "video",
                "duration_minutes": 20, "buffer_minutes": 5, "required_skill": "gp"}
        data.update(fields)
        return scheduling.create_service_type(SYSTEM, data)

    return make


@pytest.fixture
def auth():
    """Headers carrying a fresh bearer token for a user."""

    def headers(user, **extra):
        return {"Authorization": f"Bearer {users.issue_token(user)}", **extra}

    return headers


@pytest.fixture
def world(create_region, create_resident, create_provider, create_user):
    """A small province for scope tests.

    province > county_a > town_a > village_a1, village_a2
             > county_b > town_b > village_b
    Residents in a1, a2 and b; a clinician and a caregiver homed in county_a and
    a clinician in county_b; one user per role, regional ones scoped to county_a
    (coordinator) and village_a1 (vhw).
    """

    class World:
        pass

    w = World()
    w.province = create_region("province", name="Ningxia")
    w.county_a = create_region("county", w.province, name="Xiji County")
    w.town_a = create_region("township", w.county_a, name="Jiqiang Town")
    w.village_a1 = create_region("village", w.town_a, name="Nanshan Village")
    w.village_a2 = create_region("village", w.town_a, name="Taoyuan Village")
    w.county_b = create_region("county", w.province, name="Haiyuan County")
    w.town_b = create_region("township", w.county_b, name="Haicheng Town")
    w.village_b = create_region("village", w.town_b, name="Shuiquan Village")
    w.resident_a1 = create_resident(w.village_a1, name="Ma Guilan", phone="+8613900139001")
    w.resident_a2 = create_resident(w.village_a2, name="Li Jianguo", phone="+8613900139002")
    w.resident_b = create_resident(w.village_b, name="Yang Fengying", phone="+8613900139003")
    w.clinician_a = create_provider(w.county_a, service_region_ids=[w.county_a.id])
    w.caregiver_a = create_provider(w.village_a1, kind="caregiver", name="Ma Lan",
                                    skills=["elder_care"], service_region_ids=[w.town_a.id])
    w.clinician_b = create_provider(w.county_b, name="Dr. He")
    w.users = {
        "admin": create_user("admin", username="admin"),
        "coordinator": create_user("coordinator", [w.county_a], username="coordinator"),
        "vhw": create_user("vhw", [w.village_a1], username="vhw"),
        "clinician": create_user("clinician", provider=w.clinician_a, username="clinician"),
        "caregiver": create_user("caregiver", provider=w.caregiver_a, username="caregiver"),
    }
    return w


@pytest.fixture
def set_availability():
    """Weekly rules for a provider: by default every day 08:00-18:00 local."""
    from datetime import time

    from careservice.scheduling import availability

    def make(provider, weekdays=range(7), start=time(8), end=time(18), **extra):
        rules = [{"weekday": day, "start": start, "end": end, **extra} for day in weekdays]
        return availability.replace_rules(SYSTEM, provider.id, rules)

    return make


@pytest.fixture
def crash_on_keeping(monkeypatch):
    """While active, adding an object of the given class to the session raises, as a
    worker dying at that point would; call the result to stop."""
    from careservice.extensions import db

    add = db.session.add

    def start(model):
        def crashing(instance, *args, **kwargs):
            if isinstance(instance, model):
                raise RuntimeError("the worker died here")
            return add(instance, *args, **kwargs)

        monkeypatch.setattr(db.session, "add", crashing)
        return lambda: monkeypatch.setattr(db.session, "add", add)

    return start


@pytest.fixture
def create_appointment():
    """Book through the real booking code (locks, checks), as the system."""
    from careservice.scheduling import booking

    def make(resident, provider, start, service_type="gp_consult", actor=SYSTEM, **extra):
        return booking.book_appointment(actor, resident_id=resident.id, provider_id=provider.id,
                                        service_type=service_type, start=start, **extra)

    return make


@pytest.fixture
def sms_outbox(app):
    """The memory SMS backend's sent messages (a list of dicts), emptied per test."""
    from careservice.reminders.backends import get_backend

    backend = get_backend(app)
    backend.outbox.clear()
    backend.failures.clear()
    yield backend.outbox
    backend.outbox.clear()
    backend.failures.clear()


@pytest.fixture
def fake_twilio(app):
    """A fake Twilio REST server on 127.0.0.1, with the app's SMS backend switched
    to the real twilio SDK aimed at it for the length of the test."""
    from tests.fake_twilio import FakeTwilio

    saved = {key: app.config[key] for key in (
        "SMS_BACKEND", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER",
        "TWILIO_API_BASE_URL", "SMS_TIMEOUT_SECONDS")}
    saved_backend = app.extensions.pop("sms_backend", None)
    with FakeTwilio() as fake:
        app.config.update(SMS_BACKEND="twilio", TWILIO_ACCOUNT_SID=fake.account_sid,
                          TWILIO_AUTH_TOKEN=fake.auth_token, TWILIO_FROM_NUMBER="+15005550006",
                          TWILIO_API_BASE_URL=fake.base_url, SMS_TIMEOUT_SECONDS=1)
        try:
            yield fake
        finally:
            app.config.update(saved)
            app.extensions.pop("sms_backend", None)
            if saved_backend is not None:
                app.extensions["sms_backend"] = saved_backend
    assert fake.violations == [], f"requests not valid against Twilio's API: {fake.violations}"


@pytest.fixture
def twilio_post(app, client):
    """POST a form to a webhook the way Twilio does: signed with X-Twilio-Signature."""
    from twilio.request_validator import RequestValidator

    def post(path, form, *, signature=None):
        url = app.config["PUBLIC_URL"] + path
        if signature is None:
            signature = RequestValidator(app.config["TWILIO_AUTH_TOKEN"]).compute_signature(
                url, form)
        return client.post(path, data=form, headers={"X-Twilio-Signature": signature})

    return post
