"""The SMS dispatcher: what reaches Twilio, once, at the right time, and what
the outbox rows say afterwards.

Unless a test says otherwise the app talks to a fake Twilio server through the
real twilio SDK (the `twilio` fixture below); its clock is the service's
frozen clock, as Twilio's and ours agree in production. The frozen clock starts
at 2026-12-01 09:00 UTC, 17:00 in Asia/Shanghai (the residents' timezone).
"""

import socket
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from careservice.extensions import db
from careservice.reminders.backends import get_backend
from careservice.reminders.dispatch import (
    RateLimiter,
    Tally,
    claim,
    deliver,
    dispatch_due,
    reconcile,
    status_callback_url,
    stopping,
)
from careservice.reminders.models import Reminder
from tests.fake_twilio import (
    accept_then_hang,
    error,
    hang,
    ok,
    server_error,
    throttled,
    unavailable,
)

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # the frozen clock: 17:00 in Shanghai
SHANGHAI = ZoneInfo("Asia/Shanghai")
LEASE = timedelta(seconds=120)       # DISPATCH_LEASE_SECONDS
RECONCILE_AFTER = timedelta(seconds=60)


# Helpers


def local(day: int, hour: int, minute: int = 0, month: int = 12) -> datetime:
    """A wall time in Shanghai (December 2026 unless told) as a UTC instant."""
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


def wall(instant: datetime) -> str:
    """An instant as the SMS prints it for a Shanghai resident: "10:00"."""
    return instant.astimezone(SHANGHAI).strftime("%H:%M")


def rows_of(appointment_id: int) -> dict[str, Reminder]:
    """The outbox rows of an appointment by kind, read afresh."""
    db.session.expire_all()
    found = db.session.execute(
        sa.select(Reminder).where(Reminder.appointment_id == appointment_id)
        .order_by(Reminder.id)).scalars()
    return {row.kind: row for row in found}


def row(reminder_id: int) -> Reminder:
    db.session.expire_all()
    return db.session.get(Reminder, reminder_id)


def force_due(reminder_id: int, at: datetime) -> None:
    """Move a row's send_at (as a retry or an earlier deferral would)."""
    db.session.execute(sa.update(Reminder).where(Reminder.id == reminder_id)
                       .values(send_at=at))
    db.session.commit()


def dispatch(clock) -> Tally:
    """One dispatcher batch at the clock's time."""
    db.session.commit()
    return dispatch_due(clock.now())


def creates(fake) -> list:
    return fake.create_requests()


@pytest.fixture
def twilio(app, fake_twilio, frozen_clock):
    """The fake Twilio server, on the service's clock (reconciling lists messages
    sent since the claim: the two clocks must agree, as they do in production).
    Afterwards: every send, retries included, asked for status callbacks at our
    public URL (and fake_twilio checks that no request broke Twilio's API)."""
    fake_twilio.clock = frozen_clock.now
    yield fake_twilio
    expected = app.config["PUBLIC_URL"] + "/webhooks/twilio/status"
    assert [r.form.get("StatusCallback") for r in fake_twilio.create_requests()] == \
        [expected] * len(fake_twilio.create_requests())


@pytest.fixture
def clinic(world, create_service_type, set_availability):
    """world, a 20-minute video GP consultation, clinician_a available 08:00-18:00."""
    create_service_type()
    set_availability(world.clinician_a)
    return world


@pytest.fixture
def book(clinic, create_appointment):
    """Book through the real booking code; the appointment's id."""

    def make(start: datetime, resident=None) -> int:
        appointment = create_appointment(resident or clinic.resident_a1, clinic.clinician_a,
                                         start)
        appointment_id = appointment.id
        db.session.commit()
        return appointment_id

    return make


@pytest.fixture
def book_many(book):
    """`count` sessions of resident_a1, one a day at 10:00 local from 3 December:
    `count` confirmations due now, with bodies that differ (the date)."""

    def make(count: int) -> list[int]:
        first = local(3, 10)
        return [book(first + timedelta(days=n)) for n in range(count)]

    return make


# Success


def test_a_sent_reminder_records_twilios_sid_and_segments(app, clinic, book, twilio,
                                                           frozen_clock):
    appointment_id = book(local(3, 10))

    tally = dispatch(frozen_clock)

    assert tally.sent == 1
    [message] = twilio.messages.values()
    confirmation = rows_of(appointment_id)["confirmation"]
    assert confirmation.status == "sent"
    assert confirmation.provider_message_id == message["sid"]
    assert confirmation.sent_at == NOW
    assert confirmation.attempts == 1
    assert confirmation.segments == int(message["num_segments"])
    [request] = creates(twilio)
    assert request.form["To"] == clinic.resident_a1.phone == message["to"]
    assert request.form["From"] == app.config["TWILIO_FROM_NUMBER"]
    assert request.form["Body"] == confirmation.body == message["body"]
    assert "10:00" in request.form["Body"]
    assert request.form["StatusCallback"] == (app.config["PUBLIC_URL"]
                                              + "/webhooks/twilio/status")


def test_a_messaging_service_is_used_instead_of_a_from_number_when_configured(
        app, clinic, book, twilio, frozen_clock, monkeypatch):
    service_sid = "MG" + uuid.uuid4().hex
    monkeypatch.setitem(app.config, "TWILIO_MESSAGING_SERVICE_SID", service_sid)
    book(local(3, 10))

    assert dispatch(frozen_clock).sent == 1

    [request] = creates(twilio)
    assert request.form["MessagingServiceSid"] == service_sid
    assert "From" not in request.form
    assert request.form["StatusCallback"] == status_callback_url()


# Permanent failures


@pytest.mark.parametrize("code", [21211, 21610, 21614])
def test_a_refused_number_fails_the_reminder_and_flags_the_resident_for_the_vhw(
        client, auth, clinic, book, twilio, frozen_clock, code):
    appointment_id = book(local(3, 10))
    twilio.script(error(400, code))

    tally = dispatch(frozen_clock)

    assert tally.failed == 1
    confirmation = rows_of(appointment_id)["confirmation"]
    assert confirmation.status == "failed"
    assert confirmation.error_code == code
    assert str(code) in confirmation.last_error
    assert twilio.messages == {}
    seen = client.get(f"/api/v1/residents/{clinic.resident_a1.id}",
                      headers=auth(clinic.users["vhw"])).json
    assert seen["sms_problem_at"] is not None
    assert seen["sms_problem"]
    # Never retried: a later sweep sends nothing for it.
    frozen_clock.advance(timedelta(hours=1))
    dispatch(frozen_clock)
    assert len(creates(twilio)) == 1
    assert rows_of(appointment_id)["confirmation"].status == "failed"


# Transient failures


def test_a_throttled_send_waits_at_least_retry_after_then_goes(clinic, book, twilio,
                                                                frozen_clock):
    appointment_id = book(local(3, 10))
    twilio.script(throttled(retry_after=600))

    tally = dispatch(frozen_clock)

    assert tally.retried == 1
    confirmation = rows_of(appointment_id)["confirmation"]
    assert confirmation.status == "pending"
    assert confirmation.attempts == 1
    assert confirmation.error_code == 20429
    assert confirmation.send_at >= NOW + timedelta(seconds=600)
    frozen_clock.set(NOW + timedelta(seconds=599))
    assert dispatch(frozen_clock).claimed == 0
    frozen_clock.set(confirmation.send_at)
    assert dispatch(frozen_clock).sent == 1
    confirmation = rows_of(appointment_id)["confirmation"]
    assert confirmation.status == "sent"
    assert confirmation.attempts == 2
    assert len(twilio.messages) == 1


def test_service_unavailable_is_retried_with_exponential_backoff(app, clinic, book, twilio,
                                                                  frozen_clock):
    appointment_id = book(local(3, 10))
    base = app.config["SMS_RETRY_BASE_SECONDS"]
    twilio.script(unavailable(), unavailable(), unavailable())

    delays = []
    for attempt in (1, 2, 3):
        tried_at = frozen_clock.now()
        assert dispatch(frozen_clock).retried == 1
        confirmation = rows_of(appointment_id)["confirmation"]
        assert (confirmation.status, confirmation.attempts) == ("pending", attempt)
        assert confirmation.error_code == 20503
        delay = (confirmation.send_at - tried_at).total_seconds()
        ceiling = base * 2 ** (attempt - 1)
        assert ceiling / 2 <= delay <= ceiling, (attempt, delay)
        delays.append(delay)
        frozen_clock.set(confirmation.send_at - timedelta(seconds=1))
        assert dispatch(frozen_clock).claimed == 0  # not before its time
        frozen_clock.set(confirmation.send_at)
    assert delays[2] > delays[0]

    assert dispatch(frozen_clock).sent == 1
    confirmation = rows_of(appointment_id)["confirmation"]
    assert (confirmation.status, confirmation.attempts) == ("sent", 4)
    assert len(twilio.messages) == 1 and len(creates(twilio)) == 4


def test_a_refused_connection_is_retried_later(app, clinic, book, twilio, frozen_clock):
    appointment_id = book(local(3, 10))
    twilio.stop()  # Twilio unreachable: nothing listens on its port any more

    tally = dispatch(frozen_clock)

    assert tally.retried == 1
    confirmation = rows_of(appointment_id)["confirmation"]
    assert confirmation.status == "pending"
    assert confirmation.attempts == 1
    assert confirmation.last_error
    base = app.config["SMS_RETRY_BASE_SECONDS"]
    assert NOW + timedelta(seconds=base / 2) <= confirmation.send_at \
        <= NOW + timedelta(seconds=base)
    assert twilio.messages == {}


def test_a_closed_port_is_a_transient_failure_too(app, clinic, book, frozen_clock, monkeypatch):
    """TWILIO_API_BASE_URL aimed at a port where nothing listens, real SDK."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    saved_backend = app.extensions.pop("sms_backend", None)
    monkeypatch.setitem(app.config, "SMS_BACKEND", "twilio")
    monkeypatch.setitem(app.config, "TWILIO_API_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setitem(app.config, "SMS_TIMEOUT_SECONDS", 1)
    try:
        appointment_id = book(local(3, 10))
        tally = dispatch(frozen_clock)
    finally:
        app.extensions.pop("sms_backend", None)
        if saved_backend is not None:
            app.extensions["sms_backend"] = saved_backend

    assert tally.retried == 1
    confirmation = rows_of(appointment_id)["confirmation"]
    assert (confirmation.status, confirmation.attempts) == ("pending", 1)
    assert confirmation.send_at > NOW


def test_after_the_last_attempt_a_transient_failure_fails_the_reminder(
        app, clinic, book, twilio, frozen_clock, monkeypatch):
    monkeypatch.setitem(app.config, "SMS_MAX_ATTEMPTS", 3)
    appointment_id = book(local(3, 10))
    twilio.set_default(unavailable())

    outcomes = []
    for _ in range(3):
        tally = dispatch(frozen_clock)
        outcomes.append((tally.retried, tally.failed))
        frozen_clock.set(rows_of(appointment_id)["confirmation"].send_at)

    assert outcomes == [(1, 0), (1, 0), (0, 1)]
    confirmation = rows_of(appointment_id)["confirmation"]
    assert confirmation.status == "failed"
    assert confirmation.attempts == 3
    assert "3 attempts" in confirmation.last_error
    frozen_clock.advance(timedelta(hours=2))
    dispatch(frozen_clock)
    assert len(creates(twilio)) == 3
    assert twilio.messages == {}


# Ambiguous outcomes: never re-sent blindly


@pytest.mark.parametrize("outcome", [hang(2), server_error(500)], ids=["timeout", "500"])
def test_an_unanswered_send_is_unknown_until_reconciled_then_sent_once(
        app, clinic, book, twilio, frozen_clock, outcome):
    appointment_id = book(local(3, 10))
    twilio.script(outcome)

    tally = dispatch(frozen_clock)

    assert tally.unknown == 1
    confirmation = rows_of(appointment_id)["confirmation"]
    assert confirmation.status == "unknown"
    assert confirmation.last_error
    # The next sweep does not send it again...
    frozen_clock.advance(timedelta(seconds=30))
    assert dispatch(frozen_clock).claimed == 0
    # ...nor does a reconciler that runs before the status callback had its chance.
    assert reconcile(frozen_clock.now()) == 0
    assert len(creates(twilio)) == 1

    frozen_clock.set(NOW + RECONCILE_AFTER)
    assert reconcile(frozen_clock.now()) == 1
    assert rows_of(appointment_id)["confirmation"].status == "pending"  # not at Twilio

    assert dispatch(frozen_clock).sent == 1
    confirmation = rows_of(appointment_id)["confirmation"]
    [message] = twilio.messages.values()
    assert confirmation.status == "sent"
    assert confirmation.provider_message_id == message["sid"]
    assert len(creates(twilio)) == 2
    assert twilio.duplicates() == {}


def test_a_send_twilio_accepted_before_the_timeout_is_found_and_not_sent_again(
        clinic, book, twilio, frozen_clock):
    appointment_id = book(local(3, 10))
    twilio.script(accept_then_hang(2))

    assert dispatch(frozen_clock).unknown == 1
    assert rows_of(appointment_id)["confirmation"].status == "unknown"
    frozen_clock.advance(timedelta(seconds=10))
    assert dispatch(frozen_clock).claimed == 0

    frozen_clock.set(NOW + RECONCILE_AFTER)
    assert reconcile(frozen_clock.now()) == 1

    [message] = twilio.messages.values()
    confirmation = rows_of(appointment_id)["confirmation"]
    assert confirmation.status == "sent"
    assert confirmation.provider_message_id == message["sid"]
    assert dispatch(frozen_clock).claimed == 0
    frozen_clock.advance(timedelta(minutes=10))
    reconcile(frozen_clock.now())
    dispatch(frozen_clock)
    assert len(twilio.messages) == 1
    assert len(creates(twilio)) == 1


# Concurrency and crashes


def test_two_dispatchers_racing_send_every_reminder_exactly_once(app, clinic, book_many,
                                                                 twilio, frozen_clock,
                                                                 monkeypatch):
    monkeypatch.setitem(app.config, "DISPATCH_BATCH", 4)
    appointment_ids = book_many(40)
    db.session.commit()
    barrier = threading.Barrier(2)
    claimed, errors = [], []

    def dispatcher():
        try:
            with app.app_context():
                barrier.wait()
                while (tally := dispatch_due(NOW)).claimed:
                    claimed.append(tally.claimed)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=dispatcher) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sum(claimed) == 40
    assert len(twilio.messages) == 40
    assert twilio.duplicates() == {}
    assert len(creates(twilio)) == 40
    assert {r.form["StatusCallback"] for r in creates(twilio)} == {status_callback_url()}
    sids = set()
    for appointment_id in appointment_ids:
        confirmation = rows_of(appointment_id)["confirmation"]
        assert (confirmation.status, confirmation.attempts) == ("sent", 1)
        sids.add(confirmation.provider_message_id)
    assert sids == set(twilio.messages)


def test_rows_claimed_by_a_dispatcher_that_died_are_sent_once_after_the_lease(
        clinic, book_many, twilio, frozen_clock):
    appointment_ids = book_many(3)
    claimed = claim(NOW, 10)  # ...and the process dies before sending
    assert len(claimed) == 3

    assert dispatch(frozen_clock).claimed == 0
    frozen_clock.set(NOW + LEASE - timedelta(seconds=1))
    assert reconcile(frozen_clock.now()) == 0
    assert dispatch(frozen_clock).claimed == 0
    assert creates(twilio) == []

    frozen_clock.set(NOW + LEASE)
    assert reconcile(frozen_clock.now()) == 3
    assert dispatch(frozen_clock).sent == 3

    frozen_clock.advance(LEASE * 2)
    reconcile(frozen_clock.now())
    dispatch(frozen_clock)
    assert len(twilio.messages) == 3
    assert twilio.duplicates() == {}
    for appointment_id in appointment_ids:
        assert rows_of(appointment_id)["confirmation"].status == "sent"


def test_a_dispatcher_that_died_after_twilio_accepted_is_not_sent_twice(
        clinic, book, twilio, frozen_clock):
    appointment_id = book(local(3, 10))
    [reminder_id] = claim(NOW, 10)
    reminder = row(reminder_id)
    # The dead process's request had reached Twilio before it died.
    sent = get_backend().send(reminder.to, reminder.body, status_callback_url())
    db.session.commit()

    frozen_clock.set(NOW + LEASE)
    assert reconcile(frozen_clock.now()) == 1
    assert dispatch(frozen_clock).claimed == 0

    confirmation = rows_of(appointment_id)["confirmation"]
    assert confirmation.status == "sent"
    assert confirmation.provider_message_id == sent.sid
    assert len(twilio.messages) == 1


def test_a_dispatcher_told_to_stop_claims_nothing_and_leaves_the_rows_for_the_next(
        clinic, book, twilio, frozen_clock):
    appointment_id = book(local(3, 10))
    stopping.set()  # what the scheduler does on SIGTERM
    try:
        assert dispatch(frozen_clock).claimed == 0
    finally:
        stopping.clear()

    assert rows_of(appointment_id)["confirmation"].status == "pending"
    assert creates(twilio) == []
    assert dispatch(frozen_clock).sent == 1


# Changes while sending


def test_a_reschedule_while_the_2h_reminder_is_being_sent_never_sends_the_old_time(
        client, auth, clinic, book, twilio, frozen_clock):
    old_start, new_start = local(2, 10), local(2, 14)
    old_id = book(old_start)
    dispatch(frozen_clock)  # the confirmation, for 10:00
    old_2h = rows_of(old_id)["reminder_2h"]
    assert old_2h.send_at == old_start - timedelta(hours=2)
    frozen_clock.set(old_2h.send_at)
    assert claim(frozen_clock.now(), 10) == [old_2h.id]
    before = len(twilio.messages)

    response = client.post(f"/api/v1/appointments/{old_id}/reschedule",
                           json={"start": new_start.isoformat()},
                           headers=auth(clinic.users["vhw"]))
    assert response.status_code == 201, response.json
    new_id = response.json["id"]

    outcome = deliver(old_2h.id, RateLimiter(0))
    db.session.commit()

    assert outcome in ("suppressed", "skipped")
    assert row(old_2h.id).status in ("suppressed", "cancelled")
    assert row(old_2h.id).last_error
    assert dispatch(frozen_clock).sent == 1
    after = twilio.sent_bodies()[before:]
    assert len(after) == 1
    assert wall(new_start) in after[0] and wall(old_start) not in after[0]
    new_rows = rows_of(new_id)
    assert new_rows["change"].status == "sent"
    assert new_rows["change"].body == after[0]
    assert new_rows["reminder_2h"].send_at == new_start - timedelta(hours=2)
    frozen_clock.set(new_start - timedelta(minutes=1))
    dispatch(frozen_clock)
    assert not any(wall(old_start) in body for body in twilio.sent_bodies()[before:])


def test_a_reschedule_that_lands_during_the_send_waits_until_the_send_is_recorded(
        app, client, auth, clinic, book, twilio, frozen_clock):
    old_start, new_start = local(2, 10), local(2, 14)
    old_id = book(old_start)
    dispatch(frozen_clock)
    old_2h = rows_of(old_id)["reminder_2h"]
    frozen_clock.set(old_2h.send_at)
    twilio.script(hang(0.5, then=ok()))  # Twilio takes half a second to accept it
    [reminder_id] = claim(frozen_clock.now(), 10)
    outcome = {}

    def dispatcher():
        with app.app_context():
            outcome["deliver"] = deliver(reminder_id, RateLimiter(0))
            db.session.remove()

    sender = threading.Thread(target=dispatcher)
    sender.start()
    deadline = time.monotonic() + 5
    while len(creates(twilio)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    request_seen = time.monotonic()
    response = client.post(f"/api/v1/appointments/{old_id}/reschedule",
                           json={"start": new_start.isoformat()},
                           headers=auth(clinic.users["vhw"]))
    rescheduled = time.monotonic()
    sender.join(timeout=10)

    assert response.status_code == 201, response.json
    assert outcome["deliver"] == "sent"
    assert rescheduled - request_seen >= 0.4  # it waited for the send to be recorded
    assert row(reminder_id).status == "sent"
    assert dispatch(frozen_clock).sent == 1
    bodies = twilio.sent_bodies()
    assert len(bodies) == 3
    assert wall(old_start) in bodies[1]
    assert wall(new_start) in bodies[2] and wall(old_start) not in bodies[2]
    assert rows_of(response.json["id"])["change"].body == bodies[2]


def test_a_cancellation_voids_pending_reminders_and_sends_a_cancellation_notice(
        client, auth, clinic, book, twilio, frozen_clock):
    start = local(3, 10)
    appointment_id = book(start)
    dispatch(frozen_clock)

    response = client.post(f"/api/v1/appointments/{appointment_id}/cancel",
                           json={"reason": "resident in hospital"},
                           headers=auth(clinic.users["vhw"]))
    assert response.status_code == 200, response.json

    rows = rows_of(appointment_id)
    assert rows["confirmation"].status == "sent"
    assert rows["reminder_24h"].status == "cancelled"
    assert rows["reminder_2h"].status == "cancelled"
    assert rows["cancellation"].status == "pending"
    assert dispatch(frozen_clock).sent == 1
    assert rows_of(appointment_id)["cancellation"].status == "sent"
    frozen_clock.set(start - timedelta(minutes=30))
    assert dispatch(frozen_clock).claimed == 0
    bodies = twilio.sent_bodies()
    assert len(bodies) == 2
    assert bodies[1] == rows_of(appointment_id)["cancellation"].body
    assert wall(start) in bodies[1]


def test_a_cancellation_made_elsewhere_while_the_dispatcher_runs_on_is_announced(
        app, auth, clinic, book, twilio, frozen_clock):
    """The dispatcher's session lives on between batches (one run sends batch
    after batch); the cancellation comes from the web process meanwhile."""
    start = local(3, 10)
    appointment_id = book(start)
    headers = auth(clinic.users["vhw"])
    db.session.commit()
    assert dispatch(frozen_clock).sent == 1  # the confirmation: this session saw the booking
    answer = {}

    def web_process():
        answer["cancel"] = app.test_client().post(
            f"/api/v1/appointments/{appointment_id}/cancel", json={"reason": "moved away"},
            headers=headers)

    web = threading.Thread(target=web_process)
    web.start()
    web.join(timeout=30)
    assert answer["cancel"].status_code == 200, answer["cancel"].json

    tally = dispatch(frozen_clock)

    rows = rows_of(appointment_id)
    assert rows["cancellation"].status == "sent", rows["cancellation"].last_error
    assert tally.sent == 1
    bodies = twilio.sent_bodies()
    assert len(bodies) == 2 and bodies[1] == rows["cancellation"].body


def test_a_booking_queues_a_confirmation_and_reminders_24h_and_2h_before(
        client, auth, clinic, book, frozen_clock):
    start = local(3, 10)
    appointment_id = book(start)

    items = client.get(f"/api/v1/appointments/{appointment_id}/reminders",
                       headers=auth(clinic.users["vhw"])).json["items"]

    def iso(instant):
        return instant.strftime("%Y-%m-%dT%H:%M:%SZ")

    assert [(i["kind"], i["status"], i["send_at"]) for i in items] == [
        ("confirmation", "pending", iso(NOW)),
        ("reminder_24h", "pending", iso(start - timedelta(hours=24))),
        ("reminder_2h", "pending", iso(start - timedelta(hours=2))),
    ]


@pytest.mark.parametrize(("notice", "ahead"), [(120, 120), (60, 90)])
def test_a_booking_less_than_2h_ahead_gets_no_2h_reminder(app, clinic, book, frozen_clock,
                                                           monkeypatch, notice, ahead):
    monkeypatch.setitem(app.config, "MIN_NOTICE_MINUTES", notice)
    frozen_clock.set(local(2, 8))
    appointment_id = book(frozen_clock.now() + timedelta(minutes=ahead))

    assert sorted(rows_of(appointment_id)) == ["confirmation"]


# Quiet hours (21:00-08:00 in the resident's timezone, across midnight)


@pytest.fixture
def quiet(app, monkeypatch):
    monkeypatch.setitem(app.config, "QUIET_HOURS", "21:00-08:00")


def test_a_reminder_due_at_2330_is_deferred_to_0800_next_morning(quiet, clinic, book, twilio,
                                                                  frozen_clock):
    appointment_id = book(local(3, 10))
    dispatch(frozen_clock)  # the confirmation
    reminder = rows_of(appointment_id)["reminder_24h"]
    force_due(reminder.id, local(1, 23, 30))
    frozen_clock.set(local(1, 23, 30))

    tally = dispatch(frozen_clock)

    assert tally.deferred == 1
    deferred = row(reminder.id)
    assert deferred.status == "pending"
    assert deferred.send_at == local(2, 8)
    assert deferred.attempts == 0
    assert len(creates(twilio)) == 1
    frozen_clock.set(local(2, 7, 59))
    assert dispatch(frozen_clock).claimed == 0
    frozen_clock.set(local(2, 8))
    assert dispatch(frozen_clock).sent == 1
    assert row(reminder.id).status == "sent"


def test_with_quiet_hours_off_a_reminder_due_at_2330_goes_at_once(app, clinic, book, twilio,
                                                                   frozen_clock, monkeypatch):
    monkeypatch.setitem(app.config, "QUIET_HOURS", "off")
    appointment_id = book(local(3, 10))
    dispatch(frozen_clock)
    reminder = rows_of(appointment_id)["reminder_24h"]
    force_due(reminder.id, local(1, 23, 30))
    frozen_clock.set(local(1, 23, 30))

    assert dispatch(frozen_clock).sent == 1
    assert row(reminder.id).status == "sent"
    assert len(twilio.messages) == 2


def test_a_reminder_whose_quiet_period_lasts_until_the_session_is_suppressed(
        quiet, clinic, set_availability, book, twilio, frozen_clock):
    set_availability(clinic.clinician_a, start=clock_time(7, 30))
    start = local(3, 7, 30)
    appointment_id = book(start)
    rows = rows_of(appointment_id)
    # 05:30 local, quiet until 08:00, after the 07:30 session: never queued to go.
    assert rows["reminder_2h"].status == "suppressed"
    assert "quiet" in rows["reminder_2h"].last_error
    dispatch(frozen_clock)
    reminder = rows["reminder_24h"]
    force_due(reminder.id, local(3, 2))
    frozen_clock.set(local(3, 2))

    tally = dispatch(frozen_clock)

    assert tally.suppressed == 1
    suppressed = row(reminder.id)
    assert suppressed.status == "suppressed"
    assert "quiet" in suppressed.last_error
    frozen_clock.set(local(3, 8))
    dispatch(frozen_clock)
    assert len(creates(twilio)) == 1  # the confirmation only


def test_a_confirmation_booked_at_2200_is_sent_at_0800(quiet, clinic, book, twilio,
                                                        frozen_clock):
    frozen_clock.set(local(1, 22))
    appointment_id = book(local(3, 10))
    assert rows_of(appointment_id)["confirmation"].send_at == local(2, 8)

    assert dispatch(frozen_clock).claimed == 0
    frozen_clock.set(local(2, 7, 59))
    assert dispatch(frozen_clock).claimed == 0
    assert creates(twilio) == []
    frozen_clock.set(local(2, 8))
    assert dispatch(frozen_clock).sent == 1
    assert rows_of(appointment_id)["confirmation"].status == "sent"


# Residents who may not get SMS


@pytest.mark.parametrize(("fields", "reason"), [
    ({"opted_out_at": NOW - timedelta(days=3)}, "opted out"),
    ({"sms_consent": False}, "consent"),
    ({"phone": None}, "phone"),
], ids=["opted_out", "no_consent", "no_phone"])
def test_a_resident_who_may_not_get_sms_gets_nothing(clinic, create_resident, book, twilio,
                                                     frozen_clock, fields, reason):
    resident = create_resident(clinic.village_a1, **{"name": "Su Lan",
                                                     "phone": "+8613900139009", **fields})
    appointment_id = book(local(3, 10), resident=resident)

    rows = rows_of(appointment_id)
    assert {kind: r.status for kind, r in rows.items()} == {
        "confirmation": "suppressed", "reminder_24h": "suppressed", "reminder_2h": "suppressed"}
    assert all(reason in r.last_error for r in rows.values())
    for instant in (NOW, local(2, 10), local(3, 8)):
        frozen_clock.set(instant)
        assert dispatch(frozen_clock).claimed == 0
    assert twilio.requests == []


def test_stop_while_a_reminder_is_being_sent_suppresses_it(clinic, book, twilio, twilio_post,
                                                           frozen_clock):
    appointment_id = book(local(3, 10))
    [reminder_id] = claim(NOW, 10)
    phone = clinic.resident_a1.phone

    response = twilio_post("/webhooks/twilio/inbound", {
        "MessageSid": "SM" + uuid.uuid4().hex, "AccountSid": twilio.account_sid,
        "From": phone, "To": "+15005550006", "Body": "STOP"})
    assert response.status_code == 200

    assert deliver(reminder_id, RateLimiter(0)) == "suppressed"
    db.session.commit()
    rows = rows_of(appointment_id)
    assert rows["confirmation"].status == "suppressed"
    assert "opted out" in rows["confirmation"].last_error
    assert rows["reminder_24h"].status == "suppressed"
    frozen_clock.set(local(3, 9))
    dispatch(frozen_clock)
    assert creates(twilio) == []


# Transactions (memory backend)


def test_each_transaction_holds_few_sends_and_on_sqlite_one(
        app, clinic, book_many, sms_outbox, frozen_clock, monkeypatch):
    """A send happens inside its transaction; on SQLite that holds the write lock every
    booking needs, so there a transaction holds one send, and one at a time."""
    book_many(10)
    db.session.commit()
    events = []  # (thread, "send" | "commit")
    backend = get_backend()
    send = backend.send

    def counted(*args, **kwargs):
        events.append((threading.get_ident(), "send"))
        return send(*args, **kwargs)

    def committed(_connection):
        events.append((threading.get_ident(), "commit"))

    monkeypatch.setattr(backend, "send", counted)
    sa.event.listen(db.engine, "commit", committed)
    try:
        assert dispatch_due(NOW).sent == 10
    finally:
        sa.event.remove(db.engine, "commit", committed)

    per_transaction, senders = [], set()
    for thread in {thread for thread, _ in events}:
        run = 0
        for who, event in events:
            if who != thread:
                continue
            if event == "send":
                run += 1
                senders.add(thread)
            elif run:
                per_transaction.append(run)
                run = 0
        assert run == 0  # every send was committed
    assert sum(per_transaction) == 10
    if db.engine.dialect.name == "sqlite":
        assert per_transaction == [1] * 10 and len(senders) == 1
    else:
        assert max(per_transaction) <= 8


# Rate limit (memory backend)


@pytest.mark.parametrize("rate, spaced", [(5, True), (0, False)])  # 0: no limit
def test_the_rate_limit_spaces_sends_and_none_sends_at_once(
        app, clinic, book_many, sms_outbox, frozen_clock, monkeypatch, rate, spaced):
    monkeypatch.setitem(app.config, "SMS_RATE_PER_SECOND", rate)
    book_many(10)
    db.session.commit()

    began = time.monotonic()
    tally = dispatch_due(NOW)
    elapsed = time.monotonic() - began

    assert tally.sent == 10 and len(sms_outbox) == 10
    # Ten sends at five a second take at least 1.8 s; unlimited, well under one.
    assert (elapsed >= 1.75) if spaced else (elapsed < 1.0), elapsed


def test_rows_deferred_for_quiet_hours_spend_no_rate_slot(
        app, clinic, book_many, sms_outbox, frozen_clock, monkeypatch):
    """Ten confirmations queued at 17:00 local, then quiet hours from 16:00: they wait
    for the morning, and dispatching them must not take the two seconds ten sends at five
    a second would."""
    monkeypatch.setitem(app.config, "SMS_RATE_PER_SECOND", 5)
    book_many(10)
    db.session.commit()
    monkeypatch.setitem(app.config, "QUIET_HOURS", "16:00-08:00")  # from now on

    began = time.monotonic()
    tally = dispatch_due(NOW)
    elapsed = time.monotonic() - began

    assert tally.deferred == 10 and sms_outbox == []
    assert elapsed < 1.0, elapsed
