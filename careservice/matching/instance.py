"""Everything a batch plan reads, loaded in a handful of bulk queries.

The batch may weigh thousands of requests against hundreds of providers over
weeks, so nothing here is read per request or per provider: requests with
their residents, providers with the regions they serve, calendars, live
sessions around the window, last providers and coverage are each one query,
and the rest (eligibility, slots, terms) is computed in memory.
"""

import functools
import gc
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import pairwise

import numpy as np
import sqlalchemy as sa
from flask import current_app

from careservice.core.auth import Actor
from careservice.core.errors import ValidationFailed
from careservice.core.time import local_date, zone
from careservice.extensions import db
from careservice.metrics.coverage import age_band
from careservice.people.models import (
    Modality,
    Provider,
    Region,
    Resident,
    partnered_ancestor,
    path_ids,
    provider_regions,
)
from careservice.people.services import visible_residents_clause
from careservice.scheduling.availability import time_off, working_windows
from careservice.scheduling.booking import minutes_between
from careservice.scheduling.models import (
    LIVE,
    Appointment,
    AvailabilityException,
    AvailabilityRule,
    CareRequest,
    RequestStatus,
    ServiceType,
    Status,
)
from careservice.scheduling.slots import (
    MICROSECOND,
    Grids,
    Limits,
    Taken,
    free_starts,
    instants,
    offers,
    session_span,
)

URGENCY_WEIGHT = {"urgent": 4.0, "soon": 2.0, "routine": 1.0}
NEVER_SERVED, OLDEST, LEAST_SERVED_VILLAGE = 2.0, 1.0, 1.0
COVERAGE_LOOKBACK = timedelta(days=365)
MARGIN = timedelta(days=8)  # sessions read around the window: whole weeks, for the load term
TERMS = 100  # a point of a matching weight (MATCH_WEIGHT_*), in cost units


def collector_paused(function):
    """Run without the cyclic garbage collector. A plan makes millions of small
    objects that all live until it returns and hold no cycles; every full
    collection meanwhile walks all of them for nothing (a quarter of the time at
    5,000 requests). Objects are still freed by reference counting."""
    @functools.wraps(function)
    def paused(*args, **kwargs):
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return function(*args, **kwargs)
        finally:
            if was_enabled:
                gc.enable()
    return paused


def weight_of(urgency: str, never_served: bool, birth_date: date, village_coverage: float,
              on: date) -> float:
    """How much serving this request is worth: urgency (4/2/1), +2 never served in
    the last year, +1 aged 80 or more, up to +1 the less their village is served."""
    weight = URGENCY_WEIGHT.get(urgency, 1.0)
    if never_served:
        weight += NEVER_SERVED
    if age_band(birth_date, on) == "80+":
        weight += OLDEST
    weight += LEAST_SERVED_VILLAGE * (1 - village_coverage)
    return round(weight, 3)


def served_since(since: datetime, residents=None) -> set[int]:
    """Residents with a completed session since then (of `residents`, a subquery, if given)."""
    query = sa.select(Appointment.resident_id).where(
        Appointment.status == Status.COMPLETED, Appointment.start_at >= since).distinct()
    if residents is not None:
        query = query.where(Appointment.resident_id.in_(residents))
    return set(db.session.execute(query).scalars())


def village_coverage(since: datetime) -> dict[int, float]:
    """Each village's share of residents with a completed session since then."""
    served = (sa.select(Appointment.resident_id).where(
        Appointment.status == Status.COMPLETED, Appointment.start_at >= since)
        .distinct().subquery())
    rows = db.session.execute(
        sa.select(Resident.region_id, sa.func.count(), sa.func.count(served.c.resident_id))
        .outerjoin(served, served.c.resident_id == Resident.id)
        .group_by(Resident.region_id)).all()
    return {village: hit / total for village, total, hit in rows if total}


@dataclass
class Request:
    id: int
    resident_id: int
    service_type_id: int
    created_at: datetime
    start: datetime  # the window, clipped to the batch's
    end: datetime
    village_id: int
    languages: tuple[str, ...]
    weight: float
    last_provider_id: int | None = None


@dataclass
class ProviderDay:
    """One provider's free starts for one service on one local day, in order, with
    the sessions' ends."""

    provider_id: int
    service_type_id: int
    day: date
    starts: list[datetime]
    ends: list[datetime]


@dataclass
class Instance:
    start: datetime
    end: datetime
    requests: list[Request]
    service_types: dict[int, object]
    providers: dict[int, object]
    eligible: dict[tuple[int, int], list[int]]  # (village, service) -> provider ids
    terms: dict[tuple[int, tuple, int], tuple]  # (village, languages, service) -> costs
    days: dict[tuple[int, int], list[ProviderDay]]  # (provider, service) -> its days
    cap_left: dict[tuple[int, date], int]  # (provider, local day) -> sessions left
    week_load: dict[tuple[int, date], float]  # (provider, local day) -> share of week booked
    busy: dict[int, list[tuple[datetime, datetime]]]  # resident -> live sessions
    avoid: dict[int, list[tuple[datetime, datetime]]] = field(default_factory=dict)  # request
    booked: dict[int, list[tuple[datetime, datetime]]] = field(default_factory=dict)
    sessions_per_day: dict[tuple[int, date], int] = field(default_factory=dict)
    sessions_per_week: dict[tuple[int, date], int] = field(default_factory=dict)
    continuity: float = 0.0
    load_weight: float = 0.0
    reasons: dict[int, str] = field(default_factory=dict)


def open_requests(actor: Actor, request_ids, start: datetime, end: datetime) -> list:
    """(request, resident, village) rows of the open requests meeting [start, end)."""
    query = (
        sa.select(CareRequest.id, CareRequest.resident_id, CareRequest.service_type_id,
                  CareRequest.created_at, CareRequest.earliest, CareRequest.latest,
                  CareRequest.urgency, Resident.region_id, Resident.languages,
                  Resident.birth_date)
        .join(Resident, Resident.id == CareRequest.resident_id)
        .where(CareRequest.status == RequestStatus.OPEN, CareRequest.earliest < end,
               CareRequest.latest > start,
               visible_residents_clause(actor, CareRequest.resident_id))
        .order_by(CareRequest.id))
    if request_ids is not None:
        query = query.where(CareRequest.id.in_(request_ids))
    rows = db.session.execute(query).all()
    if request_ids is not None:
        missing = sorted(set(request_ids) - {row.id for row in rows})
        if missing:
            raise ValidationFailed({"request_ids": [
                f"Not open care requests in your scope and window: {missing}"]})
    return rows


@collector_paused
def load(actor: Actor, *, request_ids=None, start: datetime, end: datetime,
         now: datetime) -> Instance:
    rows = open_requests(actor, request_ids, start, end)
    config = current_app.config
    since = now - COVERAGE_LOOKBACK
    waiting = sa.select(CareRequest.resident_id).where(CareRequest.status == RequestStatus.OPEN)
    served = served_since(since, waiting)
    coverage = village_coverage(since)
    last = _last_providers(waiting)
    on = end.date()
    requests = [
        Request(id=request_id, resident_id=resident_id, service_type_id=service_type_id,
                created_at=created_at, start=max(start, earliest), end=min(end, latest),
                village_id=village_id, languages=tuple(languages or ()),
                weight=weight_of(urgency, resident_id not in served, birth_date,
                                 coverage.get(village_id, 0.0), on),
                last_provider_id=last.get((resident_id, service_type_id)))
        for (request_id, resident_id, service_type_id, created_at, earliest, latest, urgency,
             village_id, languages, birth_date) in rows]
    service_types = {kind.id: kind for kind in db.session.execute(
        sa.select(ServiceType.id, ServiceType.code, ServiceType.modality,
                  ServiceType.duration_minutes, ServiceType.buffer_minutes,
                  ServiceType.required_skill)).all()}
    regions = {region.id: region for region in db.session.execute(
        sa.select(Region.id, Region.path, Region.name, Region.latitude, Region.longitude,
                  Region.partner_region_id)).all()}
    providers = {provider.id: provider for provider in db.session.execute(
        sa.select(Provider.id, Provider.skills, Provider.modalities, Provider.languages,
                  Provider.timezone, Provider.max_sessions_per_day, Provider.home_region_id)
        .where(Provider.active.is_(True))).all()}
    areas: dict[int, list[str]] = defaultdict(list)
    for provider_id, path in db.session.execute(
            sa.select(provider_regions.c.provider_id, Region.path)
            .join(Region, Region.id == provider_regions.c.region_id)):
        areas[provider_id].append(path)

    instance = Instance(start=start, end=end, requests=requests, service_types=service_types,
                        providers=providers, eligible={}, terms={}, days={}, cap_left={},
                        week_load={}, busy=defaultdict(list),
                        continuity=config["MATCH_WEIGHT_CONTINUITY"],
                        load_weight=config["MATCH_WEIGHT_LOAD"])
    _eligibility(instance, regions, areas)
    # Slots and sessions are looked for only where a booking can be made, whatever
    # [start, end) is asked (2000-2100 took seconds).
    start, end = Limits.current(now).clip(start, end)
    if start < end:
        _sessions(instance, start - MARGIN, end + MARGIN)
        _slots(instance, start, end, now)
    _terms(instance, regions)
    return instance


def _last_providers(residents) -> dict[tuple[int, int], int]:
    """(resident, service) -> the provider of their latest completed session."""
    last = {}
    for resident_id, service_type_id, provider_id in db.session.execute(
            sa.select(Appointment.resident_id, Appointment.service_type_id,
                      Appointment.provider_id)
            .where(Appointment.status == Status.COMPLETED,
                   Appointment.resident_id.in_(residents))
            .order_by(Appointment.start_at)):
        last[(resident_id, service_type_id)] = provider_id
    return last


def _eligibility(instance: Instance, regions: dict, areas: dict) -> None:
    """Who may serve each (village, service) that has requests: offers the service
    and serves the village (their service regions, else their home region)."""
    by_area: dict[str, list] = defaultdict(list)  # a region's path -> who serves it
    for provider in instance.providers.values():
        for path in areas.get(provider.id) or [regions[provider.home_region_id].path]:
            by_area[path].append(provider)
    offering = {kind_id: {p.id for p in instance.providers.values() if offers(p, kind)}
                for kind_id, kind in instance.service_types.items()}
    found: dict[tuple, list[int]] = {}  # (the regions above served by someone, service) -> ids
    for request in instance.requests:
        key = (request.village_id, request.service_type_id)
        if key in instance.eligible:
            continue
        path = regions[request.village_id].path
        served = tuple(ancestor for ancestor in (
            "/" + "/".join(path.strip("/").split("/")[:depth]) + "/"
            for depth in range(1, path.count("/"))) if ancestor in by_area)
        if (served, request.service_type_id) not in found:
            offer = offering[request.service_type_id]
            found[(served, request.service_type_id)] = sorted({
                provider.id for ancestor in served for provider in by_area[ancestor]
                if provider.id in offer})
        instance.eligible[key] = found[(served, request.service_type_id)]


def _sessions(instance: Instance, start: datetime, end: datetime) -> None:
    """Live sessions around the window: each provider-day's sessions, each provider-week's,
    and the residents' own busy times."""
    waiting = {request.resident_id for request in instance.requests}
    per_day: dict[tuple[int, date], int] = defaultdict(int)
    per_week: dict[tuple[int, date], int] = defaultdict(int)
    booked = defaultdict(list)
    for provider_id, resident_id, at, block_end, session_end in db.session.execute(
            sa.select(Appointment.provider_id, Appointment.resident_id, Appointment.start_at,
                      Appointment.block_end_at, Appointment.end_at)
            .where(Appointment.status.in_(LIVE), Appointment.start_at < end,
                   Appointment.block_end_at > start)):
        provider = instance.providers.get(provider_id)
        if provider is not None:
            local = at.astimezone(zone(provider.timezone)).date()
            per_day[(provider_id, local)] += 1
            per_week[(provider_id, local - timedelta(days=local.weekday()))] += 1
            booked[provider_id].append((at, block_end))
        if resident_id in waiting:
            instance.busy[resident_id].append((at, session_end))
    instance.booked, instance.sessions_per_day, instance.sessions_per_week = (
        booked, per_day, per_week)


def _slots(instance: Instance, start: datetime, end: datetime, now: datetime) -> None:
    """Free starts of every (provider, service) some request may use, by local day,
    with what is left of each day's cap and the share of each week booked."""
    needed = {(provider_id, service_type_id)
              for (_, service_type_id), providers in instance.eligible.items()
              for provider_id in providers}
    provider_ids = sorted({provider_id for provider_id, _ in needed})
    rules, exceptions = defaultdict(list), defaultdict(list)
    for row in db.session.execute(
            sa.select(AvailabilityRule.provider_id, AvailabilityRule.weekday,
                      AvailabilityRule.start_time, AvailabilityRule.end_time,
                      AvailabilityRule.valid_from, AvailabilityRule.valid_to)
            .where(AvailabilityRule.provider_id.in_(provider_ids))):
        rules[row.provider_id].append(row)
    for row in db.session.execute(
            sa.select(AvailabilityException.provider_id, AvailabilityException.start_at,
                      AvailabilityException.end_at, AvailabilityException.kind)
            .where(AvailabilityException.provider_id.in_(provider_ids),
                   AvailabilityException.start_at < end + timedelta(days=1),
                   AvailabilityException.end_at > start - timedelta(days=1))):
        exceptions[row.provider_id].append(row)
    limits = Limits.current(now)
    pairs = sorted(needed)
    # One grid per provider, as wide as the longest of their services here (with its
    # buffer): starts of two services then never overlap unless they coincide, and a
    # start is one place in the plan whichever service takes it.
    widest: dict[int, int] = defaultdict(lambda: limits.step)
    for provider_id, service_type_id in pairs:
        kind = instance.service_types[service_type_id]
        widest[provider_id] = max(widest[provider_id], kind.duration_minutes + kind.buffer_minutes)
    windows = {provider_id: working_windows(instance.providers[provider_id].timezone,
                                            rules[provider_id], exceptions[provider_id], start, end)
               for provider_id in provider_ids}
    grids = Grids.build([(windows[provider_id],
                          session_span(instance.service_types[service_type_id])[1],
                          timedelta(minutes=widest[provider_id]), provider_id)
                         for provider_id, service_type_id in pairs])
    taken = Taken([(provider_id, *interval) for provider_id in provider_ids
                   for interval in [*instance.booked.get(provider_id, []),
                                    *time_off(exceptions[provider_id])]])
    of, starts = free_starts(grids, taken, start=max(start, limits.earliest), end=end,
                             latest=limits.latest)
    _provider_days(instance, pairs, of, starts)


def _provider_days(instance: Instance, pairs: list[tuple[int, int]], of: np.ndarray,
                   starts: np.ndarray) -> None:
    """The free starts of each (provider, service) in `pairs` (`of` indexes them), cut
    into provider-days, with what is left of each day's cap and the share of each week
    booked; a day at its cap offers nothing."""
    durations = np.array([session_span(instance.service_types[service_type_id])[0] // MICROSECOND
                          for _, service_type_id in pairs], dtype=np.int64)
    ends, starts = instants(starts + durations[of]), instants(starts)
    zones = [instance.providers[provider_id].timezone for provider_id, _ in pairs]
    days = np.fromiter((local_date(at, zones[pair]).toordinal()
                        for at, pair in zip(starts.tolist(), of.tolist(), strict=True)),
                       dtype=np.int64, count=of.size)
    order = np.lexsort((days, of))  # by pair, then day; starts stay in order within a day
    of, days, starts, ends = of[order], days[order], starts[order], ends[order]
    cuts = np.flatnonzero((np.diff(of) != 0) | (np.diff(days) != 0)) + 1
    instance.days = {pair: [] for pair in pairs}
    for first, last in pairwise([0, *cuts.tolist(), of.size] if of.size else []):
        provider_id, service_type_id = pairs[of[first]]
        provider, day = instance.providers[provider_id], date.fromordinal(int(days[first]))
        key = (provider_id, day)
        cap_left = provider.max_sessions_per_day - instance.sessions_per_day.get(key, 0)
        if cap_left <= 0:
            continue
        instance.days[(provider_id, service_type_id)].append(ProviderDay(
            provider_id, service_type_id, day, starts[first:last].tolist(),
            ends[first:last].tolist()))
        instance.cap_left[key] = cap_left
        monday = day - timedelta(days=day.weekday())
        instance.week_load[key] = (instance.sessions_per_week.get((provider_id, monday), 0)
                                   / (provider.max_sessions_per_day * 7))


def _terms(instance: Instance, regions: dict) -> None:
    """For each (village, languages, service) with requests, the cost of each eligible
    provider that does not depend on the time, in cost units (TERMS a score point):
    minus the partner-region programme, plus travel for home visits, plus an
    interpreter when no language is shared."""
    config = current_app.config
    interpreter = round(TERMS * config["MATCH_WEIGHT_INTERPRETER"])
    spoken = {p.id: frozenset(p.languages or ()) for p in instance.providers.values()}
    places = Places(instance, regions)
    strangers: dict[tuple, frozenset] = {}  # languages -> providers sharing none of them
    for village_id, languages, service_type_id in {
            (r.village_id, r.languages, r.service_type_id) for r in instance.requests}:
        if languages not in strangers:
            wanted = frozenset(languages)
            strangers[languages] = frozenset(p for p, said in spoken.items()
                                             if not wanted & said)
        costs = places.costs(village_id, service_type_id)
        silent = strangers[languages]
        if silent and any(provider_id in silent for provider_id, _ in costs):
            costs = tuple((p, cost + interpreter if p in silent else cost) for p, cost in costs)
        instance.terms[(village_id, languages, service_type_id)] = costs


class Places:
    """The part of a provider's cost that depends on the village alone: the
    partner-region programme (the provider's home, or a region above it, is
    partnered with the village's, or one above it) and travel for home visits.

    The programme sees a village only through the regions above it that are some
    region's partner (its `reach`), so villages of one reach share those costs."""

    def __init__(self, instance: Instance, regions: dict):
        config = current_app.config
        self.instance, self.regions = instance, regions
        self.partner = round(TERMS * config["MATCH_WEIGHT_PARTNER"])
        self.travel = TERMS * config["MATCH_WEIGHT_TRAVEL"] / 60  # per minute
        self.partner_of = {region_id: region.partner_region_id
                           for region_id, region in regions.items()}.get
        self.targets = {region.partner_region_id for region in regions.values()}
        self.programme: dict[tuple, tuple] = {}  # (reach, providers) -> partner costs
        self.cached: dict[tuple[int, int], tuple] = {}

    def reach(self, village_id: int) -> tuple[int, ...]:
        return tuple(region_id for region_id in path_ids(self.regions[village_id].path)
                     if region_id in self.targets)

    def partner_costs(self, village_id: int, providers: tuple[int, ...]) -> tuple:
        key = (self.reach(village_id), providers)
        if key not in self.programme:
            village_path = self.regions[village_id].path
            self.programme[key] = tuple(
                (provider_id, -self.partner if partnered_ancestor(
                    self.regions[self.instance.providers[provider_id].home_region_id].path,
                    village_path, self.partner_of) is not None else 0)
                for provider_id in providers)
        return self.programme[key]

    def costs(self, village_id: int, service_type_id: int) -> tuple:
        key = (village_id, service_type_id)
        if key not in self.cached:
            instance = self.instance
            costs = self.partner_costs(village_id, tuple(instance.eligible[key]))
            if instance.service_types[service_type_id].modality == Modality.HOME_VISIT:
                village = self.regions[village_id]
                costs = tuple((provider_id, cost + self.travel_cost(provider_id, village))
                              for provider_id, cost in costs)
            self.cached[key] = costs
        return self.cached[key]

    def travel_cost(self, provider_id: int, village) -> int:
        home = self.regions[self.instance.providers[provider_id].home_region_id]
        minutes = minutes_between(home, village)
        return 0 if minutes is None else round(self.travel * minutes)
