"""What every benchmark needs: a scratch PostgreSQL database and a verdict table."""

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import psycopg

PG = dict(host="127.0.0.1", port=5432, user=os.environ.get("PGUSER", "postgres"))


def admin_sql(statement: str) -> None:
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        conn.execute(statement)


def report(checks: list[tuple[str, str, bool]]) -> int:
    """Print each (label, figure, met) and return the exit status: 0 when all are met."""
    for label, value, passed in checks:
        print(f"  {label:<32}{value:>12}  {'ok' if passed else 'MISSED'}")
    return 0 if all(passed for *_, passed in checks) else 1


@contextmanager
def scratch_database(label: str):
    """A fresh, migrated PostgreSQL database on 127.0.0.1 (its URL), dropped afterwards."""
    root = Path(__file__).resolve().parent.parent
    name = f"careservice_bench_{label}_{os.getpid()}"
    url = f"postgresql+psycopg://{PG['user']}@{PG['host']}:{PG['port']}/{name}"
    admin_sql(f"CREATE DATABASE {name}")
    try:
        subprocess.run([str(root / ".venv/bin/flask"), "--app", "careservice", "db", "upgrade"],
                       cwd=root, check=True, capture_output=True,
                       env={**os.environ, "CARESERVICE_DATABASE_URL": url})
        yield url
    finally:
        admin_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
