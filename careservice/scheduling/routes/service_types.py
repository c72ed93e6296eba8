"""/api/v1/service-types."""

from flask.views import MethodView

from careservice.core.auth import current_actor, require
from careservice.core.idempotency import idempotent
from careservice.core.models import Role
from careservice.core.pagination import PageArgs
from careservice.core.web import BEARER, Blueprint
from careservice.scheduling import services
from careservice.scheduling.schemas import ServiceTypeIn, ServiceTypeOut, ServiceTypePage

blp = Blueprint("service_types", __name__, url_prefix="/api/v1/service-types",
                description="What a session is: modality, duration, buffer, skill")


@blp.route("")
class ServiceTypes(MethodView):
    @require()
    @blp.doc(security=BEARER)
    @blp.arguments(PageArgs, location="query", as_kwargs=True)
    @blp.response(200, ServiceTypePage)
    def get(self, **page):
        """List service types."""
        return services.list_service_types(**page)

    @require(Role.ADMIN)
    @idempotent
    @blp.doc(security=BEARER)
    @blp.arguments(ServiceTypeIn)
    @blp.response(201, ServiceTypeOut)
    def post(self, data):
        """Add a service type (admins)."""
        return services.create_service_type(current_actor(), data)


@blp.route("/<code>")
class ServiceTypeByCode(MethodView):
    @require()
    @blp.doc(security=BEARER)
    @blp.response(200, ServiceTypeOut)
    def get(self, code):
        """One service type, by code."""
        return services.get_service_type(code)
