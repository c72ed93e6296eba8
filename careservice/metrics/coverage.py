"""Coverage: who the service reaches, by group, and the equity gaps between groups.

Definitions (API.md, "Metrics"), for a period [start, end):
- registered: residents of the group registered before `end` (grouping by
  service type or provider kind: every resident in scope);
- served: those with at least one completed session starting in the period
  (of that service type / provider kind when grouping by them);
- sessions_booked: sessions starting in the period that were booked (not
  recorded afterwards), in any status; sessions_completed: the completed ones
  (recorded ones included); no_show_rate = no-shows / (completed + no-shows);
  cancellation_rate = cancelled / booked;
- median_wait_days: median of days from a care request's creation to the
  start of the session that took it, over sessions starting in the period;
- unmet_requests: open or expired requests whose window overlaps the period;
- sms_delivery_rate = delivered / (delivered + undelivered + failed) over
  reminders sent in the period;
- age bands at `end`: 0-59, 60-69, 70-79, 80+.
A rate with nothing to divide by is None (null).

The figures come from cells (metrics.cells), folded into rows here: computed
from the raw rows for any period, or read from a stored rollup when the period
is exactly a stored calendar day, ISO week or month (metrics.rollups).
"""

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa

from careservice.core.auth import Actor
from careservice.core.errors import Forbidden, NotFound, ValidationFailed
from careservice.core.models import Role
from careservice.extensions import db
from careservice.metrics import rollups
from careservice.metrics.cells import (
    BANDS,
    MICROSECONDS_PER_DAY,
    Cell,
    CellKey,
    compute_cells,
    read,
)
from careservice.people.models import ProviderKind, Region, RegionKind, path_ids
from careservice.scheduling.models import ServiceType

GROUPINGS = ("region", "zone", "setting", "age_band", "sex", "service_type", "provider_kind")
AGE_BANDS = BANDS
ROW_FIELDS = ("group", "label", "registered", "served", "coverage_rate", "sessions_booked",
              "sessions_completed", "no_show_rate", "cancellation_rate", "median_wait_days",
              "unmet_requests", "sms_delivery_rate", "sessions_across_partner_regions")


def age_band(birth: date, on: date) -> str:
    age = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    if age >= 80:
        return "80+"
    if age >= 70:
        return "70-79"
    if age >= 60:
        return "60-69"
    return "0-59"


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def gini(values: list[float]) -> float:
    """Sum over ordered pairs of |c_i - c_j|, over 2 n^2 times the mean (0 for a 0 mean)."""
    n = len(values)
    if n == 0:
        return 0.0
    # Sorted first, sums included: float sums depend on order, and the same villages
    # must give the same figure whatever order their cells were read in.
    ordered = sorted(values)
    mean = sum(ordered) / n
    if mean == 0:
        return 0.0
    # sum_{i,j} |x_i - x_j| = 2 * sum_i (2i - n + 1) x_i over sorted x (0-based i)
    pairs = 2 * sum((2 * i - n + 1) * x for i, x in enumerate(ordered))
    return pairs / (2 * n * n * mean)


def scope_paths(actor: Actor, region_id: int | None) -> list[str]:
    """The region paths the report covers: the region asked for, inside the actor's scope."""
    if actor.role not in (Role.ADMIN, Role.COORDINATOR):
        raise Forbidden("Coverage is for coordinators and admins.")
    if region_id is not None:
        region = db.session.get(Region, region_id)
        if region is None or not actor.covers_path(region.path):
            raise NotFound("No such region in your regions.")
        return [region.path]
    if actor.is_admin:
        return ["/"]
    return list(actor.region_paths)


def coverage(actor: Actor, *, start: datetime, end: datetime, group_by: str = "region",
             region_id: int | None = None, level: str = "village") -> dict:
    """The report: rows, equity, and `source`, "rollup" when [start, end) is a stored
    period (metrics.rollups), else "raw"; both fold the same cells, so they agree."""
    if end <= start:
        raise ValidationFailed({"to": ["Must be after from."]})
    if group_by not in GROUPINGS:
        raise ValidationFailed({"group_by": [f"One of {', '.join(GROUPINGS)}."]})
    if level not in {kind.value for kind in RegionKind}:
        raise ValidationFailed({"level": ["One of province, county, township, village."]})
    paths = scope_paths(actor, region_id)
    cells, source = rollups.stored_cells(start, end, paths, group_by), "rollup"
    if cells is None:
        cells, source = compute_cells(start, end, paths), "raw"
    return {**fold(cells, group_by, level), "source": source}


@dataclass
class Lookups:
    regions: dict            # id -> (id, name, kind, path, zone, setting)
    services: dict           # code -> name

    @classmethod
    def load(cls) -> "Lookups":
        return cls(
            {row.id: row for row in read(
                sa.select(Region.id, Region.name, Region.kind, Region.path, Region.zone,
                          Region.setting))},
            dict(read(sa.select(ServiceType.code, ServiceType.name)).all()))


def fold(cells: dict[CellKey, Cell], group_by: str, level: str = "village",
         lookups: Lookups | None = None) -> dict:
    """The API's rows for a grouping, and the equity block, from a period's cells."""
    lookups = lookups or Lookups.load()
    people = {key: cell for key, cell in cells.items() if key[3] is None and key[4] is None}
    return {"rows": _rows(cells, people, lookups, group_by, level),
            "equity": _equity(people, lookups.regions)}


def row(group, label, tally: Cell) -> dict:
    return {
        "group": group, "label": label,
        "registered": tally.registered, "served": tally.served,
        "coverage_rate": ratio(tally.served, tally.registered),
        "sessions_booked": tally.booked, "sessions_completed": tally.completed,
        "no_show_rate": ratio(tally.no_shows, tally.completed + tally.no_shows),
        "cancellation_rate": ratio(tally.cancelled, tally.booked),
        "median_wait_days": (statistics.median(tally.waits) / MICROSECONDS_PER_DAY
                             if tally.waits else None),
        "unmet_requests": tally.unmet,
        "sms_delivery_rate": ratio(tally.sms_delivered,
                                   tally.sms_delivered + tally.sms_not_delivered),
        "sessions_across_partner_regions": tally.across_partners,
    }


def _rows(cells: dict, people: dict, lookups: Lookups, group_by: str, level: str) -> list[dict]:
    regions = lookups.regions
    if group_by in ("service_type", "provider_kind"):
        # Every resident in scope is registered for each service type and provider kind.
        registered = sum(cell.registered for key, cell in people.items() if key[0] is not None)
        position, keys = ((3, sorted(lookups.services)) if group_by == "service_type"
                          else (4, [kind.value for kind in ProviderKind]))
        tallies = {key: Cell(registered=registered) for key in keys}
        for key, cell in cells.items():
            if key[position] is not None:
                tallies.setdefault(key[position], Cell(registered=registered)).add(cell)
    else:
        group_of = _grouper(group_by, level, regions)
        tallies = defaultdict(Cell)
        for (village_id, sex, band, _, _), cell in people.items():
            tallies[group_of(village_id, sex, band)].add(cell)
    rows = []
    for key in sorted(tallies, key=lambda k: (k is None, str(k))):
        if key is None:
            continue
        label = (regions[key].name if group_by == "region"
                 else lookups.services.get(key, key) if group_by == "service_type" else key)
        rows.append(row(key, label, tallies[key]))
    if group_by == "age_band":
        rows.sort(key=lambda r: AGE_BANDS.index(r["group"]))
    return rows


def _grouper(group_by: str, level: str, regions: dict):
    """(village id, sex, age band) -> the group's key (None: in no group)."""
    if group_by == "region":
        ancestors = {}

        def ancestor(village_id, _sex, _band):
            if village_id is None:
                return None
            if village_id not in ancestors:
                ancestors[village_id] = next(
                    (region_id for region_id in path_ids(regions[village_id].path)
                     if region_id in regions and regions[region_id].kind == level), None)
            return ancestors[village_id]

        return ancestor
    if group_by == "age_band":
        return lambda _village_id, _sex, band: band
    if group_by == "sex":
        return lambda _village_id, sex, _band: sex
    return lambda village_id, _sex, _band: (None if village_id is None
                                            else getattr(regions[village_id], group_by))


def _equity(people: dict, regions: dict) -> dict:
    per_village: dict = defaultdict(lambda: [0, 0])
    per_setting: dict = defaultdict(lambda: [0, 0])
    per_zone: dict = defaultdict(lambda: [0, 0])
    for (village_id, *_), cell in people.items():
        if village_id is None:  # merged over villages (rollups.stored_cells)
            continue
        village = regions[village_id]
        for bucket in (per_village[village_id], per_setting[village.setting],
                       per_zone[village.zone]):
            bucket[0] += cell.registered
            bucket[1] += cell.served

    def group_ratio(buckets: dict, a: str, b: str) -> float | None:
        """Group a's coverage over group b's; None when b's is 0 or b is absent."""
        if a not in buckets or b not in buckets:
            return None
        rate_a, rate_b = (ratio(buckets[k][1], buckets[k][0]) for k in (a, b))
        return ratio(rate_a, rate_b) if rate_a is not None and rate_b else None

    villages = [served / registered for registered, served in per_village.values()
                if registered]
    best = max(villages) if villages else 0
    return {
        "rural_urban_ratio": group_ratio(per_setting, "rural", "urban"),
        "west_east_ratio": group_ratio(per_zone, "west", "east"),
        "worst_best_village_ratio": ratio(min(villages), best) if villages and best else None,
        "gini": gini(villages),
        "villages": len(villages),
    }
