"""SMS texts: every kind in every language, the minimum they carry, and their length."""

from datetime import UTC, datetime

import pytest

from careservice.reminders.messages import (
    Kind,
    choose_language,
    format_when,
    render,
    segments,
)

LANGUAGES = ("zh-CN", "en", "id")
SESSION_KINDS = (Kind.CONFIRMATION, Kind.REMINDER_24H, Kind.REMINDER_2H, Kind.CHANGE,
                 Kind.CANCELLATION)
REPLY_KINDS = tuple(kind for kind in Kind if kind.startswith("reply_"))
LINK = "https://meet.example.org/r/7Qx2LmP9aZ4kT8vW3nB6cD1"  # 50 characters
HOWS = ({"join": LINK}, {"phone": True}, {"visit": True})
NAMES = {"zh-CN": "王秀英", "en": "Margaret", "id": "Siti"}
THURSDAY_9_SHANGHAI = datetime(2026, 12, 3, 1, 0, tzinfo=UTC)
NOUNS = {  # (remote session, home visit): the only words for what it is
    "en": ("health appointment", "care visit"),
    "zh-CN": ("健康预约", "上门照护"),
    "id": ("janji temu kesehatan", "kunjungan perawatan"),
}
REPLY_HOW = {
    "en": "Reply 1 to confirm, 2 to cancel, 3 to change.",
    "zh-CN": "回复1确认，2取消，3改期。",
    "id": "Balas 1 untuk konfirmasi, 2 batal, 3 ubah jadwal.",
}
CANCELLED = {"en": "cancelled", "zh-CN": "已取消", "id": "dibatalkan"}


def session_values(language, **how):
    date, time = format_when(THURSDAY_9_SHANGHAI, "Asia/Shanghai", language)
    return {"name": NAMES[language], "date": date, "time": time, **how}


def sample_values(kind, language):
    if kind in SESSION_KINDS:
        return session_values(language, join=LINK)
    if kind == Kind.VHW_DIGEST:
        return {"date": "Thu 3 Dec", "items": [("09:00", "Siti", "video"),
                                                ("10:30", "王秀英", "visit")]}
    if kind == Kind.VHW_NOTICE:
        return {"name": "Siti", "what": "asks to reschedule"}
    if kind == Kind.SLOT_OFFER:
        return session_values(language, until="19:00")
    return {}


# Every kind, every language


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", list(Kind))
def test_every_kind_renders_in_every_language(kind, language):
    body = render(kind, language, **sample_values(kind, language))
    assert body and body == body.strip()
    assert "{" not in body and "}" not in body
    assert "  " not in body


@pytest.mark.parametrize("kind", list(Kind))
def test_each_language_has_its_own_text(kind):
    bodies = {render(kind, language, **sample_values(kind, language)) for language in LANGUAGES}
    assert len(bodies) == len(LANGUAGES)


def test_kinds_are_the_stored_strings():
    assert Kind("reminder_24h") is Kind.REMINDER_24H
    assert render("reply_help", "en") == render(Kind.REPLY_HELP, "en")
    with pytest.raises(ValueError):
        render("reminder_1h", "en")


# Languages


@pytest.mark.parametrize(("languages", "chosen"), [
    (["zh-CN", "en"], "zh-CN"),
    (["id", "zh-CN"], "id"),
    (["fr", "id"], "id"),
    (["zh-cn"], "zh-CN"),
    (["zh-TW"], "zh-CN"),
    (["en-GB"], "en"),
    (["id_ID"], "id"),
    (["in"], "id"),
    (["fr", "ug"], "en"),
    ([], "en"),
    (None, "en"),
])
def test_choose_language_takes_the_first_supported(languages, chosen):
    assert choose_language(languages) == chosen


@pytest.mark.parametrize("kind", list(Kind))
def test_unsupported_language_falls_back_to_english(kind):
    values = sample_values(kind, "en")
    assert render(kind, "fr", **values) == render(kind, "en", **values)


@pytest.mark.parametrize(("instant", "tz_name", "language", "expected"), [
    (THURSDAY_9_SHANGHAI, "Asia/Shanghai", "en", ("Thu 3 Dec", "09:00")),
    (THURSDAY_9_SHANGHAI, "Asia/Shanghai", "zh-CN", ("12月3日(周四)", "09:00")),
    (THURSDAY_9_SHANGHAI, "Asia/Shanghai", "id", ("Kam 3 Des", "09.00")),
    (THURSDAY_9_SHANGHAI, "Asia/Jakarta", "id", ("Kam 3 Des", "08.00")),
    (THURSDAY_9_SHANGHAI, "Asia/Shanghai", "fr", ("Thu 3 Dec", "09:00")),
    (datetime(2026, 12, 2, 23, 30, tzinfo=UTC), "Asia/Shanghai", "en", ("Thu 3 Dec", "07:30")),
    (datetime(2026, 3, 8, 14, 5, tzinfo=UTC), "America/New_York", "en", ("Sun 8 Mar", "10:05")),
    (datetime(2026, 5, 31, 16, 0), "Asia/Shanghai", "zh-CN", ("6月1日(周一)", "00:00")),
])
def test_format_when_uses_the_residents_clock(instant, tz_name, language, expected):
    assert format_when(instant, tz_name, language) == expected


# What a resident's SMS carries, and nothing more


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", SESSION_KINDS)
@pytest.mark.parametrize("how", HOWS, ids=lambda how: next(iter(how)))
def test_session_sms_carry_name_date_time_and_nothing_about_the_care(kind, language, how):
    values = session_values(language, **how)
    body = render(kind, language, **values, service="Mental health consultation",
                  diagnosis="Type 2 diabetes", notes="lives alone, depression")
    for word in ("mental", "consultation", "diabetes", "depression", "alone"):
        assert word not in body.casefold()
    for value in (values["name"], values["date"], values["time"]):
        assert value in body
    remote, home = NOUNS[language]
    assert (home if "visit" in how else remote) in body
    assert (remote if "visit" in how else home) not in body


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", [kind for kind in SESSION_KINDS if kind != Kind.CANCELLATION])
def test_session_sms_say_how_to_join_and_reply(kind, language):
    video = render(kind, language, **session_values(language, join=LINK))
    assert f"{LINK} " in video or video.endswith(LINK)  # the link stands apart
    assert REPLY_HOW[language] in video
    phone = render(kind, language, **session_values(language, phone=True))
    visit = render(kind, language, **session_values(language, visit=True))
    assert LINK not in phone and LINK not in visit
    assert len({video, phone, visit}) == 3


@pytest.mark.parametrize("language", LANGUAGES)
def test_cancellation_says_what_happened_without_a_link(language):
    body = render(Kind.CANCELLATION, language, **session_values(language, join=LINK))
    assert CANCELLED[language] in body
    assert LINK not in body
    assert REPLY_HOW[language] not in body


def test_english_how_wording():
    assert "We will call you." in render(Kind.CONFIRMATION, "en",
                                         **session_values("en", phone=True))
    assert "Your caregiver will visit." in render(Kind.CONFIRMATION, "en",
                                                  **session_values("en", visit=True))
    assert f"Join: {LINK}" in render(Kind.CONFIRMATION, "en", **session_values("en", join=LINK))


def test_a_session_sms_must_say_how():
    with pytest.raises(ValueError):
        render(Kind.REMINDER_2H, "en", **session_values("en"))


# Segments


@pytest.mark.parametrize(("body", "expected"), [
    ("", 1),
    ("a" * 160, 1),
    ("a" * 161, 2),
    ("a" * 306, 2),
    ("a" * 307, 3),
    ("é" * 160, 1),  # in the GSM-7 basic table
    ("€" * 80, 1),  # extension table: two septets each
    ("€" * 81, 2),
    ("a" * 158 + "^", 1),
    ("a" * 159 + "^", 2),
    ("a" * 152 + "€" + "a" * 152, 3),  # the escape pair is not split across parts
    ("ê" * 70, 1),  # not GSM-7: UCS-2
    ("a" * 160 + "ê", 3),
    ("中" * 70, 1),
    ("中" * 71, 2),
    ("中" * 134, 2),
    ("中" * 135, 3),
    ("a" * 68 + "😀", 1),  # an emoji is two UTF-16 units
    ("a" * 69 + "😀", 2),
    ("中" * 66 + "😀" + "中" * 66, 3),  # the surrogate pair is not split either
])
def test_segments(body, expected):
    assert segments(body) == expected


# Realistic bodies stay short


@pytest.mark.parametrize("kind", SESSION_KINDS)
@pytest.mark.parametrize(("language", "with_link", "without_link"), [
    ("en", 2, 1), ("id", 2, 1), ("zh-CN", 3, 1),
])
def test_session_sms_stay_within_their_segments(kind, language, with_link, without_link):
    assert len(LINK) == 50
    assert segments(render(kind, language, **session_values(language, join=LINK))) <= with_link
    for how in ({"phone": True}, {"visit": True}):
        assert segments(render(kind, language, **session_values(language, **how))) \
            <= without_link


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", SESSION_KINDS)
@pytest.mark.parametrize("name", ["王秀英", "Margaret", "Siti", "Nur Aisyah"])
def test_any_name_in_any_language_stays_within_three_segments(kind, language, name):
    values = {**session_values(language, join=LINK), "name": name}
    assert segments(render(kind, language, **values)) <= 3


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", REPLY_KINDS)
def test_replies_fit_one_segment(kind, language):
    assert segments(render(kind, language)) == 1


# Village health workers


@pytest.mark.parametrize("language", LANGUAGES)
def test_digest_lists_every_session_when_they_fit(language):
    items = [("09:00", "Siti", "video"), ("10:30", "王秀英", "phone"), ("14:00", "Ahmad", "visit")]
    body = render(Kind.VHW_DIGEST, language, date="Thu 3 Dec", items=items)
    assert "Thu 3 Dec" in body and ("(3):" in body or "共3个预约" in body)
    for time, name, _ in items:
        assert f"{time} {name} " in body


@pytest.mark.parametrize(("language", "more"), [
    ("en", "+{} more"), ("zh-CN", "另有{}个"), ("id", "+{} lainnya"),
])
@pytest.mark.parametrize("name", ["Siti", "王秀英"])
def test_digest_truncates_within_three_segments(language, more, name):
    items = [(f"{8 + i // 4:02}:{i % 4 * 15:02}", name, ("video", "phone", "visit")[i % 3])
             for i in range(40)]
    body = render(Kind.VHW_DIGEST, language, date="Thu 3 Dec", items=items)
    assert segments(body) <= 3
    shown = sum(1 for time, _, _ in items if f"{time} {name} " in body)
    assert 0 < shown < 40
    assert body.endswith(more.format(40 - shown))
    assert segments(body) == 3  # filled, not cut short


def test_digest_words_for_how():
    items = [("09:00", "Siti", "video"), ("10:00", "Ahmad", "phone"), ("11:00", "Wang", "visit")]
    assert render(Kind.VHW_DIGEST, "zh-CN", date="12月3日(周四)", items=items) \
        == "12月3日(周四)共3个预约：09:00 Siti 视频；10:00 Ahmad 电话；11:00 Wang 上门"
    assert render(Kind.VHW_DIGEST, "id", date="Kam 3 Des", items=items) \
        == "Jadwal Kam 3 Des (3): 09:00 Siti video; 10:00 Ahmad telepon; 11:00 Wang kunjungan"


def test_empty_digest():
    assert render(Kind.VHW_DIGEST, "en", date="Thu 3 Dec", items=[]) \
        == "Sessions Thu 3 Dec (0): none"


@pytest.mark.parametrize(("language", "what", "expected"), [
    ("en", "asks to reschedule.", "Resident Siti: asks to reschedule. Please follow up."),
    ("zh-CN", "申请改期。", "居民Siti：申请改期。请跟进。"),
    ("id", "minta ubah jadwal", "Warga Siti: minta ubah jadwal. Mohon ditindaklanjuti."),
])
def test_vhw_notice(language, what, expected):
    assert render(Kind.VHW_NOTICE, language, name="Siti", what=what) == expected


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_slot_offer_is_one_segment(language):
    """Even when the offer runs into the next day, so its end has a date."""
    values = session_values(language)
    body = render(Kind.SLOT_OFFER, language, **values, until=f"{values['date']} 19:00")
    assert segments(body) == 1, body
