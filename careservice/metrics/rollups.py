"""Coverage rollups: the cells of calendar days, ISO weeks and months, stored.

Periods are calendar periods in a time zone (DEFAULT_TIMEZONE for the job and
the CLI), stored as their UTC instants: a report for exactly [start, end) of a
stored period reads its cells instead of the raw rows. A period is rebuilt
whole (its rows deleted and inserted again in one transaction), so a rebuild
is idempotent and picks up late completions, recorded sessions and delivery
callbacks.
"""

import json
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta

import sqlalchemy as sa

from careservice.core.db import advisory_locks
from careservice.core.time import local_midnight, utcnow
from careservice.extensions import db
from careservice.metrics.cells import (
    EVERYWHERE,
    FIGURES,
    Cell,
    CellKey,
    compute_cells,
    in_paths,
    is_everywhere,
    read,
)
from careservice.metrics.models import CoverageRollup, CoverageRollupPeriod, PeriodKind
from careservice.people.models import Region
from careservice.scheduling.signals import sessions_changed

# pg_advisory_xact_lock namespace (scheduling.booking uses 1 and 2): one rebuild at a time,
# so two scheduler processes rebuilding a period queue instead of racing.
ROLLUP_LOCK = 6
KINDS = (PeriodKind.DAY, PeriodKind.WEEK, PeriodKind.MONTH)
KEY_COLUMNS = ("village_id", "sex", "age_band", "service_type", "provider_kind")


# Calendar periods


def period_start(kind: PeriodKind, day: date) -> date:
    """The first day of the period of `kind` holding `day`."""
    if kind == PeriodKind.WEEK:
        return day - timedelta(days=day.weekday())
    if kind == PeriodKind.MONTH:
        return day.replace(day=1)
    return day


def next_start(kind: PeriodKind, first: date) -> date:
    if kind == PeriodKind.DAY:
        return first + timedelta(days=1)
    if kind == PeriodKind.WEEK:
        return first + timedelta(days=7)
    return (first.replace(day=28) + timedelta(days=4)).replace(day=1)


def span(kind: PeriodKind, first: date, tz_name: str) -> tuple[datetime, datetime]:
    """The UTC instants of [first, next start) at local midnight in `tz_name`."""
    return local_midnight(first, tz_name), local_midnight(next_start(kind, first), tz_name)


def periods_within(first: date, last: date) -> list[tuple[PeriodKind, date]]:
    """Every day, ISO week and month lying wholly in [first, last), days first."""
    found = []
    for kind in KINDS:
        start = period_start(kind, first)
        if start < first:
            start = next_start(kind, start)
        while next_start(kind, start) <= last:
            found.append((kind, start))
            start = next_start(kind, start)
    return found


def recent_periods(today: date, days: int) -> list[tuple[PeriodKind, date]]:
    """The last `days` days before `today`, and the complete weeks and months holding
    any of them."""
    first = today - timedelta(days=days)

    def touches(kind: PeriodKind, start: date) -> bool:
        return start >= first if kind == PeriodKind.DAY else next_start(kind, start) > first

    wide = min(period_start(PeriodKind.WEEK, first), period_start(PeriodKind.MONTH, first))
    return [(kind, start) for kind, start in periods_within(wide, today) if touches(kind, start)]


# Building


def rebuild(kind: PeriodKind, first: date, tz_name: str, *, if_changed: bool = False
            ) -> int | None:
    """Compute the period's cells and replace its stored rows; returns the cell count,
    or None when `if_changed` and the stored cells are the same (nothing is written,
    so an hourly job leaves quiet periods alone). Refuses a period that is not over yet
    (its figures would still move)."""
    start, end = span(kind, first, tz_name)
    if end > utcnow():
        raise ValueError(f"the {kind} from {first} is not over yet")
    advisory_locks(db.session, (ROLLUP_LOCK, 0))
    cells = compute_cells(start, end)
    if if_changed and stored_cells(start, end, EVERYWHERE) == cells:
        db.session.rollback()
        return None
    _drop(CoverageRollupPeriod.kind == kind, CoverageRollupPeriod.start_at == start)
    db.session.add(CoverageRollupPeriod(kind=kind, start_at=start, end_at=end,
                                        timezone=tz_name, cells=len(cells), built_at=utcnow()))
    db.session.flush()
    if cells:
        db.session.execute(sa.insert(CoverageRollup), [
            {"period_kind": kind, "period_start": start,
             **dict(zip(KEY_COLUMNS, (key[0], *(part or "" for part in key[1:])), strict=True)),
             **cell.figures(), "waits": encode_waits(cell.waits)}
            for key, cell in cells.items()])
    db.session.commit()
    return len(cells)


def rebuild_all(periods: list[tuple[PeriodKind, date]], tz_name: str, *,
                if_changed: bool = False,
                progress: Callable[[PeriodKind, date, int, int, int | None], None] | None = None
                ) -> Iterator[tuple[PeriodKind, date, int | None]]:
    """Rebuild each period in turn (one transaction each), yielding (kind, first day,
    cells, None when left as it was)."""
    for done, (kind, first) in enumerate(periods, start=1):
        count = rebuild(kind, first, tz_name, if_changed=if_changed)
        if progress is not None:
            progress(kind, first, done, len(periods), count)
        yield kind, first, count


@sessions_changed.connect
def drop_periods_holding(_sender=None, *, starts) -> int:
    """Sessions starting at `starts` were recorded or changed status, in the caller's
    unit of work: the stored periods holding them are dropped with it, so their
    reports read the rows (current at once) until the job or `metrics rebuild` stores
    them again. Only a start in the past can lie in a stored period (a period is
    stored once it is over), so future sessions cost nothing here."""
    now = utcnow()
    past = sorted({start for start in starts if start < now})
    if not past:
        return 0
    # A rebuild running meanwhile holds this lock: it stores its cells first and we
    # drop them after, or it waits and computes with this change.
    advisory_locks(db.session, (ROLLUP_LOCK, 0))
    return _drop(sa.or_(*((CoverageRollupPeriod.start_at <= start)
                          & (CoverageRollupPeriod.end_at > start) for start in past)))


def drop_days_before(before: datetime) -> int:
    """Drop the day rollups that start before `before`, cells and all (reports for
    those days read the raw rows again); the number of days dropped. A day is a
    village's every cell again, so days are what a province's rollups grow by."""
    dropped = _drop(CoverageRollupPeriod.kind == PeriodKind.DAY,
                    CoverageRollupPeriod.start_at < before)
    db.session.commit()
    return dropped


def _drop(*where) -> int:
    """Delete the stored periods matching `where`; their cells go with them (the
    foreign key cascades). The number of periods."""
    return db.session.execute(sa.delete(CoverageRollupPeriod).where(*where)
                              .execution_options(synchronize_session=False)).rowcount


# Reading


def stored_cells(start: datetime, end: datetime, paths, group_by: str | None = None
                 ) -> dict[CellKey, Cell] | None:
    """The stored cells of [start, end) under `paths`, or None unless that is exactly a
    stored period that is over.

    With `group_by`, the cells come merged in SQL as far as that grouping allows (a key
    part left None is summed over): per village for the rows by region, zone or setting
    and for the equity block, and per sex, age band, service type or provider kind for
    those rows. Merging adds integers and concatenates waits, so folding merged cells
    gives exactly what folding every cell gives, from a few hundred rows instead of
    thousands."""
    if end > utcnow():
        return None
    kind = db.session.execute(
        sa.select(CoverageRollupPeriod.kind)
        .where(CoverageRollupPeriod.start_at == start, CoverageRollupPeriod.end_at == end)
    ).scalar()
    if kind is None:
        return None
    people = (CoverageRollup.service_type == "") & (CoverageRollup.provider_kind == "")
    if group_by is None:
        reads = [(KEY_COLUMNS, sa.true(), True)]
    else:
        reads = [(("village_id",), people, group_by in ("region", "zone", "setting"))]
        if group_by in ("sex", "age_band"):
            reads.append(((group_by,), people, True))
        elif group_by in ("service_type", "provider_kind"):
            reads.append(((group_by,), getattr(CoverageRollup, group_by) != "", True))
    cells = {}
    for columns, facet, with_waits in reads:
        query = _merged(columns, with_waits).where(
            CoverageRollup.period_kind == kind, CoverageRollup.period_start == start, facet)
        if not is_everywhere(paths):
            query = query.join(Region, Region.id == CoverageRollup.village_id).where(
                in_paths(Region.path, paths))
        for village_id, sex, band, code, provider_kind, waits, *figures in \
                read(query):
            cells[(village_id, sex or None, band or None, code or None, provider_kind or None)] \
                = Cell(decode_waits(waits), **dict(zip(FIGURES, figures, strict=True)))
    return cells


def _merged(columns: tuple[str, ...], with_waits: bool) -> sa.Select:
    """Stored cells summed over every key column but `columns` (those read as NULL)."""
    kept = [getattr(CoverageRollup, name) for name in columns]
    keys = [getattr(CoverageRollup, name) if name in columns else sa.null()
            for name in KEY_COLUMNS]
    waits = (sa.func.aggregate_strings(CoverageRollup.waits, ",") if with_waits
             else sa.null())
    return (sa.select(*keys, waits,
                      *(sa.func.sum(getattr(CoverageRollup, name)) for name in FIGURES))
            .group_by(*kept))


def encode_waits(waits: list[int]) -> str | None:
    """Waits (microseconds) comma-separated, so SQL can concatenate a group's."""
    return ",".join(map(str, waits)) or None


def decode_waits(text: str | None) -> list[int]:
    return json.loads(f"[{text}]") if text else []
