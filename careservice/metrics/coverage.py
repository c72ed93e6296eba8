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
"""

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime

import sqlalchemy as sa

from careservice.core.auth import Actor
from careservice.core.errors import Forbidden, NotFound, ValidationFailed
from careservice.core.models import Role
from careservice.extensions import db
from careservice.people.models import (
    Provider,
    Region,
    RegionKind,
    Resident,
    partnered_ancestor,
    path_ids,
)
from careservice.reminders.models import Reminder, ReminderStatus
from careservice.scheduling.models import Appointment, CareRequest, RequestStatus, ServiceType

GROUPINGS = ("region", "zone", "setting", "age_band", "sex", "service_type", "provider_kind")
AGE_BANDS = ("0-59", "60-69", "70-79", "80+")
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
    mean = sum(values) / n
    if mean == 0:
        return 0.0
    ordered = sorted(values)
    # sum_{i,j} |x_i - x_j| = 2 * sum_i (2i - n + 1) x_i over sorted x (0-based i)
    pairs = 2 * sum((2 * i - n + 1) * x for i, x in enumerate(ordered))
    return pairs / (2 * n * n * mean)


@dataclass
class Tally:
    registered: set = field(default_factory=set)
    served: set = field(default_factory=set)
    booked: int = 0
    completed: int = 0
    no_shows: int = 0
    cancelled: int = 0
    waits: list = field(default_factory=list)
    unmet: int = 0
    delivered: int = 0
    not_delivered: int = 0
    across_partners: int = 0

    def row(self, group, label) -> dict:
        return {
            "group": group, "label": label,
            "registered": len(self.registered), "served": len(self.served),
            "coverage_rate": ratio(len(self.served), len(self.registered)),
            "sessions_booked": self.booked, "sessions_completed": self.completed,
            "no_show_rate": ratio(self.no_shows, self.completed + self.no_shows),
            "cancellation_rate": ratio(self.cancelled, self.booked),
            "median_wait_days": statistics.median(self.waits) if self.waits else None,
            "unmet_requests": self.unmet,
            "sms_delivery_rate": ratio(self.delivered, self.delivered + self.not_delivered),
            "sessions_across_partner_regions": self.across_partners,
        }


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
    if end <= start:
        raise ValidationFailed({"to": ["Must be after from."]})
    if group_by not in GROUPINGS:
        raise ValidationFailed({"group_by": [f"One of {', '.join(GROUPINGS)}."]})
    if level not in {kind.value for kind in RegionKind}:
        raise ValidationFailed({"level": ["One of province, county, township, village."]})
    paths = scope_paths(actor, region_id)
    data = _load(paths, start, end)
    return {"rows": _rows(data, group_by, level, end), "equity": _equity(data)}


@dataclass
class _Data:
    regions: dict            # id -> Region row (id, name, kind, path, zone, setting, partner)
    residents: dict          # id -> (village_id, birth_date, sex)
    sessions: list           # (resident_id, service code, provider kind, status, recorded,
                             #  provider home region id)
    waits: list              # (resident_id, service code, provider kind, days)
    unmet: list              # (resident_id, service code)
    sms: list                # (resident_id, status)
    services: dict           # code -> name


def _in_paths(column, paths: list[str]):
    return sa.or_(*(column.startswith(path) for path in paths))


def _load(paths: list[str], start: datetime, end: datetime) -> _Data:
    regions = {row.id: row for row in db.session.execute(
        sa.select(Region.id, Region.name, Region.kind, Region.path, Region.zone, Region.setting,
                  Region.partner_region_id))}
    in_scope = (sa.select(Resident.id).join(Region, Resident.region_id == Region.id)
                .where(_in_paths(Region.path, paths), Resident.created_at < end))
    residents = {row.id: (row.region_id, row.birth_date, row.sex) for row in db.session.execute(
        sa.select(Resident.id, Resident.region_id, Resident.birth_date, Resident.sex)
        .where(Resident.id.in_(in_scope)))}
    period = (Appointment.start_at >= start) & (Appointment.start_at < end)
    sessions = db.session.execute(
        sa.select(Appointment.resident_id, ServiceType.code, Provider.kind, Appointment.status,
                  Appointment.recorded, Provider.home_region_id)
        .join(ServiceType, Appointment.service_type_id == ServiceType.id)
        .join(Provider, Appointment.provider_id == Provider.id)
        .where(period, Appointment.resident_id.in_(in_scope))).all()
    waits = [(row.resident_id, row.code, row.kind,
              (row.start_at - row.created_at).total_seconds() / 86400)
             for row in db.session.execute(
                 sa.select(CareRequest.resident_id, ServiceType.code, Provider.kind,
                           Appointment.start_at, CareRequest.created_at)
                 .join(Appointment, CareRequest.appointment_id == Appointment.id)
                 .join(ServiceType, Appointment.service_type_id == ServiceType.id)
                 .join(Provider, Appointment.provider_id == Provider.id)
                 .where(period, CareRequest.resident_id.in_(in_scope)))]
    unmet = db.session.execute(
        sa.select(CareRequest.resident_id, ServiceType.code)
        .join(ServiceType, CareRequest.service_type_id == ServiceType.id)
        .where(CareRequest.status.in_((RequestStatus.OPEN, RequestStatus.EXPIRED)),
               CareRequest.earliest < end, CareRequest.latest > start,
               CareRequest.resident_id.in_(in_scope))).all()
    sms = db.session.execute(
        sa.select(Reminder.resident_id, Reminder.status)
        .where(Reminder.sent_at >= start, Reminder.sent_at < end,
               Reminder.status.in_((ReminderStatus.DELIVERED, ReminderStatus.UNDELIVERED,
                                    ReminderStatus.FAILED)),
               Reminder.resident_id.in_(in_scope))).all()
    services = dict(db.session.execute(sa.select(ServiceType.code, ServiceType.name)).all())
    return _Data(regions, residents, sessions, waits, unmet, sms, services)


def _ancestor_at(regions: dict, village_id: int, level: str) -> int | None:
    for region_id in path_ids(regions[village_id].path):
        region = regions.get(region_id)
        if region is not None and region.kind == level:
            return region.id
    return None


def _rows(data: _Data, group_by: str, level: str, end: datetime) -> list[dict]:
    regions, residents = data.regions, data.residents
    on = end.date()
    by_service = group_by in ("service_type", "provider_kind")

    def resident_groups(resident_id) -> list:
        village_id, birth, sex = residents[resident_id]
        village = regions[village_id]
        if group_by == "region":
            return [_ancestor_at(regions, village_id, level)]
        if group_by == "zone":
            return [village.zone]
        if group_by == "setting":
            return [village.setting]
        if group_by == "age_band":
            return [age_band(birth, on)]
        return [sex]

    tallies: dict = defaultdict(Tally)
    if by_service:
        keys = (sorted(data.services) if group_by == "service_type"
                else ["clinician", "caregiver"])
        for key in keys:
            tallies[key].registered.update(residents)

    def keys_of(resident_id, code=None, kind=None) -> list:
        if group_by == "service_type":
            return [code]
        if group_by == "provider_kind":
            return [kind]
        return resident_groups(resident_id)

    if not by_service:
        for resident_id in residents:
            for key in keys_of(resident_id):
                tallies[key].registered.add(resident_id)
    for resident_id, code, kind, status, recorded, home_region_id in data.sessions:
        for key in keys_of(resident_id, code, kind):
            tally = tallies[key]
            if not recorded:
                tally.booked += 1
            if status == "completed":
                tally.completed += 1
                tally.served.add(resident_id)
            elif status == "no_show":
                tally.no_shows += 1
            elif status == "cancelled":
                tally.cancelled += 1
            if status != "cancelled" and _across_partners(regions, residents[resident_id][0],
                                                          home_region_id):
                tally.across_partners += 1
    for resident_id, code, kind, days in data.waits:
        for key in keys_of(resident_id, code, kind):
            tallies[key].waits.append(days)
    for resident_id, code in data.unmet:
        for key in (keys_of(resident_id, code) if group_by != "provider_kind" else []):
            tallies[key].unmet += 1
    for resident_id, status in data.sms:
        for key in (resident_groups(resident_id) if not by_service else []):
            if status == ReminderStatus.DELIVERED:
                tallies[key].delivered += 1
            else:
                tallies[key].not_delivered += 1
    rows = []
    for key in sorted(tallies, key=lambda k: (k is None, str(k))):
        if key is None:
            continue
        label = (regions[key].name if group_by == "region"
                 else data.services.get(key, key) if group_by == "service_type" else key)
        rows.append(tallies[key].row(key, label))
    if group_by == "age_band":
        rows.sort(key=lambda row: AGE_BANDS.index(row["group"]))
    return rows


def _across_partners(regions: dict, village_id: int, provider_home_id: int) -> bool:
    """The provider's home lies in a region partnered with one holding the village."""
    return partnered_ancestor(regions[provider_home_id].path, regions[village_id].path,
                              lambda region_id: regions[region_id].partner_region_id) is not None


def _equity(data: _Data) -> dict:
    regions, residents = data.regions, data.residents
    served = {resident_id for resident_id, _, _, status, _, _ in data.sessions
              if status == "completed"}
    per_village: dict = defaultdict(lambda: [0, 0])
    per_setting: dict = defaultdict(lambda: [0, 0])
    per_zone: dict = defaultdict(lambda: [0, 0])
    for resident_id, (village_id, _, _) in residents.items():
        village = regions[village_id]
        hit = resident_id in served
        for bucket in (per_village[village_id], per_setting[village.setting],
                       per_zone[village.zone]):
            bucket[0] += 1
            bucket[1] += hit

    def group_ratio(buckets: dict, a: str, b: str) -> float | None:
        """Group a's coverage over group b's; None when b's is 0 or b is absent."""
        if a not in buckets or b not in buckets:
            return None
        rate_a, rate_b = (ratio(buckets[k][1], buckets[k][0]) for k in (a, b))
        return ratio(rate_a, rate_b) if rate_a is not None and rate_b else None

    villages = [served_n / registered for registered, served_n in per_village.values()
                if registered]
    best = max(villages) if villages else 0
    return {
        "rural_urban_ratio": group_ratio(per_setting, "rural", "urban"),
        "west_east_ratio": group_ratio(per_zone, "west", "east"),
        "worst_best_village_ratio": ratio(min(villages), best) if villages and best else None,
        "gini": gini(villages),
        "villages": len(villages),
    }
