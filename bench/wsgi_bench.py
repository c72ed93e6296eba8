"""The real app plus one bare reference endpoint, served by the same gunicorn
workers so that both are measured under identical conditions."""

import sqlalchemy as sa
from flask import jsonify, request

from careservice import create_app
from careservice.extensions import db

app = create_app()

BARE_INSERT = sa.text(
    "INSERT INTO bench_bare (provider_id, start_at) VALUES (:provider_id, :start_at) "
    "ON CONFLICT DO NOTHING RETURNING id")


@app.post("/bench/bare")
def bare_booking():
    """One INSERT behind the same advisory lock a booking takes: the floor."""
    body = request.get_json()
    with db.engine.begin() as connection:
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(1, body["provider_id"])))
        row = connection.execute(BARE_INSERT, body).first()
    if row is None:
        return jsonify(error={"code": "slot_unavailable"}), 409
    return jsonify(id=row[0]), 201
