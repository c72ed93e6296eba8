"""Local calendar days as UTC instants, across changes of the clocks."""

from datetime import UTC, date, datetime, timedelta

import pytest

from careservice.core.time import local_day, local_midnight


@pytest.mark.parametrize(("instant", "zone", "start", "hours"), [
    # Shanghai keeps one offset: 16:00 UTC the day before.
    (datetime(2026, 12, 1, 1, tzinfo=UTC), "Asia/Shanghai",
     datetime(2026, 11, 30, 16, tzinfo=UTC), 24),
    # Berlin's clocks go back on 25 October 2026: a 25-hour day.
    (datetime(2026, 10, 25, 12, tzinfo=UTC), "Europe/Berlin",
     datetime(2026, 10, 24, 22, tzinfo=UTC), 25),
    # New York's go forward on 8 March 2026: a 23-hour day.
    (datetime(2026, 3, 8, 20, tzinfo=UTC), "America/New_York",
     datetime(2026, 3, 8, 5, tzinfo=UTC), 23),
    # 23:30 UTC is already the next day in Shanghai.
    (datetime(2026, 12, 1, 23, 30, tzinfo=UTC), "Asia/Shanghai",
     datetime(2026, 12, 1, 16, tzinfo=UTC), 24),
])
def test_a_local_day_runs_from_local_midnight_to_the_next(instant, zone, start, hours):
    assert local_day(instant, zone) == (start, start + timedelta(hours=hours))


def test_local_midnight_is_a_utc_instant():
    midnight = local_midnight(date(2026, 10, 26), "Europe/Berlin")
    assert midnight == datetime(2026, 10, 25, 23, tzinfo=UTC)
    assert midnight.tzinfo is UTC
