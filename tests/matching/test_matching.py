"""Matching: GET /api/v1/matches (hard rules, ranking, access) and
POST /api/v1/matching/batch (optimum, equity weights, reasons, commit).

The clock is frozen at 2026-12-01 09:00 UTC; providers work in Asia/Shanghai
(UTC+8), so 2026-12-02 10:00 local is 2026-12-02T02:00:00Z. Sessions are
gp_consult: video, 20 minutes plus a 5-minute buffer, skill gp.
"""

from datetime import UTC, date, datetime, time, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import aliased

from careservice.core.auth import Actor
from careservice.extensions import db
from careservice.matching import batch
from careservice.people import services as people
from careservice.scheduling import booking
from careservice.scheduling.care_requests import cancel_care_request, create_care_request
from careservice.scheduling.models import LIVE, Appointment, CareRequest

SYSTEM = Actor.system("t")
DAY_FROM, DAY_TO = "2026-12-02T00:00:00Z", "2026-12-03T00:00:00Z"


def utc(hour, minute=0, day=2):
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)


def matches(client, auth, user, **params):
    query = {"service_type": "gp_consult", "from": DAY_FROM, "to": DAY_TO, **params}
    return client.get("/api/v1/matches", headers=auth(user), query_string=query)


def provider_ids(response):
    assert response.status_code == 200, response.json
    return [item["provider_id"] for item in response.json["items"]]


def run_batch(client, auth, user, **body):
    return client.post("/api/v1/matching/batch", headers=auth(user),
                       json={"from": DAY_FROM, "to": DAY_TO, **body})


def request_for(resident, earliest, latest, urgency="routine", service_type="gp_consult"):
    return create_care_request(SYSTEM, resident_id=resident.id, service_type=service_type,
                               earliest=earliest, latest=latest, urgency=urgency)


def overlapping_live_pairs():
    """Pairs of live appointments of one provider whose sessions overlap."""
    a, b = aliased(Appointment), aliased(Appointment)
    return db.session.execute(
        sa.select(a.id, b.id).where(
            a.provider_id == b.provider_id, a.id < b.id,
            a.status.in_(LIVE), b.status.in_(LIVE),
            a.start_at < b.end_at, b.start_at < a.end_at)).all()


# GET /matches: hard rules


def _with_control(world, set_availability, create_service_type):
    """The service, and clinician_a free all day as the provider who does appear."""
    create_service_type()
    set_availability(world.clinician_a)


def test_a_provider_without_the_skill_never_appears(
        client, auth, world, create_provider, create_service_type, set_availability,
        frozen_clock):
    _with_control(world, set_availability, create_service_type)
    nurse = create_provider(world.county_a, name="Nurse Su", skills=["nursing"],
                            service_region_ids=[world.county_a.id])
    set_availability(nurse)

    ids = provider_ids(matches(client, auth, world.users["admin"],
                               resident_id=world.resident_a1.id))

    assert world.clinician_a.id in ids
    assert nurse.id not in ids


def test_a_provider_without_the_modality_never_appears(
        client, auth, world, create_provider, create_service_type, set_availability,
        frozen_clock):
    _with_control(world, set_availability, create_service_type)
    phone_only = create_provider(world.county_a, name="Dr. Phone", modalities=["phone"],
                                 service_region_ids=[world.county_a.id])
    set_availability(phone_only)

    ids = provider_ids(matches(client, auth, world.users["admin"],
                               resident_id=world.resident_a1.id))

    assert world.clinician_a.id in ids
    assert phone_only.id not in ids


def test_an_inactive_provider_never_appears(
        client, auth, world, create_provider, create_service_type, set_availability,
        frozen_clock):
    _with_control(world, set_availability, create_service_type)
    retired = create_provider(world.county_a, name="Dr. Retired", active=False,
                              service_region_ids=[world.county_a.id])
    set_availability(retired)

    ids = provider_ids(matches(client, auth, world.users["admin"],
                               resident_id=world.resident_a1.id))

    assert world.clinician_a.id in ids
    assert retired.id not in ids


def test_a_provider_licensed_for_another_county_never_appears(
        client, auth, world, create_provider, create_service_type, set_availability,
        frozen_clock):
    """Service regions decide, not the home: homed in county_a but licensed for
    county_b; and clinician_b (no service regions) serves only its home county_b."""
    _with_control(world, set_availability, create_service_type)
    elsewhere = create_provider(world.county_a, name="Dr. Away",
                                service_region_ids=[world.county_b.id])
    set_availability(elsewhere)
    set_availability(world.clinician_b)

    ids = provider_ids(matches(client, auth, world.users["admin"],
                               resident_id=world.resident_a1.id))

    assert world.clinician_a.id in ids
    assert elsewhere.id not in ids
    assert world.clinician_b.id not in ids
    # The same providers do serve a resident of county_b.
    ids_b = provider_ids(matches(client, auth, world.users["admin"],
                                 resident_id=world.resident_b.id))
    assert {elsewhere.id, world.clinician_b.id} <= set(ids_b)


def test_a_provider_at_their_daily_cap_never_appears(
        client, auth, world, create_provider, create_service_type, set_availability,
        create_appointment, frozen_clock):
    _with_control(world, set_availability, create_service_type)
    capped = create_provider(world.county_a, name="Dr. Once", max_sessions_per_day=1,
                             service_region_ids=[world.county_a.id])
    set_availability(capped)
    create_appointment(world.resident_a2, capped, utc(2))  # 10:00 local, 2 Dec

    ids = provider_ids(matches(client, auth, world.users["admin"],
                               resident_id=world.resident_a1.id))

    assert world.clinician_a.id in ids
    assert capped.id not in ids


def test_a_provider_whose_only_slot_the_resident_is_busy_at_never_appears(
        client, auth, world, create_provider, create_service_type, set_availability,
        create_appointment, frozen_clock):
    _with_control(world, set_availability, create_service_type)
    narrow = create_provider(world.county_a, name="Dr. Narrow",
                             service_region_ids=[world.county_a.id])
    set_availability(narrow, start=time(10), end=time(10, 25))  # one slot: 02:00Z
    create_appointment(world.resident_a1, world.clinician_a, utc(2))
    # Control: for another resident, the narrow provider's slot is on offer.
    assert narrow.id in provider_ids(matches(client, auth, world.users["admin"],
                                             resident_id=world.resident_a2.id))

    response = matches(client, auth, world.users["admin"], resident_id=world.resident_a1.id,
                       limit=100)

    ids = provider_ids(response)
    assert world.clinician_a.id in ids
    assert narrow.id not in ids
    busy_start, busy_end = utc(2), utc(2, 20)
    for item in response.json["items"]:
        start = datetime.fromisoformat(item["start"])
        end = datetime.fromisoformat(item["end"])
        assert not (start < busy_end and busy_start < end), item


# GET /matches: soft rules and ordering


def test_no_shared_language_is_allowed_but_ranked_below_and_flagged(
        client, auth, world, create_provider, create_service_type, set_availability,
        frozen_clock):
    create_service_type()
    english = create_provider(world.county_a, name="Dr. Smith", languages=["en"],
                              service_region_ids=[world.county_a.id])
    chinese = create_provider(world.county_a, name="Dr. Zhao", languages=["zh-CN"],
                              service_region_ids=[world.county_a.id])
    for provider in (english, chinese):
        set_availability(provider, start=time(10), end=time(12))

    response = matches(client, auth, world.users["admin"], resident_id=world.resident_a1.id)

    items = response.json["items"]
    assert provider_ids(response)[:2] == [chinese.id, english.id]
    assert items[0]["start"] == items[1]["start"] == "2026-12-02T02:00:00Z"
    assert items[0]["score"] > items[1]["score"]
    assert any("interpreter needed" in reason for reason in items[1]["reasons"])
    assert not any("interpreter needed" in reason for reason in items[0]["reasons"])
    assert any("speaks zh-CN" in reason for reason in items[0]["reasons"])


def test_the_last_provider_of_a_completed_session_ranks_first_for_continuity(
        client, auth, world, create_provider, create_service_type, set_availability,
        frozen_clock):
    create_service_type()
    familiar = create_provider(world.county_a, name="Dr. Familiar",
                               service_region_ids=[world.county_a.id])
    for provider in (world.clinician_a, familiar):  # clinician_a has the lower id
        set_availability(provider, start=time(10), end=time(12))
    booking.record_session(SYSTEM, resident_id=world.resident_a1.id, provider_id=familiar.id,
                           service_type="gp_consult", start=datetime(2026, 11, 20, 2, tzinfo=UTC),
                           outcome="completed")

    response = matches(client, auth, world.users["admin"], resident_id=world.resident_a1.id)

    items = response.json["items"]
    assert provider_ids(response)[:2] == [familiar.id, world.clinician_a.id]
    assert items[0]["score"] > items[1]["score"]
    assert any(reason.startswith("continuity") for reason in items[0]["reasons"])
    assert not any(reason.startswith("continuity") for reason in items[1]["reasons"])


def test_results_go_by_score_each_providers_best_before_anyones_second_within_the_limit(
        client, auth, world, create_provider, create_service_type, set_availability,
        frozen_clock):
    """P1 opens at 08:00 local, P2 at 12:00, P3 at 14:00: P1's second start (08:25)
    outscores P2's best, yet every provider's best start comes first."""
    create_service_type()
    p1 = world.clinician_a
    p2 = create_provider(world.county_a, name="Dr. Noon", service_region_ids=[world.county_a.id])
    p3 = create_provider(world.county_a, name="Dr. Late", service_region_ids=[world.county_a.id])
    set_availability(p1, start=time(8), end=time(18))
    set_availability(p2, start=time(12), end=time(18))
    set_availability(p3, start=time(14), end=time(18))

    response = matches(client, auth, world.users["admin"], resident_id=world.resident_a1.id,
                       limit=7)

    items = response.json["items"]
    assert len(items) == 7
    assert [(i["provider_id"], i["start"]) for i in items[:6]] == [
        (p1.id, "2026-12-02T00:00:00Z"), (p2.id, "2026-12-02T04:00:00Z"),
        (p3.id, "2026-12-02T06:00:00Z"),
        (p1.id, "2026-12-02T00:25:00Z"), (p2.id, "2026-12-02T04:25:00Z"),
        (p3.id, "2026-12-02T06:25:00Z")]
    assert items[6]["provider_id"] == p1.id
    for layer in (items[:3], items[3:6]):
        scores = [i["score"] for i in layer]
        assert scores == sorted(scores, reverse=True) and len(set(scores)) == 3
    for provider in (p1, p2, p3):
        own = [i["score"] for i in items if i["provider_id"] == provider.id]
        assert own == sorted(own, reverse=True)
    assert items[3]["score"] > items[1]["score"]  # P1's second beats P2's best, still after
    for item in items:
        assert (datetime.fromisoformat(item["end"]) - datetime.fromisoformat(item["start"])
                == timedelta(minutes=20))

    short = matches(client, auth, world.users["admin"], resident_id=world.resident_a1.id,
                    limit=2)
    assert [(i["provider_id"], i["start"]) for i in short.json["items"]] == [
        (p1.id, "2026-12-02T00:00:00Z"), (p2.id, "2026-12-02T04:00:00Z")]


# GET /matches: validation and access


def test_matches_refuses_bad_queries_and_callers_out_of_scope(
        client, auth, world, create_service_type, set_availability, frozen_clock):
    _with_control(world, set_availability, create_service_type)

    unknown = matches(client, auth, world.users["admin"], resident_id=world.resident_a1.id,
                      service_type="no_such_service")
    assert unknown.status_code == 422, unknown.json
    assert "service_type" in unknown.json["error"]["fields"]

    missing = client.get("/api/v1/matches", headers=auth(world.users["admin"]),
                         query_string={"service_type": "gp_consult"})
    assert missing.status_code == 422, missing.json
    assert "resident_id" in missing.json["error"]["fields"]

    for resident in (world.resident_a2, world.resident_b):  # vhw covers village_a1 only
        other = matches(client, auth, world.users["vhw"], resident_id=resident.id)
        assert other.status_code == 404, other.json
    own = matches(client, auth, world.users["vhw"], resident_id=world.resident_a1.id)
    assert own.status_code == 200 and own.json["items"]

    clinician = matches(client, auth, world.users["clinician"],
                        resident_id=world.resident_a1.id)
    assert clinician.status_code == 403, clinician.json


# POST /matching/batch


def _three_slots(world, create_provider, set_availability):
    """Three providers with one slot each on 2 Dec: A 10:00, B 11:00, C 12:00 local."""
    a = world.clinician_a
    b = create_provider(world.county_a, name="Dr. B", service_region_ids=[world.county_a.id])
    c = create_provider(world.county_a, name="Dr. C", service_region_ids=[world.county_a.id])
    set_availability(a, start=time(10), end=time(10, 25))
    set_availability(b, start=time(11), end=time(11, 25))
    set_availability(c, start=time(12), end=time(12, 25))
    return a, b, c


def _greedy(requests, slots):
    """First come (by request id), each takes the earliest free slot that fits."""
    taken, served = set(), {}
    for request_id, (earliest, latest) in sorted(requests.items()):
        for provider_id, start, end in sorted(slots, key=lambda s: s[1]):
            if (provider_id, start) not in taken and earliest <= start and end <= latest:
                taken.add((provider_id, start))
                served[request_id] = (provider_id, start)
                break
    return served


def test_the_batch_serves_everyone_where_first_come_would_not_and_commit_books_it(
        client, auth, world, create_provider, create_resident, create_service_type,
        set_availability, frozen_clock):
    create_service_type()
    a, b, c = _three_slots(world, create_provider, set_availability)
    third = create_resident(world.village_a1, name="Zhang Min", phone="+8613900139004")
    windows = {
        "flexible": (world.resident_a1, utc(1), utc(5)),      # 09:00-13:00 local: A, B or C
        "middle": (world.resident_a2, utc(2), utc(3, 30)),    # 10:00-11:30: A or B
        "tight": (third, utc(2), utc(2, 30)),                 # 10:00-10:30: A only
    }
    made = {name: request_for(resident, earliest, latest)
            for name, (resident, earliest, latest) in windows.items()}
    slots = [(a.id, utc(2), utc(2, 20)), (b.id, utc(3), utc(3, 20)), (c.id, utc(4), utc(4, 20))]
    greedy = _greedy({made[n].id: windows[n][1:] for n in made}, slots)
    assert len(greedy) == 2 and made["tight"].id not in greedy  # first come leaves one out
    expected = {made["tight"].id: (a.id, "2026-12-02T02:00:00Z", "2026-12-02T02:20:00Z"),
                made["middle"].id: (b.id, "2026-12-02T03:00:00Z", "2026-12-02T03:20:00Z"),
                made["flexible"].id: (c.id, "2026-12-02T04:00:00Z", "2026-12-02T04:20:00Z")}

    dry = run_batch(client, auth, world.users["coordinator"], commit=False)
    # A century asked for plans the same: slots are looked for inside notice and horizon.
    century = run_batch(client, auth, world.users["coordinator"], commit=False,
                        **{"from": "1950-01-01T00:00:00Z", "to": "2150-01-01T00:00:00Z"})

    assert dry.status_code == 200, dry.json
    assert {x["request_id"]: (x["provider_id"], x["start"], x["end"])
            for x in dry.json["assignments"]} == expected
    assert dry.json["unassigned"] == []
    assert century.status_code == 200, century.json
    assert century.json["assignments"] == dry.json["assignments"]
    assert dry.json["objective"]["assigned"] == 3
    assert dry.json["objective"]["weighted_coverage"] == round(
        sum(x["score"] for x in dry.json["assignments"]), 3)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Appointment)) == 0
    assert {r.status for r in db.session.scalars(sa.select(CareRequest))} == {"open"}

    booked = run_batch(client, auth, world.users["coordinator"], commit=True)

    assert booked.status_code == 200, booked.json
    assert {x["request_id"]: (x["provider_id"], x["start"], x["end"])
            for x in booked.json["assignments"]} == expected
    assert booked.json["unassigned"] == []
    for name, request in made.items():
        db.session.refresh(request)
        assert request.status == "booked", name
        appointment = db.session.get(Appointment, request.appointment_id)
        assert appointment.resident_id == windows[name][0].id
        assert appointment.provider_id == expected[request.id][0]
        assert appointment.start_at == datetime.fromisoformat(expected[request.id][1])
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Appointment)) == 3


def _one_slot_two_requests(world, create_service_type, set_availability):
    create_service_type()
    set_availability(world.clinician_a, start=time(10), end=time(10, 25))  # one slot, 02:00Z


def _check_only_second_served(response, provider, first, second, weight):
    """The later request (higher id) takes the only slot; the first is left out."""
    assert response.status_code == 200, response.json
    body = response.json
    assert [(x["request_id"], x["provider_id"], x["start"]) for x in body["assignments"]] == [
        (second.id, provider.id, "2026-12-02T02:00:00Z")]
    assert body["assignments"][0]["score"] == weight
    assert [u["request_id"] for u in body["unassigned"]] == [first.id]
    assert "higher weight" in body["unassigned"][0]["reason"]


def test_with_one_slot_the_resident_aged_80_or_more_gets_it(
        client, auth, world, create_resident, create_service_type, set_availability,
        frozen_clock):
    _one_slot_two_requests(world, create_service_type, set_availability)
    young = create_resident(world.village_a2, name="Young", birth_date=date(1970, 5, 1),
                            phone="+8613900139005")
    old = create_resident(world.village_a2, name="Old", birth_date=date(1940, 5, 1),
                          phone="+8613900139006")
    first = request_for(young, utc(1), utc(5))
    second = request_for(old, utc(1), utc(5))

    response = run_batch(client, auth, world.users["admin"])

    # routine 1 + never served 2 + aged 80+ 1 + village never served 1
    _check_only_second_served(response, world.clinician_a, first, second, 5.0)


def test_with_one_slot_the_resident_never_served_gets_it(
        client, auth, world, create_resident, create_service_type,
        set_availability, frozen_clock):
    _one_slot_two_requests(world, create_service_type, set_availability)
    served = create_resident(world.village_a2, name="Served", birth_date=date(1970, 5, 1),
                             phone="+8613900139005")
    never = create_resident(world.village_a2, name="Never", birth_date=date(1970, 5, 1),
                            phone="+8613900139006")
    booking.record_session(SYSTEM, resident_id=served.id, provider_id=world.clinician_b.id,
                           service_type="gp_consult", start=datetime(2026, 11, 20, 2, tzinfo=UTC),
                           outcome="completed")
    first = request_for(served, utc(1), utc(5))
    second = request_for(never, utc(1), utc(5))

    response = run_batch(client, auth, world.users["admin"])

    # village_a2: resident_a2, served, never -> coverage 1/3
    weight = round(1 + 2 + (1 - 1 / 3), 3)
    _check_only_second_served(response, world.clinician_a, first, second, weight)


def test_with_one_slot_an_urgent_request_beats_a_routine_one(
        client, auth, world, create_resident, create_service_type, set_availability,
        frozen_clock):
    _one_slot_two_requests(world, create_service_type, set_availability)
    routine = request_for(world.resident_a2, utc(1), utc(5), urgency="routine")
    other = create_resident(world.village_a2, name="Twin", phone="+8613900139007")
    urgent = request_for(other, utc(1), utc(5), urgency="urgent")

    response = run_batch(client, auth, world.users["admin"])

    # urgent 4 + never served 2 + aged 80+ 1 + village never served 1
    _check_only_second_served(response, world.clinician_a, routine, urgent, 8.0)


def test_unassigned_requests_say_why(
        client, auth, world, create_service_type, set_availability, frozen_clock):
    create_service_type()
    create_service_type(code="dental", name="Dental check", required_skill="dentistry")
    set_availability(world.clinician_a, start=time(10), end=time(10, 25))  # 02:00Z only
    no_provider = request_for(world.resident_a1, utc(1), utc(5), service_type="dental")
    no_slot = request_for(world.resident_a2, utc(6), utc(8))  # 14:00-16:00 local
    served = request_for(world.resident_a1, utc(1), utc(5))
    elsewhere = request_for(world.resident_b, utc(1), utc(5))  # county_b: clinician_b, no hours
    set_availability(world.clinician_b, start=time(10), end=time(10, 25))
    crowded = request_for(world.resident_a2, utc(1), utc(3))

    response = run_batch(client, auth, world.users["admin"])

    assert response.status_code == 200, response.json
    body = response.json
    placed = {x["request_id"]: x["provider_id"] for x in body["assignments"]}
    assert set(placed) == {elsewhere.id, served.id} or set(placed) == {elsewhere.id, crowded.id}
    assert placed[elsewhere.id] == world.clinician_b.id
    reasons = {u["request_id"]: u["reason"] for u in body["unassigned"]}
    assert reasons[no_provider.id].startswith("no provider")
    assert reasons[no_slot.id].startswith("no free slot")
    loser = crowded.id if served.id in placed else served.id
    assert "higher weight" in reasons[loser]
    assert len(reasons) == 3
    assert body["objective"]["assigned"] == 2


def test_commit_reports_an_assignment_whose_slot_was_booked_meanwhile(
        client, auth, world, create_provider, create_resident, create_service_type,
        set_availability, monkeypatch, frozen_clock):
    create_service_type()
    a, b, _ = _three_slots(world, create_provider, set_availability)
    walk_in = create_resident(world.village_a1, name="Walk In", phone="+8613900139008")
    first = request_for(world.resident_a1, utc(2), utc(2, 30))  # A only
    second = request_for(world.resident_a2, utc(3), utc(3, 30))  # B only
    real_plan = batch.plan

    def plan_then_manual_booking(*args, **kwargs):
        result = real_plan(*args, **kwargs)
        # A coordinator books A's 10:00 slot by hand between planning and booking.
        booking.book_appointment(SYSTEM, resident_id=walk_in.id, provider_id=a.id,
                                 service_type="gp_consult", start=utc(2))
        return result

    monkeypatch.setattr(batch, "plan", plan_then_manual_booking)

    response = run_batch(client, auth, world.users["admin"], commit=True)

    assert response.status_code == 200, response.json
    body = response.json
    assert [(x["request_id"], x["provider_id"], x["start"]) for x in body["assignments"]] == [
        (second.id, b.id, "2026-12-02T03:00:00Z")]
    assert [u["request_id"] for u in body["unassigned"]] == [first.id]
    assert body["unassigned"][0]["reason"].startswith("not booked")
    assert body["objective"]["assigned"] == 1
    db.session.expire_all()
    assert overlapping_live_pairs() == []
    at_a = db.session.scalars(sa.select(Appointment).where(Appointment.provider_id == a.id)).all()
    assert [appt.resident_id for appt in at_a] == [walk_in.id]
    assert db.session.get(CareRequest, first.id).status == "open"
    assert db.session.get(CareRequest, first.id).appointment_id is None
    assert db.session.get(CareRequest, second.id).status == "booked"


def test_batch_refuses_requests_out_of_scope_or_not_open_and_an_inverted_window(
        client, auth, world, create_service_type, set_availability, frozen_clock):
    create_service_type()
    set_availability(world.clinician_a)
    mine = request_for(world.resident_a1, utc(1), utc(5))
    outside = request_for(world.resident_b, utc(1), utc(5))  # county_b, not the coordinator's
    closed = request_for(world.resident_a2, utc(1), utc(5))
    cancel_care_request(SYSTEM, closed.id)
    coordinator = world.users["coordinator"]

    for ids in ([mine.id, outside.id], [mine.id, closed.id], [mine.id, 99_999]):
        refused = run_batch(client, auth, coordinator, request_ids=ids)
        assert refused.status_code == 422, (ids, refused.json)
        assert "request_ids" in refused.json["error"]["fields"]

    inverted = run_batch(client, auth, coordinator, **{"from": DAY_TO, "to": DAY_FROM})
    assert inverted.status_code == 422, inverted.json
    assert "to" in inverted.json["error"]["fields"]

    fine = run_batch(client, auth, coordinator, request_ids=[mine.id])
    assert fine.status_code == 200, fine.json
    assert [x["request_id"] for x in fine.json["assignments"]] == [mine.id]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Appointment)) == 0


# Clashes a flow over slots cannot see: two services' grids, one resident's two requests


@pytest.fixture
def chronic(create_service_type):
    create_service_type()
    return create_service_type(code="chronic_followup", name="Chronic follow-up",
                               modality="phone", duration_minutes=15, buffer_minutes=5,
                               required_skill="chronic")


@pytest.mark.parametrize("closes, planned", [
    # 10:00-10:45: the GP consult (25 minutes held) at 10:00, the follow-up (20) after it.
    (time(10, 45), ["2026-12-02T02:00:00Z", "2026-12-02T02:25:00Z"]),
    # 10:00-10:40: they cannot both fit; the urgent GP consult gets the time.
    (time(10, 40), ["2026-12-02T02:00:00Z"]),
])
def test_one_providers_sessions_of_two_services_are_never_planned_to_overlap(
        client, auth, world, chronic, set_availability, frozen_clock, closes, planned):
    doctor = world.clinician_a
    people.update_provider(SYSTEM, doctor.id, {"skills": ["gp", "chronic"]})
    set_availability(doctor, start=time(10), end=closes)
    gp = request_for(world.resident_a1, utc(0), utc(8), urgency="urgent")
    follow_up = request_for(world.resident_a2, utc(0), utc(8), service_type="chronic_followup")

    response = run_batch(client, auth, world.users["admin"], commit=True)

    assert response.status_code == 200, response.json
    body = response.json
    assert [(a["request_id"], a["start"]) for a in body["assignments"]] == list(
        zip([gp.id, follow_up.id], planned, strict=False))
    assert [u["request_id"] for u in body["unassigned"]] == ([] if len(planned) == 2
                                                             else [follow_up.id])
    db.session.expire_all()
    assert overlapping_live_pairs() == []
    assert len(db.session.scalars(sa.select(Appointment)).all()) == len(planned)


def test_one_residents_two_requests_are_planned_at_different_times(
        client, auth, world, chronic, create_provider, set_availability, frozen_clock):
    """The GP's only slot is 10:00; the chronic nurse has 10:00 and 11:00: the
    resident gets both, the follow-up at 11:00."""
    set_availability(world.clinician_a, start=time(10), end=time(10, 25))
    nurse = create_provider(world.county_a, name="Nurse Ma", skills=["chronic"],
                            service_region_ids=[world.county_a.id])
    set_availability(nurse, start=time(10), end=time(11, 20))
    gp = request_for(world.resident_a1, utc(0), utc(8))
    follow_up = request_for(world.resident_a1, utc(0), utc(8), service_type="chronic_followup")

    response = run_batch(client, auth, world.users["admin"], commit=True)

    assert response.status_code == 200, response.json
    placed = {a["request_id"]: (a["provider_id"], a["start"])
              for a in response.json["assignments"]}
    assert placed[gp.id] == (world.clinician_a.id, "2026-12-02T02:00:00Z")
    assert placed[follow_up.id][0] == nurse.id
    assert placed[follow_up.id][1] >= "2026-12-02T02:20:00Z"
    assert response.json["unassigned"] == []


def test_first_come_leaves_out_the_request_the_batch_would_serve(
        app, world, create_provider, create_resident, create_service_type, set_availability,
        frozen_clock):
    """The baseline the simulation and the benchmark compare with: the same three
    requests, oldest first, each taking its earliest free slot."""
    create_service_type()
    a, b, c = _three_slots(world, create_provider, set_availability)
    third = create_resident(world.village_a1, name="Zhang Min", phone="+8613900139004")
    flexible = request_for(world.resident_a1, utc(1), utc(5))
    middle = request_for(world.resident_a2, utc(2), utc(3, 30))
    tight = request_for(third, utc(2), utc(2, 30))

    plan = batch.run_batch(SYSTEM, start=utc(0), end=utc(0, day=3), policy="first_come")

    assert [(x["request_id"], x["provider_id"], x["start"]) for x in plan.assignments] == [
        (flexible.id, a.id, utc(2)), (middle.id, b.id, utc(3))]
    assert plan.unassigned == [{"request_id": tight.id,
                                "reason": "the slots went to requests that came first"}]
    optimal = batch.run_batch(SYSTEM, start=utc(0), end=utc(0, day=3))
    assert optimal.objective["assigned"] == 3
    assert optimal.objective["weighted_coverage"] > plan.objective["weighted_coverage"]


def test_the_batch_offers_the_very_slots_the_provider_page_offers(
        app, world, create_provider, create_service_type, create_appointment, set_availability,
        frozen_clock):
    """Across the spring change of clocks in London, with time off, extra hours, a
    booking and a day at its cap, and beside a colleague in Shanghai free at the
    same instants: the batch's free starts are /slots' starts."""
    from careservice.core.time import utcnow
    from careservice.matching import instance as loading
    from careservice.scheduling.availability import add_exception
    from careservice.scheduling.models import ServiceType
    from careservice.scheduling.slots import free_slots

    kind = create_service_type()
    doctor = people.update_provider(SYSTEM, world.clinician_a.id,
                                    {"timezone": "Europe/London", "max_sessions_per_day": 1})
    set_availability(doctor, start=time(8, 10), end=time(12))
    colleague = create_provider(world.county_a, name="Dr. Su", timezone="Asia/Shanghai",
                                service_region_ids=[world.county_a.id])
    set_availability(colleague, start=time(15, 10), end=time(23, 59))
    frozen_clock.set(datetime(2027, 3, 26, 9, 0, tzinfo=UTC))
    london = datetime(2027, 3, 27, 10, 0, tzinfo=UTC)  # Saturday 10:00 GMT
    add_exception(SYSTEM, doctor.id, {"start": datetime(2027, 3, 28, 7, 57, tzinfo=UTC),
                                      "end": datetime(2027, 3, 28, 9, 40, tzinfo=UTC),
                                      "kind": "unavailable"})
    add_exception(SYSTEM, doctor.id, {"start": datetime(2027, 3, 29, 12, 0, tzinfo=UTC),
                                      "end": datetime(2027, 3, 29, 14, 30, tzinfo=UTC),
                                      "kind": "extra"})
    create_appointment(world.resident_a2, doctor, london)
    start, end = datetime(2027, 3, 26, 0, 0, tzinfo=UTC), datetime(2027, 3, 31, 0, 0, tzinfo=UTC)
    request_for(world.resident_a1, start, end)

    problem = loading.load(SYSTEM, start=start, end=end, now=utcnow())

    gp = db.session.get(ServiceType, kind.id)
    for provider in (doctor, colleague):
        planned = [at for day in problem.days[(provider.id, kind.id)] for at in day.starts]
        assert planned == [slot.start for slot in free_slots(provider, gp, start, end)]
    offered = [at for day in problem.days[(doctor.id, kind.id)] for at in day.starts]
    assert len({day.day for day in problem.days[(colleague.id, kind.id)]}) == 5
    sunday = [at for at in offered if at.date() == date(2027, 3, 28)]
    assert sunday[:2] == [datetime(2027, 3, 28, 7, 10, tzinfo=UTC),  # 08:10 BST
                          datetime(2027, 3, 28, 9, 40, tzinfo=UTC)]  # 07:35's buffer meets time off
    assert datetime(2027, 3, 29, 12, 50, tzinfo=UTC) in offered  # extra hours
    assert not any(at.date() == london.date() for at in offered)  # the day at its cap
