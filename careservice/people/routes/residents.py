"""/api/v1/residents."""

from flask.views import MethodView

from careservice.core.auth import current_actor, require
from careservice.core.idempotency import idempotent
from careservice.core.pagination import PageArgs
from careservice.core.web import BEARER, Blueprint, dump, dump_page
from careservice.people import services
from careservice.people.schemas import (
    RESIDENT_PROVIDER_VIEW,
    ResidentIn,
    ResidentOut,
    ResidentPage,
    ResidentPatch,
    ResidentQuery,
)

blp = Blueprint("residents", __name__, url_prefix="/api/v1/residents",
                description="Residents, inside the caller's regions")


def view_fields(actor):
    """The declared field set for this role: providers see a reduced view."""
    return RESIDENT_PROVIDER_VIEW if actor.is_provider else None


@blp.route("")
class Residents(MethodView):
    @require()
    @blp.doc(security=BEARER)
    @blp.arguments(ResidentQuery, location="query", as_kwargs=True)
    @blp.arguments(PageArgs, location="query", as_kwargs=True)
    @blp.response(200, ResidentPage)
    def get(self, **filters):
        """List residents in scope; `region_id` includes sub-regions, `q` matches name or phone
        (a clinician's or caregiver's `q` only the preferred name they are shown)."""
        actor = current_actor()
        return dump_page(ResidentOut, services.list_residents(actor, **filters),
                         only=view_fields(actor))

    @require()
    @idempotent
    @blp.doc(security=BEARER)
    @blp.arguments(ResidentIn)
    @blp.response(201, ResidentOut)
    def post(self, data):
        """Register a resident in one of the caller's villages."""
        return services.create_resident(current_actor(), data)


@blp.route("/<int:resident_id>")
class ResidentById(MethodView):
    @require()
    @blp.doc(security=BEARER)
    @blp.response(200, ResidentOut)
    def get(self, resident_id):
        """One resident in scope."""
        actor = current_actor()
        return dump(ResidentOut, services.get_resident(actor, resident_id),
                    only=view_fields(actor))

    @require()
    @blp.doc(security=BEARER)
    @blp.arguments(ResidentPatch(partial=True))
    @blp.response(200, ResidentOut)
    def patch(self, data, resident_id):
        """Change a resident in scope; `preferred_name: null` goes back to the default."""
        return services.update_resident(current_actor(), resident_id, data)
