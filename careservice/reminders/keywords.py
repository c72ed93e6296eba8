"""What a resident's SMS reply asks for: confirm, cancel, reschedule, STOP, START or HELP."""

import unicodedata
from enum import StrEnum


class Intent(StrEnum):
    CONFIRM = "confirm"
    CANCEL = "cancel"
    RESCHEDULE = "reschedule"
    STOP = "stop"
    START = "start"
    HELP = "help"
    UNKNOWN = "unknown"


KEYWORDS = {
    Intent.CONFIRM: ("1", "YES", "Y", "OK", "OKAY", "CONFIRM", "确认", "是", "YA"),
    Intent.CANCEL: ("2", "NO", "N", "CANCEL", "取消", "BATAL"),
    Intent.RESCHEDULE: ("3", "R", "RESCHEDULE", "CHANGE", "改期", "UBAH", "UBAH JADWAL"),
    # TD is the usual unsubscribe reply in China ("回复TD退订").
    Intent.STOP: ("STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "TD", "退订", "停止",
                  "BERHENTI"),
    Intent.START: ("START", "UNSTOP", "开始", "MULAI"),
    Intent.HELP: ("HELP", "INFO", "帮助", "BANTUAN"),
}
# Words that may stand around a keyword without changing what it asks.
COURTESY = (
    "please", "pls", "plz", "thanks", "thank", "you", "thx", "ty", "very", "much", "sir", "madam",
    "dear", "tolong", "terima", "kasih", "makasih", "trims", "ya", "saja", "aja", "pak", "bu",
    "ibu", "bapak", "请", "谢谢", "了", "吧", "的", "啊", "呀", "哦", "啦", "您", "好",
)


def _normalise(text: str) -> tuple[str, frozenset[int]]:
    """The text NFKC-normalised (full-width to ASCII), case-folded and without spaces,
    punctuation or symbols, and the positions where a Latin word may start or end."""
    letters: list[str] = []
    cuts = {0}
    for ch in unicodedata.normalize("NFKC", text).casefold():
        if not ch.isalnum():
            cuts.add(len(letters))
        elif letters and letters[-1].isascii() != ch.isascii():
            cuts.add(len(letters))
            letters.append(ch)
        else:
            letters.append(ch)
    cuts.add(len(letters))
    return "".join(letters), frozenset(cuts)


_KEYWORDS = {intent: frozenset(_normalise(word)[0] for word in words)
             for intent, words in KEYWORDS.items()}
_COURTESY = frozenset(COURTESY)


def _says(text: str, cuts: frozenset[int], keywords: frozenset[str]) -> bool:
    """The text is only these keywords (at least one) and courtesy words. Latin words must be
    whole words; Chinese ones may run together ("取消吧")."""
    words = keywords | _COURTESY
    reached = {0: False}  # position -> whether a keyword was read on the way
    for start in range(len(text)):
        if start not in reached:
            continue
        for word in words:
            end = start + len(word)
            if text.startswith(word, start) and (
                    not word.isascii() or (start in cuts and end in cuts)):
                reached[end] = reached.get(end, False) or reached[start] or word in keywords
    return reached.get(len(text), False)


def parse_reply(body: str) -> Intent:
    """The intent of a reply, read as a whole.

    Case, full-width forms, spaces, punctuation and emoji do not matter
    ("Yes!", "１", " 确认。", "STOP ALL"). A keyword may come with courtesy words
    around it ("yes please", "OK thanks", "请取消", "batal ya", "是的") and may be
    repeated, but nothing else: a keyword inside a sentence ("no problem",
    "yes but not today") or keywords of two intents ("yes no") is unknown,
    and the resident is asked again; a wrongly read cancel costs far more.
    """
    text, cuts = _normalise(body)
    found = [intent for intent, keywords in _KEYWORDS.items() if _says(text, cuts, keywords)]
    return found[0] if len(found) == 1 else Intent.UNKNOWN
