"""Coverage rollups: stored days, ISO weeks and months give exactly the raw figures.

Reuses the hand-computed dataset of test_coverage (November 2026; the clock frozen
at 2026-12-01 09:00 UTC). Periods are calendar periods in DEFAULT_TIMEZONE, which
these tests set to UTC unless they say otherwise, so that November of the dataset
is a stored month.
"""

import re
import threading
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from careservice.core.auth import Actor
from careservice.core.settings import SettingsError, load_settings
from careservice.extensions import db
from careservice.metrics import rollups
from careservice.metrics.cells import compute_cells
from careservice.metrics.coverage import AGE_BANDS, GROUPINGS, age_band, coverage, fold
from careservice.metrics.jobs import roll_up_coverage
from careservice.metrics.models import CoverageRollup, CoverageRollupPeriod, PeriodKind
from careservice.scheduling.booking import change_status, record_session
from careservice.scheduling.jobs import mark_no_shows
from careservice.scheduling.models import Appointment, Status
from tests.metrics.test_coverage import EXPECTED_VILLAGE, build_dataset, by_region, check_rows

URL = "/api/v1/metrics/coverage"
CSV_URL = "/api/v1/metrics/coverage.csv"
NOVEMBER = {"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}
SYSTEM = Actor.system("tests")

# Every grouping, the region grouping at every level.
GROUPS = ([{"group_by": "region", "level": level}
           for level in ("province", "county", "township", "village")]
          + [{"group_by": group_by} for group_by in GROUPINGS if group_by != "region"])


@pytest.fixture
def utc_periods(app, monkeypatch):
    monkeypatch.setitem(app.config, "DEFAULT_TIMEZONE", "UTC")


@pytest.fixture
def data(frozen_clock, utc_periods, create_region, create_resident, create_provider,
         create_service_type, create_user):
    return build_dataset(create_region, create_resident, create_provider, create_service_type,
                         create_user)


def fetch(client, auth, user, period, path=URL, **query):
    response = client.get(path, query_string={**period, **query}, headers=auth(user))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def scopes(d):
    """(user, region_id) pairs: the admin everywhere and on three regions, a western
    coordinator on their own regions and on one village."""
    return [("admin", None), ("admin", d.region["county_w"]), ("admin", d.region["E1"]),
            ("admin", d.region["empty_town"]), ("coordinator_w", None),
            ("coordinator_w", d.region["W1"])]


def every_report(client, auth, d, period) -> dict:
    """Every grouping x scope: (JSON, CSV) with the source each came from."""
    reports = {}
    for user, region_id in scopes(d):
        for query in GROUPS:
            if region_id is not None:
                query = {**query, "region_id": region_id}
            response = fetch(client, auth, d.user[user], period, **query)
            as_csv = fetch(client, auth, d.user[user], period, CSV_URL, **query)
            key = (user, region_id, *sorted(query.items()))
            reports[key] = (response.json, as_csv.get_data(as_text=True),
                            {response.headers["X-Coverage-Source"],
                             as_csv.headers["X-Coverage-Source"]})
    return reports


def build(kind: PeriodKind, first: date) -> int:
    return rollups.rebuild(kind, first, "UTC")


def assert_rollup_equals_raw(client, auth, d, kind: PeriodKind, first: date):
    start, end = rollups.span(kind, first, "UTC")
    period = {"from": start.isoformat(), "to": end.isoformat()}
    raw = every_report(client, auth, d, period)
    build(kind, first)
    stored = every_report(client, auth, d, period)
    assert {sources.pop() for *_, sources in raw.values()} == {"raw"}
    assert {sources.pop() for *_, sources in stored.values()} == {"rollup"}
    assert stored == raw
    return stored


def test_a_stored_month_gives_the_raw_figures_for_every_grouping_scope_and_role(
        client, auth, data):
    stored = assert_rollup_equals_raw(client, auth, data, PeriodKind.MONTH, date(2026, 11, 1))
    # And they are the hand-computed ones.
    by_village = stored[("admin", None, ("group_by", "region"), ("level", "village"))][0]
    check_rows(by_village["rows"], by_region(data, EXPECTED_VILLAGE))
    assert len(stored) == len(GROUPS) * len(scopes(data))


def test_a_stored_day_and_week_give_the_raw_figures(client, auth, data):
    # 2 November: S1 (r1 completed, across partners, a 2-day wait) and its reminders.
    day = assert_rollup_equals_raw(client, auth, data, PeriodKind.DAY, date(2026, 11, 2))
    by_sex = day[("admin", None, ("group_by", "sex"))][0]["rows"]
    assert {row["group"]: row["served"] for row in by_sex} == {"female": 1, "male": 0}
    # The ISO week of Monday 2 November: S1 S2 S3 S7 S8 and the sessions up to 8 November.
    week = assert_rollup_equals_raw(client, auth, data, PeriodKind.WEEK, date(2026, 11, 2))
    by_kind = week[("admin", None, ("group_by", "provider_kind"))][0]["rows"]
    assert {row["group"]: row["sessions_completed"] for row in by_kind} == {
        "caregiver": 1, "clinician": 3}


def test_stored_cells_equal_the_cells_computed_from_raw_rows(data):
    start, end = rollups.span(PeriodKind.MONTH, date(2026, 11, 1), "UTC")
    count = build(PeriodKind.MONTH, date(2026, 11, 1))

    stored = rollups.stored_cells(start, end, ["/"])
    computed = compute_cells(start, end)
    assert stored == computed
    assert count == len(computed) > 0
    # Waits are stored whole, so a median over any grouping is exact: 0.5, 2, 3, 7, 10.
    everyone = fold(stored, "region", "province")["rows"][0]
    assert everyone["median_wait_days"] == 3.0


def test_a_period_in_another_time_zone_is_stored_at_its_local_midnights(
        client, auth, data, monkeypatch, app):
    monkeypatch.setitem(app.config, "DEFAULT_TIMEZONE", "Asia/Shanghai")
    rollups.rebuild(PeriodKind.DAY, date(2026, 11, 10), "Asia/Shanghai")
    admin = data.user["admin"]

    local = fetch(client, auth, admin, {"from": "2026-11-10T00:00:00+08:00",
                                        "to": "2026-11-11T00:00:00+08:00"})
    same_instants = fetch(client, auth, admin, {"from": "2026-11-09T16:00:00Z",
                                                "to": "2026-11-10T16:00:00Z"})
    utc_day = fetch(client, auth, admin, {"from": "2026-11-10T00:00:00Z",
                                          "to": "2026-11-11T00:00:00Z"})

    assert local.headers["X-Coverage-Source"] == "rollup"
    assert same_instants.headers["X-Coverage-Source"] == "rollup"
    assert utc_day.headers["X-Coverage-Source"] == "raw"
    # S4 (10 November 02:00 UTC = 10:00 in Shanghai) is in the Shanghai day.
    assert sum(row["sessions_completed"] for row in local.json["rows"]) == 1


def test_ad_hoc_periods_are_computed_from_raw_rows(client, auth, data):
    build(PeriodKind.MONTH, date(2026, 11, 1))
    build(PeriodKind.DAY, date(2026, 11, 2))
    admin = data.user["admin"]
    for period in ({"from": "2026-11-01T00:00:00Z", "to": "2026-11-30T00:00:00Z"},
                   {"from": "2026-11-01T00:00:00Z", "to": "2026-11-15T00:00:00Z"},
                   {"from": "2026-11-02T00:00:00Z", "to": "2026-11-04T00:00:00Z"},
                   {"from": "2026-11-03T00:00:00Z", "to": "2026-11-04T00:00:00Z"}):
        assert fetch(client, auth, admin, period).headers["X-Coverage-Source"] == "raw"
    assert fetch(client, auth, admin, NOVEMBER).headers["X-Coverage-Source"] == "rollup"


def test_a_period_not_over_yet_is_never_stored(data):
    with pytest.raises(ValueError, match="not over"):
        rollups.rebuild(PeriodKind.MONTH, date(2026, 12, 1), "UTC")
    with pytest.raises(ValueError, match="not over"):
        rollups.rebuild(PeriodKind.DAY, date(2026, 12, 1), "UTC")
    assert stored_periods() == set()


def stored_periods() -> set:
    return {(row.kind, row.start_at) for row in db.session.execute(
        sa.select(CoverageRollupPeriod.kind, CoverageRollupPeriod.start_at))}


def stored_rows() -> int:
    return db.session.execute(sa.select(sa.func.count()).select_from(CoverageRollup)).scalar()


def test_rebuilding_a_period_is_idempotent(client, auth, data):
    first = build(PeriodKind.MONTH, date(2026, 11, 1))
    rows, report = stored_rows(), fetch(client, auth, data.user["admin"], NOVEMBER).json

    again = build(PeriodKind.MONTH, date(2026, 11, 1))

    assert again == first == rows
    assert stored_rows() == rows
    assert len(stored_periods()) == 1
    assert fetch(client, auth, data.user["admin"], NOVEMBER).json == report


def test_a_late_record_drops_the_rollups_holding_it_until_the_next_rebuild(
        client, auth, data):
    build(PeriodKind.MONTH, date(2026, 11, 1))
    build(PeriodKind.DAY, date(2026, 11, 25))
    build(PeriodKind.DAY, date(2026, 11, 26))
    admin = data.user["admin"]
    # r3 (70-79) seen on 25 November, recorded afterwards: served, as a late record is.
    record_session(SYSTEM, resident_id=data.resident["r3"], provider_id=data.provider["GW"],
                   service_type="elder_home_visit", start=datetime(2026, 11, 25, 3, tzinfo=UTC),
                   outcome="completed")

    # At once: the month and that day read the rows; another day keeps its rollup.
    current = fetch(client, auth, admin, NOVEMBER, group_by="age_band")
    assert current.headers["X-Coverage-Source"] == "raw"
    band = {row["group"]: row for row in current.json["rows"]}["70-79"]
    assert (band["served"], band["sessions_completed"]) == (2, 2)
    assert set(built()) == {("day", utc(date(2026, 11, 26)))}
    build(PeriodKind.MONTH, date(2026, 11, 1))
    fresh = fetch(client, auth, admin, NOVEMBER, group_by="age_band")
    assert fresh.headers["X-Coverage-Source"] == "rollup"
    assert fresh.json == current.json


def test_a_status_change_of_a_past_session_drops_its_rollups_and_a_future_one_none(
        client, auth, data):
    build(PeriodKind.MONTH, date(2026, 11, 1))

    def booked(*when):
        return db.session.execute(sa.select(Appointment.id).where(
            *when, Appointment.status == Status.BOOKED)).scalars().first()

    change_status(SYSTEM, booked(Appointment.start_at >= utc(date(2026, 12, 1))),
                  Status.CONFIRMED)  # r9's session on 5 December
    assert set(built()) == {("month", utc(date(2026, 11, 1)))}

    change_status(SYSTEM, booked(Appointment.start_at < utc(date(2026, 12, 1))), Status.NO_SHOW)

    assert built() == {}
    assert fetch(client, auth, data.user["admin"],
                 NOVEMBER).headers["X-Coverage-Source"] == "raw"


def test_sessions_the_scheduler_marks_no_shows_drop_their_rollups(client, auth, data):
    build(PeriodKind.MONTH, date(2026, 11, 1))
    build(PeriodKind.MONTH, date(2026, 10, 1))

    assert mark_no_shows() == 2  # S6 and S12, never checked in

    assert set(built()) == {("month", utc(date(2026, 10, 1)))}
    response = fetch(client, auth, data.user["admin"], NOVEMBER)
    assert response.headers["X-Coverage-Source"] == "raw"
    assert sum(row["sessions_completed"] for row in response.json["rows"]) == 6


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days)]


def utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def built() -> dict:
    """(kind, start) -> (cells, built_at) of every stored period."""
    return {(row.kind, row.start_at): (row.cells, row.built_at) for row in db.session.execute(
        sa.select(CoverageRollupPeriod.kind, CoverageRollupPeriod.start_at,
                  CoverageRollupPeriod.cells, CoverageRollupPeriod.built_at))}


def test_the_job_rebuilds_the_recent_days_and_their_complete_weeks_and_months(
        client, auth, data, app, monkeypatch, frozen_clock):
    monkeypatch.setitem(app.config, "METRICS_ROLLUP_DAYS", 7)
    build(PeriodKind.DAY, date(2026, 11, 2))  # outside the job's reach: left alone
    old = built()
    frozen_clock.advance(timedelta(hours=1))

    written = roll_up_coverage()

    # Today is 1 December: 24..30 November; the ISO week of Monday 23 November (that
    # of 30 November is not over, that of 16 November ended before the 24th); November.
    recent = ({("day", utc(day)) for day in days(date(2026, 11, 24), date(2026, 12, 1))}
              | {("week", utc(date(2026, 11, 23))), ("month", utc(date(2026, 11, 1)))})
    after = built()
    assert set(after) == recent | set(old)
    assert after[("day", utc(date(2026, 11, 2)))] == old[("day", utc(date(2026, 11, 2)))]
    assert written == sum(after[period][0] for period in recent) > 0
    assert fetch(client, auth, data.user["admin"],
                 NOVEMBER).headers["X-Coverage-Source"] == "rollup"

    # Nothing changed: nothing is written.
    frozen_clock.advance(timedelta(hours=1))
    assert roll_up_coverage() == 0
    assert built() == after

    # A late record on 27 November reaches that day, its week and November, and only them.
    record_session(SYSTEM, resident_id=data.resident["r8"], provider_id=data.provider["GW"],
                   service_type="elder_home_visit", start=datetime(2026, 11, 27, 3, tzinfo=UTC),
                   outcome="completed")
    frozen_clock.advance(timedelta(hours=1))
    written = roll_up_coverage()
    latest = built()
    changed = {period for period in latest if latest[period] != after[period]}
    assert changed == {("day", utc(date(2026, 11, 27))), ("week", utc(date(2026, 11, 23))),
                       ("month", utc(date(2026, 11, 1)))}
    assert written == sum(latest[period][0] for period in changed)
    for period in (NOVEMBER, {"from": "2026-11-27T00:00:00Z", "to": "2026-11-28T00:00:00Z"},
                   {"from": "2026-11-23T00:00:00Z", "to": "2026-11-30T00:00:00Z"}):
        response = fetch(client, auth, data.user["admin"], period, group_by="setting")
        assert response.headers["X-Coverage-Source"] == "rollup"
        urban = {row["group"]: row for row in response.json["rows"]}["urban"]
        # r8 lives in W3 (urban), served by nothing else in November.
        assert urban["served"] == (3 if period is NOVEMBER else 1), period


def test_the_job_drops_day_rollups_past_the_keep_setting_and_keeps_weeks_and_months(
        client, auth, data, app, monkeypatch):
    monkeypatch.setitem(app.config, "METRICS_ROLLUP_DAYS", 2)
    monkeypatch.setitem(app.config, "METRICS_ROLLUP_KEEP_DAYS", 20)  # from 11 November on
    for day in (date(2026, 11, 2), date(2026, 11, 10), date(2026, 11, 11)):
        build(PeriodKind.DAY, day)
    build(PeriodKind.WEEK, date(2026, 11, 2))
    second = {"from": "2026-11-02T00:00:00Z", "to": "2026-11-03T00:00:00Z"}
    kept = fetch(client, auth, data.user["admin"], second).json

    roll_up_coverage()

    assert {(kind, start.date()) for kind, start in built()
            if start.date() < date(2026, 11, 29)} == {
        ("day", date(2026, 11, 11)), ("week", date(2026, 11, 2)),
        ("week", date(2026, 11, 23)), ("month", date(2026, 11, 1))}
    assert db.session.execute(sa.select(sa.func.count()).select_from(CoverageRollup).where(
        CoverageRollup.period_kind == "day",
        CoverageRollup.period_start < utc(date(2026, 11, 11)))).scalar_one() == 0
    # The dropped day is read from the rows again, with the same figures.
    response = fetch(client, auth, data.user["admin"], second)
    assert response.headers["X-Coverage-Source"] == "raw"
    assert response.json == kept

    monkeypatch.setitem(app.config, "METRICS_ROLLUP_KEEP_DAYS", 0)  # 0: keep every day
    build(PeriodKind.DAY, date(2026, 11, 2))
    roll_up_coverage()
    assert ("day", utc(date(2026, 11, 2))) in built()


def test_the_job_follows_the_service_time_zone(app, data, monkeypatch, frozen_clock):
    monkeypatch.setitem(app.config, "DEFAULT_TIMEZONE", "Asia/Shanghai")
    monkeypatch.setitem(app.config, "METRICS_ROLLUP_DAYS", 2)
    frozen_clock.set(datetime(2026, 12, 1, 15, 30, tzinfo=UTC))  # 23:30 on 1 Dec in Shanghai

    roll_up_coverage()

    def local_periods():
        return {(kind, start.astimezone(ZoneInfo("Asia/Shanghai")).date())
                for kind, start in built()}

    assert local_periods() == {("day", date(2026, 11, 29)), ("day", date(2026, 11, 30)),
                               ("week", date(2026, 11, 23)), ("month", date(2026, 11, 1))}
    frozen_clock.set(datetime(2026, 12, 1, 16, 30, tzinfo=UTC))  # 00:30 on 2 Dec
    roll_up_coverage()
    assert local_periods() - {("day", date(2026, 11, 29)), ("week", date(2026, 11, 23))} == {
        ("day", date(2026, 11, 30)), ("day", date(2026, 12, 1)), ("month", date(2026, 11, 1))}


def test_two_rebuilds_at_once_store_one_copy(app, data):
    db.session.rollback()  # on SQLite the test's transaction would hold the write lock
    errors, counts = [], []

    def rebuild():
        try:
            with app.app_context():
                counts.append(rollups.rebuild(PeriodKind.MONTH, date(2026, 11, 1), "UTC"))
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=rebuild) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(set(counts)) == 1
    assert stored_rows() == counts[0]
    assert len(stored_periods()) == 1


def cli(app, *args):
    db.session.rollback()
    result = app.test_cli_runner().invoke(args=["metrics", "rebuild", *args])
    db.session.expire_all()
    return result


def test_the_cli_rebuilds_days_weeks_and_months_in_the_range_with_progress(
        client, auth, app, data):
    result = cli(app, "--from", "2026-11-01", "--to", "2026-12-01")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    progress = [re.fullmatch(r"(day|week|month) (\d{4}-\d\d-\d\d) \((\d+)/35\) (\d+) cells", line)
                for line in lines[:-1]]
    assert all(progress), lines
    assert [match[1] for match in progress] == ["day"] * 30 + ["week"] * 4 + ["month"]
    assert [int(match[3]) for match in progress] == list(range(1, 36))
    assert progress[0][2] == "2026-11-01" and progress[-1][2] == "2026-11-01"
    assert lines[-1].startswith("Rebuilt 35 periods")
    assert len(stored_periods()) == 35
    response = fetch(client, auth, data.user["admin"], NOVEMBER)
    assert response.headers["X-Coverage-Source"] == "rollup"
    check_rows(response.json["rows"], by_region(data, EXPECTED_VILLAGE))


def test_the_cli_skips_periods_not_over_and_refuses_a_bad_range(app, data):
    result = cli(app, "--from", "2026-11-30", "--to", "2027-01-01")
    assert result.exit_code == 0, result.output
    assert "not over" in result.output
    assert "day 2026-11-30 (1/1)" in result.output
    assert len(stored_periods()) == 1

    for args in (("--from", "2026-11-30", "--to", "2026-11-30"),
                 ("--from", "2026-12-01", "--to", "2026-11-01"),
                 ("--from", "30/11/2026", "--to", "2026-12-01"),
                 ("--from", "2026-11-01")):
        result = cli(app, *args)
        assert result.exit_code == 2, (args, result.output)
        assert "Error" in result.output
    assert len(stored_periods()) == 1


def test_age_bands_in_sql_agree_with_age_band_at_the_boundaries(
        app, frozen_clock, create_region, create_resident):
    """The cells band residents by cut-off dates; `to` on 29 February included."""
    frozen_clock.set(datetime(2020, 1, 1, tzinfo=UTC))  # registered long before
    village = create_region("village", create_region("province"))
    born = [date(y, m, d) for y in (1946, 1947, 1948, 1956, 1957, 1966, 1967, 1968)
            for m, d in ((2, 27), (2, 28), (2, 29), (3, 1), (12, 1), (12, 2))
            if not (m == 2 and d == 29 and y % 4)]
    for birth in born:
        create_resident(village, birth_date=birth)
    for on in (datetime(2028, 2, 29, tzinfo=UTC), datetime(2027, 2, 28, tzinfo=UTC),
               datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 3, 1, tzinfo=UTC)):
        frozen_clock.set(on + timedelta(days=1))
        rows = coverage(SYSTEM, start=on - timedelta(days=1), end=on,
                        group_by="age_band")["rows"]
        expected = {band: sum(age_band(birth, on.date()) == band for birth in born)
                    for band in AGE_BANDS}
        assert {row["group"]: row["registered"] for row in rows} == {
            band: n for band, n in expected.items() if n}, on


@pytest.mark.parametrize("value", [0, -1, 400, "7", True, 2.5])
def test_a_bad_metrics_rollup_days_setting_stops_the_start(value, tmp_path):
    with pytest.raises(SettingsError, match="METRICS_ROLLUP_DAYS"):
        load_settings(str(tmp_path), {"ENV": "testing", "METRICS_ROLLUP_DAYS": value})


@pytest.mark.parametrize("value", [-1, "400", True, 2.5])
def test_a_bad_metrics_rollup_keep_days_setting_stops_the_start(value, tmp_path):
    with pytest.raises(SettingsError, match="METRICS_ROLLUP_KEEP_DAYS"):
        load_settings(str(tmp_path), {"ENV": "testing", "METRICS_ROLLUP_KEEP_DAYS": value})


def test_metrics_rollup_days_comes_from_the_environment(monkeypatch, tmp_path):
    assert load_settings(str(tmp_path), {"ENV": "testing"})["METRICS_ROLLUP_DAYS"] == 7
    monkeypatch.setenv("CARESERVICE_METRICS_ROLLUP_DAYS", "14")
    assert load_settings(str(tmp_path), {"ENV": "testing"})["METRICS_ROLLUP_DAYS"] == 14
    monkeypatch.setenv("CARESERVICE_METRICS_ROLLUP_DAYS", "a week")
    with pytest.raises(SettingsError, match="METRICS_ROLLUP_DAYS"):
        load_settings(str(tmp_path), {"ENV": "testing"})
