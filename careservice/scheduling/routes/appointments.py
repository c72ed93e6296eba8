"""/api/v1/appointments and their lifecycle actions."""

from flask.views import MethodView

from careservice.core.auth import current_actor, require
from careservice.core.idempotency import idempotent
from careservice.core.pagination import PageArgs
from careservice.core.web import BEARER, Blueprint
from careservice.scheduling import booking
from careservice.scheduling.models import Status
from careservice.scheduling.schemas import (
    AppointmentIn,
    AppointmentOut,
    AppointmentPage,
    AppointmentQuery,
    CancelIn,
    RecordIn,
    RescheduleIn,
)

blp = Blueprint("appointments", __name__, url_prefix="/api/v1/appointments",
                description="Bookings and their lifecycle")


@blp.route("")
class Appointments(MethodView):
    @require()
    @blp.doc(security=BEARER)
    @blp.arguments(AppointmentQuery, location="query", as_kwargs=True)
    @blp.arguments(PageArgs, location="query", as_kwargs=True)
    @blp.response(200, AppointmentPage)
    def get(self, **filters):
        """Appointments in the caller's scope, by start; `from`/`to` bound the start."""
        return booking.list_appointments(current_actor(), **filters)

    @require()
    @idempotent
    @blp.doc(security=BEARER)
    @blp.arguments(AppointmentIn)
    @blp.response(201, AppointmentOut)
    @blp.alt_response(409, description="slot_unavailable: taken, resident busy, outside "
                                        "availability, notice or horizon")
    def post(self, data):
        """Book a session; send `Idempotency-Key` so a repeated press books once."""
        return booking.book_appointment(current_actor(), **data)


@blp.route("/record")
class RecordedAppointments(MethodView):
    @require()
    @idempotent
    @blp.doc(security=BEARER)
    @blp.arguments(RecordIn)
    @blp.response(201, AppointmentOut)
    def post(self, data):
        """Log a session that already happened (delivered offline), so coverage counts it."""
        return booking.record_session(current_actor(), **data)


@blp.route("/<int:appointment_id>")
class AppointmentById(MethodView):
    @require()
    @blp.doc(security=BEARER)
    @blp.response(200, AppointmentOut)
    def get(self, appointment_id):
        """One appointment in scope."""
        return booking.find_appointment(current_actor(), appointment_id)


def _action(name: str, target: Status, doc: str):
    class Action(MethodView):
        @require()
        @blp.doc(security=BEARER, summary=doc)
        @blp.response(200, AppointmentOut)
        @blp.alt_response(409, description="invalid_transition")
        def post(self, appointment_id):
            return booking.change_status(current_actor(), appointment_id, target)

    Action.__name__ = f"{name.title().replace('-', '')}Action"
    blp.route(f"/<int:appointment_id>/{name}", endpoint=name)(Action)


_action("confirm", Status.CONFIRMED, "Confirm a booked session")
_action("check-in", Status.CHECKED_IN,
        "Check in: from 60 minutes before the start until the end")
_action("complete", Status.COMPLETED, "Mark a checked-in session completed")
_action("no-show", Status.NO_SHOW, "Mark a no-show (after the start)")


@blp.route("/<int:appointment_id>/cancel")
class CancelAction(MethodView):
    @require()
    @blp.doc(security=BEARER)
    @blp.arguments(CancelIn)
    @blp.response(200, AppointmentOut)
    @blp.alt_response(409, description="invalid_transition")
    def post(self, data, appointment_id):
        """Cancel a session that has not started, with a reason."""
        return booking.change_status(current_actor(), appointment_id, Status.CANCELLED,
                                     reason=data.get("reason"))


@blp.route("/<int:appointment_id>/reschedule")
class RescheduleAction(MethodView):
    @require()
    @idempotent
    @blp.doc(security=BEARER)
    @blp.arguments(RescheduleIn)
    @blp.response(201, AppointmentOut)
    @blp.alt_response(409, description="invalid_transition or slot_unavailable")
    def post(self, data, appointment_id):
        """Move a session: books the new time and cancels the old in one transaction."""
        return booking.reschedule(current_actor(), appointment_id, start=data["start"],
                                  provider_id=data.get("provider_id"))
