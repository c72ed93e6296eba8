"""Quiet hours in the recipient's own timezone (CARESERVICE_QUIET_HOURS, e.g. 21:00-08:00)."""

from datetime import datetime, time, timedelta

from careservice.core.time import as_utc, zone


def parse(spec: str) -> tuple[time, time] | None:
    """(start, end) of the quiet period, or None when it is "off"."""
    if spec == "off":
        return None
    start, end = spec.split("-")
    return time.fromisoformat(start), time.fromisoformat(end)


def is_quiet(local: time, window: tuple[time, time]) -> bool:
    start, end = window
    if start <= end:
        return start <= local < end
    return local >= start or local < end  # across midnight


def next_allowed(instant: datetime, tz_name: str, spec: str) -> datetime:
    """`instant` itself, or the end of the quiet period it falls in."""
    window = parse(spec)
    if window is None:
        return instant
    tz = zone(tz_name)
    local = instant.astimezone(tz)
    if not is_quiet(local.time().replace(tzinfo=None), window):
        return instant
    end = window[1]
    day = local.date() if local.time() < end else local.date() + timedelta(days=1)
    return as_utc(datetime.combine(day, end, tzinfo=tz))
