"""Replaying weeks of demand on the demo province, to compare waitlist policies.

Each simulated day, at 07:00 in the province: residents ask for care (more of
the old and of the remote villages; home visits for the oldest), the policy
places what is waiting, yesterday's sessions are held (most completed, some
missed), SMS go out through the memory backend, and the scheduler's jobs run.
Everything goes through the real booking, matching and reminder code, with
time advanced by the service's controllable clock.

- fifo: first come, first served; once a day every open request, oldest
  first, takes the earliest free time any provider who may serve it has in its
  window (`batch.first_come`), or keeps waiting.
- equity: once a day the batch matcher (`matching.batch`) assigns every open
  request at once, maximising weighted coverage (urgent, never served, 80 and
  over, least-served villages first).
"""

import random
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from careservice.core.auth import Actor
from careservice.core.time import clock, utcnow
from careservice.extensions import db
from careservice.matching import batch
from careservice.metrics.coverage import age_band, coverage
from careservice.people.models import Region, Resident
from careservice.reminders.dispatch import dispatch_due
from careservice.scheduling import booking, jobs
from careservice.scheduling.care_requests import create_care_request
from careservice.scheduling.models import Appointment, CareRequest, RequestStatus, Status

POLICIES = ("fifo", "equity")
PROVINCE = ZoneInfo("Asia/Shanghai")
FIRST_DAY = date(2027, 3, 1)  # a Monday: the same seed gives the same run
REQUESTS_PER_DAY = 110
WINDOW_DAYS = 7
SHOWS_UP = 0.88
ACTOR = Actor.system("demo-simulate")


def simulate(*, weeks: int, policy: str, seed: int = 2026, progress=None) -> dict:
    """Run the simulation on the demo province (seeded, empty of sessions); the
    coverage report of the simulated weeks, by county and by village."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}")
    rng = random.Random(seed)
    residents = _residents()
    first = datetime.combine(FIRST_DAY, time(7), tzinfo=PROVINCE).astimezone(UTC)
    try:
        for day in range(weeks * 7):
            clock.set(first + timedelta(days=day))
            _hold_sessions(rng, utcnow() - timedelta(days=1), utcnow())
            _new_requests(rng, residents)
            horizon = utcnow() + timedelta(days=WINDOW_DAYS + 1)
            if policy == "fifo":  # everyone waiting, in the order they came
                batch.run_batch(ACTOR, start=utcnow(), end=horizon, commit=True,
                                policy="first_come")
            else:  # everyone waiting, at once
                batch.run_batch(ACTOR, start=utcnow(), end=horizon, commit=True)
            dispatch_due()
            jobs.expire_requests()
            db.session.commit()
            if progress:
                progress(1)
        end = first + timedelta(days=weeks * 7)
        clock.set(end)
        _hold_sessions(rng, end - timedelta(days=1), end)
        return {"counties": coverage(ACTOR, start=first, end=end, group_by="region",
                                     level="county"),
                "villages": coverage(ACTOR, start=first, end=end, group_by="region",
                                     level="village"),
                "requests": _request_counts()}
    finally:
        clock.reset()


def _residents() -> list[tuple[int, float, str]]:
    """(resident id, how often they need care, what kind) for every resident: the
    old need it more, remote western villages more than eastern cities."""
    on = FIRST_DAY
    people = []
    for resident_id, birth, setting in db.session.execute(
            sa.select(Resident.id, Resident.birth_date, Region.setting)
            .join(Region, Region.id == Resident.region_id).order_by(Resident.id)):
        band = age_band(birth, on)
        need = {"0-59": 0.5, "60-69": 1.0, "70-79": 1.6, "80+": 2.4}[band]
        need *= 1.3 if setting == "rural" else 0.8
        kind = "elder_home_visit" if band == "80+" else "gp_consult"
        people.append((resident_id, need, kind))
    return people


def _new_requests(rng: random.Random, residents) -> list[CareRequest]:
    """Today's requests from residents without one open, drawn by need."""
    busy = set(db.session.execute(sa.select(CareRequest.resident_id).where(
        CareRequest.status == RequestStatus.OPEN)).scalars())
    chosen = rng.choices(residents, weights=[need for _, need, _ in residents],
                         k=REQUESTS_PER_DAY)
    made, start = [], utcnow() + timedelta(days=1)
    for resident_id, _, kind in chosen:
        if resident_id in busy:
            continue
        busy.add(resident_id)
        if kind == "gp_consult" and rng.random() < 0.3:
            kind = "chronic_followup"
        made.append(create_care_request(
            ACTOR, resident_id=resident_id, service_type=kind, earliest=start,
            latest=start + timedelta(days=WINDOW_DAYS),
            urgency=rng.choices(["routine", "soon", "urgent"], [6, 3, 1])[0]))
    return made


def _hold_sessions(rng: random.Random, start: datetime, end: datetime) -> None:
    """Sessions that started in [start, end): checked in and completed, or missed."""
    sessions = db.session.execute(
        sa.select(Appointment.id, Appointment.start_at, Appointment.end_at).where(
            Appointment.start_at >= start, Appointment.start_at < end,
            Appointment.status.in_((Status.BOOKED, Status.CONFIRMED)))
        .order_by(Appointment.start_at, Appointment.id)).all()
    now = utcnow()
    try:
        for appointment_id, session_start, session_end in sessions:
            if rng.random() < SHOWS_UP:
                clock.set(session_start)
                booking.change_status(ACTOR, appointment_id, Status.CHECKED_IN)
                clock.set(session_end)
                booking.change_status(ACTOR, appointment_id, Status.COMPLETED)
            else:
                clock.set(session_end)
                booking.change_status(ACTOR, appointment_id, Status.NO_SHOW)
    finally:
        clock.set(now)


def _request_counts() -> dict:
    return dict(db.session.execute(
        sa.select(CareRequest.status, sa.func.count()).group_by(CareRequest.status)).all())
