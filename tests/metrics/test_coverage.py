"""Coverage metrics against one small dataset whose every figure was worked out by hand.

The period is [2026-11-01T00:00Z, 2026-12-01T00:00Z); the clock is frozen at
2026-12-01 09:00 UTC, so every session below lies in the past. Age bands are
taken at `to`, i.e. on 2026-12-01.

Regions
    Ningxia (province, west, rural)
    |- Xiji County (county, west, rural; partner: Xingqing District)
    |  '- Jiqiang Town
    |     |- W1 Nanshan Village   rural  4 residents (+1 registered exactly at `to`)
    |     |- W2 Taoyuan Village   rural  3 residents
    |     '- W3 Jiqiang Street    URBAN  2 residents (west, but urban)
    '- Xingqing District (county, EAST, URBAN; partner: Xiji County)
       |- Fenghuang Town
       |  '- E1 Lijing Village    urban  3 residents
       '- Empty Town (no village, no resident: the "nothing to divide by" scope)

Residents (birth date -> age on 2026-12-01 -> band; sex)
    W1  r1  1946-12-01  80 exactly  80+    female
        r2  1946-12-02  79          70-79  male    (80 the day after `to`)
        r3  1956-12-01  70 exactly  70-79  female
        r4  1990-05-05  36          0-59   male
        late (male) created at exactly `to`: NOT registered before `to`
    W2  r5  1956-12-02  69          60-69  female
        r6  1966-12-01  60 exactly  60-69  male
        r7  1940-01-15  86          80+    female
    W3  r8  1966-12-02  59          0-59   male
        r9  1950-06-30  76          70-79  female
    E1  r10 1944-03-02  82          80+    female
        r11 1962-07-07  64          60-69  male
        r12 1980-02-29  46          0-59   female
    -> 12 registered; 3 per age band; 7 female, 5 male.

Providers: CE, a clinician homed in Xingqing District (east), whose partner is
Xiji County (west): CE's sessions with W residents are "across partner
regions", with E residents not. GW, a caregiver homed in W1 (never across).
Service types: gp_consult (video, 20+5 min) and elder_home_visit (home visit, 60+15).

Sessions in the period (rec = recorded afterwards via record_session; ins =
an Appointment row booked through the service, recorded False; X = across partners)
    S1  11-02 r1  gp  CE completed rec  X
    S2  11-03 r1  hv  GW completed rec
    S3  11-04 r2  hv  GW no_show   rec
    S4  11-10 r2  gp  CE completed ins  X
    S5  11-12 r3  gp  CE cancelled ins  (across, but cancelled)
    S6  11-20 r4  hv  GW booked    ins
    S7  11-05 r5  gp  CE completed rec  X
    S8  11-06 r6  hv  GW no_show   rec
    S9  11-07 r7  hv  GW cancelled ins
    S10 11-08 r10 gp  CE completed ins
    S11 11-09 r11 hv  CE completed rec  (a clinician's home visit, east to east)
    S12 11-11 r12 gp  CE booked    ins
Outside the period: r6 gp CE completed at 10-31T23:59 (before `from`), r7 gp CE
completed at exactly `to`, r8 hv GW completed on 10-15, r9 gp CE booked on 12-05.
-> served: r1, r2, r5, r10, r11.

Care requests
    linked (status booked): r1 gp -> S1 created 10-31T02:00: 2 days; r1 hv -> S2
    created 10-27T02:00: 7 days; r2 gp -> S4 created 10-31T02:00: 10 days; r5 gp ->
    S7 created 11-02T02:00: 3 days; r10 gp -> S10 created 11-07T14:00: 0.5 day;
    r6 gp -> the 10-31T23:59 session (outside the period: not counted).
    unmet candidates: r3 gp open 11-20..12-10 (counts); r4 hv expired 10-01..11-01T00:00
    (ends at `from`: no overlap); r7 hv expired 10-25..11-05 (counts); r8 gp open
    12-01T00:00..12-15 (starts at `to`: no overlap); r9 gp expired 10-01..10-15 (no);
    r11 gp cancelled 11-10..11-25 (not open/expired); r12 gp open 11-15..11-30 (counts).

Reminders (resident reminders not tied to an appointment), sent in the period:
    W1: r1 delivered, r2 delivered, r3 undelivered, r4 failed -> 2/4
        (+ r1 delivered 10-31T23:00, r1 still "sent", r2 suppressed: not counted)
    W2: r5, r6, r7 delivered -> 3/3 (+ r6 undelivered at exactly `to`: not counted)
    W3: only r9 delivered on 10-20 -> nothing in the period: null
    E1: r10 delivered, r11 undelivered, r12 delivered twice -> 3/4

Hand-computed rows: see EXPECTED_* below (fields in row order: registered, served,
coverage_rate, sessions_booked, sessions_completed, no_show_rate,
cancellation_rate, median_wait_days, unmet_requests, sms_delivery_rate,
sessions_across_partner_regions).

Equity over all villages: coverage W1 1/2, W2 1/3, W3 0, E1 2/3.
    rural (W1+W2) 3/7 over urban (W3+E1) 2/5 = 15/14; west 3/9 over east 2/3 = 1/2;
    worst/best = 0 / (2/3) = 0;
    gini: mean 3/8; sum over unordered pairs |ci-cj| = 1/3+1/2+2/3+1/6+1/3+1/6 = 13/6,
    ordered pairs 13/3; / (2 * 4^2 * 3/8 = 12) = 13/36.
Under Xiji County: W1 1/2, W2 1/3, W3 0: urban (W3) coverage 0 -> rural_urban null;
    no east -> west_east null; worst/best 0 / (1/2) = 0; gini: mean 5/18, ordered
    pairs 2 * (1/3+1/2+1/6) = 2, / (2 * 9 * 5/18 = 5) = 2/5.
Under Xingqing District: E1 alone: ratios null (no rural, no west), worst/best 1, gini 0.
Under Empty Town: no village: ratios null, gini 0.
"""

import csv
import io
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction as F
from types import SimpleNamespace

import pytest

from careservice.core.auth import Actor
from careservice.extensions import db
from careservice.people.models import Region, Resident
from careservice.reminders.models import Reminder
from careservice.scheduling.booking import record_session
from careservice.scheduling.models import Appointment, CareRequest

URL = "/api/v1/metrics/coverage"
CSV_URL = "/api/v1/metrics/coverage.csv"
FROM, TO = "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"
TO_AT = datetime(2026, 12, 1, tzinfo=UTC)
PERIOD = {"from": FROM, "to": TO}

# Row fields in the order API.md lists them (the app adds two more: checked too).
DOCUMENTED = ["group", "label", "registered", "served", "coverage_rate", "sessions_booked",
              "sessions_completed", "no_show_rate", "median_wait_days", "unmet_requests",
              "sms_delivery_rate"]
FIGURES = ["registered", "served", "coverage_rate", "sessions_booked", "sessions_completed",
           "no_show_rate", "cancellation_rate", "median_wait_days", "unmet_requests",
           "sms_delivery_rate", "sessions_across_partner_regions"]


def at(month, day, hour=2, minute=0):
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def figures(*values):
    assert len(values) == len(FIGURES)
    return dict(zip(FIGURES, values, strict=True))


# registered, served, coverage, booked, completed, no_show, cancel, median, unmet, sms, across
EXPECTED_VILLAGE = {
    "W1": figures(4, 2, F(1, 2), 3, 3, F(1, 4), F(1, 3), F(7), 1, F(1, 2), 2),
    "W2": figures(3, 1, F(1, 3), 1, 1, F(1, 2), F(1), F(3), 1, F(1), 1),
    "W3": figures(2, 0, F(0), 0, 0, None, None, None, 0, None, 0),
    "E1": figures(3, 2, F(2, 3), 2, 2, F(0), F(0), F(1, 2), 1, F(3, 4), 0),
}
# West county = W1+W2+W3: waits 2, 7, 10, 3 -> median 5; sms 5 of 7; no-shows 2 of 6.
WEST = figures(9, 3, F(1, 3), 4, 4, F(1, 3), F(1, 2), F(5), 2, F(5, 7), 3)
EAST = EXPECTED_VILLAGE["E1"]
EXPECTED_COUNTY = {"county_w": WEST, "county_e": EAST}
EXPECTED_ZONE = {"east": EAST, "west": WEST}
EXPECTED_SETTING = {
    # W1+W2: 7 registered, 3 served; S4 S5 S6 S9 booked; S1 S2 S4 S7 completed; S3 S8 no-shows.
    "rural": figures(7, 3, F(3, 7), 4, 4, F(1, 3), F(1, 2), F(5), 2, F(5, 7), 3),
    # W3+E1: 5 registered, r10 r11 served.
    "urban": figures(5, 2, F(2, 5), 2, 2, F(0), F(0), F(1, 2), 1, F(3, 4), 0),
}
EXPECTED_AGE_BAND = {
    # r4 r8 r12: S6, S12 booked only; r12's open request; r4 failed, r12 2 delivered.
    "0-59": figures(3, 0, F(0), 2, 0, None, F(0), None, 1, F(2, 3), 0),
    # r5 r6 r11: S7, S11 completed (recorded), S8 no-show; wait 3; sms r5 D r6 D r11 U.
    "60-69": figures(3, 2, F(2, 3), 0, 2, F(1, 3), None, F(3), 0, F(2, 3), 1),
    # r2 r3 r9: S3 no-show, S4 completed, S5 cancelled; wait 10; r3's open request.
    "70-79": figures(3, 1, F(1, 3), 2, 1, F(1, 2), F(1, 2), F(10), 1, F(1, 2), 1),
    # r1 r7 r10: S1 S2 S10 completed, S9 cancelled; waits 2, 7, 0.5; r7's expired request.
    "80+": figures(3, 2, F(2, 3), 2, 3, F(0), F(1, 2), F(2), 1, F(1), 1),
}
EXPECTED_SEX = {
    # r1 r3 r5 r7 r9 r10 r12; waits 0.5, 2, 3, 7; sms 6 of 7.
    "female": figures(7, 3, F(3, 7), 4, 4, F(0), F(1, 2), F(5, 2), 3, F(6, 7), 2),
    # r2 r4 r6 r8 r11; wait 10; sms r2 D, r4 F, r6 D, r11 U.
    "male": figures(5, 2, F(2, 5), 2, 2, F(1, 2), F(0), F(10), 0, F(1, 2), 1),
}
EXPECTED_SERVICE_TYPE = {
    # registered = all 12 residents in scope. Reminders are tied to no appointment,
    # hence to no service type: sms null.
    "elder_home_visit": ("Elder home visit",
                         figures(12, 2, F(1, 6), 2, 2, F(1, 2), F(1, 2), F(7), 1, None, 0)),
    "gp_consult": ("GP consultation",
                   figures(12, 4, F(1, 3), 4, 4, F(0), F(1, 4), F(5, 2), 2, None, 3)),
}
EXPECTED_PROVIDER_KIND = {
    # A request names no provider: unmet 0 for both kinds.
    "caregiver": figures(12, 1, F(1, 12), 2, 1, F(2, 3), F(1, 2), F(7), 0, None, 0),
    "clinician": figures(12, 5, F(5, 12), 4, 5, F(0), F(1, 4), F(5, 2), 0, None, 3),
}
EXPECTED_EQUITY_ALL = {"rural_urban_ratio": F(15, 14), "west_east_ratio": F(1, 2),
                       "worst_best_village_ratio": F(0), "gini": F(13, 36), "villages": 4}
EXPECTED_EQUITY_WEST = {"rural_urban_ratio": None, "west_east_ratio": None,
                        "worst_best_village_ratio": F(0), "gini": F(2, 5), "villages": 3}
EXPECTED_EQUITY_EAST = {"rural_urban_ratio": None, "west_east_ratio": None,
                        "worst_best_village_ratio": F(1), "gini": F(0), "villages": 1}
EXPECTED_EQUITY_EMPTY = {"rural_urban_ratio": None, "west_east_ratio": None,
                         "worst_best_village_ratio": None, "gini": F(0), "villages": 0}


# The dataset


def build_dataset(create_region, create_resident, create_provider, create_service_type,
                  create_user):
    d = SimpleNamespace()
    province = create_region("province", name="Ningxia", zone="west", setting="rural")
    county_w = create_region("county", province, name="Xiji County")
    town_w = create_region("township", county_w, name="Jiqiang Town")
    w1 = create_region("village", town_w, name="Nanshan Village")
    w2 = create_region("village", town_w, name="Taoyuan Village")
    w3 = create_region("village", town_w, name="Jiqiang Street", setting="urban")
    county_e = create_region("county", province, name="Xingqing District", zone="east",
                             setting="urban", partner_region_id=county_w.id)
    town_e = create_region("township", county_e, name="Fenghuang Town")
    e1 = create_region("village", town_e, name="Lijing Village")
    empty_town = create_region("township", county_e, name="Empty Town")
    db.session.get(Region, county_w.id).partner_region_id = county_e.id
    db.session.commit()
    d.region = {"province": province.id, "county_w": county_w.id, "town_w": town_w.id,
                "W1": w1.id, "W2": w2.id, "W3": w3.id, "county_e": county_e.id,
                "town_e": town_e.id, "E1": e1.id, "empty_town": empty_town.id}
    d.name = {key: db.session.get(Region, rid).name for key, rid in d.region.items()}

    people = [  # key, village, birth date, sex, registered at
        ("r1", w1, date(1946, 12, 1), "female", datetime(2025, 3, 1, tzinfo=UTC)),
        ("r2", w1, date(1946, 12, 2), "male", datetime(2025, 3, 1, tzinfo=UTC)),
        ("r3", w1, date(1956, 12, 1), "female", datetime(2025, 3, 1, tzinfo=UTC)),
        ("r4", w1, date(1990, 5, 5), "male", datetime(2026, 11, 15, tzinfo=UTC)),
        ("late", w1, date(1950, 1, 1), "male", TO_AT),  # exactly at `to`: not before it
        ("r5", w2, date(1956, 12, 2), "female", datetime(2025, 3, 1, tzinfo=UTC)),
        ("r6", w2, date(1966, 12, 1), "male", datetime(2025, 3, 1, tzinfo=UTC)),
        ("r7", w2, date(1940, 1, 15), "female", datetime(2025, 3, 1, tzinfo=UTC)),
        ("r8", w3, date(1966, 12, 2), "male", datetime(2025, 3, 1, tzinfo=UTC)),
        ("r9", w3, date(1950, 6, 30), "female", datetime(2025, 3, 1, tzinfo=UTC)),
        ("r10", e1, date(1944, 3, 2), "female", datetime(2025, 3, 1, tzinfo=UTC)),
        ("r11", e1, date(1962, 7, 7), "male", datetime(2025, 3, 1, tzinfo=UTC)),
        ("r12", e1, date(1980, 2, 29), "female", datetime(2026, 11, 30, 23, 59, tzinfo=UTC)),
    ]
    d.resident = {}
    for n, (key, village, born, sex, _) in enumerate(people):
        resident = create_resident(village, name=f"Resident {key.upper()}", birth_date=born,
                                   sex=sex, phone=f"+86139001390{n:02d}")
        d.resident[key] = resident.id
    for key, *_, registered_at in people:
        db.session.get(Resident, d.resident[key]).created_at = registered_at
    db.session.commit()

    gp = create_service_type()
    hv = create_service_type(code="elder_home_visit", name="Elder home visit",
                             modality="home_visit", duration_minutes=60, buffer_minutes=15,
                             required_skill="elder_care")
    kinds = {"gp_consult": (gp.id, 20, 5, "video"),
             "elder_home_visit": (hv.id, 60, 15, "home_visit")}
    ce = create_provider(county_e, name="Dr. Lin")
    gw = create_provider(w1, kind="caregiver", name="Ma Lan", skills=["elder_care"])
    d.provider = {"CE": ce.id, "GW": gw.id}
    d.user = {
        "admin": create_user("admin"),
        "coordinator_w": create_user("coordinator", [county_w]),
        "vhw": create_user("vhw", [w1]),
        "clinician": create_user("clinician", provider=ce),
    }

    system = Actor.system("t")
    d.session = {}

    def recorded(key, who, code, provider, start, outcome):
        appointment = record_session(system, resident_id=d.resident[who],
                                     provider_id=d.provider[provider], service_type=code,
                                     start=start, outcome=outcome)
        d.session[key] = appointment.id

    def booked(key, who, code, provider, start, status):
        type_id, minutes, buffer, modality = kinds[code]
        appointment = Appointment(
            resident_id=d.resident[who], provider_id=d.provider[provider],
            service_type_id=type_id, start_at=start,
            end_at=start + timedelta(minutes=minutes),
            block_end_at=start + timedelta(minutes=minutes + buffer), modality=modality,
            status=status, recorded=False, version=1)
        db.session.add(appointment)
        db.session.commit()
        d.session[key] = appointment.id

    recorded("S1", "r1", "gp_consult", "CE", at(11, 2), "completed")
    recorded("S2", "r1", "elder_home_visit", "GW", at(11, 3), "completed")
    recorded("S3", "r2", "elder_home_visit", "GW", at(11, 4), "no_show")
    booked("S4", "r2", "gp_consult", "CE", at(11, 10), "completed")
    booked("S5", "r3", "gp_consult", "CE", at(11, 12), "cancelled")
    booked("S6", "r4", "elder_home_visit", "GW", at(11, 20), "booked")
    recorded("S7", "r5", "gp_consult", "CE", at(11, 5), "completed")
    recorded("S8", "r6", "elder_home_visit", "GW", at(11, 6), "no_show")
    booked("S9", "r7", "elder_home_visit", "GW", at(11, 7), "cancelled")
    booked("S10", "r10", "gp_consult", "CE", at(11, 8), "completed")
    recorded("S11", "r11", "elder_home_visit", "CE", at(11, 9), "completed")
    booked("S12", "r12", "gp_consult", "CE", at(11, 11), "booked")
    # Outside the period.
    recorded("O1", "r6", "gp_consult", "CE", at(10, 31, 23, 59), "completed")
    recorded("O2", "r7", "gp_consult", "CE", TO_AT, "completed")
    recorded("O3", "r8", "elder_home_visit", "GW", at(10, 15), "completed")
    booked("O4", "r9", "gp_consult", "CE", at(12, 5), "booked")

    def request(who, code, status, earliest, latest, *, session=None, created=None):
        db.session.add(CareRequest(
            resident_id=d.resident[who], service_type_id=kinds[code][0], status=status,
            earliest=earliest, latest=latest,
            appointment_id=d.session[session] if session else None,
            created_at=created or earliest))

    # Linked to sessions: waits in days from creation to the session's start.
    request("r1", "gp_consult", "booked", at(10, 31), at(11, 30), session="S1")   # 2
    request("r1", "elder_home_visit", "booked", at(10, 27), at(11, 30), session="S2")  # 7
    request("r2", "gp_consult", "booked", at(10, 31), at(11, 30), session="S4")  # 10
    request("r5", "gp_consult", "booked", at(11, 2), at(11, 30), session="S7")   # 3
    request("r10", "gp_consult", "booked", at(11, 7, 14), at(11, 30), session="S10")  # 0.5
    request("r6", "gp_consult", "booked", at(10, 20), at(11, 30), session="O1")  # outside
    # Unmet candidates.
    request("r3", "gp_consult", "open", at(11, 20), at(12, 10))                    # counts
    request("r4", "elder_home_visit", "expired", at(10, 1), at(11, 1, 0))          # ends at from
    request("r7", "elder_home_visit", "expired", at(10, 25), at(11, 5))            # counts
    request("r8", "gp_consult", "open", TO_AT, at(12, 15))                         # starts at to
    request("r9", "gp_consult", "expired", at(10, 1), at(10, 15))                  # before
    request("r11", "gp_consult", "cancelled", at(11, 10), at(11, 25))              # cancelled
    request("r12", "gp_consult", "open", at(11, 15), at(11, 30))                   # counts

    counter = iter(range(1000))

    def sms(who, status, sent_at):
        n = next(counter)
        db.session.add(Reminder(
            dedupe_key=f"coverage-test-{n}", kind="reminder_24h", to=f"+86139002390{n:02d}",
            language="zh-CN", body="Reminder", send_at=sent_at or at(11, 1),
            sent_at=sent_at, status=status, resident_id=d.resident[who]))

    sms("r1", "delivered", at(11, 1, 1))
    sms("r2", "delivered", at(11, 15))
    sms("r3", "undelivered", at(11, 16))
    sms("r4", "failed", at(11, 17))
    sms("r1", "delivered", at(10, 31, 23))   # before from
    sms("r1", "sent", at(11, 18))            # no final status
    sms("r2", "suppressed", None)            # never sent
    sms("r5", "delivered", at(11, 5))
    sms("r6", "delivered", at(11, 6))
    sms("r7", "delivered", at(11, 7))
    sms("r6", "undelivered", TO_AT)          # at to
    sms("r9", "delivered", at(10, 20))       # before from
    sms("r10", "delivered", at(11, 8))
    sms("r11", "undelivered", at(11, 9))
    sms("r12", "delivered", at(11, 11))
    sms("r12", "delivered", at(11, 12))
    db.session.commit()
    return d


@pytest.fixture
def data(frozen_clock, create_region, create_resident, create_provider, create_service_type,
         create_user):
    return build_dataset(create_region, create_resident, create_provider, create_service_type,
                         create_user)


# Helpers


def get(client, auth, user, path=URL, **query):
    return client.get(path, query_string={**PERIOD, **query}, headers=auth(user))


def report_for(client, auth, d, user="admin", **query):
    response = get(client, auth, d.user[user], **query)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


def mismatches(actual: dict, expected: dict, where: str) -> list[str]:
    """Every field that differs, exact for integers and dyadic fractions (0.5, 0.25),
    approximate (1e-12) for the rest (1/3, 5/7, 13/36)."""
    out = []
    for name, want in expected.items():
        got = actual.get(name, "<missing>")
        if want is None:
            ok = got is None
        elif isinstance(want, F):
            if want.denominator & (want.denominator - 1) == 0:
                ok = isinstance(got, (int, float)) and got == float(want)
            else:
                ok = isinstance(got, float) and got == pytest.approx(float(want), rel=1e-12)
        elif isinstance(want, int):
            ok = type(got) is int and got == want
        else:
            ok = got == want
        if not ok:
            shown = f"{want} = {float(want)!r}" if isinstance(want, F) else repr(want)
            out.append(f"{where}.{name}: expected {shown}, got {got!r}")
    return out


def check_rows(rows: list[dict], expected: dict[object, tuple[str, dict]]):
    """`expected` maps each group key to (label, figures); there must be no other row."""
    problems = []
    for row in rows:
        assert list(row)[:2] == ["group", "label"]
        assert [k for k in row if k in DOCUMENTED] == DOCUMENTED, list(row)
        assert set(row) == set(DOCUMENTED) | set(FIGURES), list(row)
    got = {row["group"]: row for row in rows}
    assert len(got) == len(rows), "a group appears twice"
    assert sorted(map(str, got)) == sorted(map(str, expected)), (list(got), list(expected))
    for key, (label, want) in expected.items():
        row = got[key]
        if row["label"] != label:
            problems.append(f"{key}.label: expected {label!r}, got {row['label']!r}")
        problems += mismatches(row, want, str(label))
    assert problems == []


def check_equity(equity: dict, expected: dict):
    assert mismatches(equity, expected, "equity") == []


def by_region(d, expected: dict) -> dict:
    return {d.region[key]: (d.name[key], want) for key, want in expected.items()}


def by_value(expected: dict) -> dict:
    return {key: (key, want) for key, want in expected.items()}


# Rows, one grouping at a time


def test_rows_by_village_and_equity_over_every_village(client, auth, data):
    report = report_for(client, auth, data, group_by="region")
    check_rows(report["rows"], by_region(data, EXPECTED_VILLAGE))
    check_equity(report["equity"], EXPECTED_EQUITY_ALL)
    # group_by and level default to region and village.
    assert report_for(client, auth, data) == report


def test_rows_by_county(client, auth, data):
    report = report_for(client, auth, data, group_by="region", level="county")
    check_rows(report["rows"], by_region(data, EXPECTED_COUNTY))
    check_equity(report["equity"], EXPECTED_EQUITY_ALL)


def test_rows_by_province_add_up_to_the_whole(client, auth, data):
    # 12 registered, 5 served; waits 0.5, 2, 3, 7, 10 -> 3; sms 8 of 11; no-shows 2 of 8.
    whole = figures(12, 5, F(5, 12), 6, 6, F(1, 4), F(1, 3), F(3), 3, F(8, 11), 3)
    report = report_for(client, auth, data, group_by="region", level="province")
    check_rows(report["rows"], by_region(data, {"province": whole}))


def test_rows_by_zone(client, auth, data):
    report = report_for(client, auth, data, group_by="zone")
    check_rows(report["rows"], by_value(EXPECTED_ZONE))


def test_rows_by_setting(client, auth, data):
    report = report_for(client, auth, data, group_by="setting")
    check_rows(report["rows"], by_value(EXPECTED_SETTING))


def test_rows_by_age_band_at_to_in_band_order(client, auth, data):
    report = report_for(client, auth, data, group_by="age_band")
    assert [row["group"] for row in report["rows"]] == ["0-59", "60-69", "70-79", "80+"]
    check_rows(report["rows"], by_value(EXPECTED_AGE_BAND))


def test_rows_by_sex(client, auth, data):
    report = report_for(client, auth, data, group_by="sex")
    check_rows(report["rows"], by_value(EXPECTED_SEX))


def test_rows_by_service_type_count_every_resident_in_scope(client, auth, data):
    report = report_for(client, auth, data, group_by="service_type")
    check_rows(report["rows"], EXPECTED_SERVICE_TYPE)


def test_rows_by_provider_kind(client, auth, data):
    report = report_for(client, auth, data, group_by="provider_kind")
    check_rows(report["rows"], by_value(EXPECTED_PROVIDER_KIND))


# Equity


def test_equity_is_the_same_whatever_the_grouping(client, auth, data):
    for group_by in ("zone", "setting", "age_band", "sex", "service_type", "provider_kind"):
        report = report_for(client, auth, data, group_by=group_by)
        check_equity(report["equity"], EXPECTED_EQUITY_ALL)


def test_region_id_restricts_rows_and_equity_to_the_villages_under_it(client, auth, data):
    west = report_for(client, auth, data, region_id=data.region["county_w"])
    west_villages = {key: EXPECTED_VILLAGE[key] for key in ("W1", "W2", "W3")}
    check_rows(west["rows"], by_region(data, west_villages))
    check_equity(west["equity"], EXPECTED_EQUITY_WEST)
    by_zone = report_for(client, auth, data, region_id=data.region["county_w"], group_by="zone")
    check_rows(by_zone["rows"], by_value({"west": WEST}))
    check_equity(by_zone["equity"], EXPECTED_EQUITY_WEST)

    east = report_for(client, auth, data, region_id=data.region["county_e"], group_by="sex")
    # E1 only: r10 r12 female (r10 served; S10 completed, S12 booked; wait 0.5; r12's
    # open request; 3 delivered), r11 male (S11 completed, recorded; 1 undelivered).
    check_rows(east["rows"], by_value({
        "female": figures(2, 1, F(1, 2), 2, 1, F(0), F(0), F(1, 2), 1, F(1), 0),
        "male": figures(1, 1, F(1), 0, 1, F(0), None, None, 0, F(0), 0),
    }))
    check_equity(east["equity"], EXPECTED_EQUITY_EAST)

    village = report_for(client, auth, data, region_id=data.region["W1"], level="county")
    check_rows(village["rows"], by_region(data, {"county_w": EXPECTED_VILLAGE["W1"]}))
    # W1 alone: 1/2 is both worst and best.
    check_equity(village["equity"], {"rural_urban_ratio": None, "west_east_ratio": None,
                                     "worst_best_village_ratio": F(1), "gini": F(0),
                                     "villages": 1})


def test_rates_with_nothing_to_divide_by_are_null(client, auth, data):
    # W3 (in the village rows above) has residents but no session, request or sms in
    # the period: coverage 0, the rates null. A scope with no resident at all:
    empty = data.region["empty_town"]
    nothing = figures(0, 0, None, 0, 0, None, None, None, 0, None, 0)
    report = report_for(client, auth, data, region_id=empty, group_by="service_type")
    check_rows(report["rows"], {code: (label, nothing)
                                for code, (label, _) in EXPECTED_SERVICE_TYPE.items()})
    check_equity(report["equity"], EXPECTED_EQUITY_EMPTY)
    report = report_for(client, auth, data, region_id=empty, group_by="provider_kind")
    check_rows(report["rows"], by_value({"caregiver": nothing, "clinician": nothing}))
    assert report_for(client, auth, data, region_id=empty)["rows"] == []


# CSV


def assert_csv_matches(response, rows: list[dict]):
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    lines = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert lines[0] == list(rows[0])          # the row fields, in the JSON order
    assert len(lines) == 1 + len(rows)        # the rows only, no equity
    for line, row in zip(lines[1:], rows, strict=True):
        assert len(line) == len(row)
        for cell, (name, value) in zip(line, row.items(), strict=True):
            if value is None:
                assert cell == "", name
            elif isinstance(value, float):
                assert float(cell) == value, name
            elif isinstance(value, int):
                assert int(cell) == value, name
            else:
                assert cell == str(value), name


def test_csv_by_accept_header_and_by_path_match_the_json_rows(client, auth, data):
    for query in ({"group_by": "region"}, {"group_by": "age_band"},
                  {"group_by": "service_type"}, {"group_by": "sex",
                                                 "region_id": data.region["county_w"]}):
        rows = report_for(client, auth, data, **query)["rows"]
        assert [k for k in rows[0] if k in DOCUMENTED] == DOCUMENTED
        by_accept = client.get(URL, query_string={**PERIOD, **query},
                               headers=auth(data.user["admin"], Accept="text/csv"))
        assert_csv_matches(by_accept, rows)
        by_path = get(client, auth, data.user["admin"], CSV_URL, **query)
        assert_csv_matches(by_path, rows)
        assert by_path.get_data() == by_accept.get_data()


# Validation and access


def test_to_before_from_is_422(client, auth, data):
    response = client.get(URL, query_string={"from": TO, "to": FROM},
                          headers=auth(data.user["admin"]))
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"
    assert "to" in response.json["error"]["fields"]


def test_missing_from_is_422(client, auth, data):
    response = client.get(URL, query_string={"to": TO}, headers=auth(data.user["admin"]))
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"
    assert "from" in response.json["error"]["fields"]
    response = client.get(CSV_URL, query_string={"to": TO}, headers=auth(data.user["admin"]))
    assert response.status_code == 422


def test_unknown_group_by_is_422(client, auth, data):
    response = get(client, auth, data.user["admin"], group_by="colour")
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"
    assert "group_by" in response.json["error"]["fields"]


def test_a_coordinator_sees_only_their_villages(client, auth, data):
    coordinator = data.user["coordinator_w"]
    report = report_for(client, auth, data, user="coordinator_w")
    west_villages = {key: EXPECTED_VILLAGE[key] for key in ("W1", "W2", "W3")}
    check_rows(report["rows"], by_region(data, west_villages))
    check_equity(report["equity"], EXPECTED_EQUITY_WEST)
    by_zone = report_for(client, auth, data, user="coordinator_w", group_by="zone")
    check_rows(by_zone["rows"], by_value({"west": WEST}))
    for region in ("county_e", "E1", "province"):
        response = get(client, auth, coordinator, region_id=data.region[region])
        assert response.status_code == 404, region
        assert response.json["error"]["code"] == "not_found"
    assert get(client, auth, coordinator, CSV_URL,
               region_id=data.region["county_e"]).status_code == 404


def test_a_vhw_or_provider_is_403_and_no_token_is_401(client, auth, data):
    for user in ("vhw", "clinician"):
        for path in (URL, CSV_URL):
            response = get(client, auth, data.user[user], path)
            assert response.status_code == 403, (user, path)
            assert response.json["error"]["code"] == "forbidden"
    for path in (URL, CSV_URL):
        response = client.get(path, query_string=PERIOD)
        assert response.status_code == 401
        assert response.json["error"]["code"] == "unauthorized"
