"""Periodic work of metrics: keeping the coverage rollups of recent periods current."""

from flask import current_app

from careservice.core.time import local_date, utcnow
from careservice.metrics import rollups


def roll_up_coverage() -> int:
    """Rebuild the last METRICS_ROLLUP_DAYS complete days (in DEFAULT_TIMEZONE) and the
    complete ISO weeks and months holding them, so late completions, recorded sessions
    and delivery callbacks reach the rollups. Returns how many periods were rebuilt."""
    tz_name = current_app.config["DEFAULT_TIMEZONE"]
    today = local_date(utcnow(), tz_name)
    periods = rollups.recent_periods(today, current_app.config["METRICS_ROLLUP_DAYS"])
    return sum(1 for _ in rollups.rebuild_all(periods, tz_name))
