"""No double booking under concurrency: many clients at once, one winner.

Runs on SQLite (IMMEDIATE transactions) and PostgreSQL (advisory locks and
exclusion constraints) alike; each request has its own app context, session
and database connection, as under gunicorn.
"""

import threading
from datetime import UTC, date, datetime, time, timedelta

import pytest
import sqlalchemy as sa

from careservice.extensions import db
from careservice.scheduling.models import Appointment

CLIENTS = 32
# Wednesday 2026-12-02 09:00 in Asia/Shanghai.
NINE = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)


def run_concurrently(app, requests):
    """Send every (method, path, json, headers) at once; the responses, in order."""
    db.session.rollback()  # the test's own transaction must not hold SQLite's lock
    barrier = threading.Barrier(len(requests))
    results = [None] * len(requests)

    def send(i, method, path, body, headers):
        client = app.test_client()
        barrier.wait()
        response = client.open(path, method=method, json=body, headers=headers)
        results[i] = (response.status_code, response.get_json())

    threads = [threading.Thread(target=send, args=(i, *request))
               for i, request in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(result is not None for result in results), "a request never finished"
    return results


def overlapping_live_pairs() -> int:
    """Pairs of live appointments of one provider, or of one resident, that overlap."""
    a, b = sa.orm.aliased(Appointment), sa.orm.aliased(Appointment)
    live = ("booked", "confirmed", "checked_in", "completed", "no_show")
    provider_pairs = sa.select(sa.func.count()).select_from(a).join(b, sa.and_(
        a.provider_id == b.provider_id, a.id < b.id,
        a.start_at < b.block_end_at, b.start_at < a.block_end_at)).where(
        a.status.in_(live), b.status.in_(live))
    resident_pairs = sa.select(sa.func.count()).select_from(a).join(b, sa.and_(
        a.resident_id == b.resident_id, a.id < b.id,
        a.start_at < b.end_at, b.start_at < a.end_at)).where(
        a.status.in_(live), b.status.in_(live))
    return (db.session.execute(provider_pairs).scalar_one()
            + db.session.execute(resident_pairs).scalar_one())


@pytest.fixture
def clinic(frozen_clock, create_region, create_resident, create_provider, create_user,
           create_service_type, set_availability, auth):
    province = create_region("province", name="Ningxia")
    village = create_region("village", create_region("county", province), name="Nanshan")
    create_service_type()  # gp_consult: 20 minutes + 5 buffer
    providers = [create_provider(village, name=f"Dr. {i}") for i in range(CLIENTS)]
    for provider in providers:
        set_availability(provider)
    residents = [create_resident(village, name=f"Resident {i}", birth_date=date(1940, 1, 1))
                 for i in range(CLIENTS)]
    headers = auth(create_user("coordinator", [province]))
    return providers, residents, headers


def booking(resident, provider, start, headers):
    body = {"resident_id": resident.id, "provider_id": provider.id,
            "service_type": "gp_consult", "start": start.isoformat()}
    return ("POST", "/api/v1/appointments", body, headers)


def assert_one_winner(results):
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] + [409] * (len(results) - 1), statuses
    losers = [body for status, body in results if status == 409]
    assert {body["error"]["code"] for body in losers} == {"slot_unavailable"}


def test_overlapping_bookings_of_one_provider_give_one_appointment(app, clinic):
    providers, residents, headers = clinic
    # Every start lies within 19 minutes of every other: all pairs overlap.
    requests = [booking(residents[i], providers[0], NINE + timedelta(minutes=i % 20), headers)
                for i in range(CLIENTS)]

    results = run_concurrently(app, requests)

    assert_one_winner(results)
    assert db.session.execute(sa.select(sa.func.count(Appointment.id))).scalar_one() == 1
    assert overlapping_live_pairs() == 0


def test_one_resident_booked_with_many_providers_at_once_gets_one(app, clinic):
    providers, residents, headers = clinic
    requests = [booking(residents[0], providers[i], NINE, headers) for i in range(CLIENTS)]

    results = run_concurrently(app, requests)

    assert_one_winner(results)
    assert overlapping_live_pairs() == 0


def test_the_same_slot_for_two_residents_with_two_providers_each_wins_once(app, clinic):
    providers, residents, headers = clinic
    # Half the clients race for provider 0, half for resident 0 with other providers.
    requests = [booking(residents[i + 1], providers[0], NINE, headers) for i in range(16)]
    requests += [booking(residents[0], providers[i + 1], NINE, headers) for i in range(16)]

    results = run_concurrently(app, requests)

    assert sorted(status for status, _ in results[:16]) == [201] + [409] * 15
    assert sorted(status for status, _ in results[16:]) == [201] + [409] * 15
    assert overlapping_live_pairs() == 0


def test_many_bookings_of_one_providers_day_at_once_stop_at_the_daily_cap(
        app, clinic, create_provider, set_availability):
    _, residents, headers = clinic
    capped = create_provider(residents[0].region, name="Dr. Capped", max_sessions_per_day=3)
    set_availability(capped, start=time(8), end=time(23))
    # No two of these overlap: only the cap can refuse them.
    requests = [booking(residents[i], capped, NINE + timedelta(minutes=25 * i), headers)
                for i in range(CLIENTS)]

    results = run_concurrently(app, requests)

    assert sorted(status for status, _ in results) == [201] * 3 + [409] * (CLIENTS - 3)
    assert db.session.execute(sa.select(sa.func.count(Appointment.id))
                              .where(Appointment.provider_id == capped.id)).scalar_one() == 3


def test_two_reschedules_into_one_slot_leave_one_moved_and_one_untouched(
        app, clinic, create_appointment):
    providers, residents, headers = clinic
    first = create_appointment(residents[0], providers[0], NINE)
    second = create_appointment(residents[1], providers[0], NINE + timedelta(minutes=25))
    target = (NINE + timedelta(hours=2)).isoformat()
    requests = [("POST", f"/api/v1/appointments/{appointment.id}/reschedule",
                 {"start": target}, headers) for appointment in (first, second)]

    results = run_concurrently(app, requests)

    assert sorted(status for status, _ in results) == [201, 409]
    loser = results[0][1] if results[0][0] == 409 else results[1][1]
    assert loser["error"]["code"] == "slot_unavailable"
    statuses = dict(db.session.execute(
        sa.select(Appointment.id, Appointment.status)
        .where(Appointment.id.in_([first.id, second.id]))).all())
    assert sorted(statuses.values()) == ["booked", "cancelled"]
    assert overlapping_live_pairs() == 0


def test_many_reschedules_into_one_slot_move_exactly_one(app, clinic, create_appointment):
    providers, residents, headers = clinic
    appointments = [create_appointment(residents[i], providers[0],
                                       NINE + timedelta(minutes=25 * i)) for i in range(7)]
    target = (NINE - timedelta(minutes=30)).isoformat()  # 08:30 local, free
    requests = [("POST", f"/api/v1/appointments/{appointment.id}/reschedule",
                 {"start": target}, headers) for appointment in appointments]

    results = run_concurrently(app, requests)

    assert sorted(status for status, _ in results) == [201] + [409] * 6
    assert overlapping_live_pairs() == 0


def test_postgresql_refuses_an_overlap_even_past_the_booking_code(app, clinic,
                                                                  create_appointment):
    """The exclusion constraint is the last guard: a raw insert cannot double-book."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("exclusion constraints exist on PostgreSQL; SQLite relies on IMMEDIATE")
    providers, residents, _ = clinic
    booked = create_appointment(residents[0], providers[0], NINE)
    clash = {column: getattr(booked, column) for column in (
        "provider_id", "service_type_id", "start_at", "end_at", "block_end_at", "modality")}

    with pytest.raises(sa.exc.IntegrityError, match="ex_appointments_provider_overlap"):
        db.session.execute(sa.insert(Appointment).values(
            **clash, resident_id=residents[1].id, status="booked", version=1,
            on_behalf=True, recorded=False,
            created_at=NINE, updated_at=NINE))
    db.session.rollback()
    with pytest.raises(sa.exc.IntegrityError, match="ex_appointments_resident_overlap"):
        db.session.execute(sa.insert(Appointment).values(
            **{**clash, "provider_id": providers[1].id}, resident_id=residents[0].id,
            status="booked", version=1, on_behalf=True, recorded=False,
            created_at=NINE, updated_at=NINE))
    db.session.rollback()


def test_one_idempotency_key_pressed_many_times_at_once_books_once(app, clinic):
    providers, residents, headers = clinic
    keyed = {**headers, "Idempotency-Key": "vhw-phone-7f3a"}
    requests = [booking(residents[0], providers[0], NINE, keyed) for _ in range(8)]

    results = run_concurrently(app, requests)

    assert db.session.execute(sa.select(sa.func.count(Appointment.id))).scalar_one() == 1
    created = [body for status, body in results if status == 201]
    assert created and {body["id"] for body in created} == {created[0]["id"]}
    # The rest saw the first request still running (409 conflict) or its replay.
    assert {status for status, _ in results} <= {201, 409}
    assert all(body["error"]["code"] == "conflict" for status, body in results if status == 409)
