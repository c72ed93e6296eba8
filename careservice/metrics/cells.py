"""Coverage cells: a period's figures at the finest grain any report groups by.

A cell is keyed by (village id, sex, age band, service type code, provider kind):
- (village, sex, band, None, None) holds that village's residents of that sex and
  age band at the period's end: registered, served over any service, sessions,
  waits, unmet requests of any service, SMS;
- (village, None, None, code, None) holds the figures of one service type
  (served = residents served with it), without registered or SMS;
- (village, None, None, None, kind) likewise for one provider kind (no unmet: a
  request names no provider).
Each resident is in exactly one (village, sex, band), so summing cells into any
region, zone, setting, age band or sex is exact, and likewise service and kind
cells into service types and provider kinds. The raw report folds the cells
computed here; a stored rollup holds the same cells (metrics.rollups).
"""

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from careservice.extensions import db
from careservice.people.models import Provider, Region, Resident
from careservice.reminders.models import Reminder, ReminderStatus
from careservice.scheduling.models import Appointment, CareRequest, RequestStatus, ServiceType
from careservice.scheduling.models import Status as SessionStatus

FIGURES = ("registered", "served", "booked", "completed", "no_shows", "cancelled", "unmet",
           "sms_delivered", "sms_not_delivered", "across_partners")
EVERYWHERE = ("/",)
SMS_OUTCOMES = (ReminderStatus.DELIVERED, ReminderStatus.UNDELIVERED, ReminderStatus.FAILED)

CellKey = tuple[int, str | None, str | None, str | None, str | None]


class Cell:
    """The additive figures of a cell (or of a group of cells), and its waits in days."""

    __slots__ = (*FIGURES, "waits")

    def __init__(self, waits: list[float] | None = None, **figures: int) -> None:
        for name in FIGURES:
            setattr(self, name, figures.get(name, 0))
        self.waits = list(waits or ())

    def add(self, other: "Cell") -> None:
        for name in FIGURES:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.waits.extend(other.waits)

    def figures(self) -> dict:
        return {name: getattr(self, name) for name in FIGURES}

    def __eq__(self, other) -> bool:
        return (isinstance(other, Cell) and self.figures() == other.figures()
                and sorted(self.waits) == sorted(other.waits))

    def __repr__(self) -> str:
        shown = {name: value for name, value in self.figures().items() if value}
        return f"Cell({shown}, waits={sorted(self.waits)})"


def is_everywhere(paths) -> bool:
    return tuple(paths) == EVERYWHERE


def in_paths(column, paths):
    return sa.or_(*(column.startswith(path) for path in paths))


def years_before(on: date, years: int) -> date:
    """The last birth date of someone `years` old on `on` (28 Feb for a 29 Feb `on`)."""
    try:
        return on.replace(year=on.year - years)
    except ValueError:
        return date(on.year - years, 2, 28)


def _people(end: datetime, paths) -> sa.Subquery:
    """Residents registered before `end` under `paths`, with their cell's village, sex
    and age band at `end` (the same bands as coverage.age_band, as cut-off dates)."""
    on = end.date()
    band = sa.case((Resident.birth_date <= years_before(on, 80), "80+"),
                   (Resident.birth_date <= years_before(on, 70), "70-79"),
                   (Resident.birth_date <= years_before(on, 60), "60-69"), else_="0-59")
    query = sa.select(Resident.id.label("resident_id"), Resident.region_id.label("village_id"),
                      Resident.sex.label("sex"), band.label("age_band")
                      ).where(Resident.created_at < end)
    if not is_everywhere(paths):
        query = query.join(Region, Region.id == Resident.region_id).where(
            in_paths(Region.path, paths))
    return query.subquery("people")


def _count(condition) -> sa.ColumnElement:
    return sa.func.sum(sa.case((condition, 1), else_=0))


def _across_partners(village_path, home_path) -> sa.ColumnElement | None:
    """True when the provider's home lies in a region partnered with one holding the
    village (people.models.partnered_ancestor, as path prefixes); None without partners."""
    partner = aliased(Region)
    pairs = db.session.execute(
        sa.select(Region.path, partner.path)
        .join(partner, Region.partner_region_id == partner.id)).all()
    if not pairs:
        return None
    return sa.or_(*(home_path.startswith(home) & village_path.startswith(village)
                    for home, village in pairs))


class _Cells(dict):
    def at(self, key: CellKey) -> Cell:
        cell = self.get(key)
        if cell is None:
            cell = self[key] = Cell()
        return cell

    def three(self, village, sex, band, code, kind) -> tuple[Cell, Cell, Cell]:
        """The resident cell, the service cell and the provider kind cell of a session."""
        return (self.at((village, sex, band, None, None)),
                self.at((village, None, None, code, None)),
                self.at((village, None, None, None, kind)))


def compute_cells(start: datetime, end: datetime, paths=EVERYWHERE) -> dict[CellKey, Cell]:
    """The cells of [start, end) for the villages under `paths`, from the raw rows."""
    people = _people(end, paths)
    dims = (people.c.village_id, people.c.sex, people.c.age_band)
    codes = dict(db.session.execute(sa.select(ServiceType.id, ServiceType.code)).all())
    period = (Appointment.start_at >= start) & (Appointment.start_at < end)
    cells = _Cells()

    for village, sex, band, count in db.session.execute(
            sa.select(*dims, sa.func.count()).group_by(*dims)):
        cells.at((village, sex, band, None, None)).registered = count

    for village, sex, band, type_id, kind, *counts in db.session.execute(_sessions(people, period)):
        booked, completed, no_shows, cancelled, across = counts
        for cell in cells.three(village, sex, band, codes[type_id], kind):
            cell.booked += booked
            cell.completed += completed
            cell.no_shows += no_shows
            cell.cancelled += cancelled
            cell.across_partners += across

    for village, sex, band, type_id, kind, served in db.session.execute(_served(people, period)):
        cells.at((village, sex, band, codes.get(type_id), kind)).served = served

    for village, sex, band, type_id, kind, start_at, created_at in db.session.execute(
            sa.select(*dims, Appointment.service_type_id, Provider.kind, Appointment.start_at,
                      CareRequest.created_at)
            .select_from(CareRequest)
            .join(Appointment, CareRequest.appointment_id == Appointment.id)
            .join(Provider, Appointment.provider_id == Provider.id)
            .join(people, people.c.resident_id == CareRequest.resident_id)
            .where(period)):
        days = (start_at - created_at).total_seconds() / 86400
        for cell in cells.three(village, sex, band, codes[type_id], kind):
            cell.waits.append(days)

    for village, sex, band, type_id, count in db.session.execute(
            sa.select(*dims, CareRequest.service_type_id, sa.func.count())
            .join(people, people.c.resident_id == CareRequest.resident_id)
            .where(CareRequest.status.in_((RequestStatus.OPEN, RequestStatus.EXPIRED)),
                   CareRequest.earliest < end, CareRequest.latest > start)
            .group_by(*dims, CareRequest.service_type_id)):
        cells.at((village, sex, band, None, None)).unmet += count
        cells.at((village, None, None, codes[type_id], None)).unmet += count

    for village, sex, band, delivered, not_delivered in db.session.execute(
            sa.select(*dims, _count(Reminder.status == ReminderStatus.DELIVERED),
                      _count(Reminder.status != ReminderStatus.DELIVERED))
            .join(people, people.c.resident_id == Reminder.resident_id)
            .where(Reminder.sent_at >= start, Reminder.sent_at < end,
                   Reminder.status.in_(SMS_OUTCOMES))
            .group_by(*dims)):
        cell = cells.at((village, sex, band, None, None))
        cell.sms_delivered, cell.sms_not_delivered = delivered, not_delivered
    return dict(cells)


def _sessions(people: sa.Subquery, period) -> sa.Select:
    """Additive session counts per (village, sex, band, service type, provider kind)."""
    dims = (people.c.village_id, people.c.sex, people.c.age_band, Appointment.service_type_id,
            Provider.kind)
    village, home = aliased(Region), aliased(Region)
    across = _across_partners(village.path, home.path)
    status = Appointment.status
    query = (sa.select(*dims, _count(Appointment.recorded == sa.false()),
                       _count(status == SessionStatus.COMPLETED),
                       _count(status == SessionStatus.NO_SHOW),
                       _count(status == SessionStatus.CANCELLED),
                       _count((status != SessionStatus.CANCELLED) & across)
                       if across is not None else sa.literal(0))
             .select_from(Appointment)
             .join(people, people.c.resident_id == Appointment.resident_id)
             .join(Provider, Appointment.provider_id == Provider.id))
    if across is not None:
        query = (query.join(village, village.id == people.c.village_id)
                 .join(home, home.id == Provider.home_region_id))
    return query.where(period).group_by(*dims)


def _served(people: sa.Subquery, period) -> sa.CompoundSelect:
    """Distinct residents with a completed session: per (village, sex, band), per
    (village, service type) and per (village, provider kind), one union."""
    done = (sa.select(Appointment.resident_id, Appointment.service_type_id,
                      Provider.kind.label("kind"))
            .join(Provider, Appointment.provider_id == Provider.id)
            .where(period, Appointment.status == SessionStatus.COMPLETED)
            .distinct().cte("done"))
    served = sa.func.count(sa.distinct(done.c.resident_id))
    text, number = sa.cast(sa.null(), sa.String), sa.cast(sa.null(), sa.Integer)
    joined = done.join(people, people.c.resident_id == done.c.resident_id)
    village = people.c.village_id
    return sa.union_all(
        sa.select(village, people.c.sex, people.c.age_band, number, text, served)
        .select_from(joined).group_by(village, people.c.sex, people.c.age_band),
        sa.select(village, text, text, done.c.service_type_id, text, served)
        .select_from(joined).group_by(village, done.c.service_type_id),
        sa.select(village, text, text, number, done.c.kind, served)
        .select_from(joined).group_by(village, done.c.kind),
    )
