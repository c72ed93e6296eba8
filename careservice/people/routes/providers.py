"""/api/v1/providers."""

from flask.views import MethodView

from careservice.core.auth import current_actor, require
from careservice.core.idempotency import idempotent
from careservice.core.models import Role
from careservice.core.pagination import PageArgs
from careservice.core.web import BEARER, Blueprint, dump, dump_page
from careservice.people import services
from careservice.people.schemas import (
    PROVIDER_PUBLIC_VIEW,
    ProviderIn,
    ProviderOut,
    ProviderPage,
    ProviderPatch,
    ProviderQuery,
)

blp = Blueprint("providers", __name__, url_prefix="/api/v1/providers",
                description="Clinicians and caregivers")


def view_fields(actor, provider):
    """calendar_url only for those who manage the calendar (services.may_manage_calendar)."""
    return None if services.may_manage_calendar(actor, provider) else PROVIDER_PUBLIC_VIEW


def _dump(provider, status=200):
    return dump(ProviderOut, provider, only=view_fields(current_actor(), provider), status=status)


@blp.route("")
class Providers(MethodView):
    @require()
    @blp.doc(security=BEARER)
    @blp.arguments(ProviderQuery, location="query", as_kwargs=True)
    @blp.arguments(PageArgs, location="query", as_kwargs=True)
    @blp.response(200, ProviderPage)
    def get(self, **filters):
        """List providers; `region_id` matches home or served regions, sub-regions included."""
        actor = current_actor()
        return dump_page(ProviderOut, services.list_providers(**filters),
                         only=lambda provider: view_fields(actor, provider))

    @require(Role.ADMIN, Role.COORDINATOR)
    @idempotent
    @blp.doc(security=BEARER)
    @blp.arguments(ProviderIn)
    @blp.response(201, ProviderOut)
    def post(self, data):
        """Add a provider (admins; coordinators in their regions)."""
        return _dump(services.create_provider(current_actor(), data), status=201)


@blp.route("/<int:provider_id>")
class ProviderById(MethodView):
    @require()
    @blp.doc(security=BEARER)
    @blp.response(200, ProviderOut)
    def get(self, provider_id):
        """One provider; `calendar_url` only for itself, its coordinators and admins."""
        return _dump(services.get_provider(provider_id))

    @require(Role.ADMIN, Role.COORDINATOR)
    @blp.doc(security=BEARER)
    @blp.arguments(ProviderPatch(partial=True))
    @blp.response(200, ProviderOut)
    def patch(self, data, provider_id):
        """Change a provider (admins; coordinators of the provider's home region)."""
        return _dump(services.update_provider(current_actor(), provider_id, data))
