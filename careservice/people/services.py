"""The rules for regions, residents and providers.

Every function takes the acting user (an Actor) and plain values; routes, the
CLI and the scheduler call the same code. Scope: a coordinator or village
health worker acts inside their regions and below; records outside are
reported as not found.
"""

import secrets

import sqlalchemy as sa
from flask import current_app
from marshmallow import ValidationError
from sqlalchemy.orm import joinedload, selectinload

from careservice.core import audit
from careservice.core.auth import Actor
from careservice.core.errors import Forbidden, NotFound, ValidationFailed, field_error
from careservice.core.fields import normalise_phone
from careservice.core.models import Role
from careservice.core.pagination import paginate
from careservice.extensions import db
from careservice.people.models import (
    Modality,
    Provider,
    ProviderKind,
    Region,
    RegionKind,
    Resident,
    path_ids,
    provider_regions,
)

# Regions


def get_region(region_id: int) -> Region:
    region = db.session.get(Region, region_id)
    if region is None:
        raise NotFound("No such region.")
    return region


def list_regions(*, parent_id=None, kind=None, zone=None, setting=None, limit=50, offset=0):
    query = sa.select(Region).order_by(Region.id)
    if parent_id is not None:
        query = query.where(Region.parent_id == parent_id)
    for column, value in ((Region.kind, kind), (Region.zone, zone), (Region.setting, setting)):
        if value is not None:
            query = query.where(column == value)
    return paginate(query, limit, offset)


def _existing_region(field: str, region_id: int | None) -> Region | None:
    if region_id is None:
        return None
    region = db.session.get(Region, region_id)
    if region is None:
        raise field_error(field, "No such region.")
    return region


def _check_region_shape(region_kind: str, parent: Region | None, children_kinds=()) -> None:
    depth = RegionKind(region_kind).depth
    if parent is not None and RegionKind(parent.kind).depth >= depth:
        raise field_error("parent_id", f"A {region_kind} cannot sit under a {parent.kind}.")
    if any(RegionKind(kind).depth <= depth for kind in children_kinds):
        raise field_error("kind", "The region has sub-regions that cannot sit under this kind.")


def create_region(actor: Actor, data: dict) -> Region:
    parent = _existing_region("parent_id", data.get("parent_id"))
    _check_region_shape(data["kind"], parent)
    partner = _existing_region("partner_region_id", data.get("partner_region_id"))
    region = Region(**{key: value for key, value in data.items()
                       if key not in ("parent_id", "partner_region_id")})
    region.parent = parent
    region.partner_region = partner
    missing = {}
    for attr in ("zone", "setting", "timezone"):
        if getattr(region, attr) is None:
            if parent is not None:
                setattr(region, attr, getattr(parent, attr))
            elif attr == "timezone":
                region.timezone = current_app.config["DEFAULT_TIMEZONE"]
            else:
                missing[attr] = ["Required for a region without a parent."]
    if missing:
        raise ValidationFailed(missing)
    db.session.add(region)
    db.session.flush()
    region.path = f"{parent.path if parent else '/'}{region.id}/"
    audit.record(actor, "region.create", "region", region.id)
    db.session.commit()
    return region


def update_region(actor: Actor, region_id: int, data: dict) -> Region:
    region = get_region(region_id)
    if "partner_region_id" in data:
        if data["partner_region_id"] == region.id:
            raise field_error("partner_region_id", "A region cannot partner itself.")
        region.partner_region = _existing_region("partner_region_id", data["partner_region_id"])
    parent = region.parent
    if "parent_id" in data and data["parent_id"] != region.parent_id:
        parent = _existing_region("parent_id", data["parent_id"])
        if parent is not None and parent.path.startswith(region.path):
            raise field_error("parent_id", "That parent lies inside this region: a cycle.")
    kind = data.get("kind", region.kind)
    if parent is None and kind != RegionKind.PROVINCE and ("parent_id" in data or "kind" in data):
        raise field_error("parent_id", f"A {kind} needs a parent; only a province has none.")
    children_kinds = db.session.execute(
        sa.select(Region.kind).where(Region.parent_id == region.id).distinct()
    ).scalars().all()
    _check_region_shape(kind, parent, children_kinds)
    for attr in ("name", "kind", "zone", "setting", "timezone", "latitude", "longitude"):
        if attr in data:
            if data[attr] is None and attr in ("zone", "setting", "timezone"):
                raise field_error(attr, "Field may not be null.")
            setattr(region, attr, data[attr])
    if parent is not region.parent:
        _move_subtree(region, parent)
    audit.record(actor, "region.update", "region", region.id, fields=sorted(data))
    db.session.commit()
    return region


def _move_subtree(region: Region, parent: Region | None) -> None:
    old_path = region.path
    new_path = f"{parent.path if parent else '/'}{region.id}/"
    region.parent = parent
    db.session.flush()
    db.session.execute(
        sa.update(Region)
        .where(Region.path.startswith(old_path))
        .values(path=sa.literal(new_path) + sa.func.substr(Region.path, len(old_path) + 1))
        .execution_options(synchronize_session=False)
    )
    db.session.expire_all()


def region_subtree_clause(region: Region, path_column=Region.path):
    return path_column.startswith(region.path)


# Residents


def visible_residents_clause(actor: Actor, resident_id_column=Resident.id):
    """SQL: the resident is visible to the actor. Admins see all; coordinators
    and village health workers those living in their regions; providers those
    in their own appointments."""
    from careservice.scheduling.models import Appointment

    if actor.is_admin:
        return sa.true()
    if actor.is_provider:
        return resident_id_column.in_(
            sa.select(Appointment.resident_id).where(Appointment.provider_id == actor.provider_id))
    return resident_id_column.in_(
        sa.select(Resident.id).join(Region, Resident.region_id == Region.id)
        .where(actor.region_clause(Region.path)))


def _resident_query(actor: Actor) -> sa.Select:
    return sa.select(Resident).where(visible_residents_clause(actor))


def list_residents(actor: Actor, *, region_id=None, q=None, limit=50, offset=0) -> dict:
    query = _resident_query(actor).order_by(Resident.id)
    if region_id is not None:
        region = db.session.get(Region, region_id)
        inside = region_subtree_clause(region) if region else sa.false()
        villages = sa.select(Region.id).where(inside)
        query = query.where(Resident.region_id.in_(villages))
    if q and actor.is_provider:
        query = query.where(_shown_name_matches(actor, q.strip()))
    elif q:
        needle = q.strip()
        conditions = [Resident.name.icontains(needle, autoescape=True)]
        digits = "".join(ch for ch in needle if ch.isdigit())
        if len(digits) >= 3:
            conditions.append(Resident.phone.contains(digits, autoescape=True))
            # A number typed as it is dialled at home ("0951 2034567") shares no run of
            # digits with the stored E.164 ("+869512034567"): compare it normalised too.
            try:
                phone = normalise_phone(needle, current_app.config["DEFAULT_COUNTRY"])
            except ValidationError:
                pass
            else:
                conditions.append(Resident.phone == phone)
        query = query.where(sa.or_(*conditions))
    page = paginate(query, limit, offset)
    audit.record(actor, "resident.list", "resident", None,
                 ids=[resident.id for resident in page["items"]])
    db.session.commit()
    return page


def _shown_name_matches(actor: Actor, needle: str):
    """SQL: the name a provider is shown (the preferred name, else the name's first
    word) contains the needle. A provider's search must not reach what they are not
    shown, or trying names and phones would reveal them. Compared in Python, with
    the very rule that makes the name, over the few residents of their sessions."""
    wanted = needle.casefold()
    residents = db.session.execute(_resident_query(actor)).scalars()
    return Resident.id.in_([resident.id for resident in residents
                            if wanted in resident.sms_name.casefold()])


def find_resident(actor: Actor, resident_id: int) -> Resident:
    """A resident the actor may see; anything else is not found."""
    resident = db.session.execute(
        _resident_query(actor).where(Resident.id == resident_id)
        .options(joinedload(Resident.region))
    ).scalar_one_or_none()
    if resident is None:
        raise NotFound("No such resident.")
    return resident


def get_resident(actor: Actor, resident_id: int) -> Resident:
    resident = find_resident(actor, resident_id)
    audit.record(actor, "resident.read", "resident", resident.id)
    db.session.commit()
    return resident


def _home_village(actor: Actor, region_id: int) -> Region:
    region = db.session.get(Region, region_id)
    if region is None or not actor.covers_path(region.path):
        raise field_error("region_id", "No such region in your regions.")
    if region.kind != RegionKind.VILLAGE:
        raise field_error("region_id", "A resident's home region must be a village.")
    return region


def _check_may_change_residents(actor: Actor) -> None:
    if not (actor.is_admin or actor.is_regional):
        raise Forbidden("Only admins, coordinators and village health workers change residents.")


def create_resident(actor: Actor, data: dict) -> Resident:
    _check_may_change_residents(actor)
    _home_village(actor, data["region_id"])
    data.setdefault("languages", [current_app.config["LANGUAGES"][0]])
    data.setdefault("sms_consent", True)
    resident = Resident(**data)
    db.session.add(resident)
    db.session.flush()
    audit.record(actor, "resident.create", "resident", resident.id)
    db.session.commit()
    return resident


def update_resident(actor: Actor, resident_id: int, data: dict) -> Resident:
    resident = find_resident(actor, resident_id)
    _check_may_change_residents(actor)
    if "region_id" in data:
        _home_village(actor, data["region_id"])
    for attr in ("name", "birth_date", "sex", "region_id", "languages", "sms_consent"):
        if attr in data and data[attr] is None:
            raise field_error(attr, "Field may not be null.")
    for attr, value in data.items():
        setattr(resident, attr, value)
    audit.record(actor, "resident.update", "resident", resident.id, fields=sorted(data))
    db.session.commit()
    return resident


# Providers


def list_providers(*, kind=None, active=None, region_id=None, limit=50, offset=0) -> dict:
    # service_region_ids is in every item: load the regions of the whole page at once.
    query = (sa.select(Provider).order_by(Provider.id)
             .options(selectinload(Provider.service_regions)))
    if kind is not None:
        query = query.where(Provider.kind == kind)
    if active is not None:
        query = query.where(Provider.active == active)
    if region_id is not None:
        region = db.session.get(Region, region_id)
        if region is None:
            query = query.where(sa.false())
        else:
            # Homed or serving inside the region, or serving an area that holds it
            # (a caregiver of a township serves each of its villages).
            inside = sa.select(Region.id).where(region_subtree_clause(region))
            around = path_ids(region.path)
            served = (sa.select(provider_regions.c.provider_id)
                      .where(sa.or_(provider_regions.c.region_id.in_(inside),
                                    provider_regions.c.region_id.in_(around))))
            query = query.where(sa.or_(Provider.home_region_id.in_(inside),
                                       Provider.id.in_(served)))
    return paginate(query, limit, offset)


def get_provider(provider_id: int, *, for_update: bool = False) -> Provider:
    """The provider; `for_update` locks its row until the transaction ends (PostgreSQL;
    SQLite's write transaction is the lock)."""
    provider = db.session.get(Provider, provider_id, with_for_update=for_update or None)
    if provider is None:
        raise NotFound("No such provider.")
    return provider


def may_manage_calendar(actor: Actor, provider: Provider) -> bool:
    """The provider themself, an admin, or a coordinator of the provider's home region:
    they change its availability, replace its feed token and see its `calendar_url`.
    The feed shows every session of the provider, so a coordinator elsewhere would read
    sessions outside their regions through it."""
    if actor.is_admin or actor.provider_id == provider.id:
        return True
    return actor.role == Role.COORDINATOR and actor.covers_path(provider.home_region.path)


def _check_may_manage(actor: Actor, home_region: Region, field: str | None = None) -> None:
    if actor.is_admin:
        return
    if actor.role == Role.COORDINATOR and actor.covers_path(home_region.path):
        return
    if field is not None and actor.role == Role.COORDINATOR:
        raise field_error(field, "No such region in your regions.")
    raise Forbidden("Only admins and the coordinators of the provider's region manage it.")


def _service_regions(actor: Actor, region_ids, kept=()) -> list[Region]:
    """The regions a provider is to serve; a coordinator adds only regions inside
    their own (those the provider already serves may stay)."""
    regions = [_existing_region("service_region_ids", rid) for rid in region_ids]
    if any(region.id not in kept and not actor.covers_path(region.path) for region in regions):
        raise field_error("service_region_ids", "No such region in your regions.")
    return regions


def _default_modalities(kind: str) -> list[str]:
    if kind == ProviderKind.CAREGIVER:
        return [Modality.HOME_VISIT.value]
    return [Modality.VIDEO.value, Modality.PHONE.value]


def new_calendar_token() -> str:
    """The secret in a provider's calendar feed URL; a new one revokes the old."""
    return secrets.token_urlsafe(24)


def create_provider(actor: Actor, data: dict) -> Provider:
    home = _existing_region("home_region_id", data["home_region_id"])
    _check_may_manage(actor, home, "home_region_id")
    service_ids = data.pop("service_region_ids", [])
    provider = Provider(**data)
    provider.service_regions = _service_regions(actor, service_ids)
    provider.timezone = provider.timezone or home.timezone
    provider.languages = provider.languages or [current_app.config["LANGUAGES"][0]]
    provider.modalities = provider.modalities or _default_modalities(provider.kind)
    provider.calendar_token = new_calendar_token()
    db.session.add(provider)
    db.session.flush()
    audit.record(actor, "provider.create", "provider", provider.id)
    db.session.commit()
    return provider


def update_provider(actor: Actor, provider_id: int, data: dict) -> Provider:
    # Locked first: two edits of the service regions at once each changed the same link
    # rows, and the second failed on a duplicate key or a row already deleted.
    provider = get_provider(provider_id, for_update=True)
    _check_may_manage(actor, provider.home_region)
    changed = sorted(data)
    if "home_region_id" in data:
        _check_may_manage(actor, _existing_region("home_region_id", data["home_region_id"]),
                          "home_region_id")
    for attr in ("kind", "name", "timezone", "home_region_id", "max_sessions_per_day", "active",
                 "skills", "languages", "modalities", "service_region_ids"):
        if attr in data and data[attr] is None:
            raise field_error(attr, "Field may not be null.")
    if "service_region_ids" in data:
        provider.service_regions = _service_regions(actor, data.pop("service_region_ids"),
                                                    kept=provider.service_region_ids)
    for attr, value in data.items():
        setattr(provider, attr, value)
    if provider.kind == ProviderKind.CAREGIVER and Modality.HOME_VISIT not in provider.modalities:
        raise field_error("modalities", "A caregiver makes home visits.")
    audit.record(actor, "provider.update", "provider", provider.id, fields=changed)
    db.session.commit()
    return provider
