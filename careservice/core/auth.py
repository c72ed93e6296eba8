"""Bearer tokens, the acting user, roles and region scope.

Routes build an Actor from the request and hand it to services, so services
never read the request and the CLI and scheduler can act as well.
"""

import hashlib
import secrets
import uuid
from dataclasses import dataclass, field
from functools import cache, wraps

import sqlalchemy as sa
from flask import g, request

from careservice.core.errors import Forbidden, Unauthorized
from careservice.core.models import (
    PROVIDER_ROLES,
    REGIONAL_ROLES,
    ApiToken,
    Role,
    User,
    user_regions,
)
from careservice.core.time import UTCDateTime, utcnow
from careservice.extensions import db


@dataclass(frozen=True)
class Actor:
    """Who is acting, with the scope they act in."""

    role: Role
    user_id: int | None = None
    username: str = "system"
    provider_id: int | None = None
    region_ids: tuple[int, ...] = ()
    region_paths: tuple[str, ...] = ()
    request_id: str | None = field(default=None, compare=False)

    @classmethod
    def system(cls, request_id: str = "system") -> "Actor":
        """The CLI or the scheduler: unrestricted, attributed to no user."""
        return cls(role=Role.ADMIN, request_id=request_id)

    @classmethod
    def for_user(cls, user: User, request_id: str | None = None) -> "Actor":
        return cls(
            role=Role(user.role),
            user_id=user.id,
            username=user.username,
            provider_id=user.provider_id,
            region_ids=tuple(region.id for region in user.regions),
            region_paths=tuple(region.path for region in user.regions),
            request_id=request_id,
        )

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def is_regional(self) -> bool:
        return self.role in REGIONAL_ROLES

    @property
    def is_provider(self) -> bool:
        return self.role in PROVIDER_ROLES

    def covers_path(self, path: str) -> bool:
        """True when a region with this path lies inside the actor's scope."""
        if self.is_admin:
            return True
        if self.is_regional:
            return any(path.startswith(prefix) for prefix in self.region_paths)
        return False

    def region_clause(self, path_column):
        """SQL: the region path column lies inside the actor's scope."""
        if self.is_admin:
            return sa.true()
        if self.is_regional and self.region_paths:
            return sa.or_(*(path_column.startswith(prefix, autoescape=True)
                            for prefix in self.region_paths))
        return sa.false()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


@cache
def _actor_query() -> sa.Select:
    """Built once: every request runs it."""
    regions = db.metadata.tables["regions"]
    return (
        sa.select(User.id, User.username, User.role, User.provider_id, regions.c.id,
                  regions.c.path)
        .join(ApiToken, ApiToken.user_id == User.id)
        .outerjoin(user_regions, user_regions.c.user_id == User.id)
        .outerjoin(regions, regions.c.id == user_regions.c.region_id)
        .where(ApiToken.token_hash == sa.bindparam("token_hash"), ApiToken.revoked_at.is_(None),
               ApiToken.expires_at > sa.bindparam("now", type_=UTCDateTime),
               User.active.is_(True))
        .order_by(regions.c.id)
    )


def actor_for_token(token: str, request_id: str | None = None) -> Actor | None:
    """The actor a live token belongs to, in one query (every request pays for it)."""
    rows = db.session.execute(
        _actor_query(), {"token_hash": hash_token(token), "now": utcnow()}).all()
    if not rows:
        return None
    user_id, username, role, provider_id = rows[0][:4]
    scoped = [(region_id, path) for *_, region_id, path in rows if region_id is not None]
    return Actor(role=Role(role), user_id=user_id, username=username, provider_id=provider_id,
                 region_ids=tuple(r for r, _ in scoped), region_paths=tuple(p for _, p in scoped),
                 request_id=request_id)


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def request_id() -> str:
    if "request_id" not in g:
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming[:64] if incoming.isprintable() and incoming else uuid.uuid4().hex
    return g.request_id


def authenticate() -> Actor:
    token = bearer_token()
    if token is None:
        raise Unauthorized("A bearer token is required.",
                           headers={"WWW-Authenticate": 'Bearer realm="careservice"'})
    actor = actor_for_token(token, request_id())
    if actor is None:
        raise Unauthorized("The token is invalid or has expired.",
                           headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return actor


def current_actor() -> Actor:
    if "actor" not in g:
        g.actor = authenticate()
    return g.actor


def require(*roles: Role):
    """Authenticate the caller and refuse (403) roles not listed; none listed: any role."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            actor = current_actor()
            if roles and actor.role not in roles:
                raise Forbidden(f"The {actor.role} role may not do this.")
            return view(*args, **kwargs)

        return wrapper

    return decorate
