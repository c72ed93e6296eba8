"""Batch matching of the waitlist: an exact min-cost flow (OR-Tools).

Each request may take one free slot in its window, of a provider who may
serve it; each slot takes one request; each provider-day takes what is left
of its daily cap. Serving a request is worth its weight, scaled above the sum
of all costs, so weighted coverage is maximised first; among equally covering
plans the cheapest wins: lateness in the window, lost continuity, no partner
region, travel, an interpreter, the provider's load that week. Weights favour
urgent requests, residents never served, residents 80 and over, and villages
served least (see `instance.weight_of`).

The graph stays small at province scale because the cost of a (request,
slot) pair splits into a request part, a provider part and a slot part:

    request (a supply of 1) -> [group-day] -> chain(p, day) -> slot -> (p, day) -> sink

A provider's free slots on a day form a chain ("this slot or a later one"),
so a request whose window covers the whole day enters at its head with one
arc, and one whose window starts mid-day enters further down. Requests of a
village group (same service, same providers at the same terms) share one
node per day that fans out to the providers' chains, so a request has about
one arc per day of its window instead of one per slot. Windows that end
mid-day use a second chain running backwards, and a resident already busy
that day gets arcs to the first free slots only (at most the day's remaining
cap of them: any later slot can be swapped for one of those). Every path
through the graph is a real (request, slot) choice at its real cost, and
every choice has a path, so the optimum of this flow is the optimum of the
assignment. A plan is read back by following the flow from each request.
"""

from bisect import bisect_left, bisect_right
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

import numpy as np
import sqlalchemy as sa
from ortools.graph.python import min_cost_flow

from careservice.core.auth import Actor
from careservice.core.errors import ServiceError, ValidationFailed
from careservice.core.time import overlaps, utcnow
from careservice.extensions import db
from careservice.matching import instance as loading
from careservice.matching.instance import TERMS, Instance, ProviderDay, Request, collector_paused
from careservice.scheduling import booking
from careservice.scheduling.models import CareRequest, ServiceType

LATENESS_PER_HOUR = 10
NO_PROVIDER = "no provider with this service serves the resident's village"
NO_SLOT = "no free slot in the window"
OUTWEIGHED = "the slots went to requests with a higher weight"
OVERLAP = "its only times overlapped the resident's session for a request with a higher weight"


@dataclass
class Plan:
    assignments: list[dict]
    unassigned: list[dict]
    objective: dict
    arcs: int = 0  # the size of the flow solved


# Kept for the waitlist backfill, which ranks the requests a freed slot fits.


def _village_coverage(now: datetime) -> tuple[set[int], dict]:
    """Residents served in the last year, and each village's share of them."""
    since = now - loading.COVERAGE_LOOKBACK
    return loading.served_since(since), loading.village_coverage(since)


def request_weight(request: CareRequest, served_ids: set[int], village_coverage: dict,
                   on) -> float:
    resident = request.resident
    return loading.weight_of(request.urgency, resident.id not in served_ids,
                             resident.birth_date, village_coverage.get(resident.region_id, 0.0),
                             on)


def plan(actor: Actor, *, request_ids=None, start: datetime, end: datetime) -> Plan:
    if end <= start:
        raise ValidationFailed({"to": ["Must be after from."]})
    problem = loading.load(actor, request_ids=request_ids, start=start, end=end, now=utcnow())
    return solve(problem)


def hours(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() / 3600


class Graph:
    """Arcs collected in plain lists, handed to OR-Tools in one call."""

    def __init__(self):
        self.nodes = 2  # 0 is unused, 1 the sink
        self.tails, self.heads, self.caps, self.costs = [], [], [], []
        self.cost_array = np.zeros(0, dtype=np.int64)  # the costs, weights added, at the end

    def node(self) -> int:
        self.nodes += 1
        return self.nodes - 1

    def arc(self, tail: int, head: int, cap: int, cost: int) -> int:
        self.tails.append(tail)
        self.heads.append(head)
        self.caps.append(cap)
        self.costs.append(cost)
        return len(self.tails) - 1


class DayChains:
    """The nodes of one provider-day for one service: its slots, the chain of
    "this slot or a later one" (`after`), and of "this one or an earlier one"
    (`before`), each built only when some request needs it.

    When the provider has other services that day, the slots are nodes shared
    with them (`shared`, by start): a start is taken once, whichever service
    takes it."""

    def __init__(self, graph: Graph, day: ProviderDay, day_node: int, slot_costs: list[int],
                 *, fine: bool, cap_left: int, shared=None, pooled: int | None = None):
        self.graph, self.day, self.day_node, self.slot_costs = graph, day, day_node, slot_costs
        self.fine, self.cap_left, self.shared = fine, cap_left, shared
        self.slot_nodes: list[int] | None = None
        self.after: list[int] | None = None
        self.before: list[int] | None = None
        self.hub_node = pooled  # a pooled hub is shared with the day's other services
        self.pooled = pooled is not None

    def hub(self) -> int:
        """Where requests wanting any slot of the day enter. When nobody needs the
        slots one by one, a single node with an arc per slot the day can still take,
        earliest first (cheapest first: a plan never skips an earlier free slot)."""
        if self.fine:
            return self.from_slot(0)
        if self.hub_node is None:
            self.hub_node = self.graph.node()
            if self.shared is not None:
                for node in self.slots():
                    self.graph.arc(self.hub_node, node, 1, 0)
        return self.hub_node

    def slots(self) -> list[int]:
        if self.slot_nodes is None:
            if self.shared is None:
                self.slot_nodes = [self.graph.node() for _ in self.day.starts]
            else:
                self.slot_nodes = [self.shared(self.day, j) for j in range(len(self.day.starts))]
        return self.slot_nodes

    def _chain(self, step: int) -> list[int]:
        graph, slots = self.graph, self.slots()
        chain = [graph.node() for _ in slots]
        for j, node in enumerate(chain):
            graph.arc(node, slots[j], 1, 0)
            if 0 <= j + step < len(chain):  # at most the slots further along
                graph.arc(node, chain[j + step], len(chain) - j - 1 if step > 0 else j, 0)
        return chain

    def from_slot(self, j: int) -> int:
        if self.after is None:
            self.after = self._chain(+1)
        return self.after[j]

    def up_to_slot(self, j: int) -> int:
        if self.before is None:
            self.before = self._chain(-1)
        return self.before[j]

    def finish(self, slot_arcs: dict) -> None:
        """The slots' own arcs (capacity 1) into the provider-day (shared slots have
        theirs already)."""
        if self.shared is not None or self.pooled:
            return
        starts = self.day.starts
        if self.hub_node is not None:
            for j in range(min(len(starts), self.cap_left)):
                arc = self.graph.arc(self.hub_node, self.day_node, 1, self.slot_costs[j])
                slot_arcs[arc] = (self.day.provider_id, starts[j])
        for j, node in enumerate(self.slot_nodes or ()):
            arc = self.graph.arc(node, self.day_node, 1, self.slot_costs[j])
            slot_arcs[arc] = (self.day.provider_id, starts[j])


REPAIRS = 8  # re-solves allowed to keep one resident's requests apart


@collector_paused
def solve(problem: Instance) -> Plan:
    """The optimal plan, with one resident's requests never at overlapping times:
    the flow does not see that (a provider's sessions cannot overlap, since each
    provider is planned on one grid of starts). Each clash makes the lesser request
    keep clear of the weightier one's time and the flow is solved again; clashes
    are rare, so this settles in a round or two."""
    repaired: set[int] = set()
    for _ in range(REPAIRS):
        plan = _solve_once(problem)
        clashes = _resident_clashes(problem, plan)
        if not clashes:
            return _say_overlap(plan, repaired)
        repaired.update(clashes)
        for request_id, span in clashes.items():
            problem.avoid.setdefault(request_id, []).append(span)
    plan = _say_overlap(_solve_once(problem), repaired)
    dropped = _resident_clashes(problem, plan)  # still clashing after the repairs
    plan.assignments = [a for a in plan.assignments if a["request_id"] not in dropped]
    plan.unassigned += [{"request_id": request_id, "reason": OVERLAP} for request_id in dropped]
    kept = plan.assignments
    plan.objective.update(assigned=len(kept), cost=sum(a["cost"] for a in kept),
                          weighted_coverage=round(sum(a["score"] for a in kept), 3))
    return plan


def _resident_clashes(problem: Instance, plan: Plan) -> dict[int, tuple]:
    """Requests planned at a time that overlaps a weightier request of the same
    resident: request id -> that weightier session's (start, end)."""
    requests = {request.id: request for request in problem.requests}
    ranked = sorted(plan.assignments,
                    key=lambda a: (-requests[a["request_id"]].weight, a["request_id"]))
    kept: dict[int, list] = defaultdict(list)  # resident -> kept (start, end)
    clashes = {}
    for assignment in ranked:
        request = requests[assignment["request_id"]]
        span = (assignment["start"], assignment["end"])
        clash = next((k for k in kept[request.resident_id] if overlaps(*span, *k)), None)
        if clash is None:
            kept[request.resident_id].append(span)
        else:
            clashes[request.id] = clash
    return clashes


def _say_overlap(plan: Plan, repaired: set[int]) -> Plan:
    """A request left without times because repairs took them says so."""
    for item in plan.unassigned:
        if item["request_id"] in repaired and item["reason"] == NO_SLOT:
            item["reason"] = OVERLAP
    return plan


def _solve_once(problem: Instance) -> Plan:
    graph = Graph()
    t0 = problem.start
    day_nodes: dict = {}
    chains: dict[tuple[int, int, object], DayChains] = {}

    fine: set[tuple] = set()  # provider-days some request needs slot by slot
    services_on: dict[tuple[int, object], int] = defaultdict(int)
    for (provider_id, _), days in problem.days.items():
        for provider_day in days:
            services_on[(provider_id, provider_day.day)] += 1
    several = {key for key, count in services_on.items() if count > 1}

    @cache
    def lateness(at: datetime) -> int:  # starts repeat across providers: worth keeping
        return round(LATENESS_PER_HOUR * hours(at, t0))

    def day_node(provider_id: int, day) -> int:
        if (provider_id, day) not in day_nodes:
            day_nodes[(provider_id, day)] = graph.node()
        return day_nodes[(provider_id, day)]

    @cache
    def load_cost(provider_id: int, day) -> int:
        return round(TERMS * problem.load_weight * problem.week_load.get((provider_id, day), 0.0))

    def slot_cost(provider_id: int, day, at: datetime) -> int:
        return lateness(at) + load_cost(provider_id, day)

    slot_arcs: dict[int, tuple[int, datetime]] = {}
    shared_nodes: dict[tuple[int, datetime], int] = {}

    def shared(day: ProviderDay, j: int) -> int:
        """One node per (provider, start) for a provider-day of several services."""
        at = day.starts[j]
        if (day.provider_id, at) not in shared_nodes:
            node = shared_nodes[(day.provider_id, at)] = graph.node()
            arc = graph.arc(node, day_node(day.provider_id, day.day), 1,
                            slot_cost(day.provider_id, day.day, at))
            slot_arcs[arc] = (day.provider_id, at)
        return shared_nodes[(day.provider_id, at)]

    starts_of: dict[tuple[int, object], list] = defaultdict(list)
    for (provider_id, service_type_id), days in problem.days.items():
        for provider_day in days:
            starts_of[(provider_id, provider_day.day)].append((service_type_id,
                                                                provider_day.starts))
    pools: dict[tuple[int, object], int | None] = {}

    def pool(day: ProviderDay) -> int | None:
        """For a provider-day of several services with the same starts, none of them
        needed slot by slot: one entry node for all of them, with an arc per start
        the day can still take, as for a single service. None otherwise."""
        cap_key = (day.provider_id, day.day)
        if cap_key not in pools:
            offered = starts_of[cap_key]
            alike = (all(starts == offered[0][1] for _, starts in offered)
                     and not any((day.provider_id, service, day.day) in fine
                                 for service, _ in offered))
            pools[cap_key] = None
            if alike:
                node = pools[cap_key] = graph.node()
                for at in day.starts[:problem.cap_left.get(cap_key, 0)]:
                    arc = graph.arc(node, day_node(*cap_key), 1, slot_cost(*cap_key, at))
                    slot_arcs[arc] = (day.provider_id, at)
        return pools[cap_key]

    def chain(day: ProviderDay) -> DayChains:
        key = (day.provider_id, day.service_type_id, day.day)
        if key not in chains:
            cap_key = (day.provider_id, day.day)
            pooled = pool(day) if cap_key in several else None
            chains[key] = DayChains(
                graph, day, day_node(*cap_key),
                [] if pooled is not None else [slot_cost(*cap_key, at) for at in day.starts],
                fine=key in fine, cap_left=problem.cap_left.get(cap_key, 0),
                shared=shared if cap_key in several and pooled is None else None, pooled=pooled)
        return chains[key]

    def fan_out(day: dict) -> int:
        """A group's node for one day, with an arc to each of its providers' days."""
        if day["node"] is None:
            day["node"] = graph.node()
            for provider_day, cost in day["days"]:
                graph.arc(day["node"], chain(provider_day).hub(),
                          len(provider_day.starts), cost)
        return day["node"]

    # Village groups: same service, same providers at the same terms.
    groups: dict[tuple, dict] = {}
    request_nodes: dict[int, int] = {}
    entries: list[tuple[int, tuple]] = []
    unassigned_arcs: dict[int, Request] = {}
    reasons: dict[int, str] = {}
    for request in problem.requests:
        r = request_nodes[request.id] = graph.node()  # a supply of one
        unassigned_arcs[graph.arc(r, 1, 1, 0)] = request
        providers = problem.eligible[(request.village_id, request.service_type_id)]
        if not providers:
            reasons[request.id] = NO_PROVIDER
            continue
        terms = problem.terms[(request.village_id, request.languages, request.service_type_id)]
        group = groups.get((request.service_type_id, terms))
        if group is None:
            group = groups[(request.service_type_id, terms)] = _group(
                problem, request.service_type_id, terms)
        entry = -round(LATENESS_PER_HOUR * hours(request.start, t0))
        ways = _ways_in(problem, request, entry, group, fine)
        if not ways:
            reasons[request.id] = NO_SLOT
        entries.extend((r, way) for way in ways)
    # Now that every provider-day needed slot by slot is known, build the arcs.
    for r, (kind, target, at, cost) in entries:
        if kind == "group":
            graph.arc(r, fan_out(target), 1, cost)
        elif kind == "day":
            graph.arc(r, chain(target).hub(), 1, cost)
        elif kind == "after":
            graph.arc(r, chain(target).from_slot(at), 1, cost)
        elif kind == "before":
            graph.arc(r, chain(target).up_to_slot(at), 1, cost)
        else:
            slots = chain(target).slots()
            for j in at:
                graph.arc(r, slots[j], 1, cost)
    for day_chains in chains.values():
        day_chains.finish(slot_arcs)
    for (provider_id, day), node in day_nodes.items():
        graph.arc(node, 1, problem.cap_left.get((provider_id, day), 0), 0)
    worth = _add_weights(graph, problem, request_nodes)
    return _read_plan(problem, graph, request_nodes, unassigned_arcs, slot_arcs, reasons, worth)


def _add_weights(graph: Graph, problem: Instance, request_nodes: dict) -> int:
    """Put each request's weight on its arcs into the graph, in units worth more than
    every cost of a plan together (a path carries at most three costed arcs), so no
    saving in cost can ever buy a loss in weighted coverage. The unit, returned."""
    costs = np.asarray(graph.costs, dtype=np.int64)
    tails = np.asarray(graph.tails, dtype=np.int64)
    heads = np.asarray(graph.heads, dtype=np.int64)
    worth = 3 * int(np.abs(costs).max(initial=0)) * max(len(problem.requests), 1) + 1
    weights = np.zeros(graph.nodes, dtype=np.int64)
    for request in problem.requests:  # weights have three decimals
        weights[request_nodes[request.id]] = round(request.weight * 1000)
    entering = (weights[tails] > 0) & (heads != 1)
    costs[entering] -= weights[tails[entering]] * worth
    graph.cost_array = costs
    return worth


def _group(problem: Instance, service_type_id: int, terms: tuple) -> dict:
    """The group's days: for each local day, its providers' days and the span from
    the first start to the last end, and (built when first used) its fan-out node."""
    days: dict = defaultdict(lambda: {"days": [], "node": None})
    for provider_id, cost in terms:
        for day in problem.days.get((provider_id, service_type_id), ()):
            days[day.day]["days"].append((day, cost))
    for entry in days.values():
        entry["first"] = min(day.starts[0] for day, _ in entry["days"])
        entry["last"] = max(day.ends[-1] for day, _ in entry["days"])
        entry["by_provider"] = {day.provider_id: (day, cost) for day, cost in entry["days"]}
    return {"days": sorted(days.items()), "terms": dict(terms)}


def _ways_in(problem: Instance, request: Request, entry: int, group: dict,
             fine: set) -> list[tuple]:
    """How the request enters the graph: (kind, target, slot, cost) for each day of
    its window; none when the window holds no free slot. Provider-days it needs slot
    by slot are added to `fine`."""
    busy = [*problem.busy.get(request.resident_id, ()), *problem.avoid.get(request.id, ())]
    last = request.last_provider_id if request.last_provider_id in group["terms"] else None
    bonus = round(TERMS * problem.continuity)
    ways = []
    for _, day in group["days"]:
        if day["last"] <= request.start or day["first"] >= request.end:
            continue
        # The resident's sessions on this day only: checking every one against every
        # slot of every day grew with the square of a long waitlist.
        day_busy = [(b, e) for b, e in busy if b < day["last"] and e > day["first"]]
        whole = (request.start <= day["first"] and day["last"] <= request.end
                 and not day_busy)
        if whole:  # through the group's node, and straight to the last provider too
            ways.append(("group", day, None, entry))
            own = day["by_provider"].get(last)
            chosen = [own] if own is not None else []
        else:
            chosen = day["days"]
        for provider_day, cost in chosen:
            is_last = provider_day.provider_id == last
            way = _way_into_day(problem, request, entry + cost - (bonus if is_last else 0),
                                provider_day, day_busy)
            if way is not None:
                ways.append(way)
                if way[0] != "day":
                    fine.add((provider_day.provider_id, provider_day.service_type_id,
                              provider_day.day))
    return ways


def _way_into_day(problem: Instance, request: Request, cost: int, day: ProviderDay,
                  busy) -> tuple | None:
    """How the request enters one provider-day, for the slots of its window there."""
    first = bisect_left(day.starts, request.start)
    last = bisect_right(day.ends, request.end) - 1
    if first > last:
        return None
    mine = [j for j in range(first, last + 1)
            if not busy or not any(overlaps(day.starts[j], day.ends[j], b, e) for b, e in busy)]
    if not mine:
        return None
    if len(mine) == last - first + 1:
        if first == 0 and last == len(day.starts) - 1:
            return ("day", day, None, cost)
        if last == len(day.starts) - 1:
            return ("after", day, first, cost)
        if first == 0:
            return ("before", day, last, cost)
    # Both ends cut, or busy in between: the first free slots, as many as the day
    # can still take (a later one could always be swapped for one of them).
    return ("slots", day, mine[:max(problem.cap_left.get((day.provider_id, day.day), 0), 1)],
            cost)


def _read_plan(problem: Instance, graph: Graph, request_nodes, unassigned_arcs, slot_arcs,
               reasons, worth: int) -> Plan:
    flow = min_cost_flow.SimpleMinCostFlow()
    if graph.tails:
        flow.add_arcs_with_capacity_and_unit_cost(
            np.asarray(graph.tails, dtype=np.int32), np.asarray(graph.heads, dtype=np.int32),
            np.asarray(graph.caps, dtype=np.int64), graph.cost_array)
    supply = len(problem.requests)
    for node in request_nodes.values():
        flow.set_node_supply(node, 1)
    flow.set_node_supply(1, -supply)
    if supply and (status := flow.solve()) != flow.OPTIMAL:
        raise ServiceError(f"The matching problem could not be solved ({status}).")
    flows = flow.flows(np.arange(len(graph.tails))) if graph.tails else np.zeros(0)
    # Follow the flow from each request to the slot it reached: each node's arcs
    # that carry flow, used up in turn.
    used = np.nonzero(flows)[0]
    outgoing: dict[int, list[list[int]]] = defaultdict(list)
    for arc, units, cost in zip(used.tolist(), flows[used].tolist(),
                                graph.cost_array[used].tolist(), strict=True):
        outgoing[graph.tails[arc]].append([arc, units, cost])
    assignments, unassigned, total_cost = [], [], 0
    by_id = {request.id: request for request in problem.requests}
    for request_id, node in request_nodes.items():
        request = by_id[request_id]
        path_cost, reached = 0, None
        while reached is None:
            arcs = outgoing.get(node)
            if not arcs or arcs[-1][0] in unassigned_arcs:
                break
            step = arcs[-1]
            step[1] -= 1
            if not step[1]:
                arcs.pop()
            path_cost += step[2]
            reached = slot_arcs.get(step[0])
            node = graph.heads[step[0]]
        if reached is None:
            unassigned.append({"request_id": request_id,
                               "reason": reasons.get(request_id, OUTWEIGHED)})
            continue
        provider_id, start = reached
        duration = problem.service_types[request.service_type_id].duration_minutes
        cost = path_cost + round(request.weight * 1000) * worth
        total_cost += cost
        assignments.append({"request_id": request_id, "provider_id": provider_id,
                            "start": start, "end": start + timedelta(minutes=duration),
                            "score": request.weight, "cost": cost})
    assignments.sort(key=lambda a: (a["start"], a["request_id"]))
    return Plan(assignments, unassigned, {
        "assigned": len(assignments),
        "weighted_coverage": round(sum(a["score"] for a in assignments), 3),
        "cost": total_cost}, arcs=len(graph.tails))


def first_come(problem: Instance) -> Plan:
    """The plan of first come, first served, for comparison: each request, oldest
    first, takes the earliest start it may have, where the provider is still free
    (buffers included) and under the day's cap, and the resident too."""
    held, lived, per_day = defaultdict(list), defaultdict(list), defaultdict(int)
    assignments, unassigned = [], []
    for request in sorted(problem.requests, key=lambda r: (r.created_at, r.id)):
        kind = problem.service_types[request.service_type_id]
        duration = timedelta(minutes=kind.duration_minutes)
        hold = duration + timedelta(minutes=kind.buffer_minutes)
        busy = [*problem.busy.get(request.resident_id, ()), *lived[request.resident_id]]
        options = sorted(
            (at, provider_id, day.day)
            for provider_id in problem.eligible[(request.village_id, request.service_type_id)]
            for day in problem.days.get((provider_id, request.service_type_id), ())
            for at, until in zip(day.starts, day.ends, strict=True)
            if request.start <= at and until <= request.end)
        for start, provider_id, day in options:
            if (per_day[(provider_id, day)] >= problem.cap_left.get((provider_id, day), 0)
                    or any(overlaps(start, start + hold, b, e) for b, e in held[provider_id])
                    or any(overlaps(start, start + duration, b, e) for b, e in busy)):
                continue
            held[provider_id].append((start, start + hold))
            lived[request.resident_id].append((start, start + duration))
            per_day[(provider_id, day)] += 1
            assignments.append({"request_id": request.id, "provider_id": provider_id,
                                "start": start, "end": start + duration,
                                "score": request.weight, "cost": 0})
            break
        else:
            unassigned.append({"request_id": request.id, "reason": NO_SLOT if not options
                               else "the slots went to requests that came first"})
    return Plan(assignments, unassigned, {
        "assigned": len(assignments), "cost": 0,
        "weighted_coverage": round(sum(a["score"] for a in assignments), 3)})


def run_batch(actor: Actor, *, request_ids=None, start: datetime, end: datetime,
              commit: bool = False, policy: str = "optimal") -> Plan:
    """The optimal plan (or first come, first served: `policy="first_come"`, for
    comparison); with `commit`, each assignment booked through the scheduling core
    (still guarded by the database). One that lost its slot meanwhile is reported."""
    if policy == "first_come":
        if end <= start:
            raise ValidationFailed({"to": ["Must be after from."]})
        result = first_come(loading.load(actor, request_ids=request_ids, start=start, end=end,
                                         now=utcnow()))
    else:
        result = plan(actor, request_ids=request_ids, start=start, end=end)
    if not commit:
        return result
    codes = dict(db.session.execute(sa.select(ServiceType.id, ServiceType.code)).all())
    booked = []
    for assignment in result.assignments:
        request = db.session.get(CareRequest, assignment["request_id"])
        try:
            booking.book_appointment(actor, resident_id=request.resident_id,
                                     provider_id=assignment["provider_id"],
                                     service_type=codes[request.service_type_id],
                                     start=assignment["start"], care_request_id=request.id)
            booked.append(assignment)
        except ServiceError as refusal:
            db.session.rollback()
            result.unassigned.append({"request_id": assignment["request_id"],
                                      "reason": f"not booked: {refusal.message}"})
    result.assignments = booked
    result.objective = {**result.objective, "assigned": len(booked),
                        "weighted_coverage": round(sum(a["score"] for a in booked), 3),
                        "cost": sum(a["cost"] for a in booked)}
    return result
