"""POST /api/v1/auth/token, DELETE /api/v1/auth/token and GET /api/v1/me."""

from flask.views import MethodView

from careservice.core.auth import bearer_token, current_actor, request_id, require
from careservice.core.models import User
from careservice.core.web import BEARER, Blueprint
from careservice.extensions import db
from careservice.people import users
from careservice.people.schemas import LoginIn, MeOut, TokenOut

blp = Blueprint("auth", __name__, url_prefix="/api/v1", description="Logins and the caller")


@blp.route("/auth/token")
class Token(MethodView):
    @blp.arguments(LoginIn)
    @blp.response(200, TokenOut)
    @blp.alt_response(401, description="Wrong username or password")
    @blp.alt_response(429, description="Too many failed logins for this username")
    def post(self, data):
        """Log in: a bearer token for a username and password."""
        token, row = users.login(data["username"], data["password"], request_id())
        return {"token": token, "expires_at": row.expires_at, "user": row.user}

    @require()
    @blp.doc(security=BEARER)
    @blp.response(204)
    def delete(self):
        """Log out: revoke the token of this request."""
        users.revoke_token(current_actor(), bearer_token())


@blp.route("/me")
class Me(MethodView):
    @require()
    @blp.doc(security=BEARER)
    @blp.response(200, MeOut)
    def get(self):
        """The caller, with role and region scope."""
        user = db.session.get(User, current_actor().user_id)
        return {"id": user.id, "username": user.username, "role": user.role,
                "provider_id": user.provider_id,
                "region_ids": [region.id for region in user.regions],
                "regions": user.regions}
