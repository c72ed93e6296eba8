"""/api/v1/series."""

from types import SimpleNamespace

from flask.views import MethodView

from careservice.core.auth import current_actor, require
from careservice.core.idempotency import idempotent
from careservice.core.web import BEARER, Blueprint
from careservice.scheduling import series as series_service
from careservice.scheduling.schemas import SeriesIn, SeriesOut

blp = Blueprint("series", __name__, url_prefix="/api/v1/series",
                description="Recurring sessions from an RFC 5545 RRULE")


def _out(series, appointments, conflicts):
    fields = ("id", "resident_id", "provider_id", "service_type", "start_at", "rrule",
              "timezone", "status", "expanded_until")
    return SimpleNamespace(**{name: getattr(series, name) for name in fields},
                           appointments=appointments, conflicts=conflicts)


@blp.route("")
class SeriesCollection(MethodView):
    @require()
    @idempotent
    @blp.doc(security=BEARER)
    @blp.arguments(SeriesIn)
    @blp.response(201, SeriesOut)
    def post(self, data):
        """Create a series: occurrences in the next weeks are booked now, the rest by
        the scheduler; occurrences that clash are listed in `conflicts`."""
        series, _, _ = series_service.create_series(current_actor(), **data)
        return _out(*series_service.series_detail(series))


@blp.route("/<int:series_id>")
class SeriesById(MethodView):
    @require()
    @blp.doc(security=BEARER)
    @blp.response(200, SeriesOut)
    def get(self, series_id):
        """A series, its booked sessions and its conflicts."""
        series = series_service.find_series(current_actor(), series_id)
        return _out(*series_service.series_detail(series))


@blp.route("/<int:series_id>/cancel")
class SeriesCancel(MethodView):
    @require()
    @blp.doc(security=BEARER)
    @blp.response(200, SeriesOut)
    def post(self, series_id):
        """Cancel the series and its sessions that have not started."""
        series = series_service.cancel_series(current_actor(), series_id)
        return _out(*series_service.series_detail(series))
