"""SMS backends, chosen by CARESERVICE_SMS_BACKEND and built lazily: `twilio`
(the official SDK), `console` (logs), `memory` (tests).

Every backend sorts failures into three kinds, because the dispatcher must
treat them differently:
- TransientError: the message was certainly not accepted (429, 503, the
  connection refused); retry later.
- PermanentError: Twilio refused the message for good (invalid number,
  unsubscribed, not a mobile); do not retry.
- AmbiguousError: the request may have been accepted (a timeout after it
  left, a 5xx other than 503); find out before sending again.
"""

import logging
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from flask import Flask, current_app

log = logging.getLogger(__name__)

# Errors that say this number cannot take SMS: the village health worker should check it.
RESIDENT_ERROR_CODES = {21211, 21610, 21614, 30003, 30004, 30005, 30006, 30007, 30008}


@dataclass(frozen=True)
class Sent:
    sid: str
    status: str = "queued"
    segments: int | None = None


class SendError(Exception):
    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code


class TransientError(SendError):
    def __init__(self, message: str, code: int | None = None, retry_after: float | None = None):
        super().__init__(message, code)
        self.retry_after = retry_after


class PermanentError(SendError):
    pass


class AmbiguousError(SendError):
    pass


class ConsoleBackend:
    """Prints each SMS to the log: the default, so the demo needs no credentials."""

    def __init__(self, app: Flask):
        self.sent: dict[str, tuple[str, str]] = {}

    def send(self, to: str, body: str, status_callback: str) -> Sent:
        sid = "SM" + uuid.uuid4().hex
        log.info("SMS to %s (%s): %s", to, sid, body)
        self.sent[sid] = (to, body)
        return Sent(sid=sid, status="sent")

    def lookup(self, sid: str) -> str | None:
        return "sent" if sid in self.sent else None

    def find(self, to: str, body: str, since: datetime) -> Sent | None:
        return None


@dataclass
class MemoryBackend:
    """Keeps messages in memory; tests read `outbox` and may queue failures in `failures`."""

    app: Flask
    outbox: list[dict] = field(default_factory=list)
    failures: list[SendError] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, to: str, body: str, status_callback: str) -> Sent:
        with self.lock:
            if self.failures:
                raise self.failures.pop(0)
            sid = "SM" + uuid.uuid4().hex
            self.outbox.append({"sid": sid, "to": to, "body": body,
                                "status_callback": status_callback})
        return Sent(sid=sid)

    def lookup(self, sid: str) -> str | None:
        return "sent" if any(m["sid"] == sid for m in self.outbox) else None

    def find(self, to: str, body: str, since: datetime) -> Sent | None:
        for message in self.outbox:
            if message["to"] == to and message["body"] == body:
                return Sent(sid=message["sid"], status="sent")
        return None


class TwilioBackend:
    """The official SDK; TWILIO_API_BASE_URL points it elsewhere (a local fake in tests)."""

    def __init__(self, app: Flask):
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        config = app.config
        if not (config["TWILIO_ACCOUNT_SID"] and config["TWILIO_AUTH_TOKEN"]):
            raise RuntimeError("the twilio SMS backend needs TWILIO_ACCOUNT_SID and "
                               "TWILIO_AUTH_TOKEN")
        self.sender = ({"messaging_service_sid": config["TWILIO_MESSAGING_SERVICE_SID"]}
                       if config["TWILIO_MESSAGING_SERVICE_SID"]
                       else {"from_": config["TWILIO_FROM_NUMBER"]})
        self.timeout = config["SMS_TIMEOUT_SECONDS"]
        self.local = threading.local()  # requests sessions are not shared across threads

        class HeaderKeepingHttpClient(TwilioHttpClient):
            """Keeps the last response's headers: Retry-After is not on the exception."""

            last_headers: dict = {}

            def request(self, *args, **kwargs):
                response = super().request(*args, **kwargs)
                self.last_headers = dict(response.headers or {})
                return response

        self.make_client = lambda: self._client(Client, HeaderKeepingHttpClient, config)

    def _client(self, client_class, http_class, config):
        # The SDK's default is no timeout at all: a hung request would hold a
        # dispatcher thread forever.
        client = client_class(config["TWILIO_ACCOUNT_SID"], config["TWILIO_AUTH_TOKEN"],
                              http_client=http_class(timeout=self.timeout))
        if config["TWILIO_API_BASE_URL"]:
            client.api.base_url = config["TWILIO_API_BASE_URL"].rstrip("/")
        return client

    @property
    def client(self):
        if not hasattr(self.local, "client"):
            self.local.client = self.make_client()
        return self.local.client

    def send(self, to: str, body: str, status_callback: str) -> Sent:
        from twilio.base.exceptions import TwilioRestException

        try:
            message = self.client.messages.create(to=to, body=body,
                                                  status_callback=status_callback, **self.sender)
        except TwilioRestException as error:
            raise self._classify(error) from None
        except Exception as error:  # the transport: requests' exceptions
            raise classify_transport_error(error) from None
        segments = int(message.num_segments) if message.num_segments else None
        return Sent(sid=message.sid, status=message.status or "queued", segments=segments)

    def _classify(self, error) -> SendError:
        text = f"Twilio {error.status} {error.code}: {error.msg}"[:300]
        if error.status == 429:
            try:
                retry_after = float(self.client.http_client.last_headers.get("Retry-After", ""))
            except ValueError:
                retry_after = None
            return TransientError(text, error.code, retry_after)
        if error.status == 401 or error.status == 503:
            # A 401 is our configuration, not the resident's number: keep retrying.
            return TransientError(text, error.code)
        if error.status >= 500:
            return AmbiguousError(text, error.code)
        return PermanentError(text, error.code)

    def lookup(self, sid: str) -> str | None:
        from twilio.base.exceptions import TwilioRestException

        try:
            return self.client.messages(sid).fetch().status
        except TwilioRestException as error:
            if error.status == 404:
                return None
            raise

    def find(self, to: str, body: str, since: datetime) -> Sent | None:
        # No DateSent filter: a message Twilio has only queued has no date_sent yet.
        for message in self.client.messages.list(to=to, limit=50):
            created = message.date_created
            if message.body == body and (created is None or created >= since):
                return Sent(sid=message.sid, status=message.status)
        return None


def classify_transport_error(error: Exception) -> SendError:
    """requests' exceptions: refused before sending is transient; a timeout or a
    dropped connection after sending is ambiguous."""
    import requests

    text = f"{error.__class__.__name__}: {error}"[:300]
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return TransientError(text)
    if isinstance(error, requests.exceptions.ConnectionError) and not isinstance(
            error, requests.exceptions.ReadTimeout):
        reason = str(error)
        if "NewConnectionError" in reason or "Connection refused" in reason:
            return TransientError(text)
        return AmbiguousError(text)
    if isinstance(error, requests.exceptions.Timeout):
        return AmbiguousError(text)
    return AmbiguousError(text)


BACKENDS = {"twilio": TwilioBackend, "console": ConsoleBackend, "memory": MemoryBackend}


_BUILD_LOCK = threading.Lock()


def get_backend(app: Flask | None = None):
    """The configured backend, built on first use and kept for the app's life."""
    app = app or current_app._get_current_object()
    with _BUILD_LOCK:
        backend = app.extensions.get("sms_backend")
        if backend is None:
            backend = BACKENDS[app.config["SMS_BACKEND"]](app)
            app.extensions["sms_backend"] = backend
    return backend
