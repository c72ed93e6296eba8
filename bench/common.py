"""What every benchmark needs: a scratch PostgreSQL database and a verdict table."""

import os

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
