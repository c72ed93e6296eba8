"""The fake Twilio server, driven by the real twilio SDK (and `requests` for bad requests)."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from tests.fake_twilio import (
    FakeTwilio,
    accept_then_hang,
    error,
    hang,
    ok,
    segment_count,
    server_error,
    spec_path,
    throttled,
    unavailable,
)

pytestmark = pytest.mark.skipif(
    not spec_path().exists(), reason=f"Twilio's OpenAPI description not at {spec_path()}")

TO = "+15558675310"
FROM = "+15005550006"


@pytest.fixture
def fake():
    with FakeTwilio() as server:
        yield server


def make_client(fake, timeout=5, account_sid=None, auth_token=None):
    client = Client(account_sid or fake.account_sid, auth_token or fake.auth_token,
                    http_client=TwilioHttpClient(timeout=timeout))
    client.api.base_url = fake.base_url
    return client


@pytest.fixture
def client(fake):
    return make_client(fake)


def send(client, to=TO, body="Your appointment is tomorrow at 09:00", **kwargs):
    return client.messages.create(to=to, from_=FROM, body=body, **kwargs)


def post_raw(fake, data, auth=None):
    """A CreateMessage request straight from `requests`, to send what the SDK would not."""
    return requests.post(f"{fake.base_url}/2010-04-01/Accounts/{fake.account_sid}/Messages.json",
                         data=data, auth=auth or (fake.account_sid, fake.auth_token), timeout=5)


def test_create_returns_a_queued_message_and_stores_it(fake, client):
    message = send(client, body="Hello")

    assert message.sid.startswith("SM") and len(message.sid) == 34
    assert message.status == "queued"
    assert message.num_segments == "1"
    assert message.to == TO and message.from_ == FROM and message.body == "Hello"
    assert message.direction == "outbound-api"
    assert message.date_created.tzinfo is not None  # RFC 2822 parsed by the SDK
    stored = fake.messages[message.sid]
    assert stored["account_sid"] == fake.account_sid
    assert stored["uri"] == f"/2010-04-01/Accounts/{fake.account_sid}/Messages/{message.sid}.json"
    assert stored["date_created"].endswith(" +0000")
    assert stored["price"] is None and stored["error_code"] is None
    assert stored["num_media"] == "0" and stored["api_version"] == "2010-04-01"
    assert fake.sent_bodies(to=TO) == ["Hello"]
    assert fake.sent_bodies(to="+15550000000") == []
    request = fake.requests[-1]
    assert (request.method, request.operation, request.status) == ("POST", "CreateMessage", 201)
    assert request.form == {"To": TO, "From": FROM, "Body": "Hello"}
    assert fake.violations == []


def test_the_message_resource_has_every_field_of_the_spec(fake, client):
    schema = fake.spec.spec["components"]["schemas"]["api.v2010.account.message"]
    message = send(client)
    assert set(fake.messages[message.sid]) == set(schema["properties"])


def test_messaging_service_without_from(fake, client):
    service = "MG" + "a" * 32
    message = client.messages.create(to=TO, messaging_service_sid=service, body="hi")
    assert message.messaging_service_sid == service
    assert message.from_ is None
    assert fake.violations == []


@pytest.mark.parametrize(("body", "segments"), [
    ("a" * 160, 1), ("a" * 161, 2), ("a" * 306, 2), ("a" * 307, 3),
    ("€" * 80, 1), ("€" * 81, 2),  # GSM-7 extension characters take two septets
    ("é" * 160, 1),  # in the GSM-7 basic set
    ("ą" * 70, 1), ("ą" * 71, 2), ("ą" * 134, 2), ("ą" * 135, 3),  # UCS-2
    ("👍" * 35, 1), ("👍" * 36, 2),  # a surrogate pair is two UTF-16 units
])
def test_segment_count(body, segments):
    assert segment_count(body) == segments


def test_num_segments_in_the_resource(client):
    assert send(client, body="x" * 200).num_segments == "2"
    assert send(client, body="Rendez-vous à 9h ✅").num_segments == "1"


@pytest.mark.parametrize(("outcome", "status", "code"), [
    (error(400, 21211), 400, 21211),
    (error(400, 21610), 400, 21610),
    (error(400, 21614), 400, 21614),
    (throttled(retry_after=2), 429, 20429),
    (unavailable(), 503, 20503),
    (server_error(), 500, 20500),
    (server_error(502, json_body=False), 502, 502),  # not JSON: the SDK uses the status
])
def test_scripted_errors_raise_twilio_rest_exception(fake, client, outcome, status, code):
    fake.script(outcome)
    with pytest.raises(TwilioRestException) as raised:
        send(client)
    assert raised.value.status == status
    assert raised.value.code == code
    assert fake.messages == {}
    assert send(client).status == "queued"  # the script is used up: back to 201
    assert fake.violations == []


def test_error_messages_are_twilio_s(fake, client):
    fake.script(error(400, 21211))
    with pytest.raises(TwilioRestException) as raised:
        send(client)
    assert raised.value.msg == f"Unable to create record: Invalid 'To' Phone Number: {TO}"
    response = post_raw(fake, {"To": TO, "From": FROM, "Body": "hi"})
    assert response.status_code == 201
    fake.script(error(400, 21610))
    body = post_raw(fake, {"To": TO, "From": FROM, "Body": "hi"}).json()
    assert body == {"code": 21610, "message": "Attempt to send to unsubscribed recipient",
                    "more_info": "https://www.twilio.com/docs/errors/21610", "status": 400}


def test_throttled_carries_retry_after(fake, client):
    fake.script(throttled(retry_after=7))
    with pytest.raises(TwilioRestException) as raised:
        send(client)
    assert raised.value.status == 429
    # TwilioRestException has no headers: the SDK keeps the last response on its client
    assert client.http_client._test_only_last_response.headers["Retry-After"] == "7"
    fake.script(throttled(retry_after=1.5))
    assert post_raw(fake, {"To": TO, "From": FROM, "Body": "hi"}).headers["Retry-After"] == "1.5"


def test_script_is_consumed_in_order(fake, client):
    fake.script(unavailable(), ok(), error(400, 21614))
    with pytest.raises(TwilioRestException):
        send(client)
    send(client)
    with pytest.raises(TwilioRestException):
        send(client)
    send(client)
    assert fake.pending_script == 0
    assert len(fake.messages) == 2


def test_set_default(fake, client):
    fake.set_default(error(400, 21610))
    for _ in range(3):
        with pytest.raises(TwilioRestException):
            send(client)
    fake.script(ok())
    send(client)  # a scripted outcome wins over the default
    fake.set_default(ok())
    send(client)
    assert len(fake.messages) == 2


def test_hang_makes_the_sdk_time_out_and_stores_nothing(fake):
    client = make_client(fake, timeout=1)
    fake.script(hang(5))
    with pytest.raises(requests.exceptions.ReadTimeout):  # not wrapped by the SDK
        send(client)
    assert fake.messages == {}
    assert send(client).status == "queued"  # the client recovers on the next request


def test_accept_then_hang_stores_the_message_but_the_client_times_out(fake):
    client = make_client(fake, timeout=1)
    fake.script(accept_then_hang(5))
    with pytest.raises(requests.exceptions.Timeout):
        send(client, body="ambiguous")
    assert fake.sent_bodies() == ["ambiguous"]  # it went out all the same
    assert fake.counts["accept_then_hang"] == 1


def test_hang_then_answers_late(fake):
    fake.script(hang(0.2, then=ok()))
    assert send(make_client(fake, timeout=5)).status == "queued"


def test_connection_refused_is_a_requests_connection_error(fake):
    client = make_client(fake)
    send(client)  # a pooled keep-alive connection is open
    fake.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        send(client)


def test_fetch_and_set_status(fake, client):
    message = send(client)
    fetched = client.messages(message.sid).fetch()
    assert (fetched.sid, fetched.status, fetched.body) == (message.sid, "queued",
                                                            message.body)
    fake.set_status(message.sid, "undelivered", error_code=30003)
    fetched = client.messages(message.sid).fetch()
    assert (fetched.status, fetched.error_code) == ("undelivered", 30003)
    assert fetched.error_message == "Unreachable destination handset"
    with pytest.raises(ValueError):
        fake.set_status(message.sid, "lost")


def test_fetch_unknown_message_is_a_404(fake, client):
    with pytest.raises(TwilioRestException) as raised:
        client.messages("SM" + "0" * 32).fetch()
    assert (raised.value.status, raised.value.code) == (404, 20404)
    assert fake.violations == []


def test_list_filters_by_to_from_and_date_sent(fake):
    now = [datetime(2026, 12, 1, 9, 0, tzinfo=UTC)]
    fake.clock = lambda: now[0]
    client = make_client(fake)
    early = send(client, to="+15550000001", body="early")
    now[0] += timedelta(hours=2)
    late = send(client, to="+15550000001", body="late")
    other = send(client, to="+15550000002", body="other")

    assert [m.sid for m in client.messages.list(to="+15550000001")] == [late.sid, early.sid]
    after = client.messages.list(to="+15550000001",
                                 date_sent_after=datetime(2026, 12, 1, 10, 0, tzinfo=UTC))
    assert [m.sid for m in after] == [late.sid]
    before = client.messages.list(date_sent_before=datetime(2026, 12, 1, 10, 0, tzinfo=UTC))
    assert [m.sid for m in before] == [early.sid]
    assert {m.sid for m in client.messages.list(from_=FROM)} == {early.sid, late.sid, other.sid}
    assert client.messages.list(from_="+15550009999") == []
    assert fake.violations == []


def test_list_pages_like_twilio(fake, client):
    sids = [send(client, body=f"m{i}").sid for i in range(7)]
    listed = client.messages.list(page_size=3)
    assert sorted(m.sid for m in listed) == sorted(sids)
    assert len(client.messages.list(limit=4, page_size=3)) == 4
    page = requests.get(f"{fake.base_url}/2010-04-01/Accounts/{fake.account_sid}/Messages.json",
                        params={"To": TO, "PageSize": 3},
                        auth=(fake.account_sid, fake.auth_token), timeout=5).json()
    assert set(page) == {"messages", "end", "first_page_uri", "next_page_uri", "page",
                         "page_size", "previous_page_uri", "start", "uri"}
    assert (page["page"], page["page_size"], page["start"], page["end"]) == (0, 3, 0, 2)
    assert page["next_page_uri"].startswith(
        f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json?To=%2B15558675310&PageSize=3"
        "&Page=1&PageToken=PA")
    assert page["previous_page_uri"] is None
    assert fake.violations == []


def test_wrong_credentials_are_a_401(fake):
    client = make_client(fake, auth_token="not-the-token")
    with pytest.raises(TwilioRestException) as raised:
        send(client)
    assert (raised.value.status, raised.value.code) == (401, 20003)
    other_account = make_client(fake, account_sid="AC" + "b" * 32)
    with pytest.raises(TwilioRestException) as raised:
        send(other_account)
    assert raised.value.status == 401
    assert fake.messages == {}


def test_account_sid_in_the_path_must_be_the_authenticated_one(fake):
    response = requests.post(
        f"{fake.base_url}/2010-04-01/Accounts/AC{'c' * 32}/Messages.json",
        data={"To": TO, "From": FROM, "Body": "hi"},
        auth=(fake.account_sid, fake.auth_token), timeout=5)
    assert response.status_code == 401
    assert response.json()["code"] == 20003


def test_unknown_parameter_is_a_400_and_a_violation(fake):
    response = post_raw(fake, {"To": TO, "From": FROM, "Body": "hi", "Bodyy": "typo"})
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"code", "message", "more_info", "status"}
    assert body["status"] == 400 and body["code"] == 20001
    assert fake.messages == {}
    assert len(fake.violations) == 1 and "'Bodyy'" in fake.violations[0]


@pytest.mark.parametrize(("data", "code", "words"), [
    ({"From": FROM, "Body": "hi"}, 21604, "'To'"),
    ({"To": TO, "Body": "hi"}, 21603, "'From'"),
    ({"To": TO, "From": FROM}, 21602, "'Body'"),
    ({"To": TO, "From": FROM, "Body": ""}, 21602, "'Body'"),
    ({"To": TO, "MessagingServiceSid": "MG123", "Body": "hi"}, 20001, "MessagingServiceSid"),
    ({"To": TO, "From": FROM, "Body": "hi", "ValidityPeriod": "soon"}, 20001, "integer"),
    ({"To": TO, "From": FROM, "Body": "hi", "ContentRetention": "forever"}, 20001, "retain"),
    ({"To": TO, "From": FROM, "Body": "hi", "StatusCallback": "/relative"}, 20001, "URL"),
    ({"To": [TO, "+15550000000"], "From": FROM, "Body": "hi"}, 20001, "2 times"),
])
def test_requests_against_the_spec_are_400s_and_violations(fake, data, code, words):
    response = post_raw(fake, data)
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert fake.violations and words in fake.violations[0]
    assert fake.messages == {}


def test_arrays_and_booleans_of_the_spec_are_accepted(fake, client):
    message = client.messages.create(
        to=TO, from_=FROM, media_url=["https://example.org/a.png", "https://example.org/b.png"],
        send_as_mms=True, validity_period=600, status_callback="https://example.org/cb")
    assert message.sid.startswith("MM") and message.num_media == "2"
    assert fake.requests[-1].form["MediaUrl"] == ["https://example.org/a.png",
                                                  "https://example.org/b.png"]
    assert fake.violations == []


def test_wrong_paths_methods_and_content_types_are_violations(fake):
    auth = (fake.account_sid, fake.auth_token)
    base = f"{fake.base_url}/2010-04-01/Accounts/{fake.account_sid}"
    assert requests.get(f"{base}/Texts.json", auth=auth, timeout=5).status_code == 404
    assert requests.put(f"{base}/Messages.json", auth=auth, timeout=5).status_code == 405
    sid = "SM" + "0" * 32
    assert requests.delete(f"{base}/Messages/{sid}.json", auth=auth, timeout=5).status_code == 404
    assert requests.get(f"{base}/Messages/nope.json", auth=auth, timeout=5).status_code == 404
    assert requests.get(f"{base}/Messages.json", params={"PageSize": 5000}, auth=auth,
                        timeout=5).status_code == 400
    assert requests.get(f"{base}/Messages.json", params={"Status": "sent"}, auth=auth,
                        timeout=5).status_code == 400
    response = requests.post(f"{base}/Messages.json", json={"To": TO, "From": FROM, "Body": "x"},
                             auth=auth, timeout=5)
    assert response.status_code == 400
    assert len(fake.violations) == 7
    assert "no such path" in fake.violations[0]
    assert "no PUT" in fake.violations[1]
    assert "DeleteMessage" in fake.violations[2]
    assert "Content-Type 'application/json'" in fake.violations[6]


def test_fail_rate_mode(fake):
    client = make_client(fake, timeout=2)
    fake.fail_rate(rate_503=0.2, rate_timeout=0.05, seed=7, hang_seconds=0.01)
    failures = 0
    for i in range(200):
        try:
            send(client, body=f"b{i}")
        except TwilioRestException as exc:
            assert exc.status == 503
            failures += 1
    assert failures == fake.counts["503"]
    assert 20 < failures < 60
    assert fake.counts["accept_then_hang"] > 0  # answered late but within the timeout
    assert len(fake.messages) == 200 - failures
    assert fake.duplicates() == {}


def test_concurrent_clients(fake):
    errors = []

    def worker(n):
        try:
            client = make_client(fake)
            for i in range(50):
                send(client, to=f"+1555000{n:04d}", body=f"{n}-{i}")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(fake.messages) == 400
    assert len(fake.sent_bodies(to="+15550000003")) == 50
    assert fake.violations == []
