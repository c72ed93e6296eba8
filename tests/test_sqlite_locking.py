"""SQLite: requests that may write take the write lock at BEGIN; reads do not.

A GET reads a WAL snapshot (a deferred BEGIN), so a slow report or slot listing
never holds up a booking; every other request, and every job, begins IMMEDIATE
so that writers queue instead of failing half-way.
"""

import sqlite3

import pytest
import sqlalchemy as sa

from careservice.extensions import db


@pytest.fixture
def sqlite_path(app):
    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's locking; PostgreSQL takes row and advisory locks")
    return db.engine.url.database


def can_take_write_lock(path: str) -> bool:
    """Whether another connection gets SQLite's write lock at once."""
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError as error:
        assert "locked" in str(error)
        return False
    finally:
        other.close()


@pytest.mark.parametrize(("method", "writer_blocked"), [
    ("GET", False), ("HEAD", False), ("POST", True), ("PATCH", True), ("DELETE", True),
])
def test_only_requests_that_may_write_hold_the_write_lock(app, sqlite_path, method,
                                                          writer_blocked):
    db.session.rollback()
    with app.test_request_context("/api/v1/regions", method=method), app.app_context():
        db.session.execute(sa.text("SELECT 1"))  # the request's transaction begins
        try:
            assert can_take_write_lock(sqlite_path) is not writer_blocked
        finally:
            db.session.rollback()
            db.session.remove()


def test_jobs_and_commands_outside_requests_begin_immediate(app, sqlite_path):
    db.session.rollback()
    with app.app_context():
        db.session.execute(sa.text("SELECT 1"))
        try:
            assert not can_take_write_lock(sqlite_path)
        finally:
            db.session.rollback()
            db.session.remove()
