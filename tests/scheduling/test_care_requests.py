"""The waitlist (API.md "Care requests"): creating, listing and cancelling care
requests, booking one, what happens to it when its session is cancelled or
moved, and the job that expires stale requests.

The clock stands at Tuesday 2026-12-01 09:00 UTC (17:00 in Shanghai); the
clinician of county A works 08:00-18:00 Shanghai time every day.
"""

from datetime import UTC, datetime, timedelta

import pytest

from careservice.scheduling import jobs

REQUESTS = "/api/v1/care-requests"
APPOINTMENTS = "/api/v1/appointments"
EARLIEST = "2026-12-02T08:00:00+08:00"
LATEST = "2026-12-04T18:00:00+08:00"
INSIDE = "2026-12-03T10:00:00+08:00"


@pytest.fixture
def ready(world, frozen_clock, create_service_type, set_availability):
    create_service_type()  # gp_consult: 20 minutes and a 5 minute buffer
    set_availability(world.clinician_a)
    return world


def request_body(resident, **fields):
    body = {"resident_id": resident.id, "service_type": "gp_consult",
            "earliest": EARLIEST, "latest": LATEST}
    body.update(fields)
    return body


def post_request(client, headers, resident, **fields):
    return client.post(REQUESTS, json=request_body(resident, **fields), headers=headers)


def new_request(client, headers, resident, **fields):
    response = post_request(client, headers, resident, **fields)
    assert response.status_code == 201, response.json
    return response.json


def get_request(client, headers, request_id):
    response = client.get(f"{REQUESTS}/{request_id}", headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def book(client, headers, world, start=INSIDE, resident=None, **fields):
    body = {"resident_id": (resident or world.resident_a1).id,
            "provider_id": world.clinician_a.id, "service_type": "gp_consult", "start": start}
    body.update(fields)
    return client.post(APPOINTMENTS, json=body, headers=headers)


def field_errors(response):
    assert response.status_code == 422, response.json
    assert response.json["error"]["code"] == "validation_error"
    return response.json["error"]["fields"]


def ids(response):
    assert response.status_code == 200, response.json
    assert response.json["total"] == len(response.json["items"])
    return [item["id"] for item in response.json["items"]]


@pytest.fixture
def vhw(ready, auth):
    return auth(ready.users["vhw"])


@pytest.fixture
def admin(ready, auth):
    return auth(ready.users["admin"])


# Creating


def test_care_request_is_created_open_and_unbooked(client, ready, vhw):
    response = post_request(client, vhw, ready.resident_a1, urgency="soon")

    assert response.status_code == 201, response.json
    body = response.json
    assert isinstance(body["id"], int)
    assert body["resident_id"] == ready.resident_a1.id
    assert body["service_type"] == "gp_consult"
    assert body["earliest"] == "2026-12-02T00:00:00Z"
    assert body["latest"] == "2026-12-04T10:00:00Z"
    assert body["urgency"] == "soon"
    assert body["status"] == "open"
    assert body["appointment_id"] is None
    assert get_request(client, vhw, body["id"]) == body


def test_urgency_defaults_to_routine(client, ready, vhw):
    assert new_request(client, vhw, ready.resident_a1)["urgency"] == "routine"


@pytest.mark.parametrize("fields, field", [
    ({"earliest": "2026-12-05T08:00:00+08:00"}, "latest"),       # earliest after latest
    ({"earliest": LATEST}, "latest"),                             # an empty window
    ({"earliest": "2026-11-20T08:00:00+08:00",
      "latest": "2026-11-30T18:00:00+08:00"}, "latest"),          # already past
    ({"earliest": "2026-12-01T08:00:00+08:00",
      "latest": "2026-12-01T16:30:00+08:00"}, "latest"),          # ended half an hour ago
    ({"latest": "2026-12-02T08:15:00+08:00"}, "latest"),          # shorter than 20 minutes
    ({"urgency": "whenever"}, "urgency"),
    ({"urgency": "URGENT"}, "urgency"),
    ({"service_type": "no_such_service"}, "service_type"),
    ({"earliest": "2026-12-02T08:00:00"}, "earliest"),            # no offset
])
def test_unusable_care_request_is_422_on_the_field(client, ready, vhw, fields, field):
    response = post_request(client, vhw, ready.resident_a1, **fields)

    assert field in field_errors(response)
    assert ids(client.get(REQUESTS, headers=vhw)) == []


def test_window_exactly_one_session_long_is_accepted(client, ready, vhw):
    body = new_request(client, vhw, ready.resident_a1, latest="2026-12-02T08:20:00+08:00")

    assert body["status"] == "open"


def test_window_that_began_but_has_not_ended_is_accepted(client, ready, vhw):
    body = new_request(client, vhw, ready.resident_a1, earliest="2026-11-30T08:00:00+08:00")

    assert body["status"] == "open"


def test_vhw_cannot_put_a_resident_outside_their_villages_on_the_waitlist(client, ready, vhw):
    response = post_request(client, vhw, ready.resident_a2)

    assert "resident_id" in field_errors(response)


# Listing and reading


@pytest.fixture
def waitlist(client, ready, admin):
    """Requests of residents in village A1 (two), village A2 and county B."""
    return {
        "a1_routine": new_request(client, admin, ready.resident_a1),
        "a1_urgent": new_request(client, admin, ready.resident_a1, urgency="urgent"),
        "a2_urgent": new_request(client, admin, ready.resident_a2, urgency="urgent"),
        "b_soon": new_request(client, admin, ready.resident_b, urgency="soon"),
    }


@pytest.mark.parametrize("role, visible", [
    ("admin", ["a1_routine", "a1_urgent", "a2_urgent", "b_soon"]),
    ("coordinator", ["a1_routine", "a1_urgent", "a2_urgent"]),
    ("vhw", ["a1_routine", "a1_urgent"]),
])
def test_list_shows_only_requests_of_residents_in_scope(client, auth, ready, waitlist, role,
                                                        visible):
    response = client.get(REQUESTS, headers=auth(ready.users[role]))

    assert ids(response) == [waitlist[name]["id"] for name in visible]


def test_a_provider_sees_only_the_requests_their_own_sessions_took(client, auth, ready,
                                                                   waitlist, vhw):
    """The waitlist's notes may say why care is needed: not for every provider to read.
    The clinician's session takes a1_urgent; a1_routine, same resident, stays hidden."""
    taken = book(client, vhw, ready, care_request_id=waitlist["a1_urgent"]["id"])
    assert taken.status_code == 201, taken.json
    clinician = auth(ready.users["clinician"])

    assert ids(client.get(REQUESTS, headers=clinician)) == [waitlist["a1_urgent"]["id"]]
    assert ids(client.get(REQUESTS, headers=auth(ready.users["caregiver"]))) == []
    hidden = client.get(f"{REQUESTS}/{waitlist['a1_routine']['id']}", headers=clinician)
    assert hidden.status_code == 404


@pytest.mark.parametrize("role", ["clinician", "caregiver"])
def test_providers_neither_add_to_nor_cancel_from_the_waitlist(client, auth, ready, vhw, role,
                                                              create_appointment):
    create_appointment(ready.resident_a1, ready.clinician_a, datetime(2026, 12, 5, 2, 0,
                                                                     tzinfo=UTC))
    request_id = new_request(client, vhw, ready.resident_a1)["id"]
    headers = auth(ready.users[role])

    added = post_request(client, headers, ready.resident_a1)
    cancelled = client.post(f"{REQUESTS}/{request_id}/cancel", headers=headers)

    assert added.status_code == 403
    assert cancelled.status_code in (403, 404)
    assert get_request(client, vhw, request_id)["status"] == "open"


@pytest.mark.parametrize("query, expected", [
    ({"urgency": "urgent"}, ["a1_urgent", "a2_urgent"]),
    ({"urgency": "urgent,soon"}, ["a1_urgent", "a2_urgent", "b_soon"]),
    ({"status": "cancelled"}, ["a1_routine"]),
    ({"status": "open"}, ["a1_urgent", "a2_urgent", "b_soon"]),
    ({"status": "open", "urgency": "urgent"}, ["a1_urgent", "a2_urgent"]),
])
def test_list_filters_by_status_and_urgency(client, ready, admin, waitlist, query, expected):
    client.post(f"{REQUESTS}/{waitlist['a1_routine']['id']}/cancel", headers=admin)

    response = client.get(REQUESTS, query_string=query, headers=admin)

    assert ids(response) == [waitlist[name]["id"] for name in expected]


def test_list_filters_by_resident(client, ready, admin, waitlist):
    response = client.get(REQUESTS, query_string={"resident_id": ready.resident_a1.id},
                          headers=admin)

    assert ids(response) == [waitlist["a1_routine"]["id"], waitlist["a1_urgent"]["id"]]


def test_vhw_filtering_on_a_resident_outside_scope_sees_nothing(client, ready, vhw, waitlist):
    response = client.get(REQUESTS, query_string={"resident_id": ready.resident_a2.id},
                          headers=vhw)

    assert ids(response) == []


@pytest.mark.parametrize("query", [{"urgency": "whenever"}, {"status": "opne"}])
def test_list_with_a_bad_filter_value_is_422(client, ready, admin, waitlist, query):
    response = client.get(REQUESTS, query_string=query, headers=admin)

    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"


def test_list_pages_with_limit_and_offset(client, ready, admin, waitlist):
    response = client.get(REQUESTS, query_string={"limit": 2, "offset": 1}, headers=admin)

    assert response.status_code == 200
    assert response.json["total"] == 4
    assert [item["id"] for item in response.json["items"]] == [
        waitlist["a1_urgent"]["id"], waitlist["a2_urgent"]["id"]]


@pytest.mark.parametrize("name", ["a2_urgent", "b_soon"])
def test_request_outside_scope_is_404(client, ready, vhw, waitlist, name):
    response = client.get(f"{REQUESTS}/{waitlist[name]['id']}", headers=vhw)

    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_unknown_request_is_404(client, ready, admin):
    assert client.get(f"{REQUESTS}/999999", headers=admin).status_code == 404


# Cancelling


def test_cancelling_a_request_withdraws_it(client, ready, vhw):
    request_id = new_request(client, vhw, ready.resident_a1)["id"]

    response = client.post(f"{REQUESTS}/{request_id}/cancel", headers=vhw)

    assert response.status_code == 200, response.json
    assert response.json["status"] == "cancelled"
    assert get_request(client, vhw, request_id)["status"] == "cancelled"


def test_cancelling_a_request_twice_is_409(client, ready, vhw):
    request_id = new_request(client, vhw, ready.resident_a1)["id"]
    client.post(f"{REQUESTS}/{request_id}/cancel", headers=vhw)

    response = client.post(f"{REQUESTS}/{request_id}/cancel", headers=vhw)

    assert response.status_code == 409
    assert response.json["error"]["code"] == "invalid_transition"


def test_cancelling_a_request_out_of_scope_is_404_and_leaves_it_open(client, ready, vhw, admin,
                                                                     waitlist):
    request_id = waitlist["a2_urgent"]["id"]

    response = client.post(f"{REQUESTS}/{request_id}/cancel", headers=vhw)

    assert response.status_code == 404
    assert get_request(client, admin, request_id)["status"] == "open"


def test_a_booked_request_cannot_be_cancelled(client, ready, vhw):
    request_id = new_request(client, vhw, ready.resident_a1)["id"]
    assert book(client, vhw, ready, care_request_id=request_id).status_code == 201

    response = client.post(f"{REQUESTS}/{request_id}/cancel", headers=vhw)

    assert response.status_code == 409
    assert response.json["error"]["code"] == "invalid_transition"
    assert get_request(client, vhw, request_id)["status"] == "booked"


# Booking a request


def test_booking_with_a_care_request_links_it(client, ready, vhw):
    request_id = new_request(client, vhw, ready.resident_a1)["id"]

    response = book(client, vhw, ready, care_request_id=request_id)

    assert response.status_code == 201, response.json
    request = get_request(client, vhw, request_id)
    assert request["status"] == "booked"
    assert request["appointment_id"] == response.json["id"]


@pytest.mark.parametrize("start, fits", [
    ("2026-12-02T09:00:00+08:00", True),    # starts at earliest
    ("2026-12-04T11:40:00+08:00", True),    # ends at latest (the buffer is not the session)
    ("2026-12-02T08:59:00+08:00", False),   # a minute early
    ("2026-12-04T11:41:00+08:00", False),   # ends a minute late
    ("2026-12-05T10:00:00+08:00", False),   # the day after
])
def test_booking_a_care_request_must_fall_inside_its_window(client, ready, vhw, start, fits):
    request_id = new_request(client, vhw, ready.resident_a1, earliest="2026-12-02T09:00:00+08:00",
                             latest="2026-12-04T12:00:00+08:00")["id"]

    response = book(client, vhw, ready, start=start, care_request_id=request_id)

    request = get_request(client, vhw, request_id)
    if fits:
        assert response.status_code == 201, response.json
        assert request["status"] == "booked"
        assert request["appointment_id"] == response.json["id"]
    else:
        assert field_errors(response)
        assert request["status"] == "open" and request["appointment_id"] is None
        assert client.get(APPOINTMENTS, headers=vhw).json["total"] == 0


def test_booking_with_another_residents_request_is_422_on_care_request_id(client, ready, admin):
    request_id = new_request(client, admin, ready.resident_a2)["id"]

    response = book(client, admin, ready, care_request_id=request_id)

    assert "care_request_id" in field_errors(response)
    assert get_request(client, admin, request_id)["status"] == "open"
    assert client.get(APPOINTMENTS, headers=admin).json["total"] == 0


def test_booking_another_service_with_a_request_is_422_on_care_request_id(
        client, ready, vhw, create_service_type):
    create_service_type(code="chronic_followup", name="Chronic follow-up", modality="phone",
                        duration_minutes=15, buffer_minutes=0)
    request_id = new_request(client, vhw, ready.resident_a1, service_type="chronic_followup")["id"]

    response = book(client, vhw, ready, care_request_id=request_id)

    assert "care_request_id" in field_errors(response)
    assert get_request(client, vhw, request_id)["status"] == "open"


@pytest.mark.parametrize("how", ["cancelled", "booked"])
def test_booking_with_a_request_that_is_not_open_is_422(client, ready, vhw, how):
    request_id = new_request(client, vhw, ready.resident_a1)["id"]
    if how == "cancelled":
        client.post(f"{REQUESTS}/{request_id}/cancel", headers=vhw)
    else:
        assert book(client, vhw, ready, care_request_id=request_id).status_code == 201

    response = book(client, vhw, ready, start="2026-12-03T11:00:00+08:00",
                    care_request_id=request_id)

    assert "care_request_id" in field_errors(response)


def test_booking_with_an_unknown_request_is_422(client, ready, vhw):
    assert "care_request_id" in field_errors(book(client, vhw, ready, care_request_id=999999))


def test_cancelling_the_session_reopens_the_request(client, ready, vhw):
    request_id = new_request(client, vhw, ready.resident_a1)["id"]
    appointment_id = book(client, vhw, ready, care_request_id=request_id).json["id"]

    response = client.post(f"{APPOINTMENTS}/{appointment_id}/cancel",
                           json={"reason": "resident travelling"}, headers=vhw)

    assert response.status_code == 200, response.json
    request = get_request(client, vhw, request_id)
    assert request["status"] == "open"
    assert request["appointment_id"] is None


def test_a_reopened_request_can_be_booked_again(client, ready, vhw):
    request_id = new_request(client, vhw, ready.resident_a1)["id"]
    first = book(client, vhw, ready, care_request_id=request_id).json["id"]
    client.post(f"{APPOINTMENTS}/{first}/cancel", json={"reason": "clash"}, headers=vhw)

    response = book(client, vhw, ready, start="2026-12-04T09:00:00+08:00",
                    care_request_id=request_id)

    assert response.status_code == 201, response.json
    assert get_request(client, vhw, request_id)["appointment_id"] == response.json["id"]


def test_rescheduling_the_session_moves_the_link_to_the_new_one(client, ready, vhw):
    request_id = new_request(client, vhw, ready.resident_a1)["id"]
    old = book(client, vhw, ready, care_request_id=request_id).json["id"]

    response = client.post(f"{APPOINTMENTS}/{old}/reschedule",
                           json={"start": "2026-12-04T09:00:00+08:00"}, headers=vhw)

    assert response.status_code == 201, response.json
    request = get_request(client, vhw, request_id)
    assert request["status"] == "booked"
    assert request["appointment_id"] == response.json["id"] != old


# Expiry


def test_expire_requests_expires_open_requests_past_their_window_only(client, auth, ready,
                                                                      admin, frozen_clock):
    short = dict(earliest="2026-12-01T19:00:00+08:00", latest="2026-12-02T12:00:00+08:00")
    stale = new_request(client, admin, ready.resident_a1, **short)["id"]
    still_open = new_request(client, admin, ready.resident_b)["id"]
    booked = new_request(client, admin, ready.resident_a2, **short)["id"]
    cancelled = new_request(client, admin, ready.resident_b, **short)["id"]
    assert book(client, admin, ready, resident=ready.resident_a2,
                start="2026-12-02T10:00:00+08:00", care_request_id=booked).status_code == 201
    client.post(f"{REQUESTS}/{cancelled}/cancel", headers=admin)
    frozen_clock.set(datetime(2026, 12, 2, 4, 0, tzinfo=UTC))  # 12:00 in Shanghai
    admin = auth(ready.users["admin"])  # yesterday's token has expired

    assert jobs.expire_requests() == 1

    statuses = {i: get_request(client, admin, i)["status"]
                for i in (stale, still_open, booked, cancelled)}
    assert statuses == {stale: "expired", still_open: "open", booked: "booked",
                        cancelled: "cancelled"}


def test_expire_requests_twice_expires_nothing_more(client, auth, ready, admin, frozen_clock):
    request_id = new_request(client, admin, ready.resident_a1,
                             latest="2026-12-02T12:00:00+08:00")["id"]
    frozen_clock.advance(timedelta(days=2))
    admin = auth(ready.users["admin"])
    assert jobs.expire_requests() == 1

    assert jobs.expire_requests() == 0
    assert get_request(client, admin, request_id)["status"] == "expired"


def test_an_expired_request_cannot_be_cancelled_or_booked(client, auth, ready, admin,
                                                          frozen_clock):
    request_id = new_request(client, admin, ready.resident_a1)["id"]
    frozen_clock.advance(timedelta(days=4))
    admin = auth(ready.users["admin"])
    jobs.expire_requests()

    cancel = client.post(f"{REQUESTS}/{request_id}/cancel", headers=admin)
    booking = book(client, admin, ready, start="2026-12-06T10:00:00+08:00",
                   care_request_id=request_id)

    assert cancel.status_code == 409
    assert cancel.json["error"]["code"] == "invalid_transition"
    assert "care_request_id" in field_errors(booking)
