"""`flask metrics rebuild --from YYYY-MM-DD --to YYYY-MM-DD`."""

import click
from flask import current_app
from flask.cli import AppGroup

from careservice.core.time import local_date, utcnow
from careservice.metrics import rollups

metrics_cli = AppGroup("metrics", help="Coverage rollups.")

DAY = click.DateTime(formats=["%Y-%m-%d"])


@metrics_cli.command("rebuild")
@click.option("--from", "first", required=True, type=DAY,
              help="First day (in DEFAULT_TIMEZONE) of the range.")
@click.option("--to", "last", required=True, type=DAY,
              help="The day after the range (half-open, like the API's from/to).")
def rebuild_command(first, last):
    """Rebuild every day, ISO week and month lying wholly in [--from, --to) that is over."""
    first, last = first.date(), last.date()
    if last <= first:
        raise click.BadParameter("must be after --from", param_hint="--to")
    tz_name = current_app.config["DEFAULT_TIMEZONE"]
    today = local_date(utcnow(), tz_name)
    periods = rollups.periods_within(first, min(last, today))
    if last > today:
        click.echo(f"Periods ending after {today} ({tz_name}) are not over: skipped.")

    def progress(kind, start, done, total, cells):
        click.echo(f"{kind} {start} ({done}/{total}) {cells} cells")

    built = list(rollups.rebuild_all(periods, tz_name, progress=progress))
    click.echo(f"Rebuilt {len(built)} periods, {sum(cells for *_, cells in built)} cells.")
