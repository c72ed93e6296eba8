"""Booking, recording, rescheduling and the lifecycle of appointments.

No double booking, whatever the concurrency: each unit of work takes the
provider's and the resident's locks (PostgreSQL advisory locks; SQLite's
IMMEDIATE transactions), checks for overlaps, and writes; on PostgreSQL the
exclusion constraints of migration 0002 are the last guard. A loser gets 409
`slot_unavailable`; deadlocks and serialization failures are retried first.
"""

import math
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cache, lru_cache
from typing import NamedTuple

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import (
    aliased,
    contains_eager,
    joinedload,
    make_transient_to_detached,
    selectinload,
)
from sqlalchemy.orm.exc import StaleDataError

from careservice.core import audit
from careservice.core.auth import Actor
from careservice.core.db import (
    EXCLUSION_VIOLATION,
    advisory_locks,
    held_locks,
    is_retryable,
    sqlstate,
)
from careservice.core.errors import (
    Conflict,
    Forbidden,
    InvalidTransition,
    NotFound,
    SlotUnavailable,
    field_error,
)
from careservice.core.models import Role
from careservice.core.pagination import paginate
from careservice.core.time import UTCDateTime, local_day, overlaps, utcnow
from careservice.extensions import db
from careservice.people.models import Modality, Provider, Region, Resident, provider_regions
from careservice.people.services import (
    find_resident,
    region_subtree_clause,
    visible_residents_clause,
)
from careservice.reminders import outbox
from careservice.scheduling.models import (
    LIVE,
    UPCOMING,
    Appointment,
    CareRequest,
    RequestStatus,
    ServiceType,
    Status,
)
from careservice.scheduling.signals import sessions_changed
from careservice.scheduling.slots import (
    Limits,
    fits_availability,
    offers,
    session_span,
)

CHECK_IN_OPENS = timedelta(minutes=60)
PROVIDER_LOCK, RESIDENT_LOCK = 1, 2


# Running a unit of work


def run_unit(work: Callable[[], object]):
    """Run `work` and commit; retry on deadlock or serialization failure; an
    exclusion violation (the database refusing an overlap) is 409."""
    retries = current_app.config["BOOKING_RETRIES"]
    for attempt in range(retries + 1):
        try:
            result = work()
            db.session.commit()
            return result
        except IntegrityError as error:
            db.session.rollback()
            if sqlstate(error) == EXCLUSION_VIOLATION:
                raise SlotUnavailable("That time overlaps another session.") from None
            raise
        except StaleDataError:
            db.session.rollback()
            raise InvalidTransition("The appointment changed meanwhile; reload it.") from None
        except DBAPIError as error:
            db.session.rollback()
            if not is_retryable(error):
                raise
            if attempt == retries:
                raise SlotUnavailable("The slot is busy; try again.") from None
        except BaseException:
            db.session.rollback()
            raise
    raise AssertionError("unreachable")


# Who sees what


def visible_clause(actor: Actor):
    if actor.is_admin:
        return sa.true()
    if actor.is_provider:
        return Appointment.provider_id == actor.provider_id
    return visible_residents_clause(actor, Appointment.resident_id)


def find_appointment(actor: Actor, appointment_id: int) -> Appointment:
    query = sa.select(Appointment).where(Appointment.id == appointment_id, visible_clause(actor))
    appointment = db.session.execute(query).scalar_one_or_none()
    if appointment is None:
        raise NotFound("No such appointment.")
    return appointment


def list_appointments(actor: Actor, *, provider_id=None, resident_id=None, region_id=None,
                      status=None, start=None, end=None, limit=50, offset=0) -> dict:
    query = sa.select(Appointment).where(visible_clause(actor))
    if provider_id is not None:
        query = query.where(Appointment.provider_id == provider_id)
    if resident_id is not None:
        query = query.where(Appointment.resident_id == resident_id)
    if region_id is not None:
        region = db.session.get(Region, region_id)
        villages = (sa.select(Resident.id).join(Region, Resident.region_id == Region.id)
                    .where(region_subtree_clause(region) if region else sa.false()))
        query = query.where(Appointment.resident_id.in_(villages))
    if status:
        query = query.where(Appointment.status.in_(status))
    if start is not None:
        query = query.where(Appointment.start_at >= start)
    if end is not None:
        query = query.where(Appointment.start_at < end)
    # Each item names its service type: load them for the whole page at once.
    return paginate(query.order_by(Appointment.start_at, Appointment.id)
                    .options(selectinload(Appointment.service_type)), limit, offset)


# References in a request body: unknown or out of scope is 422 on the field.


def body_resident(actor: Actor, resident_id: int) -> Resident:
    if actor.is_provider:
        # A provider books and records their own sessions with any resident of a village
        # they serve, not only with those already in their appointments: a new patient,
        # a home visit delivered offline.
        resident = db.session.get(Resident, resident_id)
        provider = db.session.get(Provider, actor.provider_id,
                                  options=[joinedload(Provider.service_regions)])
        if resident is not None and provider is not None and serves_village(provider,
                                                                             resident):
            return resident
        raise field_error("resident_id", "No such resident in a village you serve.")
    try:
        return find_resident(actor, resident_id)
    except NotFound:
        raise field_error("resident_id", "No such resident in your scope.") from None


def body_provider(actor: Actor, provider_id: int) -> Provider:
    provider = db.session.get(Provider, provider_id,
                              options=[joinedload(Provider.service_regions)])
    if provider is None:
        raise field_error("provider_id", "No such provider.")
    if actor.is_provider and provider.id != actor.provider_id:
        raise field_error("provider_id", "Providers book and record only their own sessions.")
    return provider


def body_service_type(code: str) -> ServiceType:
    service_type = db.session.execute(
        sa.select(ServiceType).where(ServiceType.code == code)).scalar_one_or_none()
    if service_type is None:
        raise field_error("service_type", "No such service type.")
    return service_type


class Parties(NamedTuple):
    resident: Resident
    provider: Provider
    service_type: ServiceType
    serves: bool  # the provider serves the resident's village


@cache
def _parties_query(locking: bool) -> sa.Select:
    """Built once (the caller adds its scope): the resident with their village,
    the provider and the service type as one row, and whether the provider's
    service regions (none: everywhere) include the village. `locking` (on
    PostgreSQL) also takes the provider's and the resident's locks, in lock
    order, saving the booking a round trip."""
    served_region = aliased(Region)
    mine = provider_regions.c.provider_id == Provider.id
    serves = sa.or_(
        ~sa.exists().where(mine),
        sa.exists().where(mine, provider_regions.c.region_id == served_region.id,
                          Region.path.startswith(served_region.path, autoescape=False)),
    )
    locks = ([sa.func.pg_advisory_xact_lock(PROVIDER_LOCK, Provider.id),
              sa.func.pg_advisory_xact_lock(RESIDENT_LOCK, Resident.id)] if locking else [])
    return (
        # Three single-row lookups side by side: a deliberate cross join.
        sa.select(Resident, Provider, ServiceType, serves.label("serves"), *locks)
        .select_from(Resident).join(Region, Resident.region_id == Region.id)
        .join(Provider, sa.true()).join(ServiceType, sa.true())
        .where(Resident.id == sa.bindparam("resident_id"),
               Provider.id == sa.bindparam("provider_id"),
               ServiceType.code == sa.bindparam("code"))
        .options(contains_eager(Resident.region))
    )


@lru_cache(maxsize=1024)
def _scoped_parties_query(locking: bool, role: Role, provider_id: int | None,
                          region_paths: tuple[str, ...]) -> sa.Select:
    """The parties' query in one scope; kept, since the same users book again and
    again and a new statement would be analysed afresh each time."""
    actor = Actor(role=role, provider_id=provider_id, region_paths=region_paths)
    return _parties_query(locking).where(visible_residents_clause(actor))


def body_parties(actor: Actor, resident_id: int, provider_id: int, code: str) -> Parties:
    """The resident, provider and service type a request body names, in one
    query; when one is missing or out of reach, the lookups one by one say
    which field is wrong."""
    if not (actor.is_provider and provider_id != actor.provider_id):
        locking = db.session.get_bind().dialect.name == "postgresql"
        row = db.session.execute(
            _scoped_parties_query(locking, actor.role, actor.provider_id, actor.region_paths),
            {"resident_id": resident_id, "provider_id": provider_id, "code": code},
        ).one_or_none()
        if row is not None:
            if locking:
                held_locks(db.session).update(
                    ((PROVIDER_LOCK, provider_id), (RESIDENT_LOCK, resident_id)))
            return Parties(*row[:4])
    resident = body_resident(actor, resident_id)
    provider = body_provider(actor, provider_id)
    return Parties(resident, provider, body_service_type(code), serves_village(provider, resident))


def check_may_book(actor: Actor) -> None:
    if actor.role not in (Role.ADMIN, Role.COORDINATOR, Role.VHW, Role.CLINICIAN, Role.CAREGIVER):
        raise Forbidden("This role may not book.")


def serves_village(provider: Provider, resident: Resident) -> bool:
    served = provider.service_regions
    return not served or resident.region.is_within([region.path for region in served])


def check_provider_serves(provider: Provider, service_type: ServiceType, resident: Resident,
                          serves: bool | None = None):
    """Active, offers the service, serves the village (`serves`, when the caller
    already knows it)."""
    if not provider.active:
        raise field_error("provider_id", "The provider is not active.")
    if not offers(provider, service_type):
        raise field_error("provider_id", "The provider does not offer this service.")
    if not (serves_village(provider, resident) if serves is None else serves):
        raise field_error("provider_id", "The provider does not serve the resident's village.")


# The guard


def lock_parties(provider_id: int, resident_id: int, *more_providers: int) -> None:
    keys = [(PROVIDER_LOCK, pid) for pid in (provider_id, *more_providers)]
    advisory_locks(db.session, *keys, (RESIDENT_LOCK, resident_id))


def _guard_clauses():
    """The questions every booking asks under the lock, on bound parameters: is
    it the provider's session that day, does it meet the provider's sessions
    with their buffers, does it meet the resident's sessions."""
    param = sa.bindparam
    start, end = param("start", type_=UTCDateTime), param("end", type_=UTCDateTime)
    block_end = param("block_end", type_=UTCDateTime)
    mine = Appointment.provider_id == param("provider_id")
    theirs = Appointment.resident_id == param("resident_id")
    on_day = (mine & (Appointment.start_at >= param("day_start", type_=UTCDateTime))
              & (Appointment.start_at < param("day_end", type_=UTCDateTime)))
    provider_clash = mine & overlaps(Appointment.start_at, Appointment.block_end_at,
                                     start, block_end)
    resident_clash = theirs & overlaps(Appointment.start_at, Appointment.end_at, start, end)
    return Appointment.status.in_(LIVE), on_day, provider_clash, resident_clash


@cache
def _refusal_query() -> sa.Select:
    """Built once: why a guarded insert inserted nothing."""
    live, on_day, provider_clash, resident_clash = _guard_clauses()

    def flag(condition):
        return sa.func.coalesce(sa.func.max(sa.case((condition, 1), else_=0)), 0)

    return (sa.select(sa.func.count().filter(on_day), flag(provider_clash), flag(resident_clash))
            .where(live, sa.or_(on_day, provider_clash, resident_clash)))


GUARDED_COLUMNS = (
    "resident_id", "provider_id", "service_type_id", "start_at", "end_at", "block_end_at",
    "modality", "join_url", "visit_region_id", "travel_minutes", "status", "booked_by_id",
    "on_behalf", "recorded", "series_id", "rescheduled_from_id", "notes", "version",
    "created_at", "updated_at",
)


@cache
def _guarded_insert() -> sa.Insert:
    """Built once: INSERT ... SELECT ... WHERE nobody clashes and the day has room,
    RETURNING the id; no row back means refused (then `_refusal_query` says why).
    One round trip for the check and the write, under the lock."""
    live, on_day, provider_clash, resident_clash = _guard_clauses()
    table = Appointment.__table__
    cap = sa.bindparam("cap", type_=sa.Integer)
    sessions_that_day = sa.select(sa.func.count()).where(live, on_day).scalar_subquery()
    values = sa.select(*(sa.bindparam(f"v_{name}", type_=table.c[name].type)
                         for name in GUARDED_COLUMNS)).where(
        ~sa.exists().where(live, provider_clash),
        ~sa.exists().where(live, resident_clash),
        sa.or_(cap.is_(None), sessions_that_day < cap),
    )
    return (sa.insert(table).from_select(GUARDED_COLUMNS, values, include_defaults=False)
            .returning(table.c.id))


def _guard_params(provider: Provider, resident_id: int, start: datetime, end: datetime,
                  block_end: datetime) -> dict:
    day_start, day_end = local_day(start, provider.timezone)
    return {"provider_id": provider.id, "resident_id": resident_id, "start": start, "end": end,
            "block_end": block_end, "day_start": day_start, "day_end": day_end}


def find_refusal(provider: Provider, resident_id: int, start: datetime, end: datetime,
                 block_end: datetime, *, check_cap: bool) -> str | None:
    """Why the provider or the resident cannot take this session, or None.

    One query answers all three questions (the provider's sessions that day,
    an overlap with the provider's sessions and buffers, an overlap with the
    resident's sessions).
    """
    sessions_that_day, provider_busy, resident_busy = db.session.execute(
        _refusal_query(), _guard_params(provider, resident_id, start, end, block_end)).one()
    if provider_busy:
        return "The provider is already booked then."
    if resident_busy:
        return "The resident already has a session then."
    if check_cap and sessions_that_day >= provider.max_sessions_per_day:
        return "The provider's day is full."
    return None


def insert_guarded(appointment: Appointment, provider: Provider, *, check_cap: bool) -> None:
    """Write `appointment` (built, not yet in the session) if nothing clashes,
    and make it a persistent object of the session; 409 with the reason if not."""
    params = _guard_params(provider, appointment.resident_id, appointment.start_at,
                           appointment.end_at, appointment.block_end_at)
    params["cap"] = provider.max_sessions_per_day if check_cap else None
    params.update((f"v_{name}", getattr(appointment, name)) for name in GUARDED_COLUMNS)
    appointment_id = db.session.execute(_guarded_insert(), params).scalar()
    if appointment_id is None:
        raise SlotUnavailable(find_refusal(provider, appointment.resident_id, appointment.start_at,
                                           appointment.end_at, appointment.block_end_at,
                                           check_cap=check_cap)
                              or "That time was taken meanwhile.")
    appointment.id = appointment_id
    make_transient_to_detached(appointment)
    db.session.add(appointment)


def travel_minutes(provider: Provider, village: Region, start: datetime) -> int | None:
    """Minutes from the caregiver's previous visit that day (or home) to this village,
    by great-circle distance at the configured speed."""
    day_start, _ = local_day(start, provider.timezone)
    previous = db.session.execute(
        sa.select(Region).join(Appointment, Appointment.visit_region_id == Region.id).where(
            Appointment.provider_id == provider.id, Appointment.status.in_(LIVE),
            Appointment.end_at <= start, Appointment.start_at >= day_start)
        .order_by(Appointment.end_at.desc()).limit(1)
    ).scalar_one_or_none()
    return minutes_between(previous or provider.home_region, village)


def minutes_between(origin: Region, village: Region) -> int | None:
    """Travel minutes by great-circle distance at TRAVEL_SPEED_KMH; None without coordinates."""
    if None in (origin.latitude, origin.longitude, village.latitude, village.longitude):
        return None
    km = great_circle_km(origin.latitude, origin.longitude, village.latitude, village.longitude)
    return math.ceil(km / current_app.config["TRAVEL_SPEED_KMH"] * 60)


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(a))


def new_join_url() -> str:
    return current_app.config["JOIN_URL_TEMPLATE"].format(token=secrets.token_urlsafe(18))


def place_appointment(actor: Actor, resident: Resident, provider: Provider,
                      service_type: ServiceType, start: datetime, *, status=Status.BOOKED,
                      recorded=False, check_calendar=True, series_id=None,
                      rescheduled_from_id=None, notes=None) -> Appointment:
    """Lock, check and add one appointment inside the caller's unit of work."""
    duration, held = session_span(service_type)
    end, block_end = start + duration, start + held
    lock_parties(provider.id, resident.id)
    if check_calendar:
        limits = Limits.current()
        if not limits.earliest <= start <= limits.latest:
            raise SlotUnavailable("The start is outside the minimum notice or booking horizon.")
        if not fits_availability(provider, service_type, start):
            raise SlotUnavailable("The provider is not available then.")
    now = utcnow()
    appointment = Appointment(
        resident=resident, resident_id=resident.id, provider=provider, provider_id=provider.id,
        service_type=service_type, service_type_id=service_type.id, start_at=start,
        end_at=end, block_end_at=block_end, modality=service_type.modality, status=status,
        recorded=recorded, booked_by_id=actor.user_id,
        on_behalf=actor.provider_id != provider.id, series_id=series_id,
        rescheduled_from_id=rescheduled_from_id, notes=notes, join_url=None,
        visit_region_id=None, travel_minutes=None, version=1, created_at=now, updated_at=now,
        # Set, not left out: a column missing here would be reloaded when read.
        cancel_reason=None, cancelled_by_id=None, checked_in_at=None, backfill_checked_at=None,
    )
    if service_type.modality == Modality.VIDEO and not recorded:
        appointment.join_url = new_join_url()
    elif service_type.modality == Modality.HOME_VISIT:
        appointment.visit_region = resident.region
        appointment.visit_region_id = resident.region.id
        appointment.travel_minutes = travel_minutes(provider, resident.region, start)
    insert_guarded(appointment, provider, check_cap=check_calendar)
    return appointment


def _take_care_request(actor: Actor, request_id: int, resident: Resident,
                       service_type: ServiceType, start: datetime) -> CareRequest:
    request = db.session.get(CareRequest, request_id)
    if request is None or request.resident_id != resident.id:
        raise field_error("care_request_id", "No such care request for this resident.")
    if request.status != RequestStatus.OPEN:
        raise field_error("care_request_id", f"The care request is {request.status}.")
    if request.service_type_id != service_type.id:
        raise field_error("care_request_id", "The care request is for another service.")
    duration, _ = session_span(service_type)
    if not (request.earliest <= start and start + duration <= request.latest):
        raise field_error("start", "The session falls outside the care request's window.")
    return request


def book_appointment(actor: Actor, *, resident_id: int, provider_id: int, service_type: str,
                     start: datetime, care_request_id: int | None = None,
                     within: Callable[[Appointment], None] | None = None) -> Appointment:
    """Book one session. `within` runs in the same transaction once the appointment
    is placed, for a caller whose own change must land with the booking or not at
    all; whatever it raises undoes the booking and reaches the caller."""
    check_may_book(actor)

    def work():
        resident, provider, kind, serves = body_parties(actor, resident_id, provider_id,
                                                        service_type)
        check_provider_serves(provider, kind, resident, serves)
        request = (_take_care_request(actor, care_request_id, resident, kind, start)
                   if care_request_id is not None else None)
        appointment = place_appointment(actor, resident, provider, kind, start)
        outbox.queue_booking(appointment)
        if request is not None:
            # Compare-and-swap: of two bookings racing for one request, one links it.
            taken = db.session.execute(
                sa.update(CareRequest)
                .where(CareRequest.id == request.id, CareRequest.status == RequestStatus.OPEN)
                .values(status=RequestStatus.BOOKED, appointment_id=appointment.id,
                        updated_at=utcnow())
                .execution_options(synchronize_session="fetch")).rowcount
            if not taken:
                raise Conflict("The care request was booked meanwhile.")
        audit.record(actor, "appointment.book", "appointment", appointment.id,
                     resident_id=resident.id, provider_id=provider.id)
        if within is not None:
            within(appointment)
        return appointment

    return run_unit(work)


def record_session(actor: Actor, *, resident_id: int, provider_id: int, service_type: str,
                   start: datetime, outcome: str, notes: str | None = None) -> Appointment:
    """Log a session that already happened, so coverage counts it."""
    if start >= utcnow():
        raise field_error("start", "A recorded session must have started in the past.")
    check_may_book(actor)

    def work():
        resident, provider, kind, _ = body_parties(actor, resident_id, provider_id, service_type)
        appointment = place_appointment(actor, resident, provider, kind, start,
                                        status=Status(outcome), recorded=True,
                                        check_calendar=False, notes=notes)
        audit.record(actor, "appointment.record", "appointment", appointment.id,
                     resident_id=resident.id, provider_id=provider.id, outcome=outcome)
        sessions_changed.send(starts=[start])
        return appointment

    return run_unit(work)


# Lifecycle


def _check_action_allowed(actor: Actor, appointment: Appointment, target: Status) -> None:
    if target in (Status.COMPLETED, Status.NO_SHOW) and actor.role == Role.VHW:
        raise Forbidden("Only the provider, a coordinator or an admin record the outcome.")


def _check_time_gate(appointment: Appointment, target: Status, now: datetime) -> None:
    if target == Status.CHECKED_IN and not (
            appointment.start_at - CHECK_IN_OPENS <= now < appointment.end_at):
        raise InvalidTransition("Check-in is open from 60 minutes before the start until the end.")
    if target == Status.NO_SHOW and now < appointment.start_at:
        raise InvalidTransition("A no-show can be marked only after the start.")
    if target == Status.CANCELLED and now >= appointment.start_at:
        raise InvalidTransition("Only a session that has not started can be cancelled.")


def change_status(actor: Actor, appointment_id: int, target: Status, *,
                  reason: str | None = None,
                  within: Callable[[Appointment], None] | None = None) -> Appointment:
    """Move an appointment to `target`: a compare-and-swap on its version. `within`
    runs in the same transaction once the change is made (as in book_appointment)."""

    def work():
        appointment = find_appointment(actor, appointment_id)
        _check_action_allowed(actor, appointment, target)
        appointment.check_transition(target)
        now = utcnow()
        _check_time_gate(appointment, target, now)
        appointment.status = target
        if target == Status.CHECKED_IN:
            appointment.checked_in_at = now
        if target == Status.CANCELLED:
            appointment.cancel_reason = reason
            appointment.cancelled_by_id = actor.user_id
            _reopen_care_request(appointment, now)
            db.session.flush()
            outbox.queue_cancellation(appointment, now)
        audit.record(actor, f"appointment.{target}", "appointment", appointment.id)
        sessions_changed.send(starts=[appointment.start_at])
        if within is not None:
            within(appointment)
        return appointment

    return run_unit(work)


def _reopen_care_request(appointment: Appointment, now: datetime) -> None:
    """A cancelled session does not end the need behind it: its request reopens."""
    db.session.execute(
        sa.update(CareRequest)
        .where(CareRequest.appointment_id == appointment.id, CareRequest.latest > now)
        .values(status=RequestStatus.OPEN, appointment_id=None)
    )


def reschedule(actor: Actor, appointment_id: int, *, start: datetime,
               provider_id: int | None = None) -> Appointment:
    """Book the new time and cancel the old, in one transaction."""

    def work():
        old = find_appointment(actor, appointment_id)
        if old.status not in UPCOMING:
            raise InvalidTransition(f"A {old.status} appointment cannot be rescheduled.")
        if utcnow() >= old.start_at:
            raise InvalidTransition("Only a session that has not started can be rescheduled.")
        provider = old.provider if provider_id is None else body_provider(actor, provider_id)
        check_provider_serves(provider, old.service_type, old.resident)
        lock_parties(provider.id, old.resident_id, old.provider_id)
        old.status = Status.CANCELLED
        old.cancel_reason = "rescheduled"
        old.cancelled_by_id = actor.user_id
        db.session.flush()
        new = place_appointment(actor, old.resident, provider, old.service_type, start,
                                series_id=old.series_id, rescheduled_from_id=old.id)
        outbox.queue_change(old, new)
        db.session.execute(sa.update(CareRequest).where(CareRequest.appointment_id == old.id)
                           .values(appointment_id=new.id))
        audit.record(actor, "appointment.reschedule", "appointment", new.id,
                     rescheduled_from_id=old.id)
        return new

    return run_unit(work)

