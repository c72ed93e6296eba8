"""`flask demo seed [--residents N] [--seed N]` and
`flask demo simulate --weeks 12 --policy fifo|equity [--seed N]`."""

import tempfile
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from careservice.demo import seed as seeding

demo_cli = AppGroup("demo", help="Demo data.")


@demo_cli.command("seed")
@click.option("--residents", default=seeding.DEFAULT_RESIDENTS, show_default=True,
              type=click.IntRange(min=1, max=1_000_000), help="How many residents to create.")
@click.option("--seed", "seed_value", default=2026, show_default=True, type=int,
              help="Random seed: the same seed gives the same data.")
def seed_command(residents, seed_value):
    """Create the demo province, unless the database already holds regions."""
    if seeding.has_data():
        click.echo("The database already holds data; demo seed skipped.")
    else:
        with click.progressbar(length=residents, label="residents") as bar:
            summary = seeding.seed(residents=residents, seed=seed_value, progress=bar.update)
        for label, count in summary.items():
            click.echo(f"  {label}: {count}")
    click.echo(f"Demo logins (password for all: {seeding.DEMO_PASSWORD}):")
    for username, role, scope in seeding.demo_logins():
        click.echo(f"  {username:<14} {role:<12} {scope}")


@demo_cli.command("simulate")
@click.option("--weeks", default=12, show_default=True, type=click.IntRange(min=1, max=104))
@click.option("--policy", required=True, type=click.Choice(["fifo", "equity"]),
              help="fifo: first come, first served; equity: the daily batch matcher.")
@click.option("--seed", "seed_value", default=2026, show_default=True, type=int,
              help="Random seed for the province and the demand: same seed, same run.")
@click.option("--residents", default=seeding.DEFAULT_RESIDENTS, show_default=True,
              type=click.IntRange(min=50, max=100_000), help="Residents of the province.")
@click.option("--database", default=None,
              help="A scratch database URL to run in (it is emptied first); default: a "
                   "temporary SQLite file, so the service's own data is never touched.")
def simulate_command(weeks, policy, seed_value, residents, database):
    """Replay weeks of demand on the demo province and print its coverage."""
    from careservice.demo.report import print_report

    with tempfile.TemporaryDirectory() as scratch:
        url = database or f"sqlite:///{Path(scratch) / 'simulation.db'}"
        result = _run_in_scratch(url, weeks, policy, seed_value, residents)
    print_report(result, weeks=weeks, policy=policy, seed=seed_value, echo=click.echo)


def _run_in_scratch(url: str, weeks: int, policy: str, seed_value: int, residents: int) -> dict:
    """A fresh app on the scratch database: migrated, seeded, simulated."""
    from flask_migrate import upgrade

    from careservice import create_app
    from careservice.demo.simulate import simulate
    from careservice.extensions import db

    app = create_app({"ENV": current_app.config["ENV"], "DATABASE_URL": url,
                      "SMS_BACKEND": "memory", "BACKFILL_MODE": "off", "LOG_LEVEL": "WARNING"})
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        upgrade(directory=str(Path(current_app.root_path).parent / "migrations"))
        seeding.seed(residents=residents, seed=seed_value)
        with click.progressbar(length=weeks * 7, label=f"{policy}: days") as bar:
            result = simulate(weeks=weeks, policy=policy, seed=seed_value, progress=bar.update)
        db.session.remove()
        db.engine.dispose()
    return result
