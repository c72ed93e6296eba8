"""Weekly availability, exceptions and free slots, as providers and bookers see them."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from careservice import create_app
from careservice.extensions import db

PROVIDERS = "/api/v1/providers"
THURSDAY = "2026-12-03"  # two days after the frozen clock's Tuesday, 2026-12-01 09:00 UTC
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


# Fixtures and helpers


@pytest.fixture
def village(create_region):
    """A village on UTC, so slot times read as the rules are written."""
    province = create_region("province", timezone="UTC")
    county = create_region("county", province)
    town = create_region("township", county)
    return create_region("village", town)


@pytest.fixture
def provider(village, create_provider):
    """A GP on UTC, offering video and phone."""
    return create_provider(village, timezone="UTC")


@pytest.fixture
def gp_consult(create_service_type):
    """20 minutes of video, 5 minutes of buffer after: a grid of 25 minutes."""
    return create_service_type()


@pytest.fixture
def resident(village, create_resident):
    return create_resident(village)


@pytest.fixture
def admin(frozen_clock, create_user, auth):
    """Bearer headers of an admin, issued at the frozen now."""
    return auth(create_user("admin"))


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _put_rules(client, headers, provider_id, rules, **extra):
    return client.put(f"{PROVIDERS}/{provider_id}/availability",
                      json={"rules": rules, **extra}, headers=headers)


def _rule(weekday=0, start="09:00", end="12:00", **extra):
    return {"weekday": weekday, "start": start, "end": end, **extra}


def _field_errors(response):
    assert response.status_code == 422, response.json
    assert response.json["error"]["code"] == "validation_error"
    return response.json["error"]["fields"]


def _get_slots(client, headers, provider_id, start, end, service_type="gp_consult"):
    return client.get(f"{PROVIDERS}/{provider_id}/slots", headers=headers,
                      query_string={"service_type": service_type, "from": start, "to": end})


def _slots(client, headers, provider_id, start, end, service_type="gp_consult"):
    response = _get_slots(client, headers, provider_id, start, end, service_type)
    assert response.status_code == 200, response.json
    return response.json["items"]


def _starts(items) -> list[datetime]:
    return [_at(item["start"]) for item in items]


def _clock_times(items) -> list[str]:
    return [f"{start:%H:%M}" for start in _starts(items)]


def _day_slots(client, headers, provider_id, day=THURSDAY, service_type="gp_consult"):
    """The slots of one UTC day."""
    next_day = (_at(day) + timedelta(days=1)).date().isoformat()
    return _slots(client, headers, provider_id, f"{day}T00:00:00Z", f"{next_day}T00:00:00Z",
                  service_type)


def _thursday(hour, minute=0) -> datetime:
    return datetime(2026, 12, 3, hour, minute, tzinfo=UTC)


# Weekly rules


def test_put_availability_answers_with_the_stored_rules_and_get_returns_them(
        client, admin, provider):
    rules = [
        _rule(4, "14:30", "17:00", valid_from="2026-12-01", valid_to="2027-03-31"),
        _rule(0, "09:00", "12:00"),
    ]
    response = _put_rules(client, admin, provider.id, rules)

    assert response.status_code == 200, response.json
    stored = [
        {"weekday": 0, "start": "09:00", "end": "12:00", "valid_from": None, "valid_to": None},
        {"weekday": 4, "start": "14:30", "end": "17:00", "valid_from": "2026-12-01",
         "valid_to": "2027-03-31"},
    ]
    assert response.json["provider_id"] == provider.id
    assert response.json["timezone"] == "UTC"
    assert response.json["rules"] == stored
    fetched = client.get(f"{PROVIDERS}/{provider.id}/availability", headers=admin)
    assert fetched.status_code == 200
    assert fetched.json["rules"] == stored


def test_weekday_zero_is_monday(client, admin, provider, gp_consult):
    assert _put_rules(client, admin, provider.id, [_rule(0, "09:00", "10:00")]).status_code == 200

    items = _slots(client, admin, provider.id, "2026-12-06T00:00:00Z", "2026-12-09T00:00:00Z")

    assert {start.date().isoformat() for start in _starts(items)} == {"2026-12-07"}
    assert _at("2026-12-07").weekday() == 0


def test_put_replaces_the_rules_rather_than_adding_to_them(client, admin, provider):
    _put_rules(client, admin, provider.id, [_rule(0), _rule(1)])

    response = _put_rules(client, admin, provider.id, [_rule(2, "13:00", "16:00")])

    assert response.status_code == 200
    rules = client.get(f"{PROVIDERS}/{provider.id}/availability", headers=admin).json["rules"]
    assert [(r["weekday"], r["start"], r["end"]) for r in rules] == [(2, "13:00", "16:00")]
    assert _put_rules(client, admin, provider.id, []).json["rules"] == []
    assert client.get(f"{PROVIDERS}/{provider.id}/availability",
                      headers=admin).json["rules"] == []


def test_overlapping_rules_on_one_weekday_are_refused_naming_the_rule(client, admin, provider):
    _put_rules(client, admin, provider.id, [_rule(3, "08:00", "09:00")])

    response = _put_rules(client, admin, provider.id,
                          [_rule(0, "09:00", "12:00"), _rule(0, "11:00", "14:00")])

    assert "rules.1" in _field_errors(response)
    rules = client.get(f"{PROVIDERS}/{provider.id}/availability", headers=admin).json["rules"]
    assert [(r["weekday"], r["start"]) for r in rules] == [(3, "08:00")]


@pytest.mark.parametrize("rules", [
    pytest.param([_rule(0, "09:00", "12:00"), _rule(0, "12:00", "15:00")], id="touching"),
    pytest.param([_rule(0, "09:00", "12:00"), _rule(1, "09:00", "12:00")], id="other-weekday"),
    pytest.param([_rule(0, "09:00", "12:00", valid_to="2026-12-31"),
                  _rule(0, "10:00", "13:00", valid_from="2027-01-01")], id="disjoint-validity"),
])
def test_rules_that_do_not_overlap_are_accepted(client, admin, provider, rules):
    response = _put_rules(client, admin, provider.id, rules)

    assert response.status_code == 200, response.json
    assert len(response.json["rules"]) == 2


def test_rules_whose_validity_ranges_share_a_day_still_overlap(client, admin, provider):
    response = _put_rules(client, admin, provider.id, [
        _rule(0, "09:00", "12:00", valid_to="2027-01-04"),
        _rule(0, "10:00", "13:00", valid_from="2027-01-04"),
    ])

    assert "rules.1" in _field_errors(response)


@pytest.mark.parametrize("rule, field", [
    (_rule(0, "12:00", "09:00"), "rules.0.end"),
    (_rule(0, "09:00", "09:00"), "rules.0.end"),
    (_rule(7), "rules.0.weekday"),
    (_rule(-1), "rules.0.weekday"),
    (_rule(0, "9am", "12:00"), "rules.0.start"),
    (_rule(0, "09:00", "25:00"), "rules.0.end"),
    (_rule(0, "09:00", "12:00", colour="blue"), "rules.0.colour"),
    (_rule(0, valid_from="2027-02-01", valid_to="2027-01-01"), "rules.0.valid_to"),
])
def test_invalid_rules_are_refused_on_the_field(client, admin, provider, rule, field):
    response = _put_rules(client, admin, provider.id, [rule])

    assert field in _field_errors(response)
    assert client.get(f"{PROVIDERS}/{provider.id}/availability",
                      headers=admin).json["rules"] == []


def test_unknown_top_level_fields_and_a_missing_rules_list_are_refused(client, admin, provider):
    unknown = _put_rules(client, admin, provider.id, [_rule()], timezone="Asia/Tokyo")
    missing = client.put(f"{PROVIDERS}/{provider.id}/availability", json={}, headers=admin)

    assert "timezone" in _field_errors(unknown)
    assert "rules" in _field_errors(missing)


@pytest.mark.parametrize("who, status", [
    ("provider themself", 200),
    ("admin", 200),
    ("coordinator of the home county", 200),
    ("vhw", 403),
    ("another clinician", 403),
    ("coordinator of another county", 403),
])
def test_who_may_set_a_providers_availability(client, world, create_user, auth, who, status):
    user = {
        "provider themself": lambda: world.users["clinician"],
        "admin": lambda: world.users["admin"],
        "coordinator of the home county": lambda: world.users["coordinator"],
        "vhw": lambda: world.users["vhw"],
        "another clinician": lambda: create_user("clinician", provider=world.clinician_b),
        "coordinator of another county": lambda: create_user("coordinator", [world.county_b]),
    }[who]()

    response = _put_rules(client, auth(user), world.clinician_a.id, [_rule()])

    assert response.status_code == status, response.json
    stored = client.get(f"{PROVIDERS}/{world.clinician_a.id}/availability",
                        headers=auth(world.users["admin"])).json["rules"]
    assert len(stored) == (1 if status == 200 else 0)
    if status == 403:
        assert response.json["error"]["code"] == "forbidden"


def test_an_unknown_provider_is_404(client, admin, gp_consult):
    headers = admin
    assert client.get(f"{PROVIDERS}/999999/availability", headers=headers).status_code == 404
    assert _put_rules(client, headers, 999999, [_rule()]).status_code == 404
    assert client.get(f"{PROVIDERS}/999999/exceptions", headers=headers).status_code == 404
    posted = client.post(f"{PROVIDERS}/999999/exceptions", headers=headers, json={
        "start": "2026-12-03T09:00:00Z", "end": "2026-12-03T10:00:00Z", "kind": "unavailable"})
    assert posted.status_code == 404
    slots = _get_slots(client, headers, 999999, "2026-12-03T00:00:00Z", "2026-12-04T00:00:00Z")
    assert slots.status_code == 404
    assert slots.json["error"]["code"] == "not_found"


def test_availability_needs_a_token(client, provider):
    assert client.get(f"{PROVIDERS}/{provider.id}/availability").status_code == 401
    assert _put_rules(client, {}, provider.id, [_rule()]).status_code == 401


# Exceptions


def _exception(start="2026-12-03T10:00:00+08:00", end="2026-12-03T12:00:00+08:00",
               kind="unavailable"):
    return {"start": start, "end": end, "kind": kind}


def test_exceptions_are_created_listed_and_deleted(client, admin, provider):
    url = f"{PROVIDERS}/{provider.id}/exceptions"

    created = client.post(url, json=_exception(), headers=admin)

    assert created.status_code == 201, created.json
    body = created.json
    assert body["start"] == "2026-12-03T02:00:00Z"
    assert body["end"] == "2026-12-03T04:00:00Z"
    assert body["kind"] == "unavailable"
    extra = client.post(url, headers=admin, json=_exception(
        "2026-12-05T14:00:00Z", "2026-12-05T15:00:00Z", "extra")).json
    listed = client.get(url, headers=admin)
    assert listed.status_code == 200
    assert [(e["id"], e["kind"]) for e in listed.json["items"]] == [
        (body["id"], "unavailable"), (extra["id"], "extra")]

    deleted = client.delete(f"{url}/{body['id']}", headers=admin)

    assert deleted.status_code == 204
    assert [e["id"] for e in client.get(url, headers=admin).json["items"]] == [extra["id"]]
    assert client.delete(f"{url}/{body['id']}", headers=admin).status_code == 404


def test_exceptions_are_a_paged_list_and_a_repeated_post_adds_one(
        client, admin, provider):
    url = f"{PROVIDERS}/{provider.id}/exceptions"
    once = {**admin, "Idempotency-Key": "time-off-1"}
    first = client.post(url, json=_exception(), headers=once)
    again = client.post(url, json=_exception(), headers=once)
    second = client.post(url, json=_exception("2026-12-04T10:00:00Z", "2026-12-04T12:00:00Z"),
                         headers=admin)

    assert first.status_code == again.status_code == 201 and again.json == first.json
    page = client.get(f"{url}?limit=1", headers=admin).json
    assert (page["total"], [e["id"] for e in page["items"]]) == (2, [first.json["id"]])
    rest = client.get(f"{url}?limit=1&offset=1", headers=admin).json
    assert [e["id"] for e in rest["items"]] == [second.json["id"]]
    assert client.get(f"{url}?limit=501", headers=admin).status_code == 422


def test_deleting_another_providers_exception_is_404_and_keeps_it(
        client, admin, provider, village, create_provider):
    other = create_provider(village, name="Dr. Zhou", timezone="UTC")
    exception_id = client.post(f"{PROVIDERS}/{provider.id}/exceptions", json=_exception(),
                               headers=admin).json["id"]

    response = client.delete(f"{PROVIDERS}/{other.id}/exceptions/{exception_id}", headers=admin)

    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
    items = client.get(f"{PROVIDERS}/{provider.id}/exceptions", headers=admin).json["items"]
    assert [e["id"] for e in items] == [exception_id]


@pytest.mark.parametrize("body, field", [
    (_exception("2026-12-03T12:00:00Z", "2026-12-03T10:00:00Z"), "end"),
    (_exception("2026-12-03T10:00:00Z", "2026-12-03T10:00:00Z"), "end"),
    (_exception(kind="holiday"), "kind"),
    (_exception(start="2026-12-03T10:00:00"), "start"),
    ({**_exception(), "note": "dentist"}, "note"),
])
def test_invalid_exceptions_are_refused_on_the_field(client, admin, provider, body, field):
    url = f"{PROVIDERS}/{provider.id}/exceptions"

    response = client.post(url, json=body, headers=admin)

    assert field in _field_errors(response)
    assert client.get(url, headers=admin).json["items"] == []


def test_only_the_calendars_managers_add_exceptions(client, world, auth):
    url = f"{PROVIDERS}/{world.clinician_a.id}/exceptions"

    by_vhw = client.post(url, json=_exception(), headers=auth(world.users["vhw"]))
    by_self = client.post(url, json=_exception(), headers=auth(world.users["clinician"]))

    assert by_vhw.status_code == 403
    assert by_self.status_code == 201


# Slots: the grid


def test_slots_lie_on_a_grid_of_duration_plus_buffer_from_the_window_start(
        client, admin, provider, gp_consult, set_availability):
    set_availability(provider, weekdays=[3], start=time(9), end=time(12))

    items = _day_slots(client, admin, provider.id)

    assert _clock_times(items) == ["09:00", "09:25", "09:50", "10:15", "10:40", "11:05", "11:30"]
    assert items[0] == {"start": "2026-12-03T09:00:00Z", "end": "2026-12-03T09:20:00Z"}
    for item in items:
        assert item["start"].endswith("Z") and item["end"].endswith("Z")
        assert _at(item["end"]) - _at(item["start"]) == timedelta(minutes=20)


def test_the_last_start_leaves_room_for_the_session_and_its_buffer(
        client, admin, provider, gp_consult, set_availability):
    # 09:50 would end its session at 10:10, but its buffer would run to 10:15.
    set_availability(provider, weekdays=[3], start=time(9), end=time(10, 10))

    items = _day_slots(client, admin, provider.id)

    assert _clock_times(items) == ["09:00", "09:25"]


def test_the_grid_starts_at_each_windows_own_start(
        client, admin, provider, gp_consult):
    _put_rules(client, admin, provider.id,
               [_rule(3, "08:10", "09:00"), _rule(3, "14:05", "15:00")])

    items = _day_slots(client, admin, provider.id)

    assert _clock_times(items) == ["08:10", "08:35", "14:05", "14:30"]


def test_rules_apply_only_from_valid_from_through_valid_to(
        client, admin, provider, gp_consult):
    _put_rules(client, admin, provider.id, [
        _rule(3, "09:00", "09:30", valid_from="2026-12-10", valid_to="2026-12-17")])

    items = _slots(client, admin, provider.id, "2026-12-03T00:00:00Z", "2027-01-01T00:00:00Z")

    assert [item["start"] for item in items] == ["2026-12-10T09:00:00Z", "2026-12-17T09:00:00Z"]


def test_responses_are_in_utc_whatever_offset_the_query_uses(
        client, admin, provider, gp_consult, set_availability):
    set_availability(provider, weekdays=[3], start=time(9), end=time(10))

    items = _slots(client, admin, provider.id, "2026-12-03T08:00:00+08:00",
                   "2026-12-04T08:00:00+08:00")

    assert items == [
        {"start": "2026-12-03T09:00:00Z", "end": "2026-12-03T09:20:00Z"},
        {"start": "2026-12-03T09:25:00Z", "end": "2026-12-03T09:45:00Z"},
    ]


def test_only_starts_inside_from_to_are_offered(
        client, admin, provider, gp_consult, set_availability):
    set_availability(provider, weekdays=[3], start=time(9), end=time(12))

    items = _slots(client, admin, provider.id, "2026-12-03T09:25:00Z", "2026-12-03T10:40:00Z")

    assert _clock_times(items) == ["09:25", "09:50", "10:15"]


def test_slot_step_setting_sets_a_finer_grid(
        app, client, admin, provider, gp_consult, set_availability):
    set_availability(provider, weekdays=[3], start=time(9), end=time(10))
    provider_id = provider.id
    db.session.rollback()
    other = create_app({"ENV": "testing", "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
                        "SLOT_STEP_MINUTES": 10})

    with other.app_context():
        try:
            response = other.test_client().get(
                f"{PROVIDERS}/{provider_id}/slots", headers=admin,
                query_string={"service_type": "gp_consult", "from": "2026-12-03T00:00:00Z",
                              "to": "2026-12-04T00:00:00Z"})
        finally:
            db.session.remove()
            db.engine.dispose()

    assert response.status_code == 200, response.json
    assert _clock_times(response.json["items"]) == ["09:00", "09:10", "09:20", "09:30"]
    assert response.json["items"][-1]["end"] == "2026-12-03T09:50:00Z"


# Slots: what takes time away, and what adds it


def test_a_booked_appointment_and_both_buffers_remove_the_starts_they_touch(
        client, admin, provider, gp_consult, resident, set_availability, create_appointment):
    set_availability(provider, weekdays=[3], start=time(9), end=time(12))
    # 09:03-09:23, held until 09:28: its buffer alone rules out 09:25.
    create_appointment(resident, provider, _thursday(9, 3))
    # 10:38: the 10:15 session would end at 10:35, but its own buffer runs to 10:40.
    create_appointment(resident, provider, _thursday(10, 38))

    items = _day_slots(client, admin, provider.id)

    assert _clock_times(items) == ["09:50", "11:05", "11:30"]


def test_a_session_ending_when_a_slot_starts_does_not_block_it(
        client, admin, provider, resident, create_service_type, set_availability,
        create_appointment):
    create_service_type(code="chronic_followup", name="Chronic follow-up", modality="phone",
                        duration_minutes=20, buffer_minutes=0, required_skill=None)
    set_availability(provider, weekdays=[3], start=time(9), end=time(10))
    create_appointment(resident, provider, _thursday(9), service_type="chronic_followup")

    items = _day_slots(client, admin, provider.id, service_type="chronic_followup")

    assert _clock_times(items) == ["09:20", "09:40"]


def test_a_cancelled_appointment_frees_its_slot(
        client, admin, provider, gp_consult, resident, set_availability, create_appointment):
    set_availability(provider, weekdays=[3], start=time(9), end=time(10))
    appointment = create_appointment(resident, provider, _thursday(9))
    assert _clock_times(_day_slots(client, admin, provider.id)) == ["09:25"]

    cancelled = client.post(f"/api/v1/appointments/{appointment.id}/cancel",
                            json={"reason": "resident travelling"}, headers=admin)

    assert cancelled.status_code == 200, cancelled.json
    assert _clock_times(_day_slots(client, admin, provider.id)) == ["09:00", "09:25"]


def test_time_off_removes_the_starts_it_meets(
        client, admin, provider, gp_consult, set_availability):
    set_availability(provider, weekdays=[3], start=time(9), end=time(12))
    client.post(f"{PROVIDERS}/{provider.id}/exceptions", headers=admin, json=_exception(
        "2026-12-03T10:00:00Z", "2026-12-03T11:00:00Z", "unavailable"))

    starts = _starts(_day_slots(client, admin, provider.id))

    held = timedelta(minutes=25)
    assert [s for s in starts if s < _thursday(10)][:2] == [_thursday(9), _thursday(9, 25)]
    assert all(s + held <= _thursday(10) or s >= _thursday(11) for s in starts)
    assert any(s >= _thursday(11) for s in starts)


def test_time_off_for_the_whole_day_leaves_nothing(
        client, admin, provider, gp_consult, set_availability):
    set_availability(provider, weekdays=[3], start=time(9), end=time(12))
    client.post(f"{PROVIDERS}/{provider.id}/exceptions", headers=admin, json=_exception(
        "2026-12-03T00:00:00Z", "2026-12-04T00:00:00Z", "unavailable"))

    assert _day_slots(client, admin, provider.id) == []


def test_extra_hours_add_starts_on_a_day_without_rules(
        client, admin, provider, gp_consult, set_availability):
    set_availability(provider, weekdays=[3], start=time(9), end=time(12))
    saturday = "2026-12-05"
    assert _day_slots(client, admin, provider.id, saturday) == []

    created = client.post(f"{PROVIDERS}/{provider.id}/exceptions", headers=admin, json=_exception(
        "2026-12-05T14:00:00Z", "2026-12-05T15:00:00Z", "extra"))

    assert created.status_code == 201
    assert _day_slots(client, admin, provider.id, saturday) == [
        {"start": "2026-12-05T14:00:00Z", "end": "2026-12-05T14:20:00Z"},
        {"start": "2026-12-05T14:25:00Z", "end": "2026-12-05T14:45:00Z"},
    ]


# Slots: notice, horizon, daily cap and who offers what


def test_nothing_is_offered_sooner_than_the_minimum_notice(
        client, admin, frozen_clock, provider, gp_consult, set_availability):
    set_availability(provider, start=time(8), end=time(18))

    starts = _starts(_day_slots(client, admin, provider.id, "2026-12-01"))

    # Now is 09:00, so nothing before 11:00; the 25-minute grid from 08:00 gives 11:20.
    assert starts[0] == datetime(2026, 12, 1, 11, 20, tzinfo=UTC)
    frozen_clock.advance(timedelta(hours=1))
    later = _starts(_day_slots(client, admin, provider.id, "2026-12-01"))
    assert later[0] == datetime(2026, 12, 1, 12, 10, tzinfo=UTC)


def test_a_start_exactly_at_the_minimum_notice_is_offered(
        client, admin, frozen_clock, provider, gp_consult, set_availability):
    set_availability(provider, start=time(11), end=time(12))

    starts = _starts(_day_slots(client, admin, provider.id, "2026-12-01"))

    assert starts[0] == datetime(2026, 12, 1, 11, tzinfo=UTC)


def test_nothing_is_offered_past_the_booking_horizon(
        client, admin, provider, gp_consult, set_availability):
    set_availability(provider, start=time(8), end=time(18))

    starts = _starts(_slots(client, admin, provider.id, "2027-02-28T00:00:00Z",
                            "2027-03-03T00:00:00Z"))

    horizon = datetime(2027, 3, 1, 9, tzinfo=UTC)  # 90 days after the frozen now
    assert starts and max(starts) <= horizon
    assert any(s.date().isoformat() == "2027-02-28" for s in starts)
    assert [f"{s:%H:%M}" for s in starts if s.date().isoformat() == "2027-03-01"] == [
        "08:00", "08:25", "08:50"]


def test_a_day_at_the_providers_cap_offers_nothing(
        client, admin, village, create_provider, gp_consult, resident, set_availability,
        create_appointment):
    provider = create_provider(village, timezone="UTC", max_sessions_per_day=2)
    set_availability(provider, weekdays=[3, 4], start=time(9), end=time(12))
    create_appointment(resident, provider, _thursday(9))
    assert len(_day_slots(client, admin, provider.id)) == 6
    create_appointment(resident, provider, _thursday(10, 15))

    assert _day_slots(client, admin, provider.id) == []
    assert len(_day_slots(client, admin, provider.id, "2026-12-04")) == 7


def test_the_daily_cap_counts_the_providers_local_day(
        client, admin, village, create_provider, gp_consult, resident, set_availability,
        create_appointment):
    # 23:00-01:00 Shanghai time spans two UTC days; the cap is per local day.
    provider = create_provider(village, timezone="Asia/Shanghai", max_sessions_per_day=1)
    set_availability(provider, weekdays=[4], start=time(7), end=time(9))  # Friday, Shanghai
    create_appointment(resident, provider, datetime(2026, 12, 3, 23, 0, tzinfo=UTC))

    items = _slots(client, admin, provider.id, "2026-12-04T00:00:00+08:00",
                   "2026-12-05T00:00:00+08:00")

    assert items == []


@pytest.mark.parametrize("fields", [
    pytest.param({"active": False}, id="inactive"),
    pytest.param({"skills": ["nursing"]}, id="without-the-skill"),
    pytest.param({"modalities": ["phone"]}, id="without-the-modality"),
])
def test_a_provider_who_cannot_take_the_session_offers_nothing(
        client, admin, village, create_provider, gp_consult, set_availability, fields):
    provider = create_provider(village, timezone="UTC", **fields)
    set_availability(provider, weekdays=[3], start=time(9), end=time(12))

    assert _day_slots(client, admin, provider.id) == []


# Slots: refused queries


def test_an_unknown_service_type_is_refused_on_service_type(
        client, admin, provider, gp_consult, set_availability):
    set_availability(provider)

    response = _get_slots(client, admin, provider.id, "2026-12-03T00:00:00Z",
                          "2026-12-04T00:00:00Z", service_type="acupuncture")

    assert "service_type" in _field_errors(response)


@pytest.mark.parametrize("start, end, field", [
    pytest.param("2026-12-04T00:00:00Z", "2026-12-03T00:00:00Z", "to", id="to-before-from"),
    pytest.param("2026-12-03T00:00:00Z", "2026-12-03T00:00:00Z", "to", id="empty-range"),
    pytest.param("2026-12-03T00:00:00", "2026-12-04T00:00:00Z", "from", id="from-without-offset"),
    pytest.param("2026-12-03T00:00:00Z", "tomorrow", "to", id="to-not-a-time"),
])
def test_a_bad_range_is_refused_on_its_field(
        client, admin, provider, gp_consult, set_availability, start, end, field):
    set_availability(provider)

    response = _get_slots(client, admin, provider.id, start, end)

    assert field in _field_errors(response)


def test_a_year_long_range_is_answered_up_to_the_booking_horizon(
        client, admin, provider, gp_consult, set_availability):
    """A client asking for everything bookable need not know the horizon."""
    set_availability(provider, weekdays=[3], start=time(9), end=time(10))

    items = _slots(client, admin, provider.id, "2025-12-03T00:00:00Z", "2027-12-03T00:00:00Z")

    starts = _starts(items)
    horizon = datetime(2027, 3, 1, 9, tzinfo=UTC)  # 90 days after the frozen now
    assert len(starts) == 2 * 13  # the thirteen Thursdays from 3 Dec to 25 Feb, two each
    assert min(starts) == datetime(2026, 12, 3, 9, tzinfo=UTC) and max(starts) <= horizon


def test_a_missing_service_type_is_refused(client, admin, provider):
    response = client.get(f"{PROVIDERS}/{provider.id}/slots", headers=admin,
                          query_string={"from": "2026-12-03T00:00:00Z",
                                        "to": "2026-12-04T00:00:00Z"})

    assert "service_type" in _field_errors(response)


# Daylight saving


@pytest.fixture
def berlin_gp(village, create_provider):
    return create_provider(village, timezone="Europe/Berlin")


def _first_start_per_local_day(items, tz) -> dict[str, datetime]:
    first: dict[str, datetime] = {}
    for start in _starts(items):
        first.setdefault(start.astimezone(tz).date().isoformat(), start)
    return first


def test_berlin_mornings_keep_9am_local_across_the_spring_change(
        client, frozen_clock, create_user, auth, berlin_gp, gp_consult, set_availability):
    frozen_clock.set(datetime(2026, 3, 15, 12, tzinfo=UTC))
    headers = auth(create_user("admin"))
    set_availability(berlin_gp, start=time(9), end=time(12))

    items = _slots(client, headers, berlin_gp.id, "2026-03-26T00:00:00+01:00",
                   "2026-04-01T00:00:00+02:00")

    first = {day: f"{start:%H:%M}" for day, start in
             _first_start_per_local_day(items, BERLIN).items()}
    assert first == {"2026-03-26": "08:00", "2026-03-27": "08:00", "2026-03-28": "08:00",
                     "2026-03-29": "07:00", "2026-03-30": "07:00", "2026-03-31": "07:00"}


@pytest.mark.parametrize("now, start, end, expected", [
    pytest.param(datetime(2026, 2, 20, tzinfo=UTC), "2026-03-06T00:00:00-05:00",
                 "2026-03-11T00:00:00-04:00",
                 {"2026-03-06": "14:00", "2026-03-07": "14:00", "2026-03-08": "13:00",
                  "2026-03-09": "13:00", "2026-03-10": "13:00"}, id="spring-2026-03-08"),
    pytest.param(datetime(2026, 10, 15, tzinfo=UTC), "2026-10-30T00:00:00-04:00",
                 "2026-11-04T00:00:00-05:00",
                 {"2026-10-30": "13:00", "2026-10-31": "13:00", "2026-11-01": "14:00",
                  "2026-11-02": "14:00", "2026-11-03": "14:00"}, id="autumn-2026-11-01"),
])
def test_new_york_mornings_keep_9am_local_across_the_changes(
        client, frozen_clock, create_user, auth, village, create_provider, gp_consult,
        set_availability, now, start, end, expected):
    frozen_clock.set(now)
    headers = auth(create_user("admin"))
    provider = create_provider(village, timezone="America/New_York")
    set_availability(provider, start=time(9), end=time(12))

    items = _slots(client, headers, provider.id, start, end)

    first = _first_start_per_local_day(items, NEW_YORK)
    assert {day: f"{s:%H:%M}" for day, s in first.items()} == expected
    assert {f"{s.astimezone(NEW_YORK):%H:%M}" for s in first.values()} == {"09:00"}


@pytest.mark.parametrize("start, end", [(time(1), time(4)), (time(2, 30), time(5))])
def test_no_start_falls_in_the_hour_skipped_in_spring(
        client, frozen_clock, create_user, auth, berlin_gp, gp_consult, set_availability,
        start, end):
    frozen_clock.set(datetime(2026, 3, 15, 12, tzinfo=UTC))
    headers = auth(create_user("admin"))
    set_availability(berlin_gp, weekdays=[6], start=start, end=end)  # Sunday 2026-03-29

    items = _slots(client, headers, berlin_gp.id, "2026-03-29T00:00:00+01:00",
                   "2026-03-30T00:00:00+02:00")

    assert items
    for slot_start in _starts(items):
        local = slot_start.astimezone(BERLIN)
        assert not time(2) <= local.time() < time(3), local
        wall = local.replace(tzinfo=None)
        assert wall.replace(tzinfo=BERLIN).astimezone(UTC) == slot_start, local


def test_the_spring_night_window_is_two_real_hours_long(
        client, frozen_clock, create_user, auth, berlin_gp, gp_consult, set_availability):
    frozen_clock.set(datetime(2026, 3, 15, 12, tzinfo=UTC))
    headers = auth(create_user("admin"))
    set_availability(berlin_gp, weekdays=[6], start=time(1), end=time(4))

    items = _slots(client, headers, berlin_gp.id, "2026-03-29T00:00:00+01:00",
                   "2026-03-30T00:00:00+02:00")

    # 01:00 CET is 00:00Z and 04:00 CEST is 02:00Z.
    assert _clock_times(items) == ["00:00", "00:25", "00:50", "01:15"]
    assert [f"{s.astimezone(BERLIN):%H:%M}" for s in _starts(items)] == [
        "01:00", "01:25", "01:50", "03:15"]


def test_the_autumn_night_window_is_four_real_hours_long(
        client, frozen_clock, create_user, auth, berlin_gp, create_service_type,
        set_availability):
    frozen_clock.set(datetime(2026, 10, 1, tzinfo=UTC))
    headers = auth(create_user("admin"))
    create_service_type(code="long_consult", name="Long consultation", duration_minutes=60,
                        buffer_minutes=0)
    set_availability(berlin_gp, weekdays=[6], start=time(1), end=time(4))  # Sunday 2026-10-25

    items = _slots(client, headers, berlin_gp.id, "2026-10-25T00:00:00+02:00",
                   "2026-10-26T00:00:00+01:00", service_type="long_consult")

    # 01:00 CEST is 23:00Z the evening before, 04:00 CET is 03:00Z: the 02:00 hour comes twice.
    assert [item["start"] for item in items] == [
        "2026-10-24T23:00:00Z", "2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z",
        "2026-10-25T02:00:00Z"]
    assert items[-1]["end"] == "2026-10-25T03:00:00Z"
