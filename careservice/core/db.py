"""Model helpers shared by every capability."""

import weakref
from datetime import datetime
from enum import StrEnum
from functools import cache

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapped, mapped_column, scoped_session

from careservice.core.time import UTCDateTime, utcnow


def enum_check(column: str, enum: type[StrEnum], name: str | None = None) -> sa.CheckConstraint:
    """A CHECK that keeps a string column inside an enum's values.

    Strings plus a CHECK rather than native enums: adding a value later is a
    one-line migration on SQLite and PostgreSQL alike.
    """
    values = ", ".join(f"'{member.value}'" for member in enum)
    return sa.CheckConstraint(f"{column} IN ({values})", name=name or f"{column}_valid")


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )


def render_item(type_, obj, autogen_context):
    """Alembic autogenerate: write UTCDateTime as the plain column type it stores,
    so migrations never import application code."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


# SQLSTATEs worth retrying: serialization failure, deadlock.
RETRYABLE_SQLSTATES = {"40001", "40P01"}
EXCLUSION_VIOLATION = "23P01"


def sqlstate(error: DBAPIError) -> str | None:
    return getattr(error.orig, "sqlstate", None)


def is_retryable(error: DBAPIError) -> bool:
    """A failure that says nothing about the data: run the unit of work again."""
    if sqlstate(error) in RETRYABLE_SQLSTATES:
        return True
    return "database is locked" in str(error.orig)


def advisory_locks(session, *keys: tuple[int, int]) -> None:
    """Transaction-scoped locks on PostgreSQL, always taken in one order so
    that two writers queue instead of deadlocking. SQLite needs none: every
    transaction there begins IMMEDIATE and so already holds the write lock."""
    if session.get_bind().dialect.name != "postgresql":
        return
    held = held_locks(session)
    ordered = sorted(set(keys) - held)
    if not ordered:
        return
    session.execute(_lock_statement(len(ordered)),
                    {f"{part}{i}": value for i, pair in enumerate(ordered)
                     for part, value in zip("nk", pair, strict=True)})
    held.update(ordered)


def held_locks(session) -> set[tuple[int, int]]:
    """The advisory locks the session's current transaction holds: asked for
    again, they would cost a round trip for nothing. A query that takes locks
    itself (`pg_advisory_xact_lock` in its select list) adds them here."""
    if isinstance(session, scoped_session):
        session = session()
    transaction = session.get_transaction()
    if transaction is None:  # nothing begun, nothing held
        return set()
    record = session.info.get("advisory_locks")
    if record is None or record[0]() is not transaction:
        record = (weakref.ref(transaction), set())
        session.info["advisory_locks"] = record
    return record[1]


@cache
def _lock_statement(count: int) -> sa.Select:
    """One round trip for `count` locks; PostgreSQL evaluates a select list left
    to right, so they are taken in the order given."""
    return sa.select(*(sa.func.pg_advisory_xact_lock(sa.bindparam(f"n{i}", type_=sa.Integer),
                                                     sa.bindparam(f"k{i}", type_=sa.Integer))
                       for i in range(count)))
