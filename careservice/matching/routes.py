"""GET /api/v1/matches."""

from datetime import timedelta

from flask.views import MethodView

from careservice.core.auth import current_actor, require
from careservice.core.models import Role
from careservice.core.time import utcnow
from careservice.core.web import BEARER, Blueprint
from careservice.matching import batch, scoring
from careservice.matching.schemas import BatchIn, BatchOut, MatchList, MatchQuery

blp = Blueprint("matching", __name__, url_prefix="/api/v1", description="Matching")

DEFAULT_WINDOW = timedelta(days=14)


@blp.route("/matches")
class Matches(MethodView):
    @require(Role.ADMIN, Role.COORDINATOR, Role.VHW)
    @blp.doc(security=BEARER)
    @blp.arguments(MatchQuery, location="query", as_kwargs=True)
    @blp.response(200, MatchList)
    def get(self, resident_id, service_type, start=None, end=None, limit=10, urgency="routine"):
        """The best (provider, start) pairs for a resident and service, with reasons;
        `from` defaults to now, `to` to two weeks later. A vhw asks only for their residents."""
        start = start or utcnow()
        end = end or start + DEFAULT_WINDOW
        return {"items": scoring.suggest(current_actor(), resident_id=resident_id,
                                         service_type=service_type, start=start, end=end,
                                         limit=limit, urgency=urgency)}


@blp.route("/matching/batch")
class Batch(MethodView):
    @require(Role.ADMIN, Role.COORDINATOR, Role.VHW)
    @blp.doc(security=BEARER)
    @blp.arguments(BatchIn)
    @blp.response(200, BatchOut)
    def post(self, data):
        """Assign open care requests to slots in [from, to), maximising weighted coverage
        (an exact min-cost flow); with `commit: true` the plan is computed afresh and booked."""
        return batch.run_batch(current_actor(), **data)
