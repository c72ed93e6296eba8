"""GET /healthz (the process is up) and GET /readyz (database reachable, schema current)."""

import logging
from functools import cache

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from flask import current_app
from flask.views import MethodView
from marshmallow import Schema, fields

from careservice.core.web import Blueprint
from careservice.extensions import db

log = logging.getLogger(__name__)

blp = Blueprint("health", __name__, description="Liveness and readiness probes")


class HealthOut(Schema):
    status = fields.String()
    database = fields.String()
    migrations = fields.String()


@cache
def migration_heads(directory: str) -> frozenset[str]:
    """The head revisions of the migration scripts shipped with this code."""
    config = current_app.extensions["migrate"].migrate.get_config(directory)
    return frozenset(ScriptDirectory.from_config(config).get_heads())


def readiness() -> tuple[bool, dict]:
    body = {"status": "ok", "database": "ok", "migrations": "current"}
    try:
        with db.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
            try:
                applied = set(connection.execute(
                    sa.text("SELECT version_num FROM alembic_version")).scalars())
            except sa.exc.DBAPIError:
                applied = set()
    except sa.exc.DBAPIError as error:
        log.warning("readyz: database unreachable: %s", error.__class__.__name__)
        return False, {"status": "unavailable", "database": "unreachable", "migrations": "unknown"}
    directory = current_app.extensions["migrate"].directory
    if applied != migration_heads(directory):
        return False, {**body, "status": "unavailable", "migrations": "pending"}
    return True, body


@blp.route("/healthz")
class Healthz(MethodView):
    @blp.response(200, HealthOut)
    def get(self):
        """The process is up."""
        return {"status": "ok"}


@blp.route("/readyz")
class Readyz(MethodView):
    @blp.response(200, HealthOut)
    @blp.alt_response(503, schema=HealthOut,
                      description="Database unreachable or migration pending")
    def get(self):
        """Ready for traffic: the database answers and every migration is applied."""
        ready, body = readiness()
        return body, (200 if ready else 503)
