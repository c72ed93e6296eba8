"""Periodic work of metrics: keeping the coverage rollups of recent periods current."""

from datetime import timedelta

from flask import current_app

from careservice.core.time import local_date, utcnow
from careservice.metrics import rollups
from careservice.metrics.models import PeriodKind


def roll_up_coverage() -> int:
    """Rebuild the last METRICS_ROLLUP_DAYS complete days (in DEFAULT_TIMEZONE) and the
    complete ISO weeks and months holding them, so late completions, recorded sessions
    and delivery callbacks reach the rollups, and drop day rollups older than
    METRICS_ROLLUP_KEEP_DAYS. A period whose cells did not change is left as stored.
    Returns how many cells were written (0 when nothing changed)."""
    config = current_app.config
    tz_name = config["DEFAULT_TIMEZONE"]
    today = local_date(utcnow(), tz_name)
    periods = rollups.recent_periods(today, config["METRICS_ROLLUP_DAYS"])
    written = sum(cells or 0 for *_, cells in rollups.rebuild_all(periods, tz_name,
                                                                   if_changed=True))
    if config["METRICS_ROLLUP_KEEP_DAYS"]:
        oldest_kept = today - timedelta(days=config["METRICS_ROLLUP_KEEP_DAYS"])
        rollups.drop_days_before(rollups.span(PeriodKind.DAY, oldest_kept, tz_name)[0])
    return written
