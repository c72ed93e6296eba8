"""`flask scheduler run` (the long-lived process) and `flask scheduler tick` (every job once)."""

import logging
import signal
from datetime import UTC, datetime

import click
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from flask import current_app
from flask.cli import AppGroup

from careservice.reminders import dispatch
from careservice.scheduler.jobs import JOBS, run_job

log = logging.getLogger(__name__)

scheduler_cli = AppGroup("scheduler", help="Periodic jobs.")


def build_scheduler(app, scheduler_class=BlockingScheduler):
    scheduler = scheduler_class(timezone="UTC")
    for job in JOBS:
        seconds = job.seconds(app.config)
        # The work is coordinated through the database, so a second scheduler
        # process is safe; these options only keep one process tidy.
        # The first run is at start-up: a restarted scheduler catches up at once.
        scheduler.add_job(run_job, "interval", seconds=seconds, args=(app, job),
                          id=job.id, name=job.id, replace_existing=True, coalesce=True,
                          max_instances=1, misfire_grace_time=seconds,
                          next_run_time=datetime.now(UTC))
    return scheduler


def start_in_process(app) -> BackgroundScheduler:
    """The demo's `flask run` with CARESERVICE_RUN_SCHEDULER=1; never under gunicorn."""
    scheduler = build_scheduler(app, BackgroundScheduler)
    scheduler.start()
    log.warning("scheduler running inside this process (demo only)")
    return scheduler


@scheduler_cli.command("run")
def run_command():
    """Run the periodic jobs until SIGTERM or Ctrl-C (the current job finishes first)."""
    app = current_app._get_current_object()
    scheduler = build_scheduler(app)

    def stop(signum, _frame):
        log.info("signal %s: finishing the current batch, then stopping", signum)
        dispatch.stopping.set()
        scheduler.shutdown(wait=True)

    signal.signal(signal.SIGTERM, stop)
    click.echo(f"scheduler: {len(JOBS)} jobs: " + ", ".join(job.id for job in JOBS))
    try:
        scheduler.start()
    except KeyboardInterrupt:
        scheduler.shutdown(wait=True)
    click.echo("scheduler stopped")


@scheduler_cli.command("tick")
def tick_command():
    """Run every periodic job once, now, and exit."""
    app = current_app._get_current_object()
    failed = False
    for job in JOBS:
        count = run_job(app, job)
        failed |= count is None
        click.echo(f"{job.id}: {'failed' if count is None else count}")
    if failed:
        raise SystemExit(1)
