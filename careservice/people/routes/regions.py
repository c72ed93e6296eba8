"""/api/v1/regions."""

from flask.views import MethodView

from careservice.core.auth import current_actor, require
from careservice.core.idempotency import idempotent
from careservice.core.models import Role
from careservice.core.pagination import PageArgs
from careservice.core.web import BEARER, Blueprint
from careservice.people import services
from careservice.people.schemas import (
    RegionIn,
    RegionOut,
    RegionPage,
    RegionPatch,
    RegionQuery,
)

blp = Blueprint("regions", __name__, url_prefix="/api/v1/regions",
                description="The region tree: province > county > township > village")


@blp.route("")
class Regions(MethodView):
    @require()
    @blp.doc(security=BEARER)
    @blp.arguments(RegionQuery, location="query", as_kwargs=True)
    @blp.arguments(PageArgs, location="query", as_kwargs=True)
    @blp.response(200, RegionPage)
    def get(self, **filters):
        """List regions (reference data: every role sees all of them)."""
        return services.list_regions(**filters)

    @require(Role.ADMIN)
    @idempotent
    @blp.doc(security=BEARER)
    @blp.arguments(RegionIn)
    @blp.response(201, RegionOut)
    def post(self, data):
        """Create a region (admins). zone, setting and timezone default to the parent's."""
        return services.create_region(current_actor(), data)


@blp.route("/<int:region_id>")
class RegionById(MethodView):
    @require()
    @blp.doc(security=BEARER)
    @blp.response(200, RegionOut)
    def get(self, region_id):
        """One region."""
        return services.get_region(region_id)

    @require(Role.ADMIN)
    @blp.doc(security=BEARER)
    @blp.arguments(RegionPatch(partial=True))
    @blp.response(200, RegionOut)
    def patch(self, data, region_id):
        """Change a region (admins); a new parent that would make a cycle is refused."""
        return services.update_region(current_actor(), region_id, data)
