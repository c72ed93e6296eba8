"""Weekly availability rules and exceptions, and the windows they make."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache

import sqlalchemy as sa

from careservice.core import audit
from careservice.core.auth import Actor
from careservice.core.errors import Forbidden, NotFound, ValidationFailed
from careservice.core.pagination import paginate
from careservice.core.time import local_to_utc, overlaps, zone
from careservice.extensions import db
from careservice.people.models import Provider, new_availability_tag
from careservice.people.services import get_provider, may_manage_calendar
from careservice.scheduling.models import (
    AvailabilityException,
    AvailabilityRule,
    ExceptionKind,
    rule_applies_on,
)


def check_may_manage_calendar(actor: Actor, provider: Provider) -> None:
    if not may_manage_calendar(actor, provider):
        raise Forbidden("Only the provider, their coordinator or an admin manage this calendar.")


def list_rules(provider_id: int) -> list[AvailabilityRule]:
    get_provider(provider_id)
    return db.session.execute(
        sa.select(AvailabilityRule).where(AvailabilityRule.provider_id == provider_id)
        .order_by(AvailabilityRule.weekday, AvailabilityRule.start_time)
    ).scalars().all()


def _rules_clash(a: dict, b: dict) -> bool:
    if a["weekday"] != b["weekday"]:
        return False
    if not overlaps(a["start"], a["end"], b["start"], b["end"]):
        return False
    a_from, a_to = a.get("valid_from") or date.min, a.get("valid_to") or date.max
    b_from, b_to = b.get("valid_from") or date.min, b.get("valid_to") or date.max
    return a_from <= b_to and b_from <= a_to


def replace_rules(actor: Actor, provider_id: int, rules: list[dict]) -> list[AvailabilityRule]:
    """Replace all of a provider's weekly rules at once; overlapping rules are refused."""
    provider = get_provider(provider_id)
    check_may_manage_calendar(actor, provider)
    errors = {}
    for i, rule in enumerate(rules):
        for j in range(i):
            if _rules_clash(rules[j], rule):
                errors[f"rules.{i}"] = [f"Overlaps rule {j} on the same weekday."]
                break
    if errors:
        raise ValidationFailed(errors, "Availability rules overlap.")
    db.session.execute(
        sa.delete(AvailabilityRule).where(AvailabilityRule.provider_id == provider.id))
    db.session.add_all(
        AvailabilityRule(provider_id=provider.id, weekday=rule["weekday"], start_time=rule["start"],
                         end_time=rule["end"], valid_from=rule.get("valid_from"),
                         valid_to=rule.get("valid_to"))
        for rule in rules
    )
    audit.record(actor, "availability.replace", "provider", provider.id, rules=len(rules))
    provider.availability_tag = new_availability_tag()
    db.session.commit()
    return list_rules(provider.id)


def list_exceptions(provider_id: int, *, limit: int, offset: int) -> dict:
    get_provider(provider_id)
    return paginate(
        sa.select(AvailabilityException).where(AvailabilityException.provider_id == provider_id)
        .order_by(AvailabilityException.start_at, AvailabilityException.id), limit, offset)


def add_exception(actor: Actor, provider_id: int, data: dict) -> AvailabilityException:
    provider = get_provider(provider_id)
    check_may_manage_calendar(actor, provider)
    exception = AvailabilityException(provider_id=provider.id, start_at=data["start"],
                                      end_at=data["end"], kind=data["kind"])
    db.session.add(exception)
    provider.availability_tag = new_availability_tag()
    db.session.flush()
    audit.record(actor, "availability.exception.add", "provider", provider.id,
                 exception_id=exception.id)
    db.session.commit()
    return exception


def delete_exception(actor: Actor, provider_id: int, exception_id: int) -> None:
    provider = get_provider(provider_id)
    check_may_manage_calendar(actor, provider)
    exception = db.session.get(AvailabilityException, exception_id)
    if exception is None or exception.provider_id != provider.id:
        raise NotFound("No such exception.")
    db.session.delete(exception)
    provider.availability_tag = new_availability_tag()
    audit.record(actor, "availability.exception.delete", "provider", provider.id,
                 exception_id=exception_id)
    db.session.commit()


WEEK = timedelta(days=7)


@dataclass(frozen=True)
class Window:
    """A stretch of working time, [start, end) in UTC."""

    start: datetime
    end: datetime


def working_windows(tz_name: str, rules, exceptions, start: datetime,
                    end: datetime) -> list[Window]:
    """The provider's working windows meeting [start, end): weekly rules on
    each local day plus extra hours, merged where they touch. Wall-clock rule
    times keep their local meaning across daylight-saving changes; a rule edge
    that falls in a skipped hour moves to the first real instant after it.
    Time off is not cut out here: it blocks sessions like a booking does (see
    `time_off`), so the grid of starts stays anchored to the window's start."""
    tz = zone(tz_name)
    spans: list[tuple[datetime, datetime]] = []
    first = start.astimezone(tz).date() - timedelta(days=1)
    last = end.astimezone(tz).date()
    for rule in rules:
        day = first + timedelta(days=(rule.weekday - first.weekday()) % 7)
        while day <= last:
            if rule_applies_on(rule, day):
                opens = _first_real_instant(day, rule.start_time, tz)
                closes = _first_real_instant(day, rule.end_time, tz)
                if opens < closes and overlaps(opens, closes, start, end):
                    spans.append((opens, closes))
            day += WEEK
    spans += [(e.start_at, e.end_at) for e in exceptions
              if e.kind == ExceptionKind.EXTRA and overlaps(e.start_at, e.end_at, start, end)]
    merged: list[Window] = []
    for opens, closes in sorted(spans):
        if merged and opens <= merged[-1].end:
            merged[-1] = Window(merged[-1].start, max(merged[-1].end, closes))
        else:
            merged.append(Window(opens, closes))
    return merged


def time_off(exceptions) -> list[tuple[datetime, datetime]]:
    return [(e.start_at, e.end_at) for e in exceptions if e.kind == ExceptionKind.UNAVAILABLE]


@lru_cache(maxsize=16384)  # providers share opening hours: each is worked out once
def _first_real_instant(day: date, wall, tz) -> datetime:
    instant = local_to_utc(day, wall, tz)
    step = datetime.combine(day, wall)
    while instant is None:  # inside a spring-forward gap: move on a minute at a time
        step += timedelta(minutes=1)
        instant = local_to_utc(step.date(), step.time(), tz)
    return instant

