"""Waitlist backfill: a cancelled session's slot goes to the best open request."""

from datetime import UTC, datetime

from careservice.extensions import db
from careservice.matching.backfill import backfill_freed_slots
from careservice.scheduling.care_requests import create_care_request
from careservice.scheduling.models import Appointment, CareRequest, Status
from tests.matching.conftest import SYSTEM, TEN


def live_at_ten():
    return Appointment.query.filter(Appointment.start_at == TEN,
                                    Appointment.status != Status.CANCELLED).all()


def test_a_freed_slot_goes_to_the_most_urgent_open_request(
        request_for, world, freed_slot, create_resident):
    routine = request_for(world.resident_a2)
    other = create_resident(world.village_a1, name="Ma Fengying", phone="+8613900139009")
    urgent = request_for(other, urgency="urgent")

    assert backfill_freed_slots() == 1

    [taken] = live_at_ten()
    assert (taken.resident_id, taken.provider_id) == (other.id, world.clinician_a.id)
    assert db.session.get(CareRequest, urgent.id).status == "booked"
    assert db.session.get(CareRequest, routine.id).status == "open"
    # The slot is looked at once: a second run books nothing more.
    assert backfill_freed_slots() == 0


def test_no_request_that_fits_leaves_the_slot_free(request_for, world, freed_slot):
    create_care_request(SYSTEM, resident_id=world.resident_a2.id, service_type="gp_consult",
                        earliest=datetime(2026, 12, 4, 0, 0, tzinfo=UTC),
                        latest=datetime(2026, 12, 4, 8, 0, tzinfo=UTC))
    request_for(world.resident_a1)  # the resident who cancelled is not rebooked into it

    assert backfill_freed_slots() == 0
    assert live_at_ten() == []


def test_a_village_the_provider_does_not_serve_is_not_offered_the_slot(
        request_for, world, freed_slot):
    request_for(world.resident_b)  # county B; clinician_a serves county A

    assert backfill_freed_slots() == 0
    assert live_at_ten() == []


def test_backfill_off_books_nothing(request_for, app, world, freed_slot, monkeypatch):
    monkeypatch.setitem(app.config, "BACKFILL_MODE", "off")
    request_for(world.resident_a2)

    assert backfill_freed_slots() == 0
    assert live_at_ten() == []
