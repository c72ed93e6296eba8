"""The provider's iCalendar feed and its token (API.md "Appointments"), and the
periodic jobs: marking no-shows, and `flask scheduler tick` running them all.

The clock stands at Tuesday 2026-12-01 09:00 UTC (17:00 in Shanghai); the
county A clinician works 08:00-18:00 Shanghai time every day.
"""

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from icalendar import Calendar

from careservice.extensions import db
from careservice.scheduler.jobs import JOBS
from careservice.scheduling import jobs

APPOINTMENTS = "/api/v1/appointments"
PROVIDERS = "/api/v1/providers"


@pytest.fixture
def ready(frozen_clock, world, create_service_type, set_availability):
    create_service_type()  # gp_consult: 20 minutes and a 5 minute buffer
    set_availability(world.clinician_a)
    set_availability(world.clinician_b)
    return world


def at(text):
    return datetime.fromisoformat(text)


def calendar_url(client, auth, user, provider):
    response = client.get(f"{PROVIDERS}/{provider.id}", headers=auth(user))
    assert response.status_code == 200, response.json
    return response.json["calendar_url"]


def fetch(client, url):
    """The calendar_url as given, host and all, as a calendar app fetches it."""
    return client.get(url)


def events(response):
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/calendar"
    calendar = Calendar.from_ical(response.data)
    return [component for component in calendar.walk("VEVENT")]


def get_appointment(client, auth, world, appointment_id):
    response = client.get(f"{APPOINTMENTS}/{appointment_id}", headers=auth(world.users["admin"]))
    assert response.status_code == 200, response.json
    return response.json


# The feed


@pytest.fixture
def xiuying(ready, create_resident):
    return create_resident(ready.village_a1, name="Wang Xiuying", phone="+8613800138000",
                           notes="Insulin twice daily; daughter Lihua in Yinchuan")


def test_feed_lists_each_session_in_utc_with_the_first_name_only(
        client, auth, ready, xiuying, create_appointment):
    create_appointment(xiuying, ready.clinician_a, at("2026-12-02T10:00:00+08:00"))
    create_appointment(xiuying, ready.clinician_a, at("2026-12-03T15:30:00+08:00"))
    create_appointment(xiuying, ready.clinician_b, at("2026-12-04T10:00:00+08:00"))
    url = calendar_url(client, auth, ready.users["clinician"], ready.clinician_a)

    response = fetch(client, url)

    feed = events(response)
    assert len(feed) == 2
    assert [event.decoded("dtstart") for event in feed] == [
        datetime(2026, 12, 2, 2, 0, tzinfo=UTC), datetime(2026, 12, 3, 7, 30, tzinfo=UTC)]
    assert [event.decoded("dtend") for event in feed] == [
        datetime(2026, 12, 2, 2, 20, tzinfo=UTC), datetime(2026, 12, 3, 7, 50, tzinfo=UTC)]
    assert all(event.decoded("dtstart").utcoffset() == timedelta(0) for event in feed)
    text = response.get_data(as_text=True)
    assert re.findall(r"^DTSTART[^:\r\n]*:(\S+)", text, re.M) == [
        "20261202T020000Z", "20261203T073000Z"]
    assert len({str(event["uid"]) for event in feed}) == 2
    assert all("Wang" in str(event["summary"]) for event in feed)
    unfolded = text.replace("\r\n ", "").replace("\n ", "")
    for secret in ("Xiuying", "13800138000", "Insulin", "Lihua", "Yinchuan"):
        assert secret not in unfolded


def test_a_preferred_name_given_in_full_shows_only_its_first_word(
        client, auth, ready, create_resident, create_appointment):
    budi = create_resident(ready.village_a1, name="Budi Santoso Wijaya", phone="+8613800138001",
                           preferred_name="Budi Santoso")
    create_appointment(budi, ready.clinician_a, at("2026-12-02T10:00:00+08:00"))

    response = fetch(client, calendar_url(client, auth, ready.users["clinician"],
                                          ready.clinician_a))

    [event] = events(response)
    assert str(event["summary"]).endswith(": Budi")
    assert "Santoso" not in response.get_data(as_text=True).replace("\r\n ", "")


def test_feed_shows_a_cancelled_session_as_cancelled(client, auth, ready, xiuying,
                                                     create_appointment):
    kept = create_appointment(xiuying, ready.clinician_a, at("2026-12-02T10:00:00+08:00"))
    dropped = create_appointment(xiuying, ready.clinician_a, at("2026-12-03T10:00:00+08:00"))
    response = client.post(f"{APPOINTMENTS}/{dropped.id}/cancel", json={"reason": "ill"},
                           headers=auth(ready.users["vhw"]))
    assert response.status_code == 200, response.json

    feed = events(fetch(client, calendar_url(client, auth, ready.users["clinician"],
                                             ready.clinician_a)))

    statuses = {event.decoded("dtstart"): str(event["status"]) for event in feed}
    assert len(feed) == 2
    assert statuses[dropped.start_at] == "CANCELLED"
    assert statuses[kept.start_at] != "CANCELLED"


def test_feed_of_a_provider_without_sessions_is_an_empty_calendar(client, auth, ready):
    feed = events(fetch(client, calendar_url(client, auth, ready.users["clinician"],
                                             ready.clinician_a)))

    assert feed == []


def test_calendar_url_points_at_the_providers_feed_and_needs_no_login(client, auth, ready):
    url = calendar_url(client, auth, ready.users["admin"], ready.clinician_a)
    parts = urlsplit(url)

    response = client.get(parts.path, query_string=parts.query)

    assert parts.path == f"/calendar/providers/{ready.clinician_a.id}.ics"
    assert response.status_code == 200
    assert response.mimetype == "text/calendar"


@pytest.mark.parametrize("query", ["", "?token=", "?token=not-the-token", "?tok=RIGHT",
                                   "?token=OTHER", "?token=RIGHTx"])
def test_feed_with_a_wrong_or_missing_token_is_404(client, auth, ready, query):
    admin = ready.users["admin"]
    right = urlsplit(calendar_url(client, auth, admin, ready.clinician_a)).query.split("=", 1)[1]
    other = urlsplit(calendar_url(client, auth, admin, ready.clinician_b)).query.split("=", 1)[1]
    query = query.replace("RIGHT", right).replace("OTHER", other)

    response = client.get(f"/calendar/providers/{ready.clinician_a.id}.ics{query}")

    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_feed_of_an_unknown_provider_is_404(client, auth, ready):
    url = calendar_url(client, auth, ready.users["admin"], ready.clinician_a)

    response = client.get(url.replace(f"/{ready.clinician_a.id}.ics", "/999999.ics"))

    assert response.status_code == 404


# Rotating the token


def rotate(client, auth, user, provider):
    return client.post(f"{PROVIDERS}/{provider.id}/calendar-token", headers=auth(user))


@pytest.mark.parametrize("role", ["clinician", "coordinator", "admin"])
def test_rotating_the_token_retires_the_old_url(client, auth, ready, role):
    user = ready.users[role]
    old = calendar_url(client, auth, user, ready.clinician_a)

    response = rotate(client, auth, user, ready.clinician_a)

    assert response.status_code == 200, response.json
    new = response.json["calendar_url"]
    assert new != old
    assert calendar_url(client, auth, user, ready.clinician_a) == new
    assert fetch(client, old).status_code == 404
    assert fetch(client, new).status_code == 200


@pytest.mark.parametrize("role", ["vhw", "caregiver"])
def test_others_may_not_rotate_the_token(client, auth, ready, role):
    old = calendar_url(client, auth, ready.users["admin"], ready.clinician_a)

    response = rotate(client, auth, ready.users[role], ready.clinician_a)

    assert response.status_code == 403, response.json
    assert response.json["error"]["code"] == "forbidden"
    assert fetch(client, old).status_code == 200


def test_a_coordinator_of_another_region_may_not_rotate_the_token(client, auth, ready,
                                                                  create_user):
    elsewhere = create_user("coordinator", [ready.county_b])
    old = calendar_url(client, auth, ready.users["admin"], ready.clinician_a)

    response = rotate(client, auth, elsewhere, ready.clinician_a)

    assert response.status_code in (403, 404), response.json
    assert fetch(client, old).status_code == 200


def test_rotating_without_a_login_is_401(client, ready):
    response = client.post(f"{PROVIDERS}/{ready.clinician_a.id}/calendar-token")

    assert response.status_code == 401


def test_rotating_the_token_of_an_unknown_provider_is_404(client, auth, ready):
    response = client.post(f"{PROVIDERS}/999999/calendar-token",
                           headers=auth(ready.users["admin"]))

    assert response.status_code == 404


# Marking no-shows


@pytest.fixture
def day_of_sessions(client, auth, ready, frozen_clock, create_appointment, create_resident):
    """Sessions on Wednesday 2 December (Shanghai), each for its own resident:
    booked 10:00, confirmed 11:00, checked in 12:00, booked 12:30 (ends 12:50),
    and tomorrow's; then the clock moves to 13:00 Shanghai (05:00 UTC)."""
    residents = [create_resident(ready.village_a1, name=f"Resident {i}",
                                 phone=f"+861390013910{i}") for i in range(5)]
    starts = ["2026-12-02T10:00:00+08:00", "2026-12-02T11:00:00+08:00",
              "2026-12-02T12:00:00+08:00", "2026-12-02T12:30:00+08:00",
              "2026-12-03T10:00:00+08:00"]
    booked, confirmed, checked_in, recent, tomorrow = (
        create_appointment(resident, ready.clinician_a, at(start)).id
        for resident, start in zip(residents, starts, strict=True))
    clinician = ready.users["clinician"]
    response = client.post(f"{APPOINTMENTS}/{confirmed}/confirm", headers=auth(clinician))
    assert response.status_code == 200, response.json
    frozen_clock.set(datetime(2026, 12, 2, 3, 50, tzinfo=UTC))  # 11:50 in Shanghai
    response = client.post(f"{APPOINTMENTS}/{checked_in}/check-in", headers=auth(clinician))
    assert response.status_code == 200, response.json
    frozen_clock.set(datetime(2026, 12, 2, 5, 0, tzinfo=UTC))  # 13:00 in Shanghai
    return {"booked": booked, "confirmed": confirmed, "checked_in": checked_in,
            "recent": recent, "tomorrow": tomorrow}


def statuses(client, auth, world, sessions):
    return {name: get_appointment(client, auth, world, appointment_id)["status"]
            for name, appointment_id in sessions.items()}


def test_mark_no_shows_marks_sessions_over_half_an_hour_past_their_end(
        client, auth, ready, day_of_sessions):
    count = jobs.mark_no_shows()

    assert count == 2
    assert statuses(client, auth, ready, day_of_sessions) == {
        "booked": "no_show", "confirmed": "no_show", "checked_in": "checked_in",
        "recent": "booked", "tomorrow": "booked"}


def test_mark_no_shows_twice_marks_nothing_more(client, auth, ready, day_of_sessions):
    jobs.mark_no_shows()

    assert jobs.mark_no_shows() == 0
    assert statuses(client, auth, ready, day_of_sessions)["booked"] == "no_show"


def test_mark_no_shows_takes_the_recent_session_once_half_an_hour_has_passed(
        client, auth, ready, day_of_sessions, frozen_clock):
    jobs.mark_no_shows()
    frozen_clock.set(datetime(2026, 12, 2, 5, 21, tzinfo=UTC))  # 31 minutes after 12:50

    assert jobs.mark_no_shows() == 1
    assert statuses(client, auth, ready, day_of_sessions) == {
        "booked": "no_show", "confirmed": "no_show", "checked_in": "checked_in",
        "recent": "no_show", "tomorrow": "booked"}


def test_mark_no_shows_leaves_cancelled_and_completed_sessions(client, auth, ready,
                                                               frozen_clock, create_appointment,
                                                               create_resident):
    other = create_resident(ready.village_a1, name="Ma Lan", phone="+8613900139109")
    cancelled = create_appointment(ready.resident_a1, ready.clinician_a,
                                   at("2026-12-02T10:00:00+08:00")).id
    completed = create_appointment(other, ready.clinician_a, at("2026-12-02T11:00:00+08:00")).id
    client.post(f"{APPOINTMENTS}/{cancelled}/cancel", json={"reason": "ill"},
                headers=auth(ready.users["vhw"]))
    frozen_clock.set(datetime(2026, 12, 2, 3, 0, tzinfo=UTC))
    clinician = ready.users["clinician"]
    assert client.post(f"{APPOINTMENTS}/{completed}/check-in",
                       headers=auth(clinician)).status_code == 200
    assert client.post(f"{APPOINTMENTS}/{completed}/complete",
                       headers=auth(clinician)).status_code == 200
    frozen_clock.set(datetime(2026, 12, 2, 8, 0, tzinfo=UTC))

    assert jobs.mark_no_shows() == 0
    assert statuses(client, auth, ready, {"cancelled": cancelled, "completed": completed}) == {
        "cancelled": "cancelled", "completed": "completed"}


# flask scheduler tick


def tick(app):
    """`flask scheduler tick`, as its own process would run it: the test's open
    transaction ends first (on SQLite it holds the write lock)."""
    db.session.rollback()
    result = app.test_cli_runner().invoke(args=["scheduler", "tick"])
    assert result.exit_code == 0, result.output
    return dict(re.findall(r"^(\w+): (\d+)$", result.output, re.M))


def test_scheduler_tick_runs_every_job_once_and_reports_counts(app, client, auth, ready,
                                                               day_of_sessions):
    reported = tick(app)

    assert set(reported) == {job.id for job in JOBS}
    assert reported["mark_no_shows"] == "2"
    assert statuses(client, auth, ready, day_of_sessions)["booked"] == "no_show"
    assert statuses(client, auth, ready, day_of_sessions)["checked_in"] == "checked_in"


def test_scheduler_tick_expires_requests_and_extends_series(app, client, auth, ready,
                                                            frozen_clock):
    vhw = auth(ready.users["vhw"])
    request = client.post("/api/v1/care-requests", headers=vhw, json={
        "resident_id": ready.resident_a1.id, "service_type": "gp_consult",
        "earliest": "2026-12-02T08:00:00+08:00", "latest": "2026-12-02T12:00:00+08:00"}).json
    series = client.post("/api/v1/series", headers=vhw, json={
        "resident_id": ready.resident_a1.id,
        "provider_id": ready.clinician_a.id, "service_type": "gp_consult",
        "start": "2026-12-03T10:00:00+08:00", "rrule": "FREQ=WEEKLY;COUNT=6"}).json
    assert len(series["appointments"]) == 4
    frozen_clock.advance(timedelta(days=7))

    reported = tick(app)

    assert reported["expire_care_requests"] == "1"
    assert reported["extend_series"] == "1"
    admin = auth(ready.users["admin"])
    assert client.get(f"/api/v1/care-requests/{request['id']}",
                      headers=admin).json["status"] == "expired"
    assert len(client.get(f"/api/v1/series/{series['id']}",
                          headers=admin).json["appointments"]) == 5


def test_scheduler_tick_with_nothing_to_do_reports_zeros(app, ready):
    reported = tick(app)

    assert reported == {job.id: "0" for job in JOBS}
