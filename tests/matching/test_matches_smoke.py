"""GET /api/v1/matches: suggestions with reasons, hard rules first."""


def test_matches_rank_the_partner_clinician_first_and_explain_why(
        client, auth, world, create_region, create_provider, create_service_type,
        set_availability, frozen_clock):
    create_service_type()
    east = create_region("county", world.province, name="Gulou District", zone="east",
                         setting="urban", partner_region_id=world.county_a.id)
    partner = create_provider(east, name="Dr. Chen", service_region_ids=[world.county_a.id])
    for provider in (world.clinician_a, partner):
        set_availability(provider)

    response = client.get("/api/v1/matches", headers=auth(world.users["vhw"]), query_string={
        "resident_id": world.resident_a1.id, "service_type": "gp_consult",
        "from": "2026-12-02T00:00:00Z", "to": "2026-12-09T00:00:00Z", "limit": 4})

    assert response.status_code == 200, response.json
    items = response.json["items"]
    assert [item["provider_id"] for item in items[:2]] == [partner.id, world.clinician_a.id]
    assert any("partner-region programme" in reason for reason in items[0]["reasons"])
    assert items[0]["score"] > items[1]["score"]
    assert world.clinician_b.id not in {item["provider_id"] for item in items}
    other = client.get("/api/v1/matches", headers=auth(world.users["vhw"]), query_string={
        "resident_id": world.resident_b.id, "service_type": "gp_consult"})
    assert other.status_code == 404
