def test_vhw_lists_only_residents_of_their_village(client, world, auth):
    response = client.get("/api/v1/residents", headers=auth(world.users["vhw"]))
    assert response.status_code == 200
    assert [r["id"] for r in response.json["items"]] == [world.resident_a1.id]
    assert response.json["total"] == 1
