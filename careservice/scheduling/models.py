"""Scheduling state."""

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from careservice.core.db import Timestamps, enum_check
from careservice.extensions import db
from careservice.people.models import Modality


class ServiceType(Timestamps, db.Model):
    """What a session is: its modality, length, buffer after and the skill it needs."""

    __tablename__ = "service_types"
    __table_args__ = (
        enum_check("modality", Modality),
        sa.CheckConstraint("duration_minutes > 0", name="duration_positive"),
        sa.CheckConstraint("buffer_minutes >= 0", name="buffer_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(40), unique=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    modality: Mapped[str] = mapped_column(sa.String(16))
    duration_minutes: Mapped[int] = mapped_column(sa.Integer)
    buffer_minutes: Mapped[int] = mapped_column(sa.Integer, default=0)
    required_skill: Mapped[str | None] = mapped_column(sa.String(40))

    def __repr__(self) -> str:
        return f"<ServiceType {self.code}>"
