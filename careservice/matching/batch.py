"""Batch matching of the waitlist: an exact min-cost flow (OR-Tools).

source -> request (1) -> (provider, start) slot (1) -> provider-day (what is
left of the daily cap) -> sink; every request may also flow straight to the
sink, unassigned. An assigned edge costs minus the request's weight (scaled
far above everything else, so weighted coverage is maximised first) plus the
edge's own cost (lateness, travel, lost continuity, interpreter), which then
picks the best of the equally covering plans. Weights favour urgent requests,
residents never served, residents 80 and over, and villages served least.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from ortools.graph.python import min_cost_flow

from careservice.core.auth import Actor
from careservice.core.errors import ServiceError, ValidationFailed
from careservice.core.time import overlaps, utcnow, zone
from careservice.extensions import db
from careservice.matching import scoring
from careservice.metrics.coverage import age_band
from careservice.people.models import Resident
from careservice.people.services import visible_residents_clause
from careservice.scheduling import booking
from careservice.scheduling.models import (
    LIVE,
    Appointment,
    CareRequest,
    RequestStatus,
    ServiceType,
    Status,
)
from careservice.scheduling.slots import free_slots

URGENCY_WEIGHT = {"urgent": 4.0, "soon": 2.0, "routine": 1.0}
NEVER_SERVED, OLDEST, LEAST_SERVED_VILLAGE = 2.0, 1.0, 1.0
COVERAGE_LOOKBACK = timedelta(days=365)
SCALE = 100_000  # weights are worth far more than any edge cost


@dataclass
class Plan:
    assignments: list[dict]
    unassigned: list[dict]
    objective: dict


def request_weight(request: CareRequest, served_ids: set[int], village_coverage: dict,
                   on: date) -> float:
    resident = request.resident
    weight = URGENCY_WEIGHT.get(request.urgency, 1.0)
    if resident.id not in served_ids:
        weight += NEVER_SERVED
    if age_band(resident.birth_date, on) == "80+":
        weight += OLDEST
    weight += LEAST_SERVED_VILLAGE * (1 - village_coverage.get(resident.region_id, 0.0))
    return round(weight, 3)


def _village_coverage(now: datetime) -> tuple[set[int], dict]:
    """Residents served in the last year, and each village's share of them."""
    served = set(db.session.execute(
        sa.select(Appointment.resident_id).where(
            Appointment.status == Status.COMPLETED,
            Appointment.start_at >= now - COVERAGE_LOOKBACK)).scalars())
    counts: dict = defaultdict(lambda: [0, 0])
    for resident_id, village_id in db.session.execute(sa.select(Resident.id, Resident.region_id)):
        counts[village_id][0] += 1
        counts[village_id][1] += resident_id in served
    return served, {v: hit / total for v, (total, hit) in counts.items() if total}


def open_requests(actor: Actor, request_ids, start: datetime, end: datetime) -> list:
    query = sa.select(CareRequest).where(
        CareRequest.status == RequestStatus.OPEN, CareRequest.earliest < end,
        CareRequest.latest > start, visible_residents_clause(actor, CareRequest.resident_id))
    if request_ids is not None:
        query = query.where(CareRequest.id.in_(request_ids))
    requests = db.session.execute(query.order_by(CareRequest.id)).scalars().all()
    if request_ids is not None:
        missing = sorted(set(request_ids) - {r.id for r in requests})
        if missing:
            raise ValidationFailed({"request_ids": [
                f"Not open care requests in your scope and window: {missing}"]})
    return requests


def plan(actor: Actor, *, request_ids=None, start: datetime, end: datetime) -> Plan:
    if end <= start:
        raise ValidationFailed({"to": ["Must be after from."]})
    now = utcnow()
    requests = open_requests(actor, request_ids, start, end)
    served, coverage = _village_coverage(now)
    slot_cache: dict = {}
    edges: dict[int, list] = {}
    reasons: dict[int, str] = {}
    weights = {}
    for request in requests:
        weights[request.id] = request_weight(request, served, coverage, end.date())
        options = _options(request, start, end, slot_cache)
        if isinstance(options, str):
            reasons[request.id] = options
        else:
            edges[request.id] = options
    return _solve(requests, edges, reasons, weights)


def _options(request: CareRequest, start: datetime, end: datetime, cache: dict):
    """[(provider, slot, cost)] for a request, or why there are none."""
    kind, resident = request.service_type, request.resident
    providers = scoring.eligible_providers(resident, kind)
    if not providers:
        return "no provider with this service serves the resident's village"
    window_start, window_end = max(start, request.earliest), min(end, request.latest)
    busy = scoring.resident_busy(resident, window_start, window_end)
    last = scoring.last_provider_id(resident, kind)
    options = []
    for provider in providers:
        key = (provider.id, kind.id)
        if key not in cache:
            cache[key] = free_slots(provider, kind, start, end)
        fixed, _ = scoring.provider_terms(provider, resident, kind, resident.region, last,
                                           cache[key][0]) if cache[key] else (0.0, [])
        for slot in cache[key]:
            if slot.start < window_start or slot.end > window_end:
                continue
            if any(overlaps(slot.start, slot.end, b_start, b_end) for b_start, b_end in busy):
                continue
            lateness_hours = (slot.start - window_start).total_seconds() / 3600
            cost = round(lateness_hours * 10 - fixed * 100)
            options.append((provider, slot, cost))
    if not options:
        return "no free slot in the window"
    return options


def _solve(requests, edges, reasons, weights) -> Plan:
    flow = min_cost_flow.SimpleMinCostFlow()
    nodes: dict = {}

    def node(key) -> int:
        if key not in nodes:
            nodes[key] = len(nodes)
        return nodes[key]

    source, sink = node("source"), node("sink")
    assigned_arcs = {}
    day_caps = {}
    slot_days = {}
    for request in requests:
        r = node(("request", request.id))
        flow.add_arc_with_capacity_and_unit_cost(source, r, 1, 0)
        flow.add_arc_with_capacity_and_unit_cost(r, sink, 1, 0)  # left unassigned
        for provider, slot, cost in edges.get(request.id, ()):
            slot_key = ("slot", provider.id, slot.start)
            s = node(slot_key)
            day = ("day", provider.id, slot.start.astimezone(zone(provider.timezone)).date())
            slot_days[slot_key] = day
            if day not in day_caps:
                day_caps[day] = _left_that_day(provider, slot.start)
            arc = flow.add_arc_with_capacity_and_unit_cost(
                r, s, 1, cost - round(weights[request.id] * SCALE))
            assigned_arcs[arc] = (request, provider, slot, cost)
    for slot_key, day_key in slot_days.items():
        flow.add_arc_with_capacity_and_unit_cost(node(slot_key), node(day_key), 1, 0)
    for day_key, left in day_caps.items():
        flow.add_arc_with_capacity_and_unit_cost(node(day_key), sink, max(left, 0), 0)
    flow.set_node_supply(source, len(requests))
    flow.set_node_supply(sink, -len(requests))
    if requests and flow.solve() != flow.OPTIMAL:
        raise ServiceError("The matching problem could not be solved.")
    assignments, unassigned, cost_total = [], [], 0
    taken = set()
    for arc, (request, provider, slot, cost) in assigned_arcs.items():
        if flow.flow(arc):
            taken.add(request.id)
            cost_total += cost
            assignments.append({"request_id": request.id, "provider_id": provider.id,
                                "start": slot.start, "end": slot.end,
                                "score": weights[request.id]})
    for request in requests:
        if request.id not in taken:
            unassigned.append({"request_id": request.id, "reason": reasons.get(
                request.id, "the slots went to requests with a higher weight")})
    assignments.sort(key=lambda a: (a["start"], a["request_id"]))
    return Plan(assignments, unassigned, {
        "assigned": len(assignments),
        "weighted_coverage": round(sum(a["score"] for a in assignments), 3),
        "cost": cost_total})


def _left_that_day(provider, at: datetime) -> int:
    tz = zone(provider.timezone)
    day_start = datetime.combine(at.astimezone(tz).date(), datetime.min.time(), tzinfo=tz)
    booked = db.session.execute(
        sa.select(sa.func.count()).select_from(Appointment).where(
            Appointment.provider_id == provider.id, Appointment.status.in_(LIVE),
            Appointment.start_at >= day_start,
            Appointment.start_at < day_start + timedelta(days=1))).scalar_one()
    return provider.max_sessions_per_day - booked


def run_batch(actor: Actor, *, request_ids=None, start: datetime, end: datetime,
              commit: bool = False) -> Plan:
    """The optimal plan; with `commit`, each assignment booked through the scheduling
    core (still guarded by the database). One that lost its slot meanwhile is reported."""
    result = plan(actor, request_ids=request_ids, start=start, end=end)
    if not commit:
        return result
    booked = []
    for assignment in result.assignments:
        request = db.session.get(CareRequest, assignment["request_id"])
        try:
            booking.book_appointment(actor, resident_id=request.resident_id,
                                     provider_id=assignment["provider_id"],
                                     service_type=db.session.get(ServiceType,
                                                                 request.service_type_id).code,
                                     start=assignment["start"], care_request_id=request.id)
            booked.append(assignment)
        except ServiceError as refusal:
            db.session.rollback()
            result.unassigned.append({"request_id": assignment["request_id"],
                                      "reason": f"not booked: {refusal.message}"})
    result.assignments = booked
    result.objective = {**result.objective, "assigned": len(booked),
                        "weighted_coverage": round(sum(a["score"] for a in booked), 3)}
    return result
