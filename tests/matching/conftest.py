"""A freed slot and the waitlist around it, for the backfill tests."""

from datetime import UTC, datetime

import pytest

from careservice.core.auth import Actor
from careservice.scheduling import booking
from careservice.scheduling.care_requests import create_care_request
from careservice.scheduling.models import Status

SYSTEM = Actor.system("t")
TEN = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)  # Thu 3 Dec, 10:00 in Asia/Shanghai


@pytest.fixture
def freed_slot(app, world, create_service_type, set_availability, create_appointment, frozen_clock):
    """resident_a1's 10:00 session with clinician_a, then cancelled."""
    create_service_type()
    set_availability(world.clinician_a)
    appointment = create_appointment(world.resident_a1, world.clinician_a, TEN)
    booking.change_status(SYSTEM, appointment.id, Status.CANCELLED, reason="unwell")
    return appointment


@pytest.fixture
def request_for():
    """An open GP request whose window (Thu 08:00-16:00 local) holds the freed slot."""

    def make(resident, urgency="routine"):
        return create_care_request(SYSTEM, resident_id=resident.id, service_type="gp_consult",
                                   earliest=datetime(2026, 12, 3, 0, 0, tzinfo=UTC),
                                   latest=datetime(2026, 12, 3, 8, 0, tzinfo=UTC),
                                   urgency=urgency)

    return make
