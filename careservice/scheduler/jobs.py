"""The explicit list of periodic jobs, and how one runs."""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask

from careservice.extensions import db
from careservice.matching import jobs as matching
from careservice.metrics import jobs as metrics
from careservice.reminders import jobs as reminders
from careservice.scheduling import jobs as scheduling

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicJob:
    id: str
    func: Callable[[], int]
    every: int | str  # seconds, or the name of the setting that holds them

    def seconds(self, config) -> int:
        return config[self.every] if isinstance(self.every, str) else self.every


JOBS = (
    PeriodicJob("dispatch_reminders", reminders.dispatch_reminders, "DISPATCH_INTERVAL_SECONDS"),
    PeriodicJob("reconcile_reminders", reminders.reconcile_reminders,
                "RECONCILE_INTERVAL_SECONDS"),
    PeriodicJob("queue_vhw_digests", reminders.queue_vhw_digests, 900),
    PeriodicJob("backfill_waitlist", matching.backfill_waitlist, 60),
    PeriodicJob("mark_no_shows", scheduling.mark_no_shows, 300),
    PeriodicJob("expire_care_requests", scheduling.expire_requests, 600),
    PeriodicJob("extend_series", scheduling.extend_series, 3600),
    PeriodicJob("roll_up_coverage", metrics.roll_up_coverage, 3600),
)


def run_job(app: Flask, job: PeriodicJob) -> int | None:
    """Run one job in its own app context; a failure is logged, never fatal."""
    with app.app_context():
        began = time.monotonic()
        try:
            count = job.func()
        except Exception:
            db.session.rollback()
            log.exception("job %s failed", job.id)
            return None
        finally:
            db.session.remove()
        log.info("job %s: %s in %.2fs", job.id, count, time.monotonic() - began)
        return count
