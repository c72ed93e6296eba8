"""`flask users create NAME --role ROLE [--region ID]... [--provider ID]`."""

import sys

import click
from flask.cli import AppGroup

from careservice.core.auth import Actor
from careservice.core.errors import ValidationFailed
from careservice.core.models import Role
from careservice.people import users

users_cli = AppGroup("users", help="Manage user accounts.")


def read_password() -> str:
    """One line from stdin when piped; otherwise a prompt, typed twice."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@users_cli.command("create")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--region", "regions", multiple=True, type=int,
              help="A region the user acts in (repeat for several).")
@click.option("--provider", type=int, help="The provider record of a clinician or caregiver.")
@click.option("--phone", help="For SMS to the user (a village health worker's digest).")
@click.option("--language", help="The language of those SMS (zh-CN, en, id).")
def create_command(username, role, regions, provider, phone, language):
    """Create a user; the password is read from stdin (or prompted for twice)."""
    password = read_password()
    try:
        user = users.create_user(Actor.system("cli"), username, password, role,
                                 region_ids=regions, provider_id=provider, phone=phone,
                                 language=language)
    except ValidationFailed as error:
        for field, messages in error.fields.items():
            click.echo(f"error: {field}: {' '.join(messages)}", err=True)
        sys.exit(1)
    click.echo(f"created user {user.id} {user.username} ({user.role})")
