"""Lists cost the same number of queries whatever their length (no N+1)."""

from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from careservice.extensions import db


@contextmanager
def counted():
    statements = []

    def count(*_):
        statements.append(1)

    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)


def queries_for(client, path, headers) -> int:
    with counted() as statements:
        response = client.get(path, headers=headers)
    assert response.status_code == 200
    return len(statements)


def test_listing_providers_does_not_query_per_provider(client, auth, world, create_provider):
    admin = auth(world.users["admin"])
    few = queries_for(client, "/api/v1/providers", admin)
    for i in range(6):
        create_provider(world.county_a, name=f"Dr. {i}", service_region_ids=[world.town_a.id])

    assert queries_for(client, "/api/v1/providers", admin) == few


def test_listing_appointments_does_not_query_per_appointment(
        client, auth, world, create_service_type, set_availability, create_appointment,
        frozen_clock):
    # A service type per appointment: a lazy load per item could not hide behind
    # the session's identity map.
    codes = [f"gp_consult_{i}" for i in range(5)]
    for code in codes:
        create_service_type(code=code)
    set_availability(world.clinician_a)
    admin = auth(world.users["admin"])
    start = datetime(2026, 12, 3, 1, 0, tzinfo=UTC)
    create_appointment(world.resident_a1, world.clinician_a, start, service_type=codes[0])
    few = queries_for(client, "/api/v1/appointments", admin)
    for i in range(1, 5):
        create_appointment(world.resident_a1, world.clinician_a, start + timedelta(hours=i),
                           service_type=codes[i])

    assert queries_for(client, "/api/v1/appointments", admin) == few
