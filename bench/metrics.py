"""Coverage report time on a province-sized dataset, raw rows (rollups: not built yet).

Generates residents in villages and appointments in bulk (COPY on PostgreSQL,
executemany on SQLite), then times GET /api/v1/metrics/coverage for a 90-day
period grouped by village and by county, through the real app. Prints the
figures next to the targets of issue 6 (raw on PostgreSQL under 300 ms).

    .venv/bin/python bench/metrics.py [--residents 200000] [--appointments 1000000]
                                      [--database postgresql|sqlite|both]
"""

import argparse
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import report, scratch_database  # noqa: E402

VILLAGES_PER_COUNTY, COUNTIES = 50, 20
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def rows(residents: int, appointments: int, seed: int = 7):
    """(regions, residents, providers, appointments) as plain tuples."""
    rng = random.Random(seed)
    regions = [(1, "Province", "province", None, "/1/", "west", "rural")]
    villages = []
    next_id = 2
    for c in range(COUNTIES):
        county = next_id
        next_id += 1
        zone = "east" if c % 4 == 0 else "west"
        setting = "urban" if zone == "east" else "rural"
        regions.append((county, f"County {c}", "county", 1, f"/1/{county}/", zone, setting))
        for v in range(VILLAGES_PER_COUNTY):
            regions.append((next_id, f"Village {c}-{v}", "village", county,
                            f"/1/{county}/{next_id}/", zone, setting))
            villages.append(next_id)
            next_id += 1
    people = [(i + 1, f"R{i}", rng.choice(villages),
               date(1930, 1, 1) + timedelta(days=rng.randrange(30000)),
               rng.choice(("female", "male"))) for i in range(residents)]
    providers = [(i + 1, rng.choice(villages)) for i in range(600)]
    statuses = ["completed"] * 6 + ["booked", "cancelled", "no_show", "confirmed"]
    sessions = []
    for i in range(appointments):
        start = NOW - timedelta(minutes=30 * (i // 600) + rng.randrange(20))
        sessions.append((i + 1, rng.randrange(residents) + 1, i % 600 + 1, start,
                         start + timedelta(minutes=20), start + timedelta(minutes=25),
                         rng.choice(statuses)))
    return regions, people, providers, sessions


def load_postgresql(url: str, data) -> None:
    regions, people, providers, sessions = data
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        cur = conn.cursor()
        # Bulk load: no constraints to check row by row (the generator keeps them).
        cur.execute("ALTER TABLE appointments DROP CONSTRAINT ex_appointments_provider_overlap")
        cur.execute("ALTER TABLE appointments DROP CONSTRAINT ex_appointments_resident_overlap")
        _copy_all(cur, regions, people, providers, sessions)
        cur.execute("ANALYZE")
        conn.commit()


def _copy_all(cur, regions, people, providers, sessions):
    now = NOW
    with cur.copy("COPY regions (id, name, kind, parent_id, path, zone, setting, timezone, "
                  "created_at, updated_at) FROM STDIN") as copy:
        for row in regions:
            copy.write_row((*row, "Asia/Shanghai", now, now))
    cur.execute("INSERT INTO service_types (id, code, name, modality, duration_minutes, "
                "buffer_minutes, created_at, updated_at) VALUES (1, 'gp_consult', 'GP', "
                "'video', 20, 5, now(), now())")
    with cur.copy("COPY providers (id, kind, name, skills, languages, modalities, timezone, "
                  "home_region_id, max_sessions_per_day, active, calendar_token, created_at, "
                  "updated_at) FROM STDIN") as copy:
        for pid, home in providers:
            copy.write_row((pid, "clinician", f"Dr {pid}", "[]", "[]", "[]", "UTC", home, 50,
                            True, f"t{pid}", now, now))
    with cur.copy("COPY residents (id, name, region_id, birth_date, sex, languages, "
                  "sms_consent, created_at, updated_at) FROM STDIN") as copy:
        for rid, name, village, born, sex in people:
            copy.write_row((rid, name, village, born, sex, "[]", True,
                            now - timedelta(days=400), now))
    with cur.copy("COPY appointments (id, resident_id, provider_id, service_type_id, start_at, "
                  "end_at, block_end_at, modality, status, on_behalf, recorded, version, "
                  "created_at, updated_at) FROM STDIN") as copy:
        for aid, rid, pid, start, end, block, status in sessions:
            copy.write_row((aid, rid, pid, 1, start, end, block, "video", status, True, False,
                            1, now, now))


def load_sqlite(path: str, data) -> None:
    regions, people, providers, sessions = data
    now = NOW.replace(tzinfo=None)
    conn = sqlite3.connect(path)
    conn.executemany("INSERT INTO regions (id, name, kind, parent_id, path, zone, setting, "
                     "timezone, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                     [(*r, "Asia/Shanghai", now, now) for r in regions])
    conn.execute("INSERT INTO service_types (id, code, name, modality, duration_minutes, "
                 "buffer_minutes, created_at, updated_at) VALUES (1, 'gp_consult', 'GP', "
                 "'video', 20, 5, ?, ?)", (now, now))
    conn.executemany("INSERT INTO providers (id, kind, name, skills, languages, modalities, "
                     "timezone, home_region_id, max_sessions_per_day, active, calendar_token, "
                     "created_at, updated_at) VALUES (?,'clinician',?,'[]','[]','[]','UTC',?,"
                     "50,1,?,?,?)", [(p, f"Dr {p}", h, f"t{p}", now, now) for p, h in providers])
    conn.executemany("INSERT INTO residents (id, name, region_id, birth_date, sex, languages, "
                     "sms_consent, created_at, updated_at) VALUES (?,?,?,?,?,'[]',1,?,?)",
                     [(r, n, v, b, s, now - timedelta(days=400), now)
                      for r, n, v, b, s in people])
    conn.executemany("INSERT INTO appointments (id, resident_id, provider_id, service_type_id, "
                     "start_at, end_at, block_end_at, modality, status, on_behalf, recorded, "
                     "version, created_at, updated_at) VALUES (?,?,?,1,?,?,?,'video',?,1,0,1,?,?)",
                     [(a, r, p, s.replace(tzinfo=None), e.replace(tzinfo=None),
                       b.replace(tzinfo=None), st, now, now)
                      for a, r, p, s, e, b, st in sessions])
    conn.execute("ANALYZE")
    conn.commit()
    conn.close()


def time_reports(url: str, repeats: int = 3) -> dict:
    os.environ["CARESERVICE_DATABASE_URL"] = url
    from careservice import create_app
    from careservice.core.auth import Actor
    from careservice.metrics.coverage import coverage

    app = create_app({"ENV": "development", "DATABASE_URL": url, "LOG_LEVEL": "WARNING"})
    figures = {}
    with app.app_context():
        for group_by, level in (("region", "village"), ("region", "county"), ("age_band", None)):
            timings = []
            for _ in range(repeats):
                began = time.perf_counter()
                result = coverage(Actor.system("bench"), start=NOW - timedelta(days=90), end=NOW,
                                  group_by=group_by, level=level or "village")
                timings.append(time.perf_counter() - began)
            figures[f"{group_by}/{level or '-'}"] = (statistics.median(timings) * 1000,
                                                     len(result["rows"]))
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=200_000)
    parser.add_argument("--appointments", type=int, default=1_000_000)
    parser.add_argument("--database", choices=("postgresql", "sqlite", "both"), default="both")
    args = parser.parse_args()
    began = time.perf_counter()
    data = rows(args.residents, args.appointments)
    print(f"generated {args.residents} residents, {args.appointments} appointments, "
          f"{COUNTIES * VILLAGES_PER_COUNTY} villages in {time.perf_counter() - began:.1f} s")
    import subprocess

    results = {}
    if args.database in ("postgresql", "both"):
        with scratch_database("metrics") as url:
            load_postgresql(url, data)
            results["PostgreSQL raw"] = time_reports(url)
    if args.database in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/metrics.db"
            subprocess.run([str(ROOT / ".venv/bin/flask"), "--app", "careservice", "db",
                            "upgrade"], cwd=ROOT, check=True, capture_output=True,
                           env={**os.environ, "CARESERVICE_DATABASE_URL": url})
            load_sqlite(f"{tmp}/metrics.db", data)
            results["SQLite raw"] = time_reports(url)
    for database, figures in results.items():
        for grouping, (ms, count) in figures.items():
            print(f"  {database:<16} {grouping:<18} {ms:9.0f} ms  ({count} rows)")
    checks = []
    if "PostgreSQL raw" in results:
        worst = max(ms for ms, _ in results["PostgreSQL raw"].values())
        checks.append(("raw report on PostgreSQL", f"{worst:.0f} ms", worst < 300))
    checks.append(("report from rollups", "not built", False))
    return report(checks)


if __name__ == "__main__":
    sys.exit(main())
