"""Suggestions for one resident and service: the best (provider, start) pairs,
each with a score and the reasons behind it.

Hard rules decide who may appear at all: the provider is active, has the
service's skill and modality, serves the resident's village (their service
regions, or their home region when they list none), is free then (slots apply
availability, bookings, buffers, notice, horizon and the daily cap), and the
resident is free too. Sharing no language is allowed but costs a penalty and
says an interpreter is needed. Soft rules add up to the score, each weighted
by a setting (MATCH_WEIGHT_*).
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from careservice.core.auth import Actor
from careservice.core.errors import NotFound, ValidationFailed
from careservice.core.time import overlaps, zone
from careservice.extensions import db
from careservice.people.models import (
    Modality,
    Provider,
    Region,
    Resident,
    partnered_ancestor,
    path_ids,
)
from careservice.people.services import find_resident
from careservice.scheduling.booking import body_service_type, minutes_between
from careservice.scheduling.models import LIVE, Appointment, ServiceType, Status
from careservice.scheduling.slots import Slot, free_slots, offers

URGENCY_BOOST = {"routine": 1.0, "soon": 1.5, "urgent": 2.5}


@dataclass
class Suggestion:
    provider_id: int
    start: datetime
    end: datetime
    score: float
    reasons: list[str] = field(default_factory=list)


def serves(provider: Provider, village: Region) -> bool:
    """Caregivers serve their villages; clinicians the regions they are licensed for;
    a provider who lists none serves their home region."""
    areas = provider.service_regions or [provider.home_region]
    return village.is_within([area.path for area in areas])


def eligible_providers(resident: Resident, service_type: ServiceType) -> list[Provider]:
    providers = db.session.execute(
        sa.select(Provider).where(Provider.active.is_(True)).order_by(Provider.id)
    ).unique().scalars().all()
    return [p for p in providers if offers(p, service_type) and serves(p, resident.region)]


def last_provider_id(resident: Resident, service_type: ServiceType) -> int | None:
    return db.session.execute(
        sa.select(Appointment.provider_id).where(
            Appointment.resident_id == resident.id,
            Appointment.service_type_id == service_type.id,
            Appointment.status == Status.COMPLETED)
        .order_by(Appointment.start_at.desc()).limit(1)).scalar_one_or_none()


def is_partner(provider: Provider, village: Region) -> Region | None:
    """The provider's home region partnered with the village's, if any."""
    home_chain = path_ids(provider.home_region.path)
    partners = dict(db.session.execute(
        sa.select(Region.id, Region.partner_region_id).where(Region.id.in_(home_chain))).all())
    region_id = partnered_ancestor(provider.home_region.path, village.path, partners.get)
    return db.session.get(Region, region_id) if region_id is not None else None


def week_load(provider: Provider, at: datetime) -> float:
    """The share of the provider's week (at their daily cap) already booked."""
    tz = zone(provider.timezone)
    local = at.astimezone(tz)
    week_start = datetime.combine(local.date() - timedelta(days=local.weekday()),
                                  datetime.min.time(), tzinfo=tz)
    booked = db.session.execute(
        sa.select(sa.func.count()).select_from(Appointment).where(
            Appointment.provider_id == provider.id, Appointment.status.in_(LIVE),
            Appointment.start_at >= week_start,
            Appointment.start_at < week_start + timedelta(days=7))).scalar_one()
    return booked / (provider.max_sessions_per_day * 7)


def resident_busy(resident: Resident, start: datetime, end: datetime) -> list[tuple]:
    return db.session.execute(
        sa.select(Appointment.start_at, Appointment.end_at).where(
            Appointment.resident_id == resident.id, Appointment.status.in_(LIVE),
            overlaps(Appointment.start_at, Appointment.end_at, start, end))).all()


def suggest(actor: Actor, *, resident_id: int, service_type: str, start: datetime,
            end: datetime, limit: int = 10, urgency: str = "routine") -> list[Suggestion]:
    """The best (provider, start) pairs, best first: each provider's best start
    before anyone's second."""
    if end <= start:
        raise ValidationFailed({"to": ["Must be after from."]})
    try:
        resident = find_resident(actor, resident_id)
    except NotFound:
        raise NotFound("No such resident.") from None
    kind = body_service_type(service_type)
    config = current_app.config
    village = resident.region
    busy = resident_busy(resident, start, end)
    last = last_provider_id(resident, kind)
    by_provider: list[list[Suggestion]] = []
    for provider in eligible_providers(resident, kind):
        slots = [s for s in free_slots(provider, kind, start, end)
                 if not any(overlaps(s.start, s.end, b_start, b_end) for b_start, b_end in busy)]
        if not slots:
            continue
        fixed, reasons = provider_terms(provider, resident, kind, village, last, slots[0])
        scored = []
        for slot in slots:
            lead = (slot.start - start) / (end - start)
            earliest = config["MATCH_WEIGHT_EARLIEST"] * URGENCY_BOOST[urgency] * (1 - lead)
            scored.append(Suggestion(
                provider.id, slot.start, slot.end, round(fixed + earliest, 4),
                [f"starts {_when(slot, start)} into the window"] + reasons))
        by_provider.append(sorted(scored, key=lambda s: -s.score))
    ranked: list[Suggestion] = []
    depth = 0
    while len(ranked) < limit and any(depth < len(options) for options in by_provider):
        layer = [options[depth] for options in by_provider if depth < len(options)]
        ranked.extend(sorted(layer, key=lambda s: (-s.score, s.start, s.provider_id)))
        depth += 1
    return ranked[:limit]


def _when(slot: Slot, start: datetime) -> str:
    hours = (slot.start - start).total_seconds() / 3600
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.1f} days"


def provider_terms(provider, resident, kind, village, last, first_slot) -> tuple[float, list]:
    """The part of the score that does not depend on the start, and its reasons."""
    config = current_app.config
    score, reasons = 0.0, []
    if kind.required_skill:
        reasons.append(f"has the skill {kind.required_skill}")
    shared = [lang for lang in resident.languages if lang in provider.languages]
    if shared:
        reasons.append(f"speaks {shared[0]}")
    else:
        score -= config["MATCH_WEIGHT_INTERPRETER"]
        reasons.append("interpreter needed: no shared language")
    if last == provider.id:
        score += config["MATCH_WEIGHT_CONTINUITY"]
        reasons.append("continuity: the resident's last provider for this service")
    partner = is_partner(provider, village)
    if partner is not None:
        score += config["MATCH_WEIGHT_PARTNER"]
        reasons.append(f"partner-region programme ({partner.name})")
    load = week_load(provider, first_slot.start)
    score -= config["MATCH_WEIGHT_LOAD"] * load
    reasons.append(f"{load:.0%} of this week's capacity booked")
    if kind.modality == Modality.HOME_VISIT:
        minutes = minutes_between(provider.home_region, village)
        if minutes is not None:
            score -= config["MATCH_WEIGHT_TRAVEL"] * minutes / 60
            reasons.append(f"about {minutes} min travel from {provider.home_region.name}")
    return score, reasons
