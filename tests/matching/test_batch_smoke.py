"""POST /api/v1/matching/batch: optimal, not first-come."""

from datetime import UTC, datetime

from careservice.core.auth import Actor
from careservice.scheduling.care_requests import create_care_request

SYSTEM = Actor.system("t")
DAY = datetime(2026, 12, 2, tzinfo=UTC)


def test_the_batch_serves_both_requests_where_first_come_would_serve_one(
        client, auth, world, create_provider, create_service_type, set_availability,
        frozen_clock):
    """Two slots: 10:00 local with one clinician, 11:00 with another. First come,
    the flexible request (listed first) takes the earliest slot, 10:00, and the
    request that fits only 10:00 is left out; the optimum serves both."""
    from datetime import time

    create_service_type()
    set_availability(world.clinician_a, start=time(10), end=time(10, 25))
    other = create_provider(world.county_a, name="Dr. Ma", service_region_ids=[world.county_a.id])
    set_availability(other, start=time(11), end=time(11, 25))
    # Both want 02 Dec: the flexible one 09:00-12:00 local, the tight one 10:00-10:30.
    flexible = create_care_request(SYSTEM, resident_id=world.resident_a1.id,
                                   service_type="gp_consult",
                                   earliest=datetime(2026, 12, 2, 1, 0, tzinfo=UTC),
                                   latest=datetime(2026, 12, 2, 4, 0, tzinfo=UTC))
    tight = create_care_request(SYSTEM, resident_id=world.resident_a2.id,
                                service_type="gp_consult",
                                earliest=datetime(2026, 12, 2, 2, 0, tzinfo=UTC),
                                latest=datetime(2026, 12, 2, 2, 30, tzinfo=UTC), urgency="urgent")

    response = client.post("/api/v1/matching/batch", headers=auth(world.users["coordinator"]),
                           json={"from": "2026-12-02T00:00:00Z", "to": "2026-12-03T00:00:00Z",
                                 "commit": True})

    assert response.status_code == 200, response.json
    body = response.json
    assert body["objective"]["assigned"] == 2
    placed = {a["request_id"]: (a["provider_id"], a["start"]) for a in body["assignments"]}
    assert placed == {tight.id: (world.clinician_a.id, "2026-12-02T02:00:00Z"),
                      flexible.id: (other.id, "2026-12-02T03:00:00Z")}
    assert body["unassigned"] == []
    assert body["objective"]["weighted_coverage"] > 0
    listed = client.get("/api/v1/appointments", headers=auth(world.users["admin"])).json
    assert listed["total"] == 2
