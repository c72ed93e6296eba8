"""/api/v1/care-requests: the waitlist."""

from flask.views import MethodView

from careservice.core.auth import current_actor, require
from careservice.core.idempotency import idempotent
from careservice.core.pagination import PageArgs
from careservice.core.web import BEARER, Blueprint
from careservice.scheduling import care_requests
from careservice.scheduling.schemas import (
    CareRequestIn,
    CareRequestOut,
    CareRequestPage,
    CareRequestQuery,
)

blp = Blueprint("care_requests", __name__, url_prefix="/api/v1/care-requests",
                description="Needs not yet booked (the waitlist)")


@blp.route("")
class CareRequests(MethodView):
    @require()
    @blp.doc(security=BEARER)
    @blp.arguments(CareRequestQuery, location="query", as_kwargs=True)
    @blp.arguments(PageArgs, location="query", as_kwargs=True)
    @blp.response(200, CareRequestPage)
    def get(self, **filters):
        """Care requests of residents in the caller's scope."""
        return care_requests.list_care_requests(current_actor(), **filters)

    @require()
    @idempotent
    @blp.doc(security=BEARER)
    @blp.arguments(CareRequestIn)
    @blp.response(201, CareRequestOut)
    def post(self, data):
        """Put a need on the waitlist: a session fits when it starts at or after
        `earliest` and ends by `latest`."""
        return care_requests.create_care_request(current_actor(), **data)


@blp.route("/<int:request_id>")
class CareRequestById(MethodView):
    @require()
    @blp.doc(security=BEARER)
    @blp.response(200, CareRequestOut)
    def get(self, request_id):
        """One care request."""
        return care_requests.find_care_request(current_actor(), request_id)


@blp.route("/<int:request_id>/cancel")
class CareRequestCancel(MethodView):
    @require()
    @blp.doc(security=BEARER)
    @blp.response(200, CareRequestOut)
    @blp.alt_response(409, description="invalid_transition: the request is not open")
    def post(self, request_id):
        """Withdraw an open care request."""
        return care_requests.cancel_care_request(current_actor(), request_id)
