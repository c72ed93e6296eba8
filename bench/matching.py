"""Batch matching on province-like instances, against first-come and an LP.

Generates a western province (12 counties, 72 townships, 576 villages,
20,000 residents) partnered with an eastern one, 600 providers (county-licensed
clinicians, eastern partner clinicians, township caregivers; skills, languages,
daily caps, part-time weekly hours), two weeks of slots partly booked already,
a year of completed sessions (so some residents and villages are better served
than others), and open care requests with day-aligned windows inside the two
weeks. For each size it prints the end-to-end time of `batch.plan` (reading
from PostgreSQL included) and of the solve alone, the coverage, and the same
for first come, first served (`batch.first_come`: each request, oldest first,
takes its earliest free slot); times are the median of three runs. On the
smaller sizes it checks the weighted coverage against the optimum of an LP
relaxation solved independently with scipy's HiGHS.

    .venv/bin/python bench/matching.py [--sizes 1000,5000,10000] [--lp-up-to 1000]

Target: 5,000 requests x 600 providers x 2 weeks end to end in under 1.5 s, at
the optimum.
"""

import argparse
import os
import random
import statistics
import sys
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall
from itertools import combinations
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import report, scratch_database  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
PROVIDERS = 600
RESIDENTS = 20_000
RUNS = 3


def build_province(url: str, seed: int, requests: int, today: date):
    """Everything the batch reads, inserted in bulk; the batch window (two weeks)."""
    os.environ["CARESERVICE_DATABASE_URL"] = url
    import sqlalchemy as sa

    from careservice import create_app
    from careservice.extensions import db
    from careservice.people.models import Provider, Region, Resident, provider_regions
    from careservice.scheduling.models import (
        Appointment,
        AvailabilityRule,
        CareRequest,
        ServiceType,
    )

    rng = random.Random(seed)
    app = create_app({"ENV": "development", "LOG_LEVEL": "WARNING"})
    ctx = app.app_context()
    ctx.push()
    now = datetime.combine(today, wall(0), tzinfo=TZ).astimezone(UTC)

    regions, paths = [], {}

    def region(kind, name, parent=None, **extra):
        region_id = len(regions) + 1
        path = (paths[parent] if parent else "/") + f"{region_id}/"
        paths[region_id] = path
        above = regions[parent - 1] if parent else {}
        regions.append({"id": region_id, "name": name, "kind": kind, "parent_id": parent,
                        "path": path, "timezone": "Asia/Shanghai",
                        "zone": extra.get("zone", above.get("zone")),
                        "setting": extra.get("setting", above.get("setting")),
                        "latitude": extra.get("lat"), "longitude": extra.get("lon"),
                        "partner_region_id": None})
        return region_id

    west = region("province", "West", zone="west", setting="rural")
    east = region("province", "East", zone="east", setting="urban")
    counties, townships, villages = [], defaultdict(list), defaultdict(list)
    east_counties = [region("county", f"East county {i}", east) for i in range(6)]
    for c in range(12):
        county = region("county", f"County {c}", west)
        counties.append(county)
        if c < 6:
            regions[county - 1]["partner_region_id"] = east_counties[c]
            regions[east_counties[c] - 1]["partner_region_id"] = county
        for t in range(6):
            township = region("township", f"Town {c}.{t}", county)
            townships[county].append(township)
            for v in range(8):
                villages[township].append(region(
                    "village", f"Village {c}.{t}.{v}", township,
                    lat=35.0 + c * 0.2 + v * 0.01, lon=105.0 + t * 0.2 + v * 0.01))
    partners = [{"rid": r["id"], "partner": r.pop("partner_region_id")} for r in regions]
    db.session.execute(sa.insert(Region), regions)
    db.session.execute(sa.update(Region.__table__).where(Region.id == sa.bindparam("rid"))
                       .values(partner_region_id=sa.bindparam("partner")),
                       [p for p in partners if p["partner"]])

    kinds = [
        {"id": 1, "code": "gp_consult", "name": "GP", "modality": "video",
         "duration_minutes": 20, "buffer_minutes": 5, "required_skill": "gp"},
        {"id": 2, "code": "chronic_followup", "name": "Chronic", "modality": "phone",
         "duration_minutes": 15, "buffer_minutes": 5, "required_skill": "chronic"},
        {"id": 3, "code": "elder_home_visit", "name": "Home visit", "modality": "home_visit",
         "duration_minutes": 60, "buffer_minutes": 0, "required_skill": "elder_care"},
    ]
    db.session.execute(sa.insert(ServiceType), kinds)

    providers, served_by, rules = [], [], []
    all_villages = [v for towns in townships.values() for town in towns for v in villages[town]]
    for i in range(PROVIDERS):
        provider_id = i + 1
        if i < 380:  # county clinicians
            county = counties[i % 12]
            home, areas, kind = rng.choice(townships[county]), [county], "clinician"
            skills = rng.choice([["gp"], ["chronic"], ["gp", "chronic"]])
            modalities = ["video", "phone"]
        elif i < 450:  # eastern partner clinicians serve their partnered western county
            c = i % 6
            home, areas, kind = east_counties[c], [counties[c]], "clinician"
            skills, modalities = ["gp", "chronic"], ["video", "phone"]
        else:  # caregivers serve a township's villages
            county = counties[i % 12]
            town = rng.choice(townships[county])
            home, areas, kind = villages[town][0], [town], "caregiver"
            skills, modalities = ["elder_care"], ["home_visit"]
        providers.append({
            "id": provider_id, "kind": kind, "name": f"Provider {provider_id}",
            "skills": skills, "languages": ["zh-CN"] if rng.random() < 0.85 else ["zh-CN", "hui"],
            "modalities": modalities, "timezone": "Asia/Shanghai", "home_region_id": home,
            "max_sessions_per_day": rng.choice([3, 4, 6]), "active": True,
            "calendar_token": f"bench-{provider_id}", "availability_tag": f"t{provider_id}"})
        served_by += [{"provider_id": provider_id, "region_id": area} for area in areas]
        # Part-time remote duty: two or three half days a week.
        for weekday in rng.sample(range(6), rng.choice([2, 3])):
            opens = rng.choice([wall(8), wall(14)])
            rules.append({"provider_id": provider_id, "weekday": weekday, "start_time": opens,
                          "end_time": wall(opens.hour + 3)})
    db.session.execute(sa.insert(Provider), providers)
    db.session.execute(sa.insert(provider_regions), served_by)
    db.session.execute(sa.insert(AvailabilityRule), rules)

    # Residents: more, and older, in the western rural counties' remote villages.
    residents = []
    for i in range(RESIDENTS):
        village = rng.choice(all_villages)
        residents.append({
            "id": i + 1, "name": f"Resident {i + 1}", "sex": rng.choice(["female", "male"]),
            "birth_date": date(rng.randint(1930, 1965), rng.randint(1, 12), rng.randint(1, 28)),
            "region_id": village,
            "languages": ["zh-CN"] if rng.random() < 0.9 else ["hui", "zh-CN"],
            "sms_consent": True})
    db.session.execute(sa.insert(Resident), residents)

    # A year of completed sessions for a third of residents (not those who will wait),
    # and some live bookings in the two weeks: each on its own provider time.
    waiting = rng.sample(range(1, RESIDENTS + 1), requests)
    others = sorted(set(range(1, RESIDENTS + 1)) - set(waiting))
    rng.shuffle(others)
    appointments, taken = [], set()

    def session(resident_id, provider, start, status):
        appointments.append({
            "resident_id": resident_id, "provider_id": provider["id"], "service_type_id": 1,
            "start_at": start, "end_at": start + timedelta(minutes=20),
            "block_end_at": start + timedelta(minutes=25), "modality": "video",
            "status": status, "on_behalf": True, "recorded": status == "completed",
            "version": 1, "created_at": now, "updated_at": now})

    clinicians = [p for p in providers if "gp" in p["skills"]]
    for n, resident_id in enumerate(others[:RESIDENTS // 3]):
        provider = clinicians[n % len(clinicians)]
        start = now - timedelta(days=1 + (n // len(clinicians)) % 300, hours=-2)
        if (provider["id"], start) not in taken:
            taken.add((provider["id"], start))
            session(resident_id, provider, start, "completed")
    booked_residents = others[RESIDENTS // 3:]
    for n, rule in enumerate(rules[:len(rules) // 2]):  # the first session of many windows
        provider = providers[rule["provider_id"] - 1]
        if "gp" not in provider["skills"] or n >= len(booked_residents):
            continue
        day = today + timedelta(days=(rule["weekday"] - today.weekday()) % 7)
        start = datetime.combine(day, rule["start_time"], tzinfo=TZ).astimezone(UTC)
        session(booked_residents[n], provider, start, "booked")
    db.session.execute(sa.insert(Appointment), appointments)

    # Open requests: day-aligned windows of 2 to 7 days inside the two weeks.
    start = datetime.combine(today, wall(0), tzinfo=TZ).astimezone(UTC)
    care = []
    for n, resident_id in enumerate(waiting):
        village = residents[resident_id - 1]["region_id"]
        kind = 3 if rng.random() < 0.2 else rng.choice([1, 1, 2])
        first = rng.randint(0, 10)
        length = rng.randint(2, 7)
        care.append({
            "resident_id": resident_id, "service_type_id": kind,
            "earliest": start + timedelta(days=first),
            "latest": start + timedelta(days=min(first + length, 14)),
            "urgency": rng.choices(["routine", "soon", "urgent"], [6, 3, 1])[0],
            "status": "open", "created_at": now - timedelta(minutes=requests - n),
            "updated_at": now, "notes": f"village {village}"})
    db.session.execute(sa.insert(CareRequest), care)
    db.session.commit()
    with db.engine.connect() as connection:  # as autovacuum would, after a bulk load
        connection.execute(sa.text("ANALYZE"))
    ctx.pop()
    return app, start, start + timedelta(days=14), now


def lp_optimum(problem) -> float:
    """The weighted-coverage optimum of the LP relaxation, formulated apart from the
    flow: x[request, provider-day] in [0, 1]; each request at most once; each
    provider-day at most its cap left; and, for every set of services a provider-day
    offers, the requests of those services at most the distinct starts they have
    between them (Hall's condition: windows here are whole days, so that is exactly
    when the requests fit the starts)."""
    import numpy as np
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix

    starts = defaultdict(dict)  # (provider, day) -> service -> its starts
    for (provider_id, service_type_id), days in problem.days.items():
        for day in days:
            starts[(provider_id, day.day)][service_type_id] = set(day.starts)
    columns, weights = [], []  # (request index, provider, day)
    for r, request in enumerate(problem.requests):
        for provider_id in problem.eligible[(request.village_id, request.service_type_id)]:
            for day in problem.days.get((provider_id, request.service_type_id), ()):
                if request.start <= day.starts[0] and day.ends[-1] <= request.end:
                    columns.append((r, provider_id, day.day))
                    weights.append(request.weight)
    rows, bounds, entries = {}, [], []

    def row(key, bound) -> int:
        if key not in rows:
            rows[key] = len(bounds)
            bounds.append(bound)
        return rows[key]

    for c, (r, provider_id, day) in enumerate(columns):
        service = problem.requests[r].service_type_id
        entries.append((row(("request", r), 1), c))
        entries.append((row(("cap", provider_id, day),
                            problem.cap_left.get((provider_id, day), 0)), c))
        offered = sorted(starts[(provider_id, day)])
        for size in range(1, len(offered) + 1):
            for subset in combinations(offered, size):
                if service in subset:
                    union = set().union(*(starts[(provider_id, day)][s] for s in subset))
                    entries.append((row(("starts", provider_id, day, subset), len(union)), c))
    matrix = coo_matrix((np.ones(len(entries)), ([i for i, _ in entries],
                                                 [c for _, c in entries])),
                        shape=(len(bounds), len(columns))).tocsr()
    result = linprog(-np.array(weights), A_ub=matrix, b_ub=np.array(bounds), bounds=(0, 1),
                     method="highs")
    assert result.status == 0, result.message
    return round(-result.fun, 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,10000")
    parser.add_argument("--lp-up-to", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    today = date.today() + timedelta(days=1)
    checks, lines = [], []
    for size in sizes:
        with scratch_database(f"match_{size}") as url:
            app, start, end, now = build_province(url, args.seed, size, today)
            lines.append(measure(app, size, start, end, now, args.lp_up_to, checks))
            with app.app_context():
                from careservice.extensions import db

                db.engine.dispose()
    print(f"{PROVIDERS} providers, {RESIDENTS} residents, 2 weeks, PostgreSQL")
    print(f"{'requests':>9}{'arcs':>10}{'load s':>8}{'solve s':>9}{'end-to-end s':>14}"
          f"{'served':>8}{'weighted':>10}{'greedy':>8}{'weighted':>10}{'gain':>8}{'LP':>10}")
    for line in lines:
        print(line)
    return report(checks)


def measure(app, size, start, end, now, lp_up_to, checks) -> str:
    from careservice.core.auth import Actor
    from careservice.core.time import utcnow
    from careservice.extensions import db
    from careservice.matching import batch
    from careservice.matching import instance as loading

    actor = Actor.system("bench")
    with app.app_context():
        batch.plan(actor, start=start, end=end)  # warm: imports, pools, statement caches
        db.session.rollback()
        totals, loads, solves = [], [], []
        for _ in range(RUNS):  # the median of a few runs: these machines are noisy
            began = time.perf_counter()
            result = batch.plan(actor, start=start, end=end)
            totals.append(time.perf_counter() - began)
            db.session.rollback()
            began = time.perf_counter()
            problem = loading.load(actor, start=start, end=end, now=utcnow())
            loads.append(time.perf_counter() - began)
            began = time.perf_counter()
            again = batch.solve(problem)
            solves.append(time.perf_counter() - began)
            db.session.rollback()
        total, loaded, solved = (statistics.median(t) for t in (totals, loads, solves))
        arcs = again.arcs
        served, weighted = result.objective["assigned"], result.objective["weighted_coverage"]
        assert again.objective == result.objective
        first = batch.first_come(problem)
        greedy_served = first.objective["assigned"]
        greedy_weighted = first.objective["weighted_coverage"]
        lp = lp_optimum(problem) if size <= lp_up_to else None
    gain = weighted / greedy_weighted - 1 if greedy_weighted else float("nan")
    if lp is not None:
        checks.append((f"{size}: optimum = LP's", f"{weighted} = {lp}",
                       abs(weighted - lp) < 1e-6))
    checks.append((f"{size}: >= first-come's", f"{weighted} >= {greedy_weighted}",
                   weighted >= greedy_weighted))
    if size == 5000:
        checks.append(("5,000 requests end to end", f"{total:.2f} s", total < 1.5))
    return (f"{size:>9}{arcs:>10}{loaded:>8.2f}{solved:>9.2f}{total:>14.2f}{served:>8}"
            f"{weighted:>10.1f}{greedy_served:>8}{greedy_weighted:>10.1f}{gain:>8.1%}"
            f"{lp if lp is not None else '-':>10}")


if __name__ == "__main__":
    sys.exit(main())
