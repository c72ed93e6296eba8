"""SMS texts in zh-CN, en and id, for residents and village health workers.

A resident's SMS carries the minimum (DESIGN.md): first name, date, time, how
to join and how to reply. Never a diagnosis, a service or a note: the session
is only ever a "health appointment", or a "care visit" when someone comes to
the home. `render` ignores any other value it is given.
"""

from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from careservice.core.time import as_utc, zone

FALLBACK = "en"
# Primary language subtag -> supported tag; "in" is the old code for
# Indonesian that Java and Android phones still report.
SUPPORTED = {"zh": "zh-CN", "en": "en", "id": "id", "in": "id"}
DIGEST_MAX_SEGMENTS = 3

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")  # sent as ESC + character: two septets
GSM7 = GSM7_BASIC | GSM7_EXTENSION


class Kind(StrEnum):
    CONFIRMATION = "confirmation"
    REMINDER_24H = "reminder_24h"
    REMINDER_2H = "reminder_2h"
    CHANGE = "change"
    CANCELLATION = "cancellation"
    VHW_DIGEST = "vhw_digest"
    VHW_NOTICE = "vhw_notice"
    REPLY_CONFIRMED = "reply_confirmed"
    REPLY_CANCELLED = "reply_cancelled"
    REPLY_RESCHEDULE = "reply_reschedule"
    REPLY_STOPPED = "reply_stopped"
    REPLY_STARTED = "reply_started"
    REPLY_HELP = "reply_help"
    REPLY_UNKNOWN = "reply_unknown"
    REPLY_NO_APPOINTMENT = "reply_no_appointment"
    SLOT_OFFER = "slot_offer"
    REPLY_OFFER_TAKEN = "reply_offer_taken"
    REPLY_OFFER_DECLINED = "reply_offer_declined"
    REPLY_OFFER_GONE = "reply_offer_gone"


SESSION_KINDS = frozenset({Kind.CONFIRMATION, Kind.REMINDER_24H, Kind.REMINDER_2H, Kind.CHANGE,
                           Kind.CANCELLATION})


class Calendar(NamedTuple):
    weekdays: tuple[str, ...]  # Monday first
    months: tuple[str, ...]
    date: str
    time: str


CALENDARS = {
    "en": Calendar(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
                   ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                    "Dec"),
                   "{weekday} {day} {month}", "{hour:02}:{minute:02}"),
    "zh-CN": Calendar(("周一", "周二", "周三", "周四", "周五", "周六", "周日"),
                      tuple(f"{month}月" for month in range(1, 13)),
                      "{month}{day}日({weekday})", "{hour:02}:{minute:02}"),
    "id": Calendar(("Sen", "Sel", "Rab", "Kam", "Jum", "Sab", "Min"),
                   ("Jan", "Feb", "Mar", "Apr", "Mei", "Jun", "Jul", "Agu", "Sep", "Okt", "Nov",
                    "Des"),
                   "{weekday} {day} {month}", "{hour:02}.{minute:02}"),
}

# Chinese bodies are UCS-2 (70 characters a segment), so they stay terse.
# A link is always followed by a space or the end: phones must not take the
# next character as part of it.
TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "noun": "health appointment",
        "noun_visit": "care visit",
        "join": "Join: {join}",
        "phone": "We will call you.",
        "visit": "Your caregiver will visit.",
        "reply": "Reply 1 to confirm, 2 to cancel, 3 to change.",
        Kind.CONFIRMATION: "Hi {name}, your {noun} is booked for {date} at {time}. {how} {reply}",
        Kind.REMINDER_24H: "Reminder {name}: your {noun} is on {date} at {time}. {how} {reply}",
        Kind.REMINDER_2H: "{name}, your {noun} starts soon: {date} at {time}. {how} {reply}",
        Kind.CHANGE: "Hi {name}, your {noun} has moved to {date} at {time}. {how} {reply}",
        Kind.CANCELLATION: "Hi {name}, your {noun} on {date} at {time} is cancelled. "
                           "Questions? Ask your village health worker.",
        Kind.VHW_DIGEST: "Sessions {date} ({count}): {items}",
        "item": "{time} {name} {how}",
        "separator": "; ",
        "more": "+{count} more",
        "none": "none",
        "how_video": "video",
        "how_phone": "phone",
        "how_visit": "visit",
        Kind.VHW_NOTICE: "Resident {name}: {what}. Please follow up.",
        Kind.REPLY_CONFIRMED: "Thank you, your appointment is confirmed.",
        Kind.REPLY_CANCELLED: "Your appointment is cancelled. Thank you for telling us.",
        Kind.REPLY_RESCHEDULE: "Thank you. We will contact you to find a new time.",
        Kind.REPLY_STOPPED: "You will get no more SMS from us. Reply START to resume.",
        Kind.REPLY_STARTED: "SMS reminders resumed. Reply STOP to end them.",
        Kind.REPLY_HELP: "Reply 1 to confirm, 2 to cancel, 3 to change your appointment, "
                         "STOP to end SMS, START to resume. Questions? Ask your village "
                         "health worker.",
        Kind.REPLY_UNKNOWN: "Sorry, we could not process your reply. Reply 1 to confirm, "
                            "2 to cancel, 3 to change, HELP for help.",
        Kind.REPLY_NO_APPOINTMENT: "You have no upcoming appointment with us.",
        Kind.SLOT_OFFER: "Hi {name}, a {noun} is free on {date} at {time}. Reply 1 to take it, "
                         "2 to let it go, by {until}.",
        Kind.REPLY_OFFER_TAKEN: "Thank you, it is booked. We will send the details.",
        Kind.REPLY_OFFER_DECLINED: "Thank you. You stay on the waiting list.",
        Kind.REPLY_OFFER_GONE: "Sorry, that time is no longer free. You stay on the waiting "
                               "list.",
    },
    "zh-CN": {
        "noun": "健康预约",
        "noun_visit": "上门照护",
        "join": "视频：{join} ",
        "phone": "我们会给您打电话。",
        "visit": "照护员会上门。",
        "reply": "回复1确认，2取消，3改期。",
        Kind.CONFIRMATION: "{name}您好，已为您安排{noun}：{date} {time}。{how}{reply}",
        Kind.REMINDER_24H: "提醒：{name}，您的{noun}在{date} {time}。{how}{reply}",
        Kind.REMINDER_2H: "{name}，您的{noun}即将开始：{date} {time}。{how}{reply}",
        Kind.CHANGE: "{name}您好，您的{noun}已改到{date} {time}。{how}{reply}",
        Kind.CANCELLATION: "{name}您好，您{date} {time}的{noun}已取消。如有疑问请联系村医。",
        Kind.VHW_DIGEST: "{date}共{count}个预约：{items}",
        "item": "{time} {name} {how}",
        "separator": "；",
        "more": "另有{count}个",
        "none": "无",
        "how_video": "视频",
        "how_phone": "电话",
        "how_visit": "上门",
        Kind.VHW_NOTICE: "居民{name}：{what}。请跟进。",
        Kind.REPLY_CONFIRMED: "谢谢，您的预约已确认。",
        Kind.REPLY_CANCELLED: "您的预约已取消，谢谢告知。",
        Kind.REPLY_RESCHEDULE: "收到，我们会联系您重新安排时间。",
        Kind.REPLY_STOPPED: "您将不再收到我们的短信。回复“开始”可恢复。",
        Kind.REPLY_STARTED: "短信提醒已恢复。回复“退订”可停止。",
        Kind.REPLY_HELP: "回复1确认，2取消，3改期，“退订”停止短信，“开始”恢复短信。"
                         "如有疑问请联系村医。",
        Kind.REPLY_UNKNOWN: "抱歉，无法处理您的回复。回复1确认，2取消，3改期，“帮助”查看说明。",
        Kind.REPLY_NO_APPOINTMENT: "您目前没有待进行的预约。",
        Kind.SLOT_OFFER: "{name}您好，{date} {time}有{noun}空位。{until}前回复1预约，2放弃。",
        Kind.REPLY_OFFER_TAKEN: "谢谢，已为您预约，详情随后发送。",
        Kind.REPLY_OFFER_DECLINED: "收到，您仍在候补名单中。",
        Kind.REPLY_OFFER_GONE: "抱歉，该时间已被占用，您仍在候补名单中。",
    },
    "id": {
        "noun": "janji temu kesehatan",
        "noun_visit": "kunjungan perawatan",
        "join": "Gabung: {join}",
        "phone": "Kami akan menelepon Anda.",
        "visit": "Petugas perawatan akan datang.",
        "reply": "Balas 1 untuk konfirmasi, 2 batal, 3 ubah jadwal.",
        Kind.CONFIRMATION: "Halo {name}, {noun} Anda dijadwalkan {date} pukul {time}. {how} "
                           "{reply}",
        Kind.REMINDER_24H: "Pengingat {name}: {noun} Anda {date} pukul {time}. {how} {reply}",
        Kind.REMINDER_2H: "{name}, {noun} Anda segera dimulai: {date} pukul {time}. {how} {reply}",
        Kind.CHANGE: "Halo {name}, {noun} Anda diubah ke {date} pukul {time}. {how} {reply}",
        Kind.CANCELLATION: "Halo {name}, {noun} Anda {date} pukul {time} dibatalkan. "
                           "Pertanyaan? Hubungi kader kesehatan desa.",
        Kind.VHW_DIGEST: "Jadwal {date} ({count}): {items}",
        "item": "{time} {name} {how}",
        "separator": "; ",
        "more": "+{count} lainnya",
        "none": "tidak ada",
        "how_video": "video",
        "how_phone": "telepon",
        "how_visit": "kunjungan",
        Kind.VHW_NOTICE: "Warga {name}: {what}. Mohon ditindaklanjuti.",
        Kind.REPLY_CONFIRMED: "Terima kasih, janji temu Anda sudah dikonfirmasi.",
        Kind.REPLY_CANCELLED: "Janji temu Anda sudah dibatalkan. Terima kasih atas kabarnya.",
        Kind.REPLY_RESCHEDULE: "Terima kasih. Kami akan menghubungi Anda untuk jadwal baru.",
        Kind.REPLY_STOPPED: "Anda tidak akan menerima SMS lagi. Balas MULAI untuk melanjutkan.",
        Kind.REPLY_STARTED: "Pengingat SMS aktif kembali. Balas BERHENTI untuk menghentikan.",
        Kind.REPLY_HELP: "Balas 1 untuk konfirmasi, 2 batal, 3 ubah jadwal, BERHENTI untuk stop "
                         "SMS, MULAI untuk lanjut. Pertanyaan? Hubungi kader kesehatan desa.",
        Kind.REPLY_UNKNOWN: "Maaf, balasan Anda tidak dapat diproses. Balas 1 untuk konfirmasi, "
                            "2 batal, 3 ubah jadwal, BANTUAN untuk bantuan.",
        Kind.REPLY_NO_APPOINTMENT: "Anda tidak punya janji temu yang akan datang.",
        Kind.SLOT_OFFER: "Halo {name}, ada {noun} kosong {date} pukul {time}. Balas 1 untuk "
                         "mengambil, 2 untuk melewatkan, sebelum {until}.",
        Kind.REPLY_OFFER_TAKEN: "Terima kasih, sudah dijadwalkan. Rinciannya akan dikirim.",
        Kind.REPLY_OFFER_DECLINED: "Terima kasih. Anda tetap di daftar tunggu.",
        Kind.REPLY_OFFER_GONE: "Maaf, waktu itu sudah terisi. Anda tetap di daftar tunggu.",
    },
}


def choose_language(languages: list[str] | None) -> str:
    """The first supported language of the list (by primary subtag: zh-TW reads zh-CN), else en."""
    for tag in languages or ():
        primary = tag.strip().replace("_", "-").split("-")[0].casefold()
        if primary in SUPPORTED:
            return SUPPORTED[primary]
    return FALLBACK


def format_when(instant: datetime, tz_name: str, language: str) -> tuple[str, str]:
    """(date, time) of an instant on the wall clock of `tz_name`, short, as the language writes
    them: ("Thu 3 Dec", "09:00"), ("12月3日(周四)", "09:00"), ("Kam 3 Des", "09.00")."""
    local = as_utc(instant).astimezone(zone(tz_name))
    calendar = CALENDARS[choose_language([language])]
    date = calendar.date.format(weekday=calendar.weekdays[local.weekday()], day=local.day,
                                month=calendar.months[local.month - 1])
    return date, calendar.time.format(hour=local.hour, minute=local.minute)


def render(kind: str, language: str, **values) -> str:
    """The SMS body of `kind` in `language` (English when unsupported).

    Session kinds take name, date, time and one of join (a link), visit=True
    or phone=True; a cancellation needs none of the three. vhw_digest takes
    date and items [(time, first name, "video" | "phone" | "visit")];
    vhw_notice takes name and what; slot_offer takes name, date, time, until
    (a time) and visit=True for a home visit; the reply_* kinds take nothing.
    """
    kind = Kind(kind)
    texts = TEXTS[choose_language([language])]
    if kind == Kind.VHW_DIGEST:
        return _digest(texts, values["date"], values["items"])
    if kind == Kind.VHW_NOTICE:
        values = {**values, "what": values["what"].strip().rstrip(".。!！")}
    elif kind == Kind.SLOT_OFFER:
        values = {**values, "noun": texts["noun_visit" if values.get("visit") else "noun"]}
    elif kind in SESSION_KINDS:
        values = {**values, "noun": texts["noun_visit" if values.get("visit") else "noun"],
                  "reply": texts["reply"]}
        if kind != Kind.CANCELLATION:
            values["how"] = _how(texts, values)
    return texts[kind].format(**values)


def _how(texts: dict[str, str], values: dict) -> str:
    if values.get("join"):
        return texts["join"].format(join=values["join"])
    if values.get("visit"):
        return texts["visit"]
    if values.get("phone"):
        return texts["phone"]
    raise ValueError("a session SMS needs join, visit=True or phone=True")


def _digest(texts: dict[str, str], date: str, items: list[tuple[str, str, str]]) -> str:
    """As many sessions as fit in DIGEST_MAX_SEGMENTS, then "+N more"."""
    lines = [texts["item"].format(time=time, name=name, how=texts[f"how_{how}"])
             for time, name, how in items]
    for shown in range(len(lines), 0, -1):
        body = _digest_body(texts, date, lines, shown)
        if segments(body) <= DIGEST_MAX_SEGMENTS:
            return body
    return _digest_body(texts, date, lines, 0)


def _digest_body(texts: dict[str, str], date: str, lines: list[str], shown: int) -> str:
    listed = lines[:shown]
    if shown < len(lines):
        listed.append(texts["more"].format(count=len(lines) - shown))
    return texts[Kind.VHW_DIGEST].format(date=date, count=len(lines),
                                         items=texts["separator"].join(listed) or texts["none"])


def segments(body: str) -> int:
    """How many SMS segments the body takes.

    GSM-7 when every character is in the basic or extension table (extension
    characters take two septets): 160 alone, 153 a part. Otherwise UCS-2,
    counted in UTF-16 code units: 70 alone, 67 a part. A part never splits an
    escape sequence or a surrogate pair, as senders do.
    """
    characters = set(body)
    if characters <= GSM7:
        escaped = characters & GSM7_EXTENSION
        total = len(body) + sum(body.count(ch) for ch in escaped)
        single, per_part = 160, 153
    else:
        total = len(body.encode("utf-16-le")) // 2
        # Characters past the BMP take a surrogate pair: two units.
        escaped = {ch for ch in characters if ord(ch) > 0xFFFF} if total > len(body) else ()
        single, per_part = 70, 67
    if total <= single:
        return 1
    units = [2 if ch in escaped else 1 for ch in body]
    parts, used = 1, 0
    for size in units:
        if used + size > per_part:
            parts, used = parts + 1, 0
        used += size
    return parts
