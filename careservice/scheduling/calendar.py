"""The provider's sessions as an iCalendar feed, behind a revocable token."""

import hmac
from datetime import timedelta

import sqlalchemy as sa
from icalendar import Calendar, Event

from careservice.core import audit
from careservice.core.auth import Actor
from careservice.core.errors import NotFound
from careservice.core.time import utcnow
from careservice.extensions import db
from careservice.people.models import Modality, Provider
from careservice.people.services import get_provider, new_calendar_token
from careservice.scheduling.availability import check_may_manage_calendar
from careservice.scheduling.models import Appointment, Status

FEED_PAST = timedelta(days=30)
STATUS = {Status.BOOKED: "TENTATIVE", Status.CANCELLED: "CANCELLED"}
WHERE = {Modality.VIDEO: "Video call", Modality.PHONE: "Phone call"}


def provider_for_feed(provider_id: int, token: str | None) -> Provider:
    """The provider whose feed token this is; anything else is not found."""
    provider = db.session.get(Provider, provider_id)
    if provider is None or not token or not hmac.compare_digest(
            provider.calendar_token.encode(), token.encode()):
        raise NotFound("No such calendar.")
    return provider


def feed(provider: Provider) -> bytes:
    """Sessions from 30 days back onwards; residents appear by first name only."""
    appointments = db.session.execute(
        sa.select(Appointment).where(Appointment.provider_id == provider.id,
                                     Appointment.start_at >= utcnow() - FEED_PAST)
        .order_by(Appointment.start_at)).scalars().all()
    calendar = Calendar()
    calendar.add("prodid", "-//careservice//provider calendar//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", "careservice sessions")
    for appointment in appointments:
        event = Event()
        event.add("uid", f"appointment-{appointment.id}@careservice")
        event.add("dtstamp", appointment.updated_at)
        event.add("dtstart", appointment.start_at)
        event.add("dtend", appointment.end_at)
        event.add("summary", f"{appointment.service_type.name}: {_first_name(appointment)}")
        event.add("status", STATUS.get(appointment.status, "CONFIRMED"))
        event.add("sequence", appointment.version)
        if appointment.join_url:
            event.add("location", appointment.join_url)
            event.add("url", appointment.join_url)
        elif appointment.visit_region is not None:
            event.add("location", appointment.visit_region.name)
        else:
            event.add("location", WHERE.get(appointment.modality, appointment.modality))
        calendar.add_component(event)
    return calendar.to_ical()


def rotate_calendar_token(actor: Actor, provider_id: int) -> Provider:
    """A new feed token; the old link stops working at once."""
    provider = get_provider(provider_id)
    check_may_manage_calendar(actor, provider)
    provider.calendar_token = new_calendar_token()
    audit.record(actor, "provider.calendar_token", "provider", provider.id)
    db.session.commit()
    return provider


def _first_name(appointment) -> str:
    """The first word of how SMS address the resident: a preferred name set in full
    ("Budi Santoso") still shows only "Budi"."""
    name = appointment.resident.sms_name
    return name.split()[0] if name.split() else name
