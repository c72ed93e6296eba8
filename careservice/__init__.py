"""careservice: scheduling of remote care for rural and elderly residents."""

import logging
from pathlib import Path

import sqlalchemy as sa
from flask import Flask, has_request_context, request

from careservice.core.settings import load_settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_app(overrides: dict | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    settings = load_settings(app.instance_path, overrides)
    app.config.update(settings)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=settings["DATABASE_URL"],
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(settings["DATABASE_URL"]),
        JSON_SORT_KEYS=False,
        API_TITLE="careservice",
        API_VERSION="1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "components": {"securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
            }},
        },
    )
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    logging.basicConfig(level=settings["LOG_LEVEL"],
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

    _init_extensions(app)
    _register_blueprints(app)
    _register_cli(app)
    if settings["RUN_SCHEDULER"] and _serving_with_flask_run():
        from careservice.scheduler.cli import start_in_process

        app.extensions["scheduler"] = start_in_process(app)
    return app


def _serving_with_flask_run() -> bool:
    """True inside `flask run` (in the reloader's child when reloading): the only
    place the demo may run the scheduler in-process. Never under gunicorn."""
    import os

    import click

    context = click.get_current_context(silent=True)
    if context is None or context.info_name != "run":
        return False
    reloading = context.params.get("reload")
    return not reloading or os.environ.get("WERKZEUG_RUN_MAIN") == "true"


READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _engine_options(url: str) -> dict:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30}}
    return {"pool_pre_ping": True}


def _init_extensions(app: Flask) -> None:
    # Importing the models registers their tables on the metadata.
    import careservice.core.models  # noqa: F401
    import careservice.matching.models  # noqa: F401
    import careservice.metrics.models  # noqa: F401
    import careservice.metrics.rollups  # noqa: F401 - listens for changed sessions
    import careservice.people.models  # noqa: F401
    import careservice.reminders.models  # noqa: F401
    import careservice.scheduling.models  # noqa: F401
    from careservice.core import errors
    from careservice.core.auth import request_id
    from careservice.extensions import api, db, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    api.init_app(app)
    errors.register_error_handlers(app)

    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            _configure_sqlite(db.engine)

    @app.after_request
    def tag_request(response):
        response.headers["X-Request-ID"] = request_id()
        return response


def _configure_sqlite(engine: sa.Engine) -> None:
    """Foreign keys on, WAL, and every transaction that may write BEGIN IMMEDIATE.

    IMMEDIATE takes SQLite's write lock at BEGIN, so two writers queue on the
    busy timeout instead of one failing with "database is locked" half-way.
    A GET, HEAD or OPTIONS request only reads: its transaction begins deferred
    and reads a WAL snapshot, so a slow report or a slot listing never holds
    up a booking. Jobs and commands, outside requests, always begin IMMEDIATE.
    """

    @sa.event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def on_begin(connection):
        reading = has_request_context() and request.method in READ_ONLY_METHODS
        connection.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")


def _register_blueprints(app: Flask) -> None:
    from careservice.core import health
    from careservice.core.web import DatabaseInteger
    from careservice.extensions import api
    from careservice.matching import routes as matching
    from careservice.metrics import prometheus
    from careservice.metrics import routes as metrics
    from careservice.people.routes import auth, providers, regions, residents
    from careservice.reminders import routes as reminders
    from careservice.scheduling.routes import (
        appointments,
        availability,
        calendar,
        care_requests,
        series,
        service_types,
    )

    app.url_map.converters["int"] = DatabaseInteger  # before any rule is added
    for blueprint in (
        health.blp,
        auth.blp,
        regions.blp,
        residents.blp,
        providers.blp,
        service_types.blp,
        availability.blp,
        appointments.blp,
        series.blp,
        care_requests.blp,
        calendar.blp,
        reminders.blp,
        metrics.blp,
        matching.blp,
    ):
        api.register_blueprint(blueprint)
    # Plain Flask, outside /api/v1: an operations endpoint in Prometheus' format, which
    # flask-smorest does not see, so it is described in the OpenAPI document by hand.
    app.register_blueprint(prometheus.blp)
    prometheus.document(api.spec, app.url_map)
    prometheus.init_prometheus(app)


def _register_cli(app: Flask) -> None:
    from careservice.demo.cli import demo_cli
    from careservice.metrics.cli import metrics_cli
    from careservice.people.cli import users_cli
    from careservice.scheduler.cli import scheduler_cli

    app.cli.add_command(users_cli)
    app.cli.add_command(demo_cli)
    app.cli.add_command(scheduler_cli)
    app.cli.add_command(metrics_cli)
