"""Reading residents' SMS replies: keywords in three languages, written the way people type."""

import pytest

from careservice.reminders.keywords import Intent, parse_reply

KEYWORDS = {
    Intent.CONFIRM: ("1", "YES", "Y", "OK", "CONFIRM", "确认", "是", "YA"),
    Intent.CANCEL: ("2", "NO", "N", "CANCEL", "取消", "BATAL"),
    Intent.RESCHEDULE: ("3", "R", "RESCHEDULE", "CHANGE", "改期", "UBAH"),
    Intent.STOP: ("STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "退订", "停止", "BERHENTI"),
    Intent.START: ("START", "UNSTOP", "开始", "MULAI"),
    Intent.HELP: ("HELP", "INFO", "帮助", "BANTUAN"),
}
CASES = [(keyword, intent) for intent, keywords in KEYWORDS.items() for keyword in keywords]


def full_width(text):
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


@pytest.mark.parametrize(("keyword", "intent"), CASES)
@pytest.mark.parametrize("written", [
    str, str.lower, str.title, full_width,
    lambda k: f"  {k}\n", lambda k: f"{k}!", lambda k: f"{k}.", lambda k: f" {k}。",
    lambda k: f"“{k}”", lambda k: f"{k}!!!", lambda k: f"{k} 👍",
], ids=["as-is", "lower", "title", "full-width", "spaces", "bang", "dot", "cjk-stop", "quoted",
        "bangs", "emoji"])
def test_every_keyword_in_every_writing(keyword, intent, written):
    assert parse_reply(written(keyword)) == intent


@pytest.mark.parametrize(("body", "intent"), [
    ("１", Intent.CONFIRM),
    ("２", Intent.CANCEL),
    ("Yes!", Intent.CONFIRM),
    (" 确认。", Intent.CONFIRM),
    ("ＹＥＳ", Intent.CONFIRM),
    ("Okay", Intent.CONFIRM),
    ("STOP ALL", Intent.STOP),
    ("td", Intent.STOP),
    ("Ubah jadwal", Intent.RESCHEDULE),
    ("改 期", Intent.RESCHEDULE),
])
def test_variants(body, intent):
    assert parse_reply(body) == intent


@pytest.mark.parametrize(("body", "intent"), [
    ("yes please", Intent.CONFIRM),
    ("Yes, thank you very much!", Intent.CONFIRM),
    ("OK thanks", Intent.CONFIRM),
    ("ok ok", Intent.CONFIRM),
    ("1 thank you", Intent.CONFIRM),
    ("是的", Intent.CONFIRM),
    ("确认，谢谢", Intent.CONFIRM),
    ("您好，确认", Intent.CONFIRM),
    ("ya, terima kasih", Intent.CONFIRM),
    ("no thanks", Intent.CANCEL),
    ("please cancel", Intent.CANCEL),
    ("请取消", Intent.CANCEL),
    ("取消吧", Intent.CANCEL),
    ("batal ya", Intent.CANCEL),
    ("tolong batal", Intent.CANCEL),
    ("3 please", Intent.RESCHEDULE),
    ("ubah jadwal ya pak", Intent.RESCHEDULE),
    ("stop please", Intent.STOP),
    ("退订了", Intent.STOP),
    ("Bantuan, bu", Intent.HELP),
])
def test_a_keyword_with_courtesy_words_around_it(body, intent):
    assert parse_reply(body) == intent


@pytest.mark.parametrize("body", [
    "", "   ", "?!", "👍", "hello", "thank you", "好的", "您好",
    "no problem",  # not a cancel
    "yes but not today",
    "I will come on Monday",
    "ok I can't come",
    "help me",  # "me" is no courtesy word
    "yes no",  # two intents
    "1 2",
    "12",
    "11",
    "stop yes",
    "your",  # "you" + "r" is no reply
    "r u sure",
    "end of May",
    "weekend",
    "yesterday",
    "nope",
    "是不是",
    "不是",
    "不取消",
    "确认收到吗",
    "tidak",
])
def test_unknown(body):
    assert parse_reply(body) == Intent.UNKNOWN


def test_intents_are_the_stored_strings():
    assert [intent.value for intent in Intent] == [
        "confirm", "cancel", "reschedule", "stop", "start", "help", "unknown"]
