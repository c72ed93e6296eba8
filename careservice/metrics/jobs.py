"""Periodic work of metrics: keeping the coverage rollups of recent periods current."""

from flask import current_app

from careservice.core.time import local_date, utcnow
from careservice.metrics import rollups


def roll_up_coverage() -> int:
    """Rebuild the last METRICS_ROLLUP_DAYS complete days (in DEFAULT_TIMEZONE) and the
    complete ISO weeks and months holding them, so late completions, recorded sessions
    and delivery callbacks reach the rollups. A period whose cells did not change is
    left as stored. Returns how many cells were written (0 when nothing changed)."""
    tz_name = current_app.config["DEFAULT_TIMEZONE"]
    today = local_date(utcnow(), tz_name)
    periods = rollups.recent_periods(today, current_app.config["METRICS_ROLLUP_DAYS"])
    return sum(cells or 0 for *_, cells in rollups.rebuild_all(periods, tz_name,
                                                                if_changed=True))
