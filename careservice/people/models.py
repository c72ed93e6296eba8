"""Regions, residents and providers."""

import secrets
from datetime import date, datetime
from enum import StrEnum
from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from careservice.core.db import Timestamps, enum_check
from careservice.core.time import UTCDateTime
from careservice.extensions import db


class RegionKind(StrEnum):
    PROVINCE = "province"
    COUNTY = "county"
    TOWNSHIP = "township"
    VILLAGE = "village"

    @property
    def depth(self) -> int:
        return list(RegionKind).index(self)


class Zone(StrEnum):
    EAST = "east"
    CENTRAL = "central"
    WEST = "west"


class Setting(StrEnum):
    URBAN = "urban"
    RURAL = "rural"


class Sex(StrEnum):
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"


class ProviderKind(StrEnum):
    CLINICIAN = "clinician"
    CAREGIVER = "caregiver"


class Modality(StrEnum):
    VIDEO = "video"
    PHONE = "phone"
    HOME_VISIT = "home_visit"


@lru_cache(maxsize=65536)
def path_ids(path: str) -> tuple[int, ...]:
    """The region ids of a materialised path, the root first: "/1/4/17/" -> (1, 4, 17).
    Kept: matching and coverage ask it of the same few thousand paths over and over."""
    return tuple(int(part) for part in path.strip("/").split("/") if part)


def partnered_ancestor(home_path: str, village_path: str, partner_of) -> int | None:
    """The region at or above a provider's home that is partnered with one at or above
    the village (the east-west programme), or None. `partner_of(id)` gives a region's partner."""
    chain = set(path_ids(village_path))
    for region_id in path_ids(home_path):
        if partner_of(region_id) in chain:
            return region_id
    return None


class Region(Timestamps, db.Model):
    """A node of province > county > township > village.

    `path` is the materialised chain of ids ("/1/4/17/"), so "this region and
    everything below it" is one indexed prefix match in SQL.
    """

    __tablename__ = "regions"
    __table_args__ = (
        enum_check("kind", RegionKind),
        enum_check("zone", Zone),
        enum_check("setting", Setting),
        sa.CheckConstraint("partner_region_id IS NULL OR partner_region_id <> id",
                           name="partner_not_self"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    kind: Mapped[str] = mapped_column(sa.String(16))
    parent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("regions.id"), index=True)
    path: Mapped[str] = mapped_column(sa.String(255), index=True, default="")
    zone: Mapped[str] = mapped_column(sa.String(16))
    setting: Mapped[str] = mapped_column(sa.String(16))
    timezone: Mapped[str] = mapped_column(sa.String(64))
    latitude: Mapped[float | None] = mapped_column(sa.Float)
    longitude: Mapped[float | None] = mapped_column(sa.Float)
    partner_region_id: Mapped[int | None] = mapped_column(sa.ForeignKey("regions.id"))

    parent: Mapped["Region | None"] = relationship(
        remote_side="Region.id", foreign_keys=[parent_id], back_populates="children"
    )
    children: Mapped[list["Region"]] = relationship(
        foreign_keys=[parent_id], back_populates="parent"
    )
    # post_update: two regions may partner each other, a cycle for the unit of work.
    partner_region: Mapped["Region | None"] = relationship(
        remote_side="Region.id", foreign_keys=[partner_region_id], post_update=True
    )

    def is_within(self, ancestor_paths) -> bool:
        """True when this region is one of those paths or below one of them."""
        return any(self.path.startswith(path) for path in ancestor_paths)

    def __repr__(self) -> str:
        return f"<Region {self.id} {self.kind} {self.name!r}>"


class Resident(Timestamps, db.Model):
    __tablename__ = "residents"
    __table_args__ = (enum_check("sex", Sex),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    preferred_name: Mapped[str | None] = mapped_column(sa.String(60))
    phone: Mapped[str | None] = mapped_column(sa.String(20), index=True)
    birth_date: Mapped[date] = mapped_column(sa.Date)
    sex: Mapped[str] = mapped_column(sa.String(8))
    region_id: Mapped[int] = mapped_column(sa.ForeignKey("regions.id"), index=True)
    languages: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    sms_consent: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set when an SMS to this number failed for good (invalid, not a mobile,
    # unsubscribed at the carrier): the village health worker should check it.
    sms_problem_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sms_problem: Mapped[str | None] = mapped_column(sa.String(200))
    notes: Mapped[str | None] = mapped_column(sa.Text)

    region: Mapped[Region] = relationship()

    @property
    def sms_name(self) -> str:
        """How SMS address the resident: the preferred name, else the first word."""
        if self.preferred_name:
            return self.preferred_name
        return self.name.split()[0] if self.name.split() else self.name

    def __repr__(self) -> str:
        return f"<Resident {self.id}>"


provider_regions = sa.Table(
    "provider_regions",
    db.metadata,
    sa.Column("provider_id", sa.ForeignKey("providers.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("region_id", sa.ForeignKey("regions.id"), primary_key=True, index=True),
)


def new_availability_tag() -> str:
    return secrets.token_hex(8)


class Provider(Timestamps, db.Model):
    """A clinician (video, phone) or caregiver (home visits).

    `service_regions` are the regions a caregiver serves, or a clinician is
    licensed for; both include everything below them.
    """

    __tablename__ = "providers"
    __table_args__ = (
        enum_check("kind", ProviderKind),
        sa.CheckConstraint("max_sessions_per_day > 0", name="cap_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    name: Mapped[str] = mapped_column(sa.String(120))
    phone: Mapped[str | None] = mapped_column(sa.String(20))
    email: Mapped[str | None] = mapped_column(sa.String(254))
    skills: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    languages: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    modalities: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    timezone: Mapped[str] = mapped_column(sa.String(64))
    home_region_id: Mapped[int] = mapped_column(sa.ForeignKey("regions.id"), index=True)
    max_sessions_per_day: Mapped[int] = mapped_column(sa.Integer, default=8)
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    calendar_token: Mapped[str] = mapped_column(sa.String(64), unique=True)
    # Renewed whenever the weekly rules or exceptions change (see
    # scheduling.availability), so a process may keep them cached under it.
    availability_tag: Mapped[str] = mapped_column(
        sa.String(16), default=new_availability_tag, server_default="0")

    home_region: Mapped[Region] = relationship()
    service_regions: Mapped[list[Region]] = relationship(
        secondary=provider_regions, order_by=Region.id
    )

    @property
    def service_region_ids(self) -> list[int]:
        return [region.id for region in self.service_regions]

    def __repr__(self) -> str:
        return f"<Provider {self.id} {self.kind}>"
