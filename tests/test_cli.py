"""`flask users create` and `flask demo seed` (API.md "Configuration and commands")."""

from datetime import date

import phonenumbers
import pytest
import sqlalchemy as sa

from careservice.core.models import User
from careservice.core.time import today_utc
from careservice.demo import seed as seeding
from careservice.demo.seed import DEMO_PASSWORD
from careservice.extensions import db
from careservice.people.models import Provider, Region, Resident
from careservice.scheduling.models import ServiceType

PASSWORD = "a village password"


@pytest.fixture
def flask_cli(app):
    runner = app.test_cli_runner()

    def invoke(*args, password=None):
        return runner.invoke(args=list(args),
                             input=None if password is None else password + "\n")

    return invoke


def login(client, username, password):
    return client.post("/api/v1/auth/token", json={"username": username, "password": password})


def count(model) -> int:
    return db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()


def empty_database():
    """As conftest does after every test: the session closed, every table emptied."""
    db.session.rollback()
    db.session.remove()
    tables = list(reversed(db.metadata.sorted_tables))
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in tables)
            connection.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                connection.execute(table.delete())


def age(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


# users create


def test_users_create_makes_a_user_who_can_log_in(flask_cli, client, create_region):
    village = create_region("village", name="Nanshan Village")
    village_id = village.id

    result = flask_cli("users", "create", "mali", "--role", "vhw", "--region", str(village_id),
                       password=PASSWORD)

    assert result.exit_code == 0, result.output
    assert "mali" in result.output
    response = login(client, "mali", PASSWORD)
    assert response.status_code == 200
    assert response.json["user"]["role"] == "vhw"
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {response.json['token']}"})
    assert me.json["region_ids"] == [village_id]


def test_users_create_a_clinician_with_their_provider(flask_cli, client, create_region,
                                                      create_provider):
    provider_id = create_provider(create_region("county")).id

    result = flask_cli("users", "create", "drlin", "--role", "clinician",
                       "--provider", str(provider_id), password=PASSWORD)

    assert result.exit_code == 0, result.output
    assert login(client, "drlin", PASSWORD).json["user"]["role"] == "clinician"


@pytest.mark.parametrize("args, password, expected", [
    (["short", "--role", "admin"], "1234567", "password"),
    (["nurse", "--role", "nurse"], PASSWORD, "--role"),
    (["vhw2", "--role", "vhw"], PASSWORD, "region"),
    (["drwang", "--role", "clinician"], PASSWORD, "provider"),
    (["coord", "--role", "coordinator", "--region", "999999"], PASSWORD, "region"),
])
def test_users_create_refuses_bad_input_clearly(flask_cli, client, args, password, expected):
    result = flask_cli("users", "create", *args, password=password)

    assert result.exit_code != 0
    assert expected in result.output
    assert "Traceback" not in result.output
    assert count(User) == 0
    assert login(client, args[0], password).status_code == 401


def test_users_create_refuses_a_taken_username(flask_cli, create_user):
    create_user("admin", username="zhang")

    result = flask_cli("users", "create", "zhang", "--role", "admin", password=PASSWORD)

    assert result.exit_code != 0
    assert "username" in result.output
    assert count(User) == 1


# demo seed


def test_demo_seed_creates_the_demo_province(flask_cli, frozen_clock):
    result = flask_cli("demo", "seed", "--residents", "60")

    assert result.exit_code == 0, result.output
    assert "vhw" in result.output and DEMO_PASSWORD in result.output
    codes = set(db.session.execute(sa.select(ServiceType.code)).scalars())
    assert codes == {"gp_consult", "chronic_followup", "mental_health", "elder_home_visit"}
    assert count(Provider) > 0
    assert {"clinician", "caregiver"} == set(
        db.session.execute(sa.select(Provider.kind)).scalars())

    residents = db.session.execute(sa.select(Resident)).scalars().all()
    assert len(residents) == 60
    for resident in residents:
        if resident.phone is not None:
            number = phonenumbers.parse(resident.phone)
            assert number.country_code == 86, resident.phone
            assert phonenumbers.is_valid_number(number), resident.phone
    assert any(r.languages[0] in ("id", "en") for r in residents)
    today = today_utc()
    elderly = [r for r in residents if age(r.birth_date, today) >= 60]
    assert len(elderly) > len(residents) / 2


def test_demo_seed_pairs_rural_western_villages_with_eastern_regions(flask_cli):
    flask_cli("demo", "seed", "--residents", "60")

    regions = db.session.execute(sa.select(Region)).scalars().all()
    west = [r for r in regions if r.kind == "province" and r.zone == "west"]
    assert len(west) == 1
    western = [r for r in regions if r.path.startswith(west[0].path)]
    villages = [r for r in western if r.kind == "village"]
    assert villages
    assert all((v.zone, v.setting) == ("west", "rural") for v in villages)
    counties = [r for r in western if r.kind == "county"]
    assert counties
    for county in counties:
        partner = county.partner_region
        assert partner is not None, county.name
        assert partner.zone == "east"
        assert partner.partner_region_id == county.id


def test_demo_vhw_sees_only_residents_of_their_villages(flask_cli, client):
    flask_cli("demo", "seed", "--residents", "60")
    token = login(client, "vhw", DEMO_PASSWORD).json["token"]
    headers = {"Authorization": f"Bearer {token}"}

    village_ids = client.get("/api/v1/me", headers=headers).json["region_ids"]
    listed = client.get("/api/v1/residents", headers=headers, query_string={"limit": 500})

    assert listed.status_code == 200
    in_villages = db.session.execute(
        sa.select(Resident.id).where(Resident.region_id.in_(village_ids)).order_by(Resident.id)
    ).scalars().all()
    assert in_villages, "the demo vhw should have residents to look after"
    assert [r["id"] for r in listed.json["items"]] == in_villages
    assert listed.json["total"] == len(in_villages) < 60
    kinds = set(db.session.execute(
        sa.select(Region.kind).where(Region.id.in_(village_ids))).scalars())
    assert kinds == {"village"}


def test_demo_seed_twice_skips_and_changes_nothing(flask_cli):
    flask_cli("demo", "seed", "--residents", "60")
    before = {model.__name__: count(model)
              for model in (Region, Resident, Provider, ServiceType, User)}

    again = flask_cli("demo", "seed", "--residents", "60")

    assert again.exit_code == 0, again.output
    assert "skipped" in again.output
    after = {model.__name__: count(model)
             for model in (Region, Resident, Provider, ServiceType, User)}
    assert after == before


def test_demo_seed_gives_the_same_people_every_time(flask_cli):
    def people():
        return db.session.execute(
            sa.select(Resident.name, Resident.phone, Resident.birth_date).order_by(Resident.id)
        ).all()

    flask_cli("demo", "seed", "--residents", "60")
    first = people()
    empty_database()
    assert count(Resident) == 0

    result = flask_cli("demo", "seed", "--residents", "60")

    assert result.exit_code == 0, result.output
    assert people() == first


@pytest.mark.parametrize("policy", ["fifo", "equity"])
def test_demo_simulate_replays_demand_in_a_scratch_database_and_reports_coverage(
        flask_cli, policy):
    result = flask_cli("demo", "simulate", "--weeks", "1", "--policy", policy,
                       "--residents", "150", "--seed", "7")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert f"Simulated 1 weeks, policy {policy}, seed 7" in lines
    table = lines[lines.index(f"Simulated 1 weeks, policy {policy}, seed 7") + 2:][:6]
    assert len(table) == 6 and all(line.split()[-7].isdigit() for line in table)
    served = sum(int(line.split()[-6]) for line in table)
    assert served > 0  # sessions were booked, held and completed
    assert any(line.startswith("requests: ") and " booked" in line for line in lines)
    assert any(line.startswith("equity: rural_urban_ratio ") and "gini" in line
               for line in lines)
    # The service's own database is untouched: still empty.
    assert not seeding.has_data()


def test_demo_simulate_refuses_an_unknown_policy(flask_cli):
    result = flask_cli("demo", "simulate", "--policy", "lottery")

    assert result.exit_code == 2
    assert "lottery" in result.output
