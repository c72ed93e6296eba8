"""Model helpers shared by every capability."""

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

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
