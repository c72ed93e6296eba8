"""Periodic work of matching, as plain functions the scheduler (and tests) call."""

from careservice.matching.backfill import backfill_freed_slots


def backfill_waitlist() -> int:
    return backfill_freed_slots()
