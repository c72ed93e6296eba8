"""Users, logins and tokens."""

from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from marshmallow import ValidationError
from werkzeug.security import check_password_hash, generate_password_hash

from careservice.core import audit
from careservice.core.auth import Actor, hash_token, new_token
from careservice.core.errors import RateLimited, Unauthorized, ValidationFailed
from careservice.core.fields import normalise_phone
from careservice.core.models import (
    PROVIDER_ROLES,
    REGIONAL_ROLES,
    ApiToken,
    LoginFailure,
    Role,
    User,
)
from careservice.core.time import utcnow
from careservice.extensions import db
from careservice.people.models import Provider, Region

MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


def create_user(actor: Actor, username: str, password: str, role: str,
                region_ids=(), provider_id: int | None = None, phone: str | None = None,
                language: str | None = None) -> User:
    """A new user; regional roles need regions, provider roles their provider."""
    user = add_user(actor, username, password, role, region_ids, provider_id, phone, language)
    db.session.commit()
    return user


def add_user(actor: Actor, username: str, password: str, role: str,
             region_ids=(), provider_id: int | None = None, phone: str | None = None,
             language: str | None = None) -> User:
    """create_user inside the caller's unit of work (it commits)."""
    errors = {}
    username = (username or "").strip()
    if not username or len(username) > 80 or any(ch.isspace() for ch in username):
        errors["username"] = ["1 to 80 characters, no spaces."]
    elif db.session.execute(sa.select(User.id).where(User.username == username)).first():
        errors["username"] = ["Already taken."]
    if len(password or "") < MIN_PASSWORD_LENGTH:
        errors["password"] = [f"At least {MIN_PASSWORD_LENGTH} characters."]
    if role not in {r.value for r in Role}:
        errors["role"] = [f"One of {', '.join(r.value for r in Role)}."]
    regions = [db.session.get(Region, rid) for rid in region_ids]
    if any(region is None for region in regions):
        errors["region_ids"] = ["No such region."]
    elif role in REGIONAL_ROLES and not regions:
        errors["region_ids"] = [f"A {role} needs at least one region."]
    provider = db.session.get(Provider, provider_id) if provider_id is not None else None
    if provider_id is not None and provider is None:
        errors["provider_id"] = ["No such provider."]
    elif role in PROVIDER_ROLES and (provider is None or provider.kind != role):
        errors["provider_id"] = [f"A {role} user needs a {role} provider."]
    elif role not in PROVIDER_ROLES and provider is not None:
        errors["provider_id"] = ["Only clinician and caregiver users have a provider."]
    if phone is not None:
        try:
            phone = normalise_phone(phone, current_app.config["DEFAULT_COUNTRY"])
        except ValidationError as error:
            errors["phone"] = list(error.messages)
    if language is not None and language not in current_app.config["LANGUAGES"]:
        errors["language"] = [f"One of {', '.join(current_app.config['LANGUAGES'])}."]
    if errors:
        raise ValidationFailed(errors)
    user = User(username=username, password_hash=hash_password(password), role=role,
                provider=provider, regions=regions, phone=phone, language=language)
    db.session.add(user)
    db.session.flush()
    audit.record(actor, "user.create", "user", user.id)
    return user


# A real hash to compare against when the username is unknown, so a miss takes
# as long as a wrong password and does not reveal which usernames exist.
_DUMMY_HASHES: dict[str, str] = {}


def _dummy_hash() -> str:
    method = current_app.config["PASSWORD_HASH_METHOD"]
    if method not in _DUMMY_HASHES:
        _DUMMY_HASHES[method] = generate_password_hash("not-a-password", method=method)
    return _DUMMY_HASHES[method]


def _recent_failures(username: str) -> int:
    window = timedelta(seconds=current_app.config["LOGIN_FAILURE_WINDOW_SECONDS"])
    return db.session.execute(
        sa.select(sa.func.count()).select_from(LoginFailure)
        .where(LoginFailure.username == username, LoginFailure.at > utcnow() - window)
    ).scalar_one()


def login(username: str, password: str, request_id: str | None = None) -> tuple[str, ApiToken]:
    """A new bearer token for good credentials.

    Failures are counted per username in the database, so the limit holds
    across every worker and copy of the app; a good login clears them. (Not per
    client address: behind a reverse proxy every client has the proxy's, and one
    address's limit would lock everyone out.)
    """
    config = current_app.config
    username = username.strip()
    if _recent_failures(username) >= config["LOGIN_MAX_FAILURES"]:
        raise RateLimited("Too many failed logins; try again in a minute.",
                          headers={"Retry-After": str(config["LOGIN_FAILURE_WINDOW_SECONDS"])})
    user = db.session.execute(sa.select(User).where(User.username == username)).scalar_one_or_none()
    password_ok = check_password_hash(user.password_hash if user else _dummy_hash(), password)
    if user is None or not password_ok or not user.active:
        window = timedelta(seconds=config["LOGIN_FAILURE_WINDOW_SECONDS"])
        db.session.execute(sa.delete(LoginFailure).where(LoginFailure.at < utcnow() - 2 * window))
        db.session.add(LoginFailure(username=username[:80]))
        audit.record(None, "login.failure", "user", user.id if user else None,
                     request_id=request_id)
        db.session.commit()
        raise Unauthorized("Wrong username or password.")
    db.session.execute(sa.delete(LoginFailure).where(LoginFailure.username == username))
    token = new_token()
    row = ApiToken(user=user, token_hash=hash_token(token),
                   expires_at=utcnow() + timedelta(hours=config["TOKEN_TTL_HOURS"]))
    db.session.add(row)
    audit.record(Actor.for_user(user, request_id), "login.success", "user", user.id)
    db.session.commit()
    return token, row


def issue_token(user: User, hours: int | None = None) -> str:
    """A token for a user without a password check (tests, CLI)."""
    token = new_token()
    hours = hours or current_app.config["TOKEN_TTL_HOURS"]
    db.session.add(ApiToken(user=user, token_hash=hash_token(token),
                            expires_at=utcnow() + timedelta(hours=hours)))
    db.session.commit()
    return token


def revoke_token(actor: Actor, token: str) -> None:
    row = db.session.execute(
        sa.select(ApiToken).where(ApiToken.token_hash == hash_token(token))
    ).scalar_one_or_none()
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(actor, "logout", "user", row.user_id)
        db.session.commit()

