"""Booking throughput and latency under gunicorn on PostgreSQL.

Starts gunicorn (4 workers) on 127.0.0.1 against a fresh PostgreSQL database,
loads it with concurrent clients, and prints bookings per second and p50/p99
latency for spread-out bookings and for a hot slot, next to the same figures
for a bare reference endpoint (one INSERT behind the same advisory lock) in the
same run. Afterwards it counts overlapping live appointments in SQL (must be 0).

    .venv/bin/python bench/booking.py [--requests 2000] [--clients 8]

Targets: full booking >= 60% of the bare throughput, p99 < 50 ms, hot-slot
losers' p99 < 100 ms, zero overlaps.
"""

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import PG, admin_sql, report  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(url: str, providers: int, residents: int) -> tuple[str, list[int], list[int]]:
    """Regions, a service, providers available around the clock, residents, an admin token."""
    os.environ["CARESERVICE_DATABASE_URL"] = url
    import sqlalchemy as sa

    from careservice import create_app
    from careservice.core.auth import Actor
    from careservice.extensions import db
    from careservice.people import services, users
    from careservice.people.models import Resident
    from careservice.scheduling import services as service_types
    from careservice.scheduling.models import AvailabilityRule

    app = create_app({"ENV": "development", "LOG_LEVEL": "WARNING"})
    system = Actor.system("bench")
    with app.app_context():
        province = services.create_region(system, {"name": "Bench", "kind": "province",
                                                   "zone": "west", "setting": "rural"})
        village = services.create_region(system, {"name": "Village", "kind": "village",
                                                  "parent_id": province.id})
        service_types.create_service_type(system, {
            "code": "gp_consult", "name": "GP", "modality": "video", "duration_minutes": 20,
            "buffer_minutes": 5, "required_skill": "gp"})
        provider_ids = []
        for i in range(providers):
            provider = services.create_provider(system, {
                "kind": "clinician", "name": f"Dr. {i}", "home_region_id": village.id,
                "skills": ["gp"], "max_sessions_per_day": 60, "timezone": "UTC"})
            provider_ids.append(provider.id)
        db.session.execute(sa.insert(AvailabilityRule), [
            {"provider_id": pid, "weekday": day, "start_time": wall(0), "end_time": wall(23, 55)}
            for pid in provider_ids for day in range(7)])
        db.session.execute(sa.insert(Resident), [
            {"name": f"Resident {i}", "birth_date": date(1940, 1, 1), "sex": "female",
             "region_id": village.id, "languages": ["zh-CN"], "sms_consent": True}
            for i in range(residents)])
        db.session.commit()
        resident_ids = db.session.execute(
            sa.select(Resident.id).order_by(Resident.id)).scalars().all()
        admin = users.create_user(system, "bench-admin", "bench-password", "admin")
        token = users.issue_token(admin, hours=4)
        db.session.execute(sa.text(
            "CREATE TABLE bench_bare (id serial PRIMARY KEY, provider_id int NOT NULL, "
            "start_at timestamptz NOT NULL, UNIQUE (provider_id, start_at))"))
        db.session.commit()
    return token, provider_ids, resident_ids


def start_gunicorn(url: str, port: int, workers: int) -> subprocess.Popen:
    env = {**os.environ, "CARESERVICE_ENV": "production", "CARESERVICE_DATABASE_URL": url,
           "CARESERVICE_SECRET_KEY": "bench-secret", "CARESERVICE_SMS_BACKEND": "console",
           "CARESERVICE_MIN_NOTICE_MINUTES": "0", "CARESERVICE_LOG_LEVEL": "WARNING",
           "TWILIO_ACCOUNT_SID": "ACbench", "TWILIO_AUTH_TOKEN": "bench",
           "TWILIO_FROM_NUMBER": "+15005550006"}
    process = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "-w", str(workers), "-b", f"127.0.0.1:{port}",
         "--backlog", "512", "bench.wsgi_bench:app"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(100):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return process
        except OSError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("gunicorn did not become ready:\n" + process.stderr.read().decode()[-2000:])


def load(port: int, requests: list[tuple[str, dict, dict]], clients: int,
         rounds: list[list[int]] | None = None):
    """Send the requests from `clients` threads; (status, seconds) per request.

    With `rounds`, the request indexes of each round start together (a barrier),
    so that every round is a race for one slot.
    """
    results: list[tuple[int, float] | None] = [None] * len(requests)

    def send(index: int) -> None:
        path, body, headers = requests[index]
        payload = json.dumps(body)
        began = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", path, payload, {"Content-Type": "application/json", **headers})
        status = conn.getresponse().status
        results[index] = (status, time.perf_counter() - began)
        conn.close()

    began = time.perf_counter()
    if rounds is None:
        cursor = iter(range(len(requests)))
        lock = threading.Lock()

        def worker():
            while True:
                with lock:
                    index = next(cursor, None)
                if index is None:
                    return
                send(index)

        threads = [threading.Thread(target=worker) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:
        for indexes in rounds:
            barrier = threading.Barrier(len(indexes))

            def racer(index, barrier=barrier):
                barrier.wait()
                send(index)

            threads = [threading.Thread(target=racer, args=(i,)) for i in indexes]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    elapsed = time.perf_counter() - began
    return results, elapsed


def cpu_seconds() -> dict[str, float]:
    """CPU time used so far by the server workers, PostgreSQL and this load generator."""
    tick = os.sysconf("SC_CLK_TCK")
    totals = {"gunicorn": 0.0, "postgres": 0.0, "client": 0.0}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        used = (int(fields[11]) + int(fields[12])) / tick
        if int(entry.name) == os.getpid():
            totals["client"] += used
        elif b"gunicorn" in cmdline:
            totals["gunicorn"] += used
        elif stat[stat.index("(") + 1:stat.rindex(")")] == "postgres":
            totals["postgres"] += used
    return totals


def measured(name: str, run) -> dict:
    """Run a load, and add the CPU milliseconds each side spent per request."""
    before = cpu_seconds()
    results, elapsed = run()
    after = cpu_seconds()
    figures = summarise(name, results, elapsed)
    figures["cpu_ms"] = {side: (after[side] - before[side]) * 1000 / len(results)
                         for side in before}
    return figures


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def summarise(name: str, results, elapsed: float) -> dict:
    ok = [seconds for status, seconds in results if status == 201]
    lost = [seconds for status, seconds in results if status == 409]
    other = [status for status, _ in results if status not in (201, 409)]
    return {"name": name, "created": len(ok), "refused": len(lost), "errors": len(other),
            "per_second": len(results) / elapsed, "created_per_second": len(ok) / elapsed,
            "p50_ms": percentile(ok + lost, 50) * 1000, "p99_ms": percentile(ok + lost, 99) * 1000,
            "loser_p99_ms": percentile(lost, 99) * 1000, "other_statuses": sorted(set(other))}


def overlaps(url: str) -> int:
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        return conn.execute("""
            SELECT count(*) FROM appointments a JOIN appointments b
              ON a.id < b.id AND a.status <> 'cancelled' AND b.status <> 'cancelled'
             AND ((a.provider_id = b.provider_id
                   AND a.start_at < b.block_end_at AND b.start_at < a.block_end_at)
               OR (a.resident_id = b.resident_id
                   AND a.start_at < b.end_at AND b.start_at < a.end_at))
        """).fetchone()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    # One client per worker: a closed loop that keeps every worker busy
    # without measuring time spent queueing in the listen backlog.
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--hot-rounds", type=int, default=60)
    args = parser.parse_args()

    name = f"careservice_bench_{os.getpid()}"
    url = f"postgresql+psycopg://{PG['user']}@{PG['host']}:{PG['port']}/{name}"
    admin_sql(f"CREATE DATABASE {name}")
    process = None
    try:
        subprocess.run([str(ROOT / ".venv/bin/flask"), "--app", "careservice", "db", "upgrade"],
                       cwd=ROOT, env={**os.environ, "CARESERVICE_DATABASE_URL": url},
                       check=True, capture_output=True)
        providers = 100
        token, provider_ids, resident_ids = seed(url, providers, args.requests + 1)
        headers = {"Authorization": f"Bearer {token}"}
        port = free_port()
        process = start_gunicorn(url, port, args.workers)

        base = datetime.combine(date.today() + timedelta(days=2), wall(0), tzinfo=UTC)
        # Spread: every request its own provider slot and resident, no conflicts.
        spread_full, spread_bare = [], []
        for i in range(args.requests):
            pid = provider_ids[i % providers]
            start = base + timedelta(minutes=25 * (i // providers))
            spread_full.append(("/api/v1/appointments", {
                "resident_id": resident_ids[i], "provider_id": pid,
                "service_type": "gp_consult", "start": start.isoformat()}, headers))
            spread_bare.append(("/bench/bare", {"provider_id": pid,
                                                "start_at": start.isoformat()}, {}))
        # Warm both paths (imports, connection pools) before measuring.
        warm_day = base + timedelta(days=20)
        load(port, [("/api/v1/appointments", {
            "resident_id": resident_ids[-1], "provider_id": provider_ids[0],
            "service_type": "gp_consult", "start": warm_day.isoformat()}, headers)] * 20,
             args.clients)
        load(port, [("/bench/bare", {"provider_id": 0, "start_at": warm_day.isoformat()}, {})]
             * 20, args.clients)

        figures = []
        figures.append(measured("bare, spread", lambda: load(port, spread_bare, args.clients)))
        figures.append(measured("booking, spread",
                                lambda: load(port, spread_full, args.clients)))

        # Hot slot: each round, every client races for one slot of one provider.
        hot_full, hot_bare, rounds = [], [], []
        hot_day = base + timedelta(days=10)
        for r in range(args.hot_rounds):
            start = hot_day + timedelta(days=r // 50, minutes=25 * (r % 50))
            indexes = []
            for c in range(args.clients):
                indexes.append(len(hot_full))
                hot_full.append(("/api/v1/appointments", {
                    "resident_id": resident_ids[(r * args.clients + c) % len(resident_ids)],
                    "provider_id": provider_ids[r % providers], "service_type": "gp_consult",
                    "start": start.isoformat()}, headers))
                hot_bare.append(("/bench/bare", {"provider_id": provider_ids[r % providers],
                                                 "start_at": start.isoformat()}, {}))
            rounds.append(indexes)
        figures.append(measured("bare, hot slot",
                                lambda: load(port, hot_bare, args.clients, rounds)))
        figures.append(measured("booking, hot slot",
                                lambda: load(port, hot_full, args.clients, rounds)))
    finally:
        if process is not None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    overlap_count = overlaps(url)
    admin_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    print(f"gunicorn {args.workers} workers, {args.clients} clients, "
          f"{args.requests} spread bookings, {args.hot_rounds} hot-slot rounds, PostgreSQL")
    print(f"{'run':<20}{'req/s':>9}{'created/s':>11}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'loser p99':>11}{'201':>6}{'409':>6}{'other':>7}"
          f"{'CPU ms/request: app':>22}{'db':>6}{'client':>8}")
    for f in figures:
        cpu = f["cpu_ms"]
        print(f"{f['name']:<20}{f['per_second']:>9.0f}{f['created_per_second']:>11.0f}"
              f"{f['p50_ms']:>9.1f}{f['p99_ms']:>9.1f}{f['loser_p99_ms']:>11.1f}"
              f"{f['created']:>6}{f['refused']:>6}{f['errors']:>7}"
              f"{cpu['gunicorn']:>22.1f}{cpu['postgres']:>6.1f}{cpu['client']:>8.1f}")
    bare, full, hot = figures[0], figures[1], figures[3]
    ratio = full["per_second"] / bare["per_second"]
    checks = [
        ("booking throughput / bare", f"{ratio:.0%}", ratio >= 0.6),
        ("booking p99 (spread)", f"{full['p99_ms']:.1f} ms", full["p99_ms"] < 50),
        ("hot-slot losers p99", f"{hot['loser_p99_ms']:.1f} ms", hot["loser_p99_ms"] < 100),
        ("hot-slot winners per round", f"{hot['created']}/{args.hot_rounds}",
         hot["created"] == args.hot_rounds),
        ("errors (not 201/409)", str(sum(f["errors"] for f in figures)),
         all(f["errors"] == 0 for f in figures)),
        ("overlapping live appointments", str(overlap_count), overlap_count == 0),
    ]
    return report(checks)


if __name__ == "__main__":
    sys.exit(main())
