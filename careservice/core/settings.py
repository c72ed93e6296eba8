"""Settings: config/default.toml, then config/<env>.toml, then the environment,
then overrides from create_app. Validated once at start-up."""

import os
import re
import secrets
import tomllib
from pathlib import Path

ENVIRONMENTS = ("development", "testing", "production")
SMS_BACKENDS = ("twilio", "console", "memory")

# Environment variable -> config key, as API.md names them.
ENV_VARS = {
    "CARESERVICE_DATABASE_URL": "DATABASE_URL",
    "CARESERVICE_SECRET_KEY": "SECRET_KEY",
    "CARESERVICE_PUBLIC_URL": "PUBLIC_URL",
    "CARESERVICE_SMS_BACKEND": "SMS_BACKEND",
    "CARESERVICE_QUIET_HOURS": "QUIET_HOURS",
    "CARESERVICE_MIN_NOTICE_MINUTES": "MIN_NOTICE_MINUTES",
    "CARESERVICE_BOOKING_HORIZON_DAYS": "BOOKING_HORIZON_DAYS",
    "CARESERVICE_SLOT_STEP_MINUTES": "SLOT_STEP_MINUTES",
    "CARESERVICE_RUN_SCHEDULER": "RUN_SCHEDULER",
    "CARESERVICE_DEFAULT_COUNTRY": "DEFAULT_COUNTRY",
    "CARESERVICE_TOKEN_TTL_HOURS": "TOKEN_TTL_HOURS",
    "CARESERVICE_LOG_LEVEL": "LOG_LEVEL",
    "CARESERVICE_JOIN_URL_TEMPLATE": "JOIN_URL_TEMPLATE",
    "CARESERVICE_TRAVEL_SPEED_KMH": "TRAVEL_SPEED_KMH",
    "CARESERVICE_NO_SHOW_AFTER_MINUTES": "NO_SHOW_AFTER_MINUTES",
    "CARESERVICE_SERIES_AHEAD_DAYS": "SERIES_AHEAD_DAYS",
    "CARESERVICE_SMS_RATE_PER_SECOND": "SMS_RATE_PER_SECOND",
    "CARESERVICE_SMS_TIMEOUT_SECONDS": "SMS_TIMEOUT_SECONDS",
    "CARESERVICE_SMS_MAX_ATTEMPTS": "SMS_MAX_ATTEMPTS",
    "CARESERVICE_DISPATCH_BATCH": "DISPATCH_BATCH",
    "CARESERVICE_DISPATCH_CONCURRENCY": "DISPATCH_CONCURRENCY",
    "CARESERVICE_DISPATCH_LEASE_SECONDS": "DISPATCH_LEASE_SECONDS",
    "CARESERVICE_DISPATCH_INTERVAL_SECONDS": "DISPATCH_INTERVAL_SECONDS",
    "CARESERVICE_RECONCILE_AFTER_SECONDS": "RECONCILE_AFTER_SECONDS",
    "CARESERVICE_RECONCILE_INTERVAL_SECONDS": "RECONCILE_INTERVAL_SECONDS",
    "CARESERVICE_DIGEST_LOCAL_TIME": "DIGEST_LOCAL_TIME",
    "CARESERVICE_BACKFILL_MODE": "BACKFILL_MODE",
    "CARESERVICE_BACKFILL_OFFER_MINUTES": "BACKFILL_OFFER_MINUTES",
    "CARESERVICE_METRICS_ROLLUP_DAYS": "METRICS_ROLLUP_DAYS",
    "CARESERVICE_METRICS_ROLLUP_KEEP_DAYS": "METRICS_ROLLUP_KEEP_DAYS",
    "TWILIO_ACCOUNT_SID": "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN": "TWILIO_AUTH_TOKEN",
    "TWILIO_FROM_NUMBER": "TWILIO_FROM_NUMBER",
    "TWILIO_MESSAGING_SERVICE_SID": "TWILIO_MESSAGING_SERVICE_SID",
    "TWILIO_API_BASE_URL": "TWILIO_API_BASE_URL",
}

_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_QUIET_HOURS = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(RuntimeError):
    """The settings are unusable; the message says which and why."""


def config_dir() -> Path:
    configured = os.environ.get("CARESERVICE_CONFIG_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "config"


def _read_toml(path: Path) -> dict:
    if not path.exists():
        return {}
    with path.open("rb") as handle:
        return tomllib.load(handle)


def _coerce(key: str, raw: str, default):
    """An environment string as the type of the default it replaces."""
    if isinstance(default, bool):
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise SettingsError(f"{key}: expected a boolean (1/0, true/false), got {raw!r}")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{key}: expected an integer, got {raw!r}") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise SettingsError(f"{key}: expected a number, got {raw!r}") from None
    return raw


def load_settings(instance_path: str, overrides: dict | None = None) -> dict:
    """The merged, validated settings as a plain dict of Flask config keys."""
    overrides = dict(overrides or {})
    env = overrides.pop("ENV", None) or os.environ.get("CARESERVICE_ENV", "development")
    if env not in ENVIRONMENTS:
        raise SettingsError(
            f"CARESERVICE_ENV must be one of {', '.join(ENVIRONMENTS)}, not {env!r}")
    directory = config_dir()
    settings = _read_toml(directory / "default.toml")
    if not settings:
        raise SettingsError(f"no settings found in {directory} (set CARESERVICE_CONFIG_DIR)")
    settings.update(_read_toml(directory / f"{env}.toml"))
    for var, key in ENV_VARS.items():
        if var in os.environ:
            settings[key] = _coerce(var, os.environ[var], settings.get(key, ""))
    settings.update(overrides)
    settings["ENV"] = env
    _validate(settings, instance_path)
    return settings


def _is_whole(value) -> bool:
    """An int that is not a bool (TOML's true would otherwise pass as 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _validate(s: dict, instance_path: str) -> None:
    from careservice.core.time import is_valid_timezone

    production = s["ENV"] == "production"
    if not s.get("DATABASE_URL"):
        if production:
            raise SettingsError(
                "production needs CARESERVICE_DATABASE_URL (PostgreSQL); "
                "the SQLite default is for development only"
            )
        s["DATABASE_URL"] = f"sqlite:///{Path(instance_path) / 'careservice.db'}"
    elif production and s["DATABASE_URL"].startswith("sqlite"):
        raise SettingsError("production refuses SQLite: set CARESERVICE_DATABASE_URL to PostgreSQL")
    if not s.get("SECRET_KEY"):
        if production:
            raise SettingsError("production refuses to start without CARESERVICE_SECRET_KEY")
        s["SECRET_KEY"] = secrets.token_hex(32)
    if s["SMS_BACKEND"] not in SMS_BACKENDS:
        raise SettingsError(f"CARESERVICE_SMS_BACKEND must be one of {', '.join(SMS_BACKENDS)}")
    if s["SMS_BACKEND"] == "twilio" and production:
        missing = [k for k in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN") if not s.get(k)]
        if not (s.get("TWILIO_FROM_NUMBER") or s.get("TWILIO_MESSAGING_SERVICE_SID")):
            missing.append("TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID")
        if missing:
            raise SettingsError("the twilio SMS backend needs " + ", ".join(missing))
    quiet = str(s["QUIET_HOURS"]).strip().lower()
    if quiet != "off" and not _QUIET_HOURS.match(quiet):
        raise SettingsError("CARESERVICE_QUIET_HOURS must look like 21:00-08:00, or be off")
    s["QUIET_HOURS"] = quiet
    for key in ("MIN_NOTICE_MINUTES", "SLOT_STEP_MINUTES"):
        if not _is_whole(s[key]) or s[key] < 0:
            raise SettingsError(f"{key} must be a whole number of minutes, 0 or more")
    for key in ("BOOKING_HORIZON_DAYS", "TOKEN_TTL_HOURS", "LOGIN_MAX_FAILURES",
                "LOGIN_FAILURE_WINDOW_SECONDS", "MAX_CONTENT_LENGTH", "TRAVEL_SPEED_KMH",
                "SERIES_AHEAD_DAYS", "DISPATCH_BATCH", "DISPATCH_CONCURRENCY",
                "DISPATCH_LEASE_SECONDS", "DISPATCH_INTERVAL_SECONDS", "SMS_MAX_ATTEMPTS",
                "SMS_RETRY_BASE_SECONDS", "SMS_TIMEOUT_SECONDS", "RECONCILE_INTERVAL_SECONDS",
                "BACKFILL_OFFER_MINUTES"):
        if not _is_whole(s[key]) or s[key] <= 0:
            raise SettingsError(f"{key} must be a positive whole number")
    rate = s["SMS_RATE_PER_SECOND"]
    if not isinstance(rate, int | float) or isinstance(rate, bool) or rate < 0:
        raise SettingsError("SMS_RATE_PER_SECOND must be 0 (no limit) or more")
    if not _CLOCK.match(str(s["DIGEST_LOCAL_TIME"])):
        raise SettingsError("DIGEST_LOCAL_TIME must look like 18:00")
    for key in ("NO_SHOW_AFTER_MINUTES", "BOOKING_RETRIES", "RECONCILE_AFTER_SECONDS",
                "METRICS_ROLLUP_KEEP_DAYS"):
        if not _is_whole(s[key]) or s[key] < 0:
            raise SettingsError(f"{key} must be a whole number, 0 or more")
    if s["BACKFILL_MODE"] not in ("book", "offer", "off"):
        raise SettingsError("BACKFILL_MODE must be book, offer or off")
    days = s["METRICS_ROLLUP_DAYS"]
    if not _is_whole(days) or not 1 <= days <= 366:
        raise SettingsError("METRICS_ROLLUP_DAYS must be a whole number of days, 1 to 366")
    if "{token}" not in s["JOIN_URL_TEMPLATE"]:
        raise SettingsError("JOIN_URL_TEMPLATE must contain {token}")
    if not s["PUBLIC_URL"].startswith(("http://", "https://")):
        raise SettingsError("CARESERVICE_PUBLIC_URL must be an http(s) URL")
    s["PUBLIC_URL"] = s["PUBLIC_URL"].rstrip("/")
    if not is_valid_timezone(s["DEFAULT_TIMEZONE"]):
        raise SettingsError(f"DEFAULT_TIMEZONE {s['DEFAULT_TIMEZONE']!r} is not an IANA zone")
    if not s["LANGUAGES"] or "en" not in s["LANGUAGES"]:
        raise SettingsError("LANGUAGES must list the supported tags, English included")
    s["DEFAULT_COUNTRY"] = str(s["DEFAULT_COUNTRY"]).upper()
