"""SMS dispatch throughput, exactly-once and crash recovery, on PostgreSQL.

Enqueues 20,000 due reminders, starts two `flask scheduler run` processes that
dispatch them through the real twilio SDK to a local fake Twilio server
answering 5% 503s and 1% ambiguous timeouts (the message is accepted, the
answer never comes), SIGKILLs one process part-way, and waits until every
reminder is settled. Prints throughput, the dispatchers' peak memory,
duplicates (must be 0) and lost (must be 0).

    .venv/bin/python bench/reminders.py [--reminders 20000]

Target: at least 500 reminders per second with the rate limit off.
"""

import argparse
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import PG, admin_sql, report  # noqa: E402
from tests.fake_twilio import FakeTwilio  # noqa: E402

FINAL = ("sent", "delivered", "failed", "undelivered", "suppressed", "cancelled")


def seed(dsn: str, count: int) -> None:
    """Residents with distinct numbers, one booked session each, one due reminder each."""
    now = datetime.now(UTC)
    start = now + timedelta(days=2)
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("""INSERT INTO regions (name, kind, path, zone, setting, timezone,
                       created_at, updated_at) VALUES ('Bench', 'village', '/1/', 'west',
                       'rural', 'Asia/Shanghai', now(), now()) RETURNING id""")
        region = cur.fetchone()[0]
        cur.execute("""INSERT INTO service_types (code, name, modality, duration_minutes,
                       buffer_minutes, created_at, updated_at)
                       VALUES ('gp_consult', 'GP', 'video', 20, 5, now(), now()) RETURNING id""")
        service = cur.fetchone()[0]
        providers = 200
        cur.executemany(
            """INSERT INTO providers (kind, name, skills, languages, modalities, timezone,
               home_region_id, max_sessions_per_day, active, calendar_token, created_at,
               updated_at) VALUES ('clinician', %s, '[]', '["zh-CN"]', '["video"]',
               'Asia/Shanghai', %s, 200, true, %s, now(), now())""",
            [(f"Dr. {i}", region, f"bench-token-{i}") for i in range(providers)])
        with cur.copy("COPY residents (name, phone, birth_date, sex, region_id, languages, "
                      "sms_consent, created_at, updated_at) FROM STDIN") as copy:
            for i in range(count):
                copy.write_row((f"Resident {i}", f"+861390{i:07d}", "1940-01-01", "female",
                                region, '["zh-CN"]', True, now, now))
        cur.execute("SELECT min(id) FROM residents")
        first_resident = cur.fetchone()[0]
        cur.execute("SELECT min(id) FROM providers")
        first_provider = cur.fetchone()[0]
        with cur.copy("COPY appointments (resident_id, provider_id, service_type_id, start_at, "
                      "end_at, block_end_at, modality, join_url, status, on_behalf, recorded, "
                      "version, created_at, updated_at) FROM STDIN") as copy:
            for i in range(count):
                at = start + timedelta(minutes=30 * (i // providers))
                copy.write_row((first_resident + i, first_provider + i % providers, service, at,
                                at + timedelta(minutes=20), at + timedelta(minutes=25), "video",
                                f"https://meet.example.org/b/{i}", "booked", True, False, 1,
                                now, now))
        cur.execute("SELECT min(id) FROM appointments")
        first_appointment = cur.fetchone()[0]
        with cur.copy("COPY reminders (dedupe_key, kind, channel, appointment_id, "
                      "appointment_start, resident_id, \"to\", language, body, segments, "
                      "send_at, status, attempts, created_at, updated_at) FROM STDIN") as copy:
            for i in range(count):
                at = start + timedelta(minutes=30 * (i // providers))
                copy.write_row((f"bench:{i}", "reminder_24h", "sms", first_appointment + i, at,
                                first_resident + i, f"+861390{i:07d}", "zh-CN",
                                f"Resident {i}: health appointment {at:%m-%d %H:%M}. "
                                f"Join https://meet.example.org/b/{i}", 1, now, "pending", 0,
                                now, now))
        conn.commit()


def statuses(dsn: str) -> Counter:
    with psycopg.connect(dsn) as conn:
        return Counter(dict(conn.execute(
            "SELECT status, count(*) FROM reminders GROUP BY status").fetchall()))


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reminders", type=int, default=20_000)
    parser.add_argument("--kill-at", type=float, default=0.3,
                        help="share of reminders sent when one dispatcher is killed")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--verbose", action="store_true", help="print progress every 5 s")
    parser.add_argument("--concurrency", type=int, default=8, help="sends in flight per process")
    args = parser.parse_args()

    name = f"careservice_bench_sms_{os.getpid()}"
    dsn = f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{name}"
    url = dsn.replace("postgresql://", "postgresql+psycopg://")
    admin_sql(f"CREATE DATABASE {name}")
    processes: list[subprocess.Popen] = []
    fake = FakeTwilio()
    try:
        subprocess.run([str(ROOT / ".venv/bin/flask"), "--app", "careservice", "db", "upgrade"],
                       cwd=ROOT, env={**os.environ, "CARESERVICE_DATABASE_URL": url},
                       check=True, capture_output=True)
        began_seed = time.perf_counter()
        seed(dsn, args.reminders)
        seeded = time.perf_counter() - began_seed
        fake.start()
        fake.set_default(fake.fail_rate(rate_503=0.05, rate_timeout=0.01, seed=7,
                                        hang_seconds=2.0))
        env = {**os.environ, "CARESERVICE_ENV": "production", "CARESERVICE_DATABASE_URL": url,
               "CARESERVICE_SECRET_KEY": "bench", "CARESERVICE_SMS_BACKEND": "twilio",
               "TWILIO_ACCOUNT_SID": fake.account_sid, "TWILIO_AUTH_TOKEN": fake.auth_token,
               "TWILIO_FROM_NUMBER": "+15005550006", "TWILIO_API_BASE_URL": fake.base_url,
               "CARESERVICE_QUIET_HOURS": "off", "CARESERVICE_SMS_RATE_PER_SECOND": "0",
               "CARESERVICE_DISPATCH_INTERVAL_SECONDS": "1",
               "CARESERVICE_DISPATCH_CONCURRENCY": str(args.concurrency),
               "CARESERVICE_DISPATCH_BATCH": "200",
               "CARESERVICE_DISPATCH_LEASE_SECONDS": "10",
               "CARESERVICE_RECONCILE_AFTER_SECONDS": "3", "CARESERVICE_SMS_TIMEOUT_SECONDS": "1",
               "CARESERVICE_RECONCILE_INTERVAL_SECONDS": "2",
               "CARESERVICE_SMS_RETRY_BASE_SECONDS": "1", "CARESERVICE_LOG_LEVEL": "WARNING"}
        began = time.perf_counter()
        for _ in range(2):
            processes.append(subprocess.Popen(
                [str(ROOT / ".venv/bin/flask"), "--app", "careservice", "scheduler", "run"],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        killed_at, killed_wall = None, None
        peak = {}
        while time.perf_counter() - began < args.timeout:
            time.sleep(0.5)
            counts = statuses(dsn)
            done = sum(counts[s] for s in FINAL)
            if args.verbose and int((time.perf_counter() - began) * 2) % 10 == 0:
                print(f"  {time.perf_counter() - began:6.1f} s {dict(counts)}", flush=True)
            for process in processes:
                if process.poll() is None:
                    peak[process.pid] = peak_rss_mb(process.pid)
            if killed_at is None and counts["sent"] >= args.kill_at * args.reminders:
                processes[1].send_signal(signal.SIGKILL)
                killed_at = time.perf_counter() - began
                killed_wall = datetime.now(UTC)
            if done == args.reminders:
                break
        elapsed = time.perf_counter() - began
        counts = statuses(dsn)
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        fake.stop()

    accepted = Counter(message["to"] for message in fake.messages.values())
    duplicates = sum(n - 1 for n in accepted.values() if n > 1)
    with psycopg.connect(dsn) as conn:
        numbers = [row[0] for row in conn.execute("SELECT \"to\" FROM reminders")]
        unsettled = conn.execute("SELECT count(*) FROM reminders WHERE status NOT IN "
                                 "('sent', 'delivered')").fetchone()[0]
    lost = sum(1 for number in numbers if accepted[number] == 0)
    admin_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    outcomes = Counter(request.status for request in fake.create_requests())
    sent = counts["sent"] + counts["delivered"]
    rate = sent / elapsed
    # Steady state: the middle 80% of accepted messages, by the fake's clock.
    stamps = sorted(r.received_at for r in fake.create_requests() if r.status == 201)
    low, high = stamps[len(stamps) // 10], stamps[len(stamps) * 9 // 10]
    steady = 0.8 * len(stamps) / max((high - low).total_seconds(), 1e-9)
    # Both processes at work: from the first second until the kill.
    both = [s for s in stamps if killed_wall is None or s <= killed_wall]
    two = (len(both) - 1) / max((both[-1] - both[0]).total_seconds(), 1e-9) if both else 0

    print(f"{args.reminders} reminders, 2 dispatcher processes ({args.concurrency} sends in "
          f"flight each), "
          f"PostgreSQL, fake Twilio with 5% 503 and 1% accept-then-timeout; seeded in "
          f"{seeded:.1f} s")
    print(f"  settled in {elapsed:.1f} s; one dispatcher SIGKILLed at {killed_at or 0:.1f} s")
    print(f"  reminder statuses: {dict(counts)}")
    print(f"  fake Twilio answers: {dict(sorted(outcomes.items(), key=str))}")
    print("  peak RSS per dispatcher: " + ", ".join(f"{mb:.0f} MB" for mb in peak.values()))
    print(f"  overall {rate:.0f} sent/s (recovery tail included)")
    for violation in fake.violations[:5]:
        print(f"  spec violation: {violation}")
    print(f"  two dispatchers until the kill: {two:.0f} sent/s; steady (middle 80%, mostly "
          f"one dispatcher after the kill): {steady:.0f} sent/s")
    checks = [
        ("throughput (two dispatchers)", f"{two:.0f}/s", two >= 500),
        ("duplicates", str(duplicates), duplicates == 0),
        ("lost (never reached Twilio)", str(lost), lost == 0),
        ("not sent at the end", str(unsettled), unsettled == 0),
    ]
    return report(checks)


if __name__ == "__main__":
    sys.exit(main())
