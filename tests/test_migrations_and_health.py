"""The schema comes only from migrations, and the probes report on it (API.md "Health")."""

import socket

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade

from careservice import create_app
from careservice.extensions import db


@pytest.fixture
def make_app():
    """Apps of the test's own on other databases, their connections closed afterwards."""
    made = []

    def make(url):
        made.append(create_app({"ENV": "testing", "DATABASE_URL": url}))
        return made[-1]

    yield make
    for other in made:
        with other.app_context():
            db.engine.dispose()


def unused_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_models_and_migrations_agree(app):
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection)
        differences = compare_metadata(context, db.metadata)

    assert differences == []


def test_upgrade_builds_the_schema_on_a_new_empty_database(make_app, tmp_path):
    fresh = make_app(f"sqlite:///{tmp_path / 'fresh.db'}")

    with fresh.app_context():
        upgrade()
        with db.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), db.metadata)
    response = fresh.test_client().get("/readyz")

    assert differences == []
    assert response.status_code == 200
    assert response.json["migrations"] == "current"


def test_healthz_answers_when_the_process_is_up(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json["status"] == "ok"


def test_readyz_is_200_on_the_migrated_database(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok", "migrations": "current"}


def test_readyz_reports_pending_migrations(make_app, tmp_path):
    empty = make_app(f"sqlite:///{tmp_path / 'empty.db'}")

    response = empty.test_client().get("/readyz")

    assert response.status_code == 503
    assert response.json["migrations"] == "pending"
    assert response.json["database"] == "ok"


def test_readyz_reports_an_unreachable_database(make_app):
    port = unused_loopback_port()
    gone = make_app(f"postgresql+psycopg://postgres@127.0.0.1:{port}/careservice")

    response = gone.test_client().get("/readyz")

    assert response.status_code == 503
    assert response.json["database"] == "unreachable"
    assert response.mimetype == "application/json"


def test_the_app_does_not_migrate_itself_at_start_up(make_app, tmp_path):
    empty = make_app(f"sqlite:///{tmp_path / 'untouched.db'}")
    empty.test_client().get("/healthz")

    with empty.app_context(), db.engine.connect() as connection:
        tables = sa.inspect(connection).get_table_names()

    assert "residents" not in tables
    assert "alembic_version" not in tables
