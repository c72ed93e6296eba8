"""GET /calendar/providers/{id}.ics?token=... and rotating that token."""

from flask import Response, request
from flask.views import MethodView

from careservice.core.auth import current_actor, require
from careservice.core.web import BEARER, Blueprint, dump
from careservice.people.schemas import ProviderOut
from careservice.scheduling import calendar

blp = Blueprint("calendar", __name__, description="Providers' calendar feeds")


@blp.route("/calendar/providers/<int:provider_id>.ics")
class CalendarFeed(MethodView):
    @blp.doc(parameters=[{"in": "query", "name": "token", "required": True,
                          "schema": {"type": "string"}}],
             responses={"200": {"description": "text/calendar feed",
                                "content": {"text/calendar": {"schema": {"type": "string"}}}}})
    def get(self, provider_id):
        """The provider's sessions as iCalendar; a wrong token is 404."""
        provider = calendar.provider_for_feed(provider_id, request.args.get("token"))
        return Response(calendar.feed(provider), mimetype="text/calendar",
                        headers={"Cache-Control": "private, max-age=300"})


@blp.route("/api/v1/providers/<int:provider_id>/calendar-token")
class CalendarToken(MethodView):
    @require()
    @blp.doc(security=BEARER)
    @blp.response(200, ProviderOut)
    def post(self, provider_id):
        """Issue a new calendar feed token; the old `calendar_url` stops working."""
        return dump(ProviderOut, calendar.rotate_calendar_token(current_actor(), provider_id))
