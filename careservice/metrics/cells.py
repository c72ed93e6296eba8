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
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased

from careservice.extensions import db
from careservice.people.models import Provider, Region, Resident
from careservice.reminders.models import Reminder, ReminderStatus
from careservice.scheduling.models import Appointment, CareRequest, RequestStatus, ServiceType
from careservice.scheduling.models import Status as SessionStatus

BANDS = ("0-59", "60-69", "70-79", "80+")  # the age bands at `to`, in order (API.md)
FIGURES = ("registered", "served", "booked", "completed", "no_shows", "cancelled", "unmet",
           "sms_delivered", "sms_not_delivered", "across_partners")
EVERYWHERE = ("/",)
SMS_OUTCOMES = (ReminderStatus.DELIVERED, ReminderStatus.UNDELIVERED, ReminderStatus.FAILED)

# Waits are whole microseconds: exact, and integers parse several times faster than
# floats when a rollup's waits are read back.
MICROSECONDS_PER_DAY = 86_400_000_000

CellKey = tuple[int, str | None, str | None, str | None, str | None]


class Cell:
    """The additive figures of a cell (or of a group of cells), and its waits in
    microseconds."""

    __slots__ = (*FIGURES, "waits")

    def __init__(self, waits: list[int] | None = None, **figures: int) -> None:
        for name in FIGURES:
            setattr(self, name, figures.get(name, 0))
        self.waits = list(waits or ())

    def add(self, other: "Cell") -> None:
        # Spelt out: a report adds thousands of cells, and a loop of getattr costs 3x.
        self.registered += other.registered
        self.served += other.served
        self.booked += other.booked
        self.completed += other.completed
        self.no_shows += other.no_shows
        self.cancelled += other.cancelled
        self.unmet += other.unmet
        self.sms_delivered += other.sms_delivered
        self.sms_not_delivered += other.sms_not_delivered
        self.across_partners += other.across_partners
        self.waits.extend(other.waits)

    def figures(self) -> dict:
        return {name: getattr(self, name) for name in FIGURES}

    def __eq__(self, other) -> bool:
        return (isinstance(other, Cell) and self.figures() == other.figures()
                and sorted(self.waits) == sorted(other.waits))

    def __repr__(self) -> str:
        shown = {name: value for name, value in self.figures().items() if value}
        return f"Cell({shown}, waits={sorted(self.waits)})"


def read(query) -> sa.CursorResult:
    """Run a read on the session's connection, as Core: these reads return thousands of
    plain tuples, and the ORM's row handling would cost more than the queries."""
    return db.session.connection().execute(query)


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


def _people(end: datetime, paths) -> sa.CTE:
    """Residents registered before `end` under `paths`, with their cell's village, sex
    and age band at `end` (the same bands as coverage.age_band, as cut-off dates; the
    band as its index in BANDS, cheaper to group by than text)."""
    on = end.date()
    band = sa.case((Resident.birth_date <= years_before(on, 80), 3),
                   (Resident.birth_date <= years_before(on, 70), 2),
                   (Resident.birth_date <= years_before(on, 60), 1), else_=0)
    query = sa.select(Resident.id.label("resident_id"), Resident.region_id.label("village_id"),
                      Resident.sex.label("sex"), band.label("band")
                      ).where(Resident.created_at < end)
    if not is_everywhere(paths):
        query = query.join(Region, Region.id == Resident.region_id).where(
            in_paths(Region.path, paths))
    return query.cte("people")


def _count(condition) -> sa.ColumnElement:
    return sa.func.sum(sa.case((condition, 1), else_=0))


def _across_partners(village_path, home_path) -> sa.ColumnElement | None:
    """True when the provider's home lies in a region partnered with one holding the
    village (people.models.partnered_ancestor, as path prefixes); None without partners."""
    partner = aliased(Region)
    pairs = read(
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
    """The cells of [start, end) for the villages under `paths`, from the raw rows: one
    statement, so residents and the period's sessions are each read and joined once."""
    codes = dict(read(sa.select(ServiceType.id, ServiceType.code)).all())
    cells = _Cells()
    for tag, village, sex, band, type_id, kind, *counts in read(_statement(start, end, paths)):
        band = BANDS[band] if band is not None else None
        code = codes[type_id] if type_id is not None else None
        if tag == "sessions":  # additive: into the resident, service and kind cells
            booked, completed, no_shows, cancelled, across = counts[:5]
            for cell in cells.three(village, sex, band, code, kind):
                cell.booked += booked
                cell.completed += completed
                cell.no_shows += no_shows
                cell.cancelled += cancelled
                cell.across_partners += across
        elif tag == "served":
            cells.at((village, sex, band, code, kind)).served = counts[0]
        elif tag == "wait":
            for cell in cells.three(village, sex, band, code, kind):
                cell.waits.append(counts[0])
        elif tag == "registered":  # per (village, sex): one count per age band
            for band_name, registered in zip(BANDS, counts, strict=False):
                if registered:
                    cells.at((village, sex, band_name, None, None)).registered = registered
        elif tag == "unmet":
            cells.at((village, sex, band, None, None)).unmet += counts[0]
            cells.at((village, None, None, code, None)).unmet += counts[0]
        else:
            cell = cells.at((village, sex, band, None, None))
            cell.sms_delivered, cell.sms_not_delivered = counts[:2]
    return dict(cells)


def _statement(start: datetime, end: datetime, paths) -> sa.CompoundSelect:
    """Rows of (tag, village, sex, band, service type id, provider kind, n1..n6):
    registered residents per (village, sex), n1..n4 by age band; session counts per
    (village, sex, band, service type, provider kind); distinct residents served per
    resident cell, service cell and provider kind cell; one row per wait (n1 in
    microseconds); unmet requests; SMS outcomes."""
    people = _people(end, paths)
    sessions = _sessions(people, start, end)
    dims = (people.c.village_id, people.c.sex, people.c.band)
    session_dims = (sessions.c.village_id, sessions.c.sex, sessions.c.band)
    text, number = sa.cast(sa.null(), sa.String), sa.cast(sa.null(), sa.Integer)

    def row(tag, keys, *counts):
        return sa.select(sa.literal(tag, sa.String).label("tag"), *keys, *counts,
                         *([number] * (6 - len(counts))))

    def session_counts(keys, *group):
        status = sessions.c.status
        return (row("sessions", keys, _count(sessions.c.recorded == sa.false()),
                    _count(status == SessionStatus.COMPLETED),
                    _count(status == SessionStatus.NO_SHOW),
                    _count(status == SessionStatus.CANCELLED), sa.func.sum(sessions.c.across))
                .group_by(*group))

    def served(keys, *group):
        """Distinct residents served per group. COUNT(DISTINCT) sorts each group's few
        rows; a DISTINCT subquery per grouping was hashed in theory, but the planner
        expects a handful of completed rows from the CTE and sorted (and spilled) all of
        them three times: 50-100 ms more at a month of 82k sessions."""
        return (row("served", keys, sa.func.count(sessions.c.resident_id.distinct()))
                .where(sessions.c.status == SessionStatus.COMPLETED).group_by(*group))

    resident_keys = (*session_dims, number, text)
    service_keys = (sessions.c.village_id, text, number, sessions.c.service_type_id, text)
    kind_keys = (sessions.c.village_id, text, number, number, sessions.c.kind)
    wait = _microseconds(sessions.c.start_at, CareRequest.created_at)
    return sa.union_all(
        # By village and sex, a count per band: a quarter of the groups to hash and rows
        # to read back.
        row("registered", (people.c.village_id, people.c.sex, number, number, text),
            *(_count(people.c.band == index) for index in range(len(BANDS))))
        .group_by(people.c.village_id, people.c.sex),
        session_counts((*session_dims, sessions.c.service_type_id, sessions.c.kind),
                       *session_dims, sessions.c.service_type_id, sessions.c.kind),
        served(resident_keys, *session_dims),
        served(service_keys, sessions.c.village_id, sessions.c.service_type_id),
        served(kind_keys, sessions.c.village_id, sessions.c.kind),
        row("wait", (*session_dims, sessions.c.service_type_id, sessions.c.kind), wait)
        .select_from(sessions).join(CareRequest, CareRequest.appointment_id == sessions.c.id),
        row("unmet", (*dims, CareRequest.service_type_id, text), sa.func.count())
        .select_from(CareRequest).join(people, people.c.resident_id == CareRequest.resident_id)
        .where(CareRequest.status.in_((RequestStatus.OPEN, RequestStatus.EXPIRED)),
               CareRequest.earliest < end, CareRequest.latest > start)
        .group_by(*dims, CareRequest.service_type_id),
        row("sms", (*dims, number, text), _count(Reminder.status == ReminderStatus.DELIVERED),
            _count(Reminder.status != ReminderStatus.DELIVERED))
        .select_from(Reminder).join(people, people.c.resident_id == Reminder.resident_id)
        .where(Reminder.sent_at >= start, Reminder.sent_at < end,
               Reminder.status.in_(SMS_OUTCOMES))
        .group_by(*dims),
    )


def _sessions(people: sa.CTE, start: datetime, end: datetime) -> sa.CTE:
    """The sessions starting in [start, end) of the residents in `people`, with their
    cell, provider kind and whether they count as across partner regions."""
    village, home = aliased(Region), aliased(Region)
    across = _across_partners(village.path, home.path)
    query = (sa.select(Appointment.id, Appointment.resident_id, Appointment.start_at,
                       Appointment.status, Appointment.recorded, Appointment.service_type_id,
                       Provider.kind.label("kind"), people.c.village_id, people.c.sex,
                       people.c.band,
                       sa.case((across & (Appointment.status != SessionStatus.CANCELLED), 1),
                               else_=0).label("across")
                       if across is not None else sa.literal(0).label("across"))
             .select_from(Appointment)
             .join(people, people.c.resident_id == Appointment.resident_id)
             .join(Provider, Appointment.provider_id == Provider.id)
             .where(Appointment.start_at >= start, Appointment.start_at < end))
    if across is not None:
        query = (query.join(village, village.id == people.c.village_id)
                 .join(home, home.id == Provider.home_region_id))
    return query.cte("sessions").prefix_with("MATERIALIZED")


class _Microseconds(sa.sql.functions.FunctionElement):
    """`later - earlier` in whole microseconds, exactly: (a - b) // 1 µs in Python."""

    type = sa.BigInteger()
    name = "microseconds"
    inherit_cache = True


def _microseconds(later, earlier) -> sa.ColumnElement:
    return _Microseconds(later, earlier)


@compiles(_Microseconds)
def _microseconds_postgresql(element, compiler, **kw):
    # EXTRACT(EPOCH FROM interval) is numeric (exact) from PostgreSQL 14.
    later, earlier = (compiler.process(part, **kw) for part in element.clauses)
    return f"CAST(EXTRACT(EPOCH FROM ({later} - {earlier})) * 1000000 AS BIGINT)"


@compiles(_Microseconds, "sqlite")
def _microseconds_sqlite(element, compiler, **kw):
    # Instants are stored as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC): whole seconds, then
    # the six digits of microseconds.
    later, earlier = (compiler.process(part, **kw) for part in element.clauses)
    return (f"((CAST(strftime('%s', {later}) AS INTEGER) - "
            f"CAST(strftime('%s', {earlier}) AS INTEGER)) * 1000000 + "
            f"CAST(substr({later}, 21, 6) AS INTEGER) - CAST(substr({earlier}, 21, 6) AS INTEGER))")
