"""Settings from config/ and the environment (API.md "Configuration and commands")."""

import os

import pytest

from careservice.core.settings import SettingsError, load_settings

POSTGRES_URL = "postgresql+psycopg://care@db.internal:5432/careservice"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Only what a test sets: nothing from the shell running pytest."""
    for name in list(os.environ):
        if name.startswith(("CARESERVICE_", "TWILIO_")):
            monkeypatch.delenv(name)


@pytest.fixture
def production(monkeypatch):
    """A production environment that starts, for tests to take one thing away."""
    monkeypatch.setenv("CARESERVICE_ENV", "production")
    monkeypatch.setenv("CARESERVICE_SECRET_KEY", "a-long-production-secret")
    monkeypatch.setenv("CARESERVICE_DATABASE_URL", POSTGRES_URL)
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC00000000000000000000000000000000")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "twilio-token")
    monkeypatch.setenv("TWILIO_FROM_NUMBER", "+15005550006")


def test_production_starts_with_a_secret_and_postgresql(tmp_path, production):
    settings = load_settings(str(tmp_path))

    assert settings["ENV"] == "production"
    assert settings["SECRET_KEY"] == "a-long-production-secret"
    assert settings["DATABASE_URL"] == POSTGRES_URL
    assert settings["SMS_BACKEND"] == "twilio"


def test_production_refuses_to_start_without_a_secret_key(tmp_path, production, monkeypatch):
    monkeypatch.delenv("CARESERVICE_SECRET_KEY")

    with pytest.raises(SettingsError, match="CARESERVICE_SECRET_KEY"):
        load_settings(str(tmp_path))


def test_production_refuses_an_empty_secret_key(tmp_path, production, monkeypatch):
    monkeypatch.setenv("CARESERVICE_SECRET_KEY", "")

    with pytest.raises(SettingsError, match="CARESERVICE_SECRET_KEY"):
        load_settings(str(tmp_path))


def test_production_refuses_the_sqlite_default(tmp_path, production, monkeypatch):
    monkeypatch.delenv("CARESERVICE_DATABASE_URL")

    with pytest.raises(SettingsError, match="CARESERVICE_DATABASE_URL"):
        load_settings(str(tmp_path))


def test_production_refuses_a_sqlite_url(tmp_path, production, monkeypatch):
    monkeypatch.setenv("CARESERVICE_DATABASE_URL", f"sqlite:///{tmp_path / 'prod.db'}")

    with pytest.raises(SettingsError, match="CARESERVICE_DATABASE_URL"):
        load_settings(str(tmp_path))


def test_development_gets_a_random_secret_and_a_sqlite_file_in_the_instance_path(tmp_path):
    first = load_settings(str(tmp_path))
    second = load_settings(str(tmp_path))

    assert first["ENV"] == "development"
    assert len(first["SECRET_KEY"]) >= 32
    assert first["SECRET_KEY"] != second["SECRET_KEY"]
    assert first["DATABASE_URL"] == f"sqlite:///{tmp_path / 'careservice.db'}"


def test_documented_defaults(tmp_path):
    settings = load_settings(str(tmp_path))

    assert settings["PUBLIC_URL"] == "http://127.0.0.1:5000"
    assert settings["SMS_BACKEND"] == "console"
    assert settings["QUIET_HOURS"] == "21:00-08:00"
    assert settings["MIN_NOTICE_MINUTES"] == 120
    assert settings["BOOKING_HORIZON_DAYS"] == 90
    assert settings["RUN_SCHEDULER"] is False


@pytest.mark.parametrize("variable, raw, key, value", [
    ("CARESERVICE_MIN_NOTICE_MINUTES", "30", "MIN_NOTICE_MINUTES", 30),
    ("CARESERVICE_BOOKING_HORIZON_DAYS", "14", "BOOKING_HORIZON_DAYS", 14),
    ("CARESERVICE_RUN_SCHEDULER", "1", "RUN_SCHEDULER", True),
    ("CARESERVICE_RUN_SCHEDULER", "off", "RUN_SCHEDULER", False),
    ("CARESERVICE_SMS_BACKEND", "memory", "SMS_BACKEND", "memory"),
    ("CARESERVICE_PUBLIC_URL", "https://care.example.org/", "PUBLIC_URL",
     "https://care.example.org"),
    ("CARESERVICE_QUIET_HOURS", "off", "QUIET_HOURS", "off"),
    ("CARESERVICE_QUIET_HOURS", "22:00-07:00", "QUIET_HOURS", "22:00-07:00"),
    ("CARESERVICE_DATABASE_URL", "sqlite:///elsewhere.db", "DATABASE_URL",
     "sqlite:///elsewhere.db"),
    ("CARESERVICE_SECRET_KEY", "dev-secret", "SECRET_KEY", "dev-secret"),
])
def test_environment_variables_override_the_config_files(tmp_path, monkeypatch,
                                                         variable, raw, key, value):
    monkeypatch.setenv(variable, raw)

    settings = load_settings(str(tmp_path))

    assert settings[key] == value
    assert type(settings[key]) is type(value)


def test_create_app_overrides_beat_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CARESERVICE_MIN_NOTICE_MINUTES", "30")

    settings = load_settings(str(tmp_path), {"MIN_NOTICE_MINUTES": 5})

    assert settings["MIN_NOTICE_MINUTES"] == 5


@pytest.mark.parametrize("variable, raw", [
    ("CARESERVICE_MIN_NOTICE_MINUTES", "abc"),
    ("CARESERVICE_MIN_NOTICE_MINUTES", "-5"),
    ("CARESERVICE_BOOKING_HORIZON_DAYS", "0"),
    ("CARESERVICE_RUN_SCHEDULER", "maybe"),
    ("CARESERVICE_SMS_BACKEND", "pigeon"),
    ("CARESERVICE_QUIET_HOURS", "25:00-07:00"),
    ("CARESERVICE_QUIET_HOURS", "22:00"),
    ("CARESERVICE_PUBLIC_URL", "care.example.org"),
    ("CARESERVICE_ENV", "staging"),
])
def test_bad_values_are_refused_naming_the_variable(tmp_path, monkeypatch, variable, raw):
    monkeypatch.setenv(variable, raw)

    with pytest.raises(SettingsError) as refused:
        load_settings(str(tmp_path))

    named = variable.removeprefix("CARESERVICE_")
    assert named in str(refused.value)


@pytest.mark.parametrize("key", ["MIN_NOTICE_MINUTES", "BOOKING_HORIZON_DAYS",
                                 "DISPATCH_BATCH", "NO_SHOW_AFTER_MINUTES",
                                 "SMS_RATE_PER_SECOND", "METRICS_ROLLUP_KEEP_DAYS"])
def test_a_boolean_is_not_a_number(tmp_path, key):
    # In a TOML file or an override, `true` must not pass as 1.
    with pytest.raises(SettingsError, match=key):
        load_settings(str(tmp_path), {"ENV": "testing", key: True})
