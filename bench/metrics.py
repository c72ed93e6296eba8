"""Coverage report time on a province-sized dataset, from raw rows and from rollups.

Generates residents in 1,000 villages of 20 counties (five eastern districts
partnered with western counties), 600 providers, and appointments spread over
the year before 2026-12-01 (about a twelfth of them in any month), a quarter
of them taken from care requests, a third with an SMS reminder, plus open and
expired requests. Loads them in bulk (COPY on PostgreSQL, executemany on
SQLite), then times the coverage report for November 2026 (the calendar month
in DEFAULT_TIMEZONE) grouped by village and by county: from the raw rows
first, then after building that month's rollup (the build is timed too) from
the rollup. Medians of several runs; checks that both give the same report,
and prints the figures next to the targets of issue 6 (on PostgreSQL: rollups
under 50 ms, raw under 300 ms).

    .venv/bin/python bench/metrics.py [--residents 200000] [--appointments 1000000]
                                      [--database postgresql|sqlite|both] [--runs 5]
"""

import argparse
import contextlib
import functools
import gc
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import report, scratch_database  # noqa: E402

VILLAGES_PER_COUNTY, COUNTIES, PROVIDERS = 50, 20, 600
NOW = datetime(2026, 12, 1, tzinfo=UTC)
MONTH = date(2026, 11, 1)
GROUPINGS = (("region", "village"), ("region", "county"))
# (id, code, name, modality, duration, buffer, provider kind)
SERVICES = ((1, "gp_consult", "GP consultation", "video", 20, 5, "clinician"),
            (2, "elder_home_visit", "Elder home visit", "home_visit", 60, 15, "caregiver"))
STATUSES = ["completed"] * 14 + ["no_show"] * 2 + ["cancelled"] * 2 + ["booked", "confirmed"]
SMS = ["delivered"] * 17 + ["undelivered"] * 2 + ["failed"]


def generate(residents: int, appointments: int, seed: int = 7) -> dict:
    """Every table's rows as plain tuples, in the column order of `load_*`."""
    rng = random.Random(seed)
    regions = [[1, "Province", "province", None, "/1/", "west", "rural", None]]
    villages, counties = [], []
    next_id = 2
    for c in range(COUNTIES):
        county = next_id
        next_id += 1
        zone = "east" if c % 4 == 0 else "west"
        regions.append([county, f"County {c}", "county", 1, f"/1/{county}/", zone,
                        "urban" if zone == "east" else "rural", None])
        counties.append(county)
        for v in range(VILLAGES_PER_COUNTY):
            setting = "urban" if zone == "east" or v % 10 == 0 else "rural"
            regions.append([next_id, f"Village {c}-{v}", "village", county,
                            f"/1/{county}/{next_id}/", zone, setting, None])
            villages.append(next_id)
            next_id += 1
    by_id = {row[0]: row for row in regions}
    east = [county for county in counties if by_id[county][5] == "east"]
    west = [county for county in counties if by_id[county][5] == "west"]
    for a, b in zip(east, west, strict=False):  # the east-west partnership
        by_id[a][7], by_id[b][7] = b, a
    people = [(i + 1, f"R{i}", rng.choice(villages),
               date(1930, 1, 1) + timedelta(days=rng.randrange(33000)),
               rng.choice(("female", "male")),
               NOW - timedelta(days=rng.randrange(10, 900))) for i in range(residents)]
    providers = [(i + 1, "clinician" if i % 3 else "caregiver",
                  rng.choice(east) if i % 3 else rng.choice(villages)) for i in range(PROVIDERS)]
    clinicians = [p for p, kind, _ in providers if kind == "clinician"]
    caregivers = [p for p, kind, _ in providers if kind == "caregiver"]
    first_day = NOW - timedelta(days=365)
    sessions, requests, reminders = [], [], []
    for i in range(appointments):
        # 08:00 to 17:30 in Shanghai on a day of the year before NOW.
        start = first_day + timedelta(days=rng.randrange(365), minutes=30 * rng.randrange(20))
        resident = rng.randrange(residents) + 1
        home_visit = rng.random() < 0.3
        service = SERVICES[1] if home_visit else SERVICES[0]
        provider = rng.choice(caregivers if home_visit else clinicians)
        status = rng.choice(STATUSES)
        sessions.append((i + 1, resident, provider, service[0], start,
                         start + timedelta(minutes=service[4]),
                         start + timedelta(minutes=service[4] + service[5]), service[3], status,
                         rng.random() < 0.2))
        if i % 4 == 0:
            created = start - timedelta(minutes=rng.randrange(60, 30 * 24 * 60))
            requests.append((resident, service[0], created, created + timedelta(days=30),
                             "booked", i + 1, created))
        if i % 3 == 0:
            reminders.append((f"bench-{i}", i + 1, start, resident, start - timedelta(hours=24),
                              rng.choice(SMS)))
    for _ in range(appointments // 50):
        earliest = first_day + timedelta(days=rng.randrange(380), hours=rng.randrange(24))
        requests.append((rng.randrange(residents) + 1, rng.choice(SERVICES)[0], earliest,
                         earliest + timedelta(days=rng.randrange(3, 45)),
                         rng.choice(("open", "expired")), None, earliest))
    return {"regions": regions, "residents": people, "providers": providers,
            "appointments": sessions, "care_requests": requests, "reminders": reminders}


def load_postgresql(url: str, data: dict) -> None:
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        cur = conn.cursor()
        # Bulk load: no overlap to check row by row (the generator ignores it).
        cur.execute("ALTER TABLE appointments DROP CONSTRAINT ex_appointments_provider_overlap")
        cur.execute("ALTER TABLE appointments DROP CONSTRAINT ex_appointments_resident_overlap")
        for table, columns, rows in _tables(data, NOW):
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        conn.commit()
        conn.autocommit = True
        cur.execute("VACUUM ANALYZE")


def load_sqlite(path: str, data: dict) -> None:
    conn = sqlite3.connect(path)
    naive = NOW.replace(tzinfo=None)
    for table, columns, rows in _tables(data, naive):
        marks = ", ".join("?" * len(columns))
        conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                         ([_naive(value) for value in row] for row in rows))
    conn.execute("ANALYZE")
    conn.commit()
    conn.close()


def _naive(value):
    """SQLite holds instants as naive UTC (core.time.UTCDateTime)."""
    return value.replace(tzinfo=None) if isinstance(value, datetime) else value


def _tables(data: dict, now):
    """(table, columns, rows) in load order."""
    yield ("regions", ("id", "name", "kind", "parent_id", "path", "zone", "setting",
                       "partner_region_id", "timezone", "created_at", "updated_at"),
           ((*row, "Asia/Shanghai", now, now) for row in data["regions"]))
    yield ("service_types", ("id", "code", "name", "modality", "duration_minutes",
                             "buffer_minutes", "created_at", "updated_at"),
           ((*service[:6], now, now) for service in SERVICES))
    yield ("providers", ("id", "kind", "name", "skills", "languages", "modalities", "timezone",
                         "home_region_id", "max_sessions_per_day", "active", "calendar_token",
                         "availability_tag", "created_at", "updated_at"),
           ((pid, kind, f"P {pid}", "[]", "[]", "[]", "Asia/Shanghai", home, 50, True,
             f"t{pid}", "0", now, now) for pid, kind, home in data["providers"]))
    yield ("residents", ("id", "name", "region_id", "birth_date", "sex", "languages",
                         "sms_consent", "created_at", "updated_at"),
           ((rid, name, village, born, sex, "[]", True, created, now)
            for rid, name, village, born, sex, created in data["residents"]))
    yield ("appointments", ("id", "resident_id", "provider_id", "service_type_id", "start_at",
                            "end_at", "block_end_at", "modality", "status", "recorded",
                            "on_behalf", "version", "created_at", "updated_at"),
           ((*row, True, 1, now, now) for row in data["appointments"]))
    yield ("care_requests", ("resident_id", "service_type_id", "earliest", "latest", "status",
                             "appointment_id", "created_at", "urgency", "updated_at"),
           ((*row, "routine", now) for row in data["care_requests"]))
    yield ("reminders", ("dedupe_key", "appointment_id", "appointment_start", "resident_id",
                         "sent_at", "status", "send_at", "kind", "channel", "\"to\"", "language",
                         "body", "segments", "attempts", "created_at", "updated_at"),
           ((*row, row[4], "reminder_24h", "sms", "+8613800138000", "zh-CN", "Reminder", 1, 1,
             now, now) for row in data["reminders"]))


def median_ms(run, runs: int) -> tuple[float, object]:
    timings, result = [], None
    for _ in range(runs):
        began = time.perf_counter()
        result = run()
        timings.append((time.perf_counter() - began) * 1000)
    return statistics.median(timings), result


def time_reports(url: str, runs: int) -> dict:
    """Raw, then the month's rollup built, then from the rollup: {label: figure}."""
    from careservice import create_app
    from careservice.core.auth import Actor
    from careservice.core.time import clock
    from careservice.metrics import rollups
    from careservice.metrics.coverage import coverage
    from careservice.metrics.models import PeriodKind

    app = create_app({"ENV": "development", "DATABASE_URL": url, "LOG_LEVEL": "WARNING"})
    clock.set(NOW + timedelta(hours=9))
    actor = Actor.system("bench")
    figures = {}
    with app.app_context():
        tz_name = app.config["DEFAULT_TIMEZONE"]
        start, end = rollups.span(PeriodKind.MONTH, MONTH, tz_name)

        def reports(source: str) -> dict:
            out = {}
            for group_by, level in GROUPINGS:
                ms, result = median_ms(functools.partial(
                    coverage, actor, start=start, end=end, group_by=group_by, level=level), runs)
                assert result["source"] == source, result["source"]
                figures[f"{source} by {level}"] = (ms, len(result["rows"]))
                out[level] = result
            return out

        raw = reports("raw")
        began = time.perf_counter()
        cells = rollups.rebuild(PeriodKind.MONTH, MONTH, tz_name)
        figures["rollup build"] = ((time.perf_counter() - began) * 1000, cells)
        stored = reports("rollup")
        figures["identical"] = all(
            {**raw[level], "source": None} == {**stored[level], "source": None}
            for level in raw)
    clock.reset()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=200_000)
    parser.add_argument("--appointments", type=int, default=1_000_000)
    parser.add_argument("--database", choices=("postgresql", "sqlite", "both"), default="both")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    began = time.perf_counter()
    data = generate(args.residents, args.appointments)
    in_month = sum(1 for row in data["appointments"]
                   if datetime(2026, 10, 31, 16, tzinfo=UTC) <= row[4]
                   < datetime(2026, 11, 30, 16, tzinfo=UTC))
    print(f"generated {args.residents} residents, {args.appointments} appointments "
          f"({in_month} in November), {len(data['care_requests'])} care requests, "
          f"{len(data['reminders'])} reminders, {COUNTIES * VILLAGES_PER_COUNTY} villages "
          f"in {time.perf_counter() - began:.1f} s")

    # Both databases are loaded first and the generated rows freed before any timing: a
    # server process holds no millions of tuples, and here they made every full
    # collection of the garbage collector cost hundreds of milliseconds in the reports.
    urls = {}
    with contextlib.ExitStack() as stack:
        if args.database in ("postgresql", "both"):
            urls["PostgreSQL"] = url = stack.enter_context(scratch_database("metrics"))
            began = time.perf_counter()
            load_postgresql(url, data)
            print(f"PostgreSQL: loaded in {time.perf_counter() - began:.0f} s")
        if args.database in ("sqlite", "both"):
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
            urls["SQLite"] = url = f"sqlite:///{tmp}/metrics.db"
            subprocess.run([str(ROOT / ".venv/bin/flask"), "--app", "careservice", "db",
                            "upgrade"], cwd=ROOT, check=True, capture_output=True,
                           env={**os.environ, "CARESERVICE_DATABASE_URL": url})
            began = time.perf_counter()
            load_sqlite(f"{tmp}/metrics.db", data)
            print(f"SQLite: loaded in {time.perf_counter() - began:.0f} s")
        del data
        gc.collect()
        results = {database: time_reports(url, args.runs) for database, url in urls.items()}

    print(f"coverage report for November 2026, medians of {args.runs} runs:")
    for database, figures in results.items():
        for label, figure in figures.items():
            if label == "identical":
                continue
            ms, count = figure
            unit = "cells" if label == "rollup build" else "rows"
            print(f"  {database:<11} {label:<20} {ms:9.1f} ms  ({count} {unit})")
    checks = []
    for database, figures in results.items():
        checks.append((f"{database}: rollup == raw", "yes" if figures["identical"] else "NO",
                       figures["identical"]))
    if "PostgreSQL" in results:
        figures = results["PostgreSQL"]
        rollup = max(figures[f"rollup by {level}"][0] for _, level in GROUPINGS)
        raw = max(figures[f"raw by {level}"][0] for _, level in GROUPINGS)
        checks.append(("PostgreSQL from rollups < 50 ms", f"{rollup:.1f} ms", rollup < 50))
        checks.append(("PostgreSQL raw < 300 ms", f"{raw:.0f} ms", raw < 300))
    return report(checks)


if __name__ == "__main__":
    sys.exit(main())
