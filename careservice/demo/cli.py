"""`flask demo seed [--residents N] [--seed N]`."""

import click
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
