"""Coverage over HTTP: a completed session counts its resident as served."""

from datetime import timedelta


def test_a_completed_session_makes_its_resident_served(
        client, auth, world, create_service_type, frozen_clock):
    from careservice.core.auth import Actor
    from careservice.scheduling.booking import record_session

    create_service_type()
    record_session(Actor.system("t"), resident_id=world.resident_a1.id,
                   provider_id=world.clinician_a.id, service_type="gp_consult",
                   start=frozen_clock.now() - timedelta(days=2), outcome="completed")
    query = {"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T08:00:00Z", "group_by": "region",
             "level": "county"}

    report = client.get("/api/v1/metrics/coverage", query_string=query,
                        headers=auth(world.users["admin"])).json

    rows = {row["label"]: row for row in report["rows"]}
    assert rows["Xiji County"]["registered"] == 2
    assert rows["Xiji County"]["served"] == 1
    assert rows["Xiji County"]["coverage_rate"] == 0.5
    assert rows["Haiyuan County"]["coverage_rate"] == 0
    assert report["equity"]["worst_best_village_ratio"] == 0
    csv = client.get("/api/v1/metrics/coverage.csv", query_string=query,
                     headers=auth(world.users["admin"]))
    assert csv.mimetype == "text/csv"
    assert csv.get_data(as_text=True).splitlines()[0].startswith("group,label,registered,served")
