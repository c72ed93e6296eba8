"""/api/v1/regions: the region tree as an admin edits it over HTTP."""

import pytest

REGIONS = "/api/v1/regions"
RESIDENTS = "/api/v1/residents"


@pytest.fixture
def admin(create_user, auth):
    """Bearer headers of an admin."""
    return auth(create_user("admin"))


def _post(client, headers, **body):
    return client.post(REGIONS, json=body, headers=headers)


def _patch(client, headers, region_id, **body):
    return client.patch(f"{REGIONS}/{region_id}", json=body, headers=headers)


def _get(client, headers, region_id):
    return client.get(f"{REGIONS}/{region_id}", headers=headers)


def _field_errors(response):
    assert response.status_code == 422, response.json
    assert response.json["error"]["code"] == "validation_error"
    return response.json["error"]["fields"]


def _resident_ids(client, headers, **query):
    response = client.get(RESIDENTS, headers=headers, query_string=query)
    assert response.status_code == 200, response.json
    return sorted(item["id"] for item in response.json["items"])


def _total_regions(client, headers):
    return client.get(REGIONS, headers=headers).json["total"]


# Creating


def test_province_without_zone_and_setting_is_refused_naming_both(client, admin):
    response = _post(client, admin, name="Gansu", kind="province")

    fields = _field_errors(response)
    assert set(fields) == {"zone", "setting"}
    assert _total_regions(client, admin) == 0


def test_province_is_created_with_the_default_timezone(client, admin, app):
    response = _post(client, admin, name="Gansu", kind="province", zone="west",
                     setting="rural", latitude=36.06, longitude=103.83)

    assert response.status_code == 201, response.json
    body = response.json
    assert body == {"id": body["id"], "name": "Gansu", "kind": "province", "parent_id": None,
                    "zone": "west", "setting": "rural",
                    "timezone": app.config["DEFAULT_TIMEZONE"],
                    "latitude": 36.06, "longitude": 103.83, "partner_region_id": None}
    assert _get(client, admin, body["id"]).json == body


def test_county_inherits_zone_setting_and_timezone_from_its_parent(client, admin):
    province = _post(client, admin, name="Xinjiang", kind="province", zone="west",
                     setting="rural", timezone="Asia/Urumqi").json

    response = _post(client, admin, name="Hotan County", kind="county",
                     parent_id=province["id"])

    assert response.status_code == 201, response.json
    county = response.json
    assert county["parent_id"] == province["id"]
    assert (county["zone"], county["setting"], county["timezone"]) == (
        "west", "rural", "Asia/Urumqi")
    assert _get(client, admin, county["id"]).json == county


def test_county_keeps_explicit_zone_setting_and_timezone(client, admin):
    province = _post(client, admin, name="Xinjiang", kind="province", zone="west",
                     setting="rural", timezone="Asia/Urumqi").json

    response = _post(client, admin, name="Urumqi City", kind="county",
                     parent_id=province["id"], zone="central", setting="urban",
                     timezone="Asia/Shanghai")

    assert response.status_code == 201, response.json
    county = response.json
    assert (county["zone"], county["setting"], county["timezone"]) == (
        "central", "urban", "Asia/Shanghai")
    assert _get(client, admin, province["id"]).json["timezone"] == "Asia/Urumqi"


@pytest.mark.parametrize(("timezone", "status"), [
    ("Asia/Shanghai", 201),
    ("Asia/Urumqi", 201),
    ("Mars/Olympus", 422),
    ("Beijing", 422),
    ("+08:00", 422),
    ("", 422),
])
def test_timezone_must_be_an_iana_name(client, admin, timezone, status):
    response = _post(client, admin, name="Gansu", kind="province", zone="west",
                     setting="rural", timezone=timezone)

    assert response.status_code == status, response.json
    if status == 201:
        assert response.json["timezone"] == timezone
    else:
        assert "timezone" in _field_errors(response)
        assert _total_regions(client, admin) == 0


def test_patching_a_timezone_that_is_not_iana_is_refused(client, admin, create_region):
    province = create_region("province", timezone="Asia/Shanghai")

    response = _patch(client, admin, province.id, timezone="Mars/Olympus")

    assert "timezone" in _field_errors(response)
    assert _get(client, admin, province.id).json["timezone"] == "Asia/Shanghai"


@pytest.mark.parametrize(("parent_kind", "kind", "status"), [
    ("province", "county", 201),
    ("county", "township", 201),
    ("township", "village", 201),
    ("village", "county", 422),
    ("village", "village", 422),
    ("county", "county", 422),
    ("township", "province", 422),
])
def test_a_region_must_be_deeper_than_its_parent(client, admin, create_region,
                                                 parent_kind, kind, status):
    chain = {}
    parent = None
    for level in ("province", "county", "township", "village"):
        parent = chain[level] = create_region(level, parent)
        if level == parent_kind:
            break
    before = _total_regions(client, admin)

    response = _post(client, admin, name="New", kind=kind, parent_id=chain[parent_kind].id)

    assert response.status_code == status, response.json
    if status == 422:
        assert "parent_id" in _field_errors(response)
        assert _total_regions(client, admin) == before
    else:
        assert response.json["parent_id"] == chain[parent_kind].id


@pytest.mark.parametrize("field", ["parent_id", "partner_region_id"])
def test_an_unknown_region_id_in_the_body_is_refused_on_that_field(client, admin,
                                                                    create_region, field):
    province = create_region("province")
    body = {"name": "Hotan County", "kind": "county", "parent_id": province.id,
            field: province.id + 1000}

    response = client.post(REGIONS, json=body, headers=admin)

    assert set(_field_errors(response)) == {field}
    assert _total_regions(client, admin) == 1


@pytest.mark.parametrize("field", ["parent_id", "partner_region_id"])
def test_patching_an_unknown_region_id_is_refused_on_that_field(client, admin,
                                                                 create_region, field):
    province = create_region("province")
    county = create_region("county", province)

    response = _patch(client, admin, county.id, **{field: county.id + 1000})

    assert set(_field_errors(response)) == {field}
    stored = _get(client, admin, county.id).json
    assert (stored["parent_id"], stored["partner_region_id"]) == (province.id, None)


@pytest.mark.parametrize(("coordinates", "field"), [
    ({"latitude": 91}, "latitude"),
    ({"latitude": -90.5}, "latitude"),
    ({"longitude": 181}, "longitude"),
    ({"latitude": "north"}, "latitude"),
])
def test_coordinates_out_of_range_are_refused(client, admin, coordinates, field):
    response = _post(client, admin, name="Gansu", kind="province", zone="west",
                     setting="rural", **coordinates)

    assert field in _field_errors(response)
    assert _total_regions(client, admin) == 0


def test_coordinates_at_the_poles_and_the_date_line_are_accepted(client, admin):
    response = _post(client, admin, name="Edge", kind="province", zone="east",
                     setting="urban", latitude=-90, longitude=180)

    assert response.status_code == 201, response.json
    assert (response.json["latitude"], response.json["longitude"]) == (-90, 180)


@pytest.mark.parametrize("extra", [{"path": "/1/"}, {"id": 7}, {"children": []}])
def test_unknown_fields_are_refused(client, admin, extra):
    response = _post(client, admin, name="Gansu", kind="province", zone="west",
                     setting="rural", **extra)

    assert set(extra) <= set(_field_errors(response))
    assert _total_regions(client, admin) == 0


def test_only_admins_create_regions(client, world, auth):
    response = client.post(REGIONS, headers=auth(world.users["coordinator"]),
                           json={"name": "New", "kind": "township",
                                 "parent_id": world.county_a.id})

    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"


# Partners


def test_partner_regions_are_readable_from_both_sides(client, admin):
    east = _post(client, admin, name="Fujian", kind="province", zone="east",
                 setting="urban").json
    west = _post(client, admin, name="Ningxia", kind="province", zone="west",
                 setting="rural", partner_region_id=east["id"])
    assert west.status_code == 201, west.json
    west = west.json
    assert west["partner_region_id"] == east["id"]

    response = _patch(client, admin, east["id"], partner_region_id=west["id"])

    assert response.status_code == 200, response.json
    assert response.json["partner_region_id"] == west["id"]
    assert _get(client, admin, east["id"]).json["partner_region_id"] == west["id"]
    assert _get(client, admin, west["id"]).json["partner_region_id"] == east["id"]


def test_partnership_can_be_ended(client, admin, create_region):
    east = create_region("province", zone="east", setting="urban")
    west = create_region("province", partner_region_id=east.id)

    response = _patch(client, admin, west.id, partner_region_id=None)

    assert response.status_code == 200, response.json
    assert _get(client, admin, west.id).json["partner_region_id"] is None


def test_a_region_cannot_partner_itself(client, admin, create_region):
    province = create_region("province")

    response = _patch(client, admin, province.id, partner_region_id=province.id)

    assert "partner_region_id" in _field_errors(response)
    assert _get(client, admin, province.id).json["partner_region_id"] is None


# Moving regions


def _parents(client, headers, world):
    names = ("province", "county_a", "town_a", "village_a1", "village_a2",
             "county_b", "town_b", "village_b")
    return {name: _get(client, headers, getattr(world, name).id).json["parent_id"]
            for name in names}


@pytest.mark.parametrize(("moved", "new_parent"), [
    ("province", "province"),
    ("county_a", "county_a"),
    ("town_a", "town_a"),
    ("county_a", "town_a"),
    ("county_a", "village_a1"),
    ("province", "village_b"),
    ("town_a", "village_a2"),
])
def test_a_parent_inside_the_region_itself_is_a_cycle_and_changes_nothing(
        client, world, auth, moved, new_parent):
    admin = auth(world.users["admin"])
    coordinator = auth(world.users["coordinator"])
    before = _parents(client, admin, world)
    visible_before = _resident_ids(client, coordinator)

    response = _patch(client, admin, getattr(world, moved).id,
                      parent_id=getattr(world, new_parent).id)

    assert "parent_id" in _field_errors(response)
    assert _parents(client, admin, world) == before
    assert _resident_ids(client, coordinator) == visible_before
    assert _resident_ids(client, admin, region_id=world.province.id) == sorted(
        [world.resident_a1.id, world.resident_a2.id, world.resident_b.id])


def test_a_cycle_is_refused_even_when_the_new_kind_would_fit_the_new_parent(
        client, world, auth, create_region):
    """Only the cycle guard stands here: a childless county made a township under itself."""
    admin = auth(world.users["admin"])
    county = create_region("county", world.province)

    response = _patch(client, admin, county.id, parent_id=county.id, kind="township")

    assert "parent_id" in _field_errors(response)
    stored = _get(client, admin, county.id).json
    assert (stored["parent_id"], stored["kind"]) == (world.province.id, "county")
    province = _patch(client, admin, world.province.id, parent_id=world.town_a.id,
                      kind="village")
    assert "parent_id" in _field_errors(province)
    assert _get(client, admin, world.province.id).json["parent_id"] is None


def test_moving_a_village_moves_its_residents_between_township_scopes(
        client, world, auth, create_user):
    admin = auth(world.users["admin"])
    vhw_old = auth(create_user("vhw", [world.town_a]))
    vhw_new = auth(create_user("vhw", [world.town_b]))
    coordinator_old = auth(create_user("coordinator", [world.town_a]))
    coordinator_new = auth(create_user("coordinator", [world.town_b]))
    a1, a2, b = world.resident_a1.id, world.resident_a2.id, world.resident_b.id
    assert _resident_ids(client, vhw_old) == sorted([a1, a2])
    assert _resident_ids(client, vhw_new) == [b]

    response = _patch(client, admin, world.village_a1.id, parent_id=world.town_b.id)

    assert response.status_code == 200, response.json
    assert response.json["parent_id"] == world.town_b.id
    assert _resident_ids(client, vhw_old) == [a2]
    assert _resident_ids(client, coordinator_old) == [a2]
    assert _resident_ids(client, vhw_new) == sorted([a1, b])
    assert _resident_ids(client, coordinator_new) == sorted([a1, b])
    assert client.get(f"{RESIDENTS}/{a1}", headers=vhw_old).status_code == 404
    assert client.get(f"{RESIDENTS}/{a1}", headers=vhw_new).status_code == 200
    # The vhw of the village itself keeps their residents wherever it goes.
    assert _resident_ids(client, auth(world.users["vhw"])) == [a1]
    assert _resident_ids(client, admin, region_id=world.county_b.id) == sorted([a1, b])
    assert _resident_ids(client, admin, region_id=world.county_a.id) == [a2]


def test_moving_a_township_moves_its_whole_subtree(client, world, auth, create_user):
    admin = auth(world.users["admin"])
    coordinator_b = auth(create_user("coordinator", [world.county_b]))
    a1, a2, b = world.resident_a1.id, world.resident_a2.id, world.resident_b.id

    response = _patch(client, admin, world.town_a.id, parent_id=world.county_b.id)

    assert response.status_code == 200, response.json
    assert _resident_ids(client, auth(world.users["coordinator"])) == []
    assert _resident_ids(client, coordinator_b) == sorted([a1, a2, b])
    assert _get(client, admin, world.village_a1.id).json["parent_id"] == world.town_a.id
    children = client.get(REGIONS, headers=admin,
                          query_string={"parent_id": world.county_b.id}).json
    assert sorted(r["id"] for r in children["items"]) == sorted(
        [world.town_a.id, world.town_b.id])


@pytest.mark.parametrize("region", ["village_a1", "town_a", "county_a"])
def test_only_a_province_may_be_detached_from_its_parent(client, world, auth, region):
    admin = auth(world.users["admin"])
    before = _parents(client, admin, world)

    response = _patch(client, admin, getattr(world, region).id, parent_id=None)

    assert "parent_id" in _field_errors(response)
    assert _parents(client, admin, world) == before
    assert _resident_ids(client, auth(world.users["coordinator"])) == sorted(
        [world.resident_a1.id, world.resident_a2.id])


def test_a_province_without_a_parent_keeps_its_kind(client, admin, create_region):
    province = create_region("province")

    assert _patch(client, admin, province.id, parent_id=None).status_code == 200
    response = _patch(client, admin, province.id, kind="county")

    assert "parent_id" in _field_errors(response)
    assert _get(client, admin, province.id).json["kind"] == "province"


def test_changing_a_kind_above_its_children_is_refused(client, world, auth):
    admin = auth(world.users["admin"])

    response = _patch(client, admin, world.town_a.id, kind="village")

    assert "kind" in _field_errors(response)
    assert _get(client, admin, world.town_a.id).json["kind"] == "township"


# Reading


def test_list_filters_by_parent_kind_zone_and_setting(client, admin, create_region):
    east = create_region("province", zone="east", setting="urban")
    west = create_region("province", zone="west", setting="rural")
    east_city = create_region("county", east)
    east_rural = create_region("county", east, setting="rural")
    west_county = create_region("county", west)
    west_town = create_region("township", west_county)

    def ids(**query):
        response = client.get(REGIONS, headers=admin, query_string=query)
        assert response.status_code == 200, response.json
        assert response.json["total"] == len(response.json["items"])
        return [item["id"] for item in response.json["items"]]

    assert ids() == [east.id, west.id, east_city.id, east_rural.id, west_county.id,
                     west_town.id]
    assert ids(parent_id=east.id) == [east_city.id, east_rural.id]
    assert ids(kind="county") == [east_city.id, east_rural.id, west_county.id]
    assert ids(zone="east") == [east.id, east_city.id, east_rural.id]
    assert ids(setting="rural") == [west.id, east_rural.id, west_county.id, west_town.id]
    assert ids(zone="east", setting="rural") == [east_rural.id]
    assert ids(kind="county", parent_id=west.id) == [west_county.id]
    assert ids(kind="village") == []


def test_list_pages_with_limit_and_offset(client, admin, create_region):
    provinces = [create_region("province") for _ in range(3)]

    response = client.get(REGIONS, headers=admin, query_string={"limit": 2, "offset": 1})

    assert response.status_code == 200
    assert [r["id"] for r in response.json["items"]] == [p.id for p in provinces[1:]]
    assert response.json["total"] == 3


@pytest.mark.parametrize("query", [{"kind": "city"}, {"zone": "north"}, {"setting": "suburban"}])
def test_list_filter_with_an_unknown_value_is_refused(client, admin, query):
    response = client.get(REGIONS, headers=admin, query_string=query)

    assert set(query) <= set(_field_errors(response))


def test_every_role_reads_the_region_tree(client, world, auth):
    for user in world.users.values():
        response = client.get(REGIONS, headers=auth(user))
        assert response.status_code == 200
        assert response.json["total"] == 8


@pytest.mark.parametrize("method", ["get", "patch"])
def test_an_unknown_region_id_in_the_path_is_not_found(client, admin, create_region, method):
    province = create_region("province")

    response = getattr(client, method)(f"{REGIONS}/{province.id + 1000}", headers=admin,
                                       json={"name": "Renamed"})

    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_regions_need_a_bearer_token(client):
    response = client.get(REGIONS)

    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
