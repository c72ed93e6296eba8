"""/api/v1/providers/{id}/availability, /exceptions and /slots."""

from datetime import timedelta

from flask.views import MethodView

from careservice.core.auth import current_actor, require
from careservice.core.idempotency import idempotent
from careservice.core.pagination import PageArgs
from careservice.core.time import utcnow
from careservice.core.web import BEARER, Blueprint
from careservice.people.services import get_provider
from careservice.scheduling import availability, slots
from careservice.scheduling.booking import body_service_type
from careservice.scheduling.schemas import (
    AvailabilityIn,
    AvailabilityOut,
    ExceptionIn,
    ExceptionList,
    ExceptionOut,
    SlotList,
    SlotQuery,
)

blp = Blueprint("availability", __name__, url_prefix="/api/v1/providers",
                description="Providers' weekly availability, exceptions and free slots")

DEFAULT_SLOT_RANGE = timedelta(days=7)


def _availability(provider_id, rules):
    provider = get_provider(provider_id)
    return {"provider_id": provider.id, "timezone": provider.timezone, "rules": rules}


@blp.route("/<int:provider_id>/availability")
class Availability(MethodView):
    @require()
    @blp.doc(security=BEARER)
    @blp.response(200, AvailabilityOut)
    def get(self, provider_id):
        """Weekly rules, in the provider's timezone (weekday 0 is Monday)."""
        return _availability(provider_id, availability.list_rules(provider_id))

    @require()
    @blp.doc(security=BEARER)
    @blp.arguments(AvailabilityIn)
    @blp.response(200, AvailabilityOut)
    def put(self, data, provider_id):
        """Replace the weekly rules (the provider, their coordinator or an admin)."""
        rules = availability.replace_rules(current_actor(), provider_id, data["rules"])
        return _availability(provider_id, rules)


@blp.route("/<int:provider_id>/exceptions")
class Exceptions(MethodView):
    @require()
    @blp.doc(security=BEARER)
    @blp.arguments(PageArgs, location="query", as_kwargs=True)
    @blp.response(200, ExceptionList)
    def get(self, provider_id, limit, offset):
        """Time off and extra hours, by start."""
        return availability.list_exceptions(provider_id, limit=limit, offset=offset)

    @require()
    @idempotent
    @blp.doc(security=BEARER)
    @blp.arguments(ExceptionIn)
    @blp.response(201, ExceptionOut)
    def post(self, data, provider_id):
        """Add time off (`unavailable`) or extra hours (`extra`)."""
        return availability.add_exception(current_actor(), provider_id, data)


@blp.route("/<int:provider_id>/exceptions/<int:exception_id>")
class ExceptionById(MethodView):
    @require()
    @blp.doc(security=BEARER)
    @blp.response(204)
    def delete(self, provider_id, exception_id):
        """Remove an exception."""
        availability.delete_exception(current_actor(), provider_id, exception_id)


@blp.route("/<int:provider_id>/slots")
class Slots(MethodView):
    @require()
    @blp.doc(security=BEARER)
    @blp.arguments(SlotQuery, location="query", as_kwargs=True)
    @blp.response(200, SlotList)
    def get(self, provider_id, service_type, start=None, end=None):
        """Free starts for a service from `from` (default now) to `to` (default a week on)."""
        provider = get_provider(provider_id)
        kind = body_service_type(service_type)
        start = start or utcnow()
        end = end or start + DEFAULT_SLOT_RANGE
        return {"items": slots.free_slots(provider, kind, start, end)}
