"""The outbox end to end: a booking queues its SMS, the dispatcher sends them."""

from datetime import UTC, datetime, timedelta

from careservice.reminders.dispatch import dispatch_due
from careservice.reminders.models import Reminder


def test_a_booking_queues_its_sms_and_the_dispatcher_sends_the_confirmation(
        app, world, create_service_type, set_availability, create_appointment, frozen_clock,
        sms_outbox, client, auth):
    create_service_type()
    set_availability(world.clinician_a)
    start = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai
    appointment = create_appointment(world.resident_a1, world.clinician_a, start)

    rows = client.get(f"/api/v1/appointments/{appointment.id}/reminders",
                      headers=auth(world.users["vhw"])).json["items"]
    assert [(r["kind"], r["status"]) for r in rows] == [
        ("confirmation", "pending"), ("reminder_24h", "pending"), ("reminder_2h", "pending")]
    assert rows[1]["send_at"] == "2026-12-02T02:00:00Z"

    tally = dispatch_due(frozen_clock.now())

    assert tally.sent == 1
    assert [m["to"] for m in sms_outbox] == ["+8613900139001"]
    assert "Ma" in sms_outbox[0]["body"] and "Guilan" not in sms_outbox[0]["body"]
    assert sms_outbox[0]["status_callback"] == "http://127.0.0.1:5000/webhooks/twilio/status"
    frozen_clock.advance(timedelta(days=1))
    assert dispatch_due(frozen_clock.now()).sent == 1
    assert Reminder.query.filter_by(status="sent").count() == 2
