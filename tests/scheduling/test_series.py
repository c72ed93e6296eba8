"""Recurring sessions (API.md "Appointments", series): POST /api/v1/series, its
conflicts, cancelling, and the scheduler job that books later occurrences.

The clock stands at Tuesday 2026-12-01 09:00 UTC (17:00 in Shanghai); the
providers of `world` work 08:00-18:00 Shanghai time every day, and a series
books what falls within the next 28 days.
"""

from datetime import UTC, datetime, timedelta

import pytest

from careservice.core.auth import Actor
from careservice.scheduling import availability, jobs

SERIES = "/api/v1/series"
APPOINTMENTS = "/api/v1/appointments"
# Wednesdays 10:00 in Shanghai: 2 Dec, 9 Dec, 16 Dec, 23 Dec fall within 28 days
# of the frozen now (29 Dec 09:00 UTC); 30 Dec does not.
FIRST = "2026-12-02T10:00:00+08:00"
WEDNESDAYS = ["2026-12-02T02:00:00Z", "2026-12-09T02:00:00Z", "2026-12-16T02:00:00Z",
              "2026-12-23T02:00:00Z", "2026-12-30T02:00:00Z", "2027-01-06T02:00:00Z"]


@pytest.fixture
def ready(world, frozen_clock, create_service_type, set_availability):
    """gp_consult offered by the county A clinician, available every day."""
    create_service_type()
    set_availability(world.clinician_a)
    set_availability(world.clinician_b)
    return world


def series_body(world, resident=None, provider=None, start=FIRST, rrule="FREQ=WEEKLY;COUNT=8"):
    return {"resident_id": (resident or world.resident_a1).id,
            "provider_id": (provider or world.clinician_a).id,
            "service_type": "gp_consult", "start": start, "rrule": rrule}


def post_series(client, auth, world, role="vhw", **fields):
    return client.post(SERIES, json=series_body(world, **fields), headers=auth(world.users[role]))


def created(response):
    assert response.status_code == 201, response.json
    return response.json


def field_errors(response):
    assert response.status_code == 422, response.json
    assert response.json["error"]["code"] == "validation_error"
    return response.json["error"]["fields"]


def starts(items):
    return [item["start"] for item in items]


def resident_appointments(client, auth, world, resident=None):
    response = client.get(APPOINTMENTS, query_string={"resident_id": (resident or
                                                                       world.resident_a1).id},
                          headers=auth(world.users["admin"]))
    assert response.status_code == 200, response.json
    return response.json["items"]


def utc(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# Creating


def test_weekly_series_books_the_occurrences_of_the_next_four_weeks(client, auth, ready):
    series = created(post_series(client, auth, ready))

    assert starts(series["appointments"]) == WEDNESDAYS[:4]
    assert series["conflicts"] == []
    assert series["resident_id"] == ready.resident_a1.id
    assert series["provider_id"] == ready.clinician_a.id
    assert series["service_type"] == "gp_consult"
    assert {a["status"] for a in series["appointments"]} == {"booked"}
    booked = resident_appointments(client, auth, ready)
    assert starts(booked) == WEDNESDAYS[:4]
    assert {a["series_id"] for a in booked} == {series["id"]}
    assert all(a["on_behalf"] for a in booked)
    assert [a["end"] for a in booked] == [s.replace("02:00:00", "02:20:00")
                                          for s in WEDNESDAYS[:4]]


def test_series_with_a_short_count_books_only_that_many(client, auth, ready):
    series = created(post_series(client, auth, ready, rrule="FREQ=WEEKLY;COUNT=2"))

    assert starts(series["appointments"]) == WEDNESDAYS[:2]
    assert len(resident_appointments(client, auth, ready)) == 2


@pytest.mark.parametrize("until", [
    "20261217T000000Z",     # RFC 5545: UTC, since the start carries an offset
    "20261217",
])
def test_series_with_until_books_up_to_that_day(client, auth, ready, until):
    series = created(post_series(client, auth, ready, rrule=f"FREQ=WEEKLY;UNTIL={until}"))

    assert starts(series["appointments"]) == WEDNESDAYS[:3]


def test_rrule_prefix_is_accepted(client, auth, ready):
    series = created(post_series(client, auth, ready, rrule="RRULE:FREQ=WEEKLY;COUNT=3"))

    assert starts(series["appointments"]) == WEDNESDAYS[:3]


def test_occurrence_that_clashes_is_reported_as_a_conflict_and_the_rest_are_booked(
        client, auth, ready, create_appointment):
    create_appointment(ready.resident_a2, ready.clinician_a, utc(WEDNESDAYS[1]))

    series = created(post_series(client, auth, ready))

    assert starts(series["appointments"]) == [WEDNESDAYS[0], WEDNESDAYS[2], WEDNESDAYS[3]]
    assert starts(series["conflicts"]) == [WEDNESDAYS[1]]
    assert series["conflicts"][0]["reason"]
    assert starts(resident_appointments(client, auth, ready)) == [
        WEDNESDAYS[0], WEDNESDAYS[2], WEDNESDAYS[3]]


def test_occurrence_when_the_resident_is_busy_is_a_conflict(client, auth, ready,
                                                            create_appointment):
    create_appointment(ready.resident_a1, ready.clinician_b, utc(WEDNESDAYS[2]))

    series = created(post_series(client, auth, ready))

    assert starts(series["conflicts"]) == [WEDNESDAYS[2]]
    assert WEDNESDAYS[2] not in starts(series["appointments"])
    assert len(series["appointments"]) == 3


def test_occurrence_on_the_providers_day_off_is_a_conflict(client, auth, ready):
    availability.add_exception(Actor.system("tests"), ready.clinician_a.id, {
        "start": utc("2026-12-15T16:00:00Z"), "end": utc("2026-12-16T16:00:00Z"),
        "kind": "unavailable"})

    series = created(post_series(client, auth, ready))

    assert starts(series["conflicts"]) == [WEDNESDAYS[2]]
    assert series["conflicts"][0]["reason"]
    assert starts(series["appointments"]) == [WEDNESDAYS[0], WEDNESDAYS[1], WEDNESDAYS[3]]


def test_series_none_of_whose_occurrences_can_be_booked_is_409(client, auth, ready,
                                                               create_appointment):
    create_appointment(ready.resident_a2, ready.clinician_a, utc(WEDNESDAYS[0]))

    response = post_series(client, auth, ready, rrule="FREQ=WEEKLY;COUNT=1")

    assert response.status_code == 409, response.json
    assert response.json["error"]["code"] == "slot_unavailable"
    assert resident_appointments(client, auth, ready) == []


def test_series_starting_outside_availability_is_409(client, auth, ready):
    response = post_series(client, auth, ready, start="2026-12-02T20:00:00+08:00")

    assert response.status_code == 409, response.json
    assert response.json["error"]["code"] == "slot_unavailable"
    assert resident_appointments(client, auth, ready) == []


@pytest.mark.parametrize("rrule", [
    "FREQ=SOMETIMES",
    "FREQ=MINUTELY",
    "FREQ=MINUTELY;COUNT=5",
    "FREQ=HOURLY;COUNT=5",
    "DTSTART:20261202T020000Z\nRRULE:FREQ=WEEKLY;COUNT=4",
    "DTSTART=20261202T020000Z;FREQ=WEEKLY;COUNT=4",
    "FREQ=WEEKLY;COUNT=4;DTSTART=20261202T020000",
    "",
    "   ",
    "FREQ=WEEKLY;INTERVAL=0",
    "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",  # never falls: not searched up to the year 9999
    "FREQ=WEEKLY;UNTIL=20270230T000000Z",  # 30 February
    "FREQ=WEEKLY;UNTIL=20261231T235960Z",  # a leap second
    "FREQ=WEEKLY;UNTIL=20270131T250000Z",
    "EXDATE:20261202T000000Z",
    "RDATE:20261210T000000Z",
])
def test_unusable_rrule_is_422_on_rrule(client, auth, ready, rrule):
    response = post_series(client, auth, ready, rrule=rrule)

    assert "rrule" in field_errors(response)
    assert resident_appointments(client, auth, ready) == []


# Reading


def test_a_series_beginning_beyond_the_schedulers_window_books_its_first_session(
        client, auth, ready, frozen_clock):
    # 13 Jan is 43 days ahead: past SERIES_AHEAD_DAYS (28), inside the 90-day horizon.
    body = created(post_series(client, auth, ready, start="2027-01-13T10:00:00+08:00",
                               rrule="FREQ=WEEKLY;COUNT=3"))

    assert starts(body["appointments"]) == ["2027-01-13T02:00:00Z"]
    frozen_clock.advance(timedelta(days=28))  # the window now reaches 26 Jan
    jobs.extend_series()
    assert starts(resident_appointments(client, auth, ready)) == [
        "2027-01-13T02:00:00Z", "2027-01-20T02:00:00Z"]


def test_get_series_shows_its_appointments_and_conflicts(client, auth, ready,
                                                         create_appointment):
    create_appointment(ready.resident_a2, ready.clinician_a, utc(WEDNESDAYS[3]))
    series_id = created(post_series(client, auth, ready))["id"]

    response = client.get(f"{SERIES}/{series_id}", headers=auth(ready.users["vhw"]))

    assert response.status_code == 200, response.json
    series = response.json
    assert series["id"] == series_id
    assert series["status"] == "active"
    assert starts(series["appointments"]) == WEDNESDAYS[:3]
    assert starts(series["conflicts"]) == [WEDNESDAYS[3]]
    assert series["conflicts"][0]["reason"]


@pytest.mark.parametrize("role, status", [
    ("admin", 200), ("coordinator", 200), ("clinician", 200),
    ("vhw", 404), ("caregiver", 404),
])
def test_series_outside_the_callers_scope_is_404(client, auth, ready, role, status):
    series_id = created(post_series(client, auth, ready, role="admin",
                                    resident=ready.resident_a2))["id"]

    response = client.get(f"{SERIES}/{series_id}", headers=auth(ready.users[role]))

    assert response.status_code == status, response.json
    if status == 404:
        assert response.json["error"]["code"] == "not_found"
        assert "Li Jianguo" not in response.get_data(as_text=True)


def test_unknown_series_is_404(client, auth, ready):
    response = client.get(f"{SERIES}/999999", headers=auth(ready.users["admin"]))

    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_vhw_cannot_create_a_series_for_a_resident_outside_their_villages(client, auth, ready):
    response = post_series(client, auth, ready, resident=ready.resident_a2)

    assert "resident_id" in field_errors(response)
    assert resident_appointments(client, auth, ready, ready.resident_a2) == []


# Cancelling


def test_cancelling_a_series_cancels_its_future_sessions_and_keeps_past_ones(
        client, auth, ready, frozen_clock):
    series = created(post_series(client, auth, ready))
    first, *later = [a["id"] for a in series["appointments"]]
    frozen_clock.set(datetime(2026, 12, 2, 3, 0, tzinfo=UTC))  # the first session is over

    response = client.post(f"{SERIES}/{series['id']}/cancel", headers=auth(ready.users["vhw"]))

    assert response.status_code == 200, response.json
    assert response.json["status"] == "cancelled"
    statuses = {a["id"]: a["status"] for a in response.json["appointments"]}
    assert statuses[first] == "booked"
    assert [statuses[i] for i in later] == ["cancelled"] * 3
    admin = auth(ready.users["admin"])
    kept = client.get(f"{APPOINTMENTS}/{first}", headers=admin).json
    assert kept["status"] == "booked" and kept["cancel_reason"] is None
    for appointment_id in later:
        cancelled = client.get(f"{APPOINTMENTS}/{appointment_id}", headers=admin).json
        assert cancelled["status"] == "cancelled"
        assert cancelled["cancel_reason"]


def test_cancelling_a_series_twice_is_409(client, auth, ready):
    series_id = created(post_series(client, auth, ready))["id"]
    headers = auth(ready.users["vhw"])
    assert client.post(f"{SERIES}/{series_id}/cancel", headers=headers).status_code == 200

    response = client.post(f"{SERIES}/{series_id}/cancel", headers=headers)

    assert response.status_code == 409
    assert response.json["error"]["code"] == "invalid_transition"


def test_cancelling_a_series_out_of_scope_is_404_and_changes_nothing(client, auth, ready):
    series_id = created(post_series(client, auth, ready, role="admin",
                                    resident=ready.resident_a2))["id"]

    response = client.post(f"{SERIES}/{series_id}/cancel", headers=auth(ready.users["vhw"]))

    assert response.status_code == 404
    booked = resident_appointments(client, auth, ready, ready.resident_a2)
    assert {a["status"] for a in booked} == {"booked"}


def test_cancelled_slots_are_free_again(client, auth, ready, create_appointment):
    series_id = created(post_series(client, auth, ready))["id"]
    client.post(f"{SERIES}/{series_id}/cancel", headers=auth(ready.users["vhw"]))

    appointment = create_appointment(ready.resident_a2, ready.clinician_a, utc(WEDNESDAYS[1]))

    assert appointment.status == "booked"


# The scheduler job


def test_extend_series_books_later_occurrences_as_time_passes(client, auth, ready,
                                                              frozen_clock):
    series_id = created(post_series(client, auth, ready))["id"]
    frozen_clock.advance(timedelta(days=14))

    booked = jobs.extend_series()

    assert booked == 2
    series = client.get(f"{SERIES}/{series_id}", headers=auth(ready.users["vhw"])).json
    assert starts(series["appointments"]) == WEDNESDAYS[:6]
    appointments = resident_appointments(client, auth, ready)
    assert starts(appointments) == WEDNESDAYS[:6]
    assert {a["series_id"] for a in appointments} == {series_id}


def test_extend_series_never_books_an_occurrence_twice(client, auth, ready, frozen_clock):
    series_id = created(post_series(client, auth, ready))["id"]
    frozen_clock.advance(timedelta(days=14))
    jobs.extend_series()

    again = jobs.extend_series()
    frozen_clock.advance(timedelta(hours=1))
    an_hour_later = jobs.extend_series()

    assert (again, an_hour_later) == (0, 0)
    series = client.get(f"{SERIES}/{series_id}", headers=auth(ready.users["vhw"])).json
    assert starts(series["appointments"]) == WEDNESDAYS[:6]
    assert series["conflicts"] == []
    assert starts(resident_appointments(client, auth, ready)) == WEDNESDAYS[:6]


def test_extend_series_stops_at_the_rules_count(client, auth, ready, frozen_clock):
    series_id = created(post_series(client, auth, ready, rrule="FREQ=WEEKLY;COUNT=5"))["id"]
    frozen_clock.advance(timedelta(days=14))

    assert jobs.extend_series() == 1

    series = client.get(f"{SERIES}/{series_id}", headers=auth(ready.users["vhw"])).json
    assert starts(series["appointments"]) == WEDNESDAYS[:5]


def test_a_cancelled_series_is_not_extended(client, auth, ready, frozen_clock):
    series_id = created(post_series(client, auth, ready))["id"]
    client.post(f"{SERIES}/{series_id}/cancel", headers=auth(ready.users["vhw"]))
    frozen_clock.advance(timedelta(days=14))

    assert jobs.extend_series() == 0

    live = [a for a in resident_appointments(client, auth, ready) if a["status"] != "cancelled"]
    assert live == []


def test_extend_series_reports_a_later_clash_as_a_conflict(client, auth, ready, frozen_clock,
                                                           create_appointment):
    series_id = created(post_series(client, auth, ready))["id"]
    frozen_clock.advance(timedelta(days=14))
    create_appointment(ready.resident_a2, ready.clinician_a, utc(WEDNESDAYS[4]))

    assert jobs.extend_series() == 1

    series = client.get(f"{SERIES}/{series_id}", headers=auth(ready.users["vhw"])).json
    assert starts(series["conflicts"]) == [WEDNESDAYS[4]]
    assert WEDNESDAYS[5] in starts(series["appointments"])


def test_a_daily_series_is_still_extended_after_four_hundred_sessions(client, auth, ready,
                                                                      frozen_clock):
    """A resident on daily check-ins keeps getting sessions after more than a year."""
    series_id = created(post_series(client, auth, ready, rrule="FREQ=DAILY"))["id"]
    frozen_clock.set(datetime(2028, 3, 1, 9, 0, tzinfo=UTC))  # about 455 days on

    jobs.extend_series()

    series = client.get(f"{SERIES}/{series_id}", headers=auth(ready.users["vhw"])).json
    upcoming = [s for s in starts(series["appointments"]) if utc(s) > frozen_clock.now()]
    assert upcoming[:2] == ["2028-03-02T02:00:00Z", "2028-03-03T02:00:00Z"]
    assert len(upcoming) == 28


# Daylight saving


@pytest.mark.parametrize("now, start, expected", [
    # Europe/Berlin moves from +01:00 to +02:00 on Sunday 2026-03-29 ...
    (datetime(2026, 3, 20, 9, 0, tzinfo=UTC), "2026-03-23T09:00:00+01:00",
     ["2026-03-23T08:00:00Z", "2026-03-30T07:00:00Z", "2026-04-06T07:00:00Z"]),
    # ... and back on Sunday 2026-10-25.
    (datetime(2026, 10, 12, 9, 0, tzinfo=UTC), "2026-10-19T09:00:00+02:00",
     ["2026-10-19T07:00:00Z", "2026-10-26T08:00:00Z", "2026-11-02T08:00:00Z"]),
])
def test_weekly_series_keeps_its_local_time_across_a_daylight_saving_change(
        client, auth, world, frozen_clock, create_service_type, create_provider,
        set_availability, now, start, expected):
    frozen_clock.set(now)
    create_service_type()
    berlin = create_provider(world.county_a, name="Dr. Weber", timezone="Europe/Berlin",
                             service_region_ids=[world.county_a.id])
    set_availability(berlin)  # 08:00-18:00 Berlin time

    series = created(post_series(client, auth, world, provider=berlin, start=start,
                                 rrule="FREQ=WEEKLY;BYDAY=MO;COUNT=3"))

    assert starts(series["appointments"]) == expected
    assert series["conflicts"] == []
    assert series["timezone"] == "Europe/Berlin"
