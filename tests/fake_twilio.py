"""A fake Twilio REST API (Programmable Messaging, API version 2010-04-01) on 127.0.0.1.

The service talks to it with the real ``twilio`` SDK::

    with FakeTwilio() as fake:
        client = Client(fake.account_sid, fake.auth_token)
        client.api.base_url = fake.base_url
        client.messages.create(to="+15558675310", from_="+15005550006", body="Hi")
        assert fake.sent_bodies(to="+15558675310") == ["Hi"]
        assert fake.violations == []

It serves CreateMessage, ListMessage and FetchMessage as Twilio's published OpenAPI
description says (``twilio_api_v2010.json``; ``TWILIO_OPENAPI_SPEC`` overrides where it is
read from) and checks every request against that description: an unknown parameter, a
missing required one, a bad value or a path or method the fake does not serve gets a 400
(404/405 for paths and methods) in Twilio's error shape and a line in ``.violations``.

Twilio itself is more lenient (it ignores unknown form parameters); the fake is strict on
purpose, so that a typo in the service fails a test instead of being dropped in production.

Outcomes of CreateMessage can be scripted (``script``, ``set_default``, ``fail_rate``) to
test retries, throttling, timeouts and ambiguous outcomes (``accept_then_hang``).
"""

import base64
import contextlib
import json
import os
import random
import re
import secrets
import socket
import sys
import threading
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

API_VERSION = "2010-04-01"
DEFAULT_SPEC_PATH = Path("/work/shared/twilio/twilio_api_v2010.json")
MESSAGES_PATH = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
MESSAGE_PATH = "/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json"
MAX_BODY_CHARS = 1600

# Twilio's messages for the error codes the fake produces (the default `message` of `error`).
ERROR_MESSAGES = {
    20001: "Unknown parameter",
    20003: "Authenticate",
    20004: "Method not allowed",
    20404: "The requested resource {path} was not found",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    20503: "Service Unavailable",
    21211: "Invalid 'To' Phone Number: {to}",
    21408: "Permission to send an SMS has not been enabled for the region indicated by the "
    "'To' number: {to}",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21606: "The 'From' phone number provided is not a valid message-capable Twilio phone "
    "number for this destination.",
    21610: "Attempt to send to unsubscribed recipient",
    21611: "This 'From' number has exceeded the maximum number of queued messages",
    21612: "The 'To' phone number: {to}, is not currently reachable using the 'From' phone "
    "number: {from_} via SMS.",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit.",
}

# error_message of a stored message when a test sets a delivery error code.
DELIVERY_ERRORS = {
    30001: "Queue overflow",
    30002: "Account suspended",
    30003: "Unreachable destination handset",
    30004: "Message blocked",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
}


# --------------------------------------------------------------------------- outcomes


class Outcome(NamedTuple):
    """What the fake does with one CreateMessage request (build one with the helpers)."""

    kind: str  # "ok", "error", "hang", "accept_then_hang"
    status: int = 201
    code: int | None = None
    message: str | None = None
    retry_after: float | None = None
    seconds: float = 0.0
    json_body: bool = True
    then: "Outcome | None" = None  # hang: the answer after the pause
    message_status: str = "queued"  # ok / accept_then_hang: the stored message's status


def ok(message_status: str = "queued") -> Outcome:
    """201 Created; the message is stored with the given status."""
    return Outcome("ok", 201, message_status=message_status)


def error(
    status: int, code: int, message: str | None = None, retry_after: float | None = None
) -> Outcome:
    """An error answer in Twilio's shape, e.g. ``error(400, 21211)``; nothing is stored."""
    return Outcome("error", status, code, message, retry_after)


def throttled(retry_after: float = 2) -> Outcome:
    """429 Too Many Requests, code 20429, with a Retry-After header."""
    return error(429, 20429, retry_after=retry_after)


def unavailable(retry_after: float | None = None) -> Outcome:
    """503 Service Unavailable, code 20503; nothing is stored."""
    return error(503, 20503, retry_after=retry_after)


def server_error(status: int = 500, json_body: bool = True) -> Outcome:
    """A 5xx; with ``json_body=False`` an HTML body, as a load balancer sends (the SDK then
    reports ``code == status``)."""
    code = 20503 if status == 503 else 20500
    return Outcome("error", status, code, json_body=json_body)


def hang(seconds: float, then: Outcome | None = None) -> Outcome:
    """Wait ``seconds`` before doing anything, so a client with a shorter timeout gives up.
    Nothing is stored unless ``then`` stores it; the late answer is ``then`` (default 503)."""
    return Outcome("hang", seconds=seconds, then=then if then is not None else unavailable())


def accept_then_hang(seconds: float) -> Outcome:
    """Store the message (it *is* sent), then wait ``seconds`` before the 201: the client
    times out without knowing that the message went out."""
    return Outcome("accept_then_hang", 201, seconds=seconds)


class FailRate:
    """Random outcomes for load tests: a 503 with probability ``rate_503``, an
    accept-then-hang of ``hang_seconds`` with probability ``rate_timeout``, else 201."""

    def __init__(
        self,
        rate_503: float = 0.05,
        rate_timeout: float = 0.01,
        seed: int | None = None,
        hang_seconds: float = 2.0,
    ):
        if rate_503 < 0 or rate_timeout < 0 or rate_503 + rate_timeout > 1:
            raise ValueError("rates must be >= 0 and add up to at most 1")
        self.rate_503 = rate_503
        self.rate_timeout = rate_timeout
        self.hang_seconds = hang_seconds
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def pick(self) -> Outcome:
        with self._lock:
            draw = self._random.random()
        if draw < self.rate_503:
            return unavailable()
        if draw < self.rate_503 + self.rate_timeout:
            return accept_then_hang(self.hang_seconds)
        return ok()

    def __repr__(self) -> str:
        return (f"FailRate(rate_503={self.rate_503}, rate_timeout={self.rate_timeout}, "
                f"hang_seconds={self.hang_seconds})")


def fail_rate(
    rate_503: float = 0.05,
    rate_timeout: float = 0.01,
    seed: int | None = None,
    hang_seconds: float = 2.0,
) -> FailRate:
    """A default outcome for ``FakeTwilio.set_default``: random 503s and accept-then-hangs."""
    return FailRate(rate_503, rate_timeout, seed, hang_seconds)


# --------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    template: str
    path_params: dict[str, dict]
    query_params: dict[str, dict]
    body_types: tuple[str, ...]
    body_properties: dict[str, dict]
    body_required: tuple[str, ...]


@dataclass
class SpecIndex:
    spec: dict
    # (template, compiled regex, parameter names, {METHOD: Operation}), literal paths first
    paths: list[tuple[str, re.Pattern, tuple[str, ...], dict[str, Operation]]]
    by_template: dict[str, dict[str, Operation]]

    def resolve(self, schema: dict) -> dict:
        while "$ref" in schema:
            ref = schema["$ref"]
            if not ref.startswith("#/"):
                raise ValueError(f"external $ref not supported: {ref}")
            node: Any = self.spec
            for part in ref[2:].split("/"):
                node = node[part]
            schema = node
        return schema

    def match(self, path: str) -> tuple[str, dict[str, str], dict[str, Operation]] | None:
        for template, regex, names, methods in self.paths:
            found = regex.fullmatch(path)
            if found:
                return template, dict(zip(names, found.groups(), strict=True)), methods
        return None

    @property
    def message_statuses(self) -> tuple[str, ...]:
        return tuple(self.resolve({"$ref": "#/components/schemas/message_enum_status"})["enum"])


_SPEC_CACHE: dict[Path, SpecIndex] = {}
_SPEC_LOCK = threading.Lock()


def spec_path() -> Path:
    return Path(os.environ.get("TWILIO_OPENAPI_SPEC", DEFAULT_SPEC_PATH))


def load_spec(path: Path | str | None = None) -> SpecIndex:
    """Twilio's OpenAPI description, parsed and indexed once per process."""
    path = Path(path) if path is not None else spec_path()
    with _SPEC_LOCK:
        index = _SPEC_CACHE.get(path)
        if index is None:
            if not path.exists():
                raise FileNotFoundError(
                    f"Twilio's OpenAPI description is not at {path}; set TWILIO_OPENAPI_SPEC "
                    "to twilio_api_v2010.json (github.com/twilio/twilio-oai, spec/json)")
            with path.open(encoding="utf-8") as handle:
                index = _index_spec(json.load(handle))
            _SPEC_CACHE[path] = index
        return index


def _index_spec(spec: dict) -> SpecIndex:
    index = SpecIndex(spec, [], {})
    for template, item in spec["paths"].items():
        shared = item.get("parameters", [])
        methods: dict[str, Operation] = {}
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            params = [index.resolve(p) for p in (*shared, *op.get("parameters", []))]
            content = op.get("requestBody", {}).get("content", {})
            form = next(iter(content.values()), {}).get("schema", {}) if content else {}
            form = index.resolve(form)
            methods[method.upper()] = Operation(
                operation_id=op.get("operationId", f"{method} {template}"),
                method=method.upper(),
                template=template,
                path_params={p["name"]: p.get("schema", {}) for p in params if p["in"] == "path"},
                query_params={
                    p["name"]: p.get("schema", {}) for p in params if p["in"] == "query"},
                body_types=tuple(content),
                body_properties=dict(form.get("properties", {})),
                body_required=tuple(form.get("required", ())),
            )
        names = tuple(re.findall(r"{([^}]+)}", template))
        pattern = "".join(
            "([^/]+)" if piece.startswith("{") else re.escape(piece)
            for piece in re.split(r"({[^}]+})", template) if piece)
        index.paths.append((template, re.compile(pattern), names, methods))
        index.by_template[template] = methods
    index.paths.sort(key=lambda entry: len(entry[2]))
    return index


_BOOLEANS = {"true", "false"}


def _parse_when(raw: str) -> tuple[datetime, bool] | None:
    """A DateSent filter value as an aware UTC datetime, and whether it was a bare date."""
    text = raw.strip()
    try:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC), True
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            try:
                parsed = datetime.strptime(text.rsplit(" ", 1)[0], "%m/%d/%Y %H:%M:%S")
            except ValueError:
                return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC), False


def _check_value(index: SpecIndex, raw: str, schema: dict) -> str | None:
    """Why ``raw`` (a form or query string) does not fit ``schema``, or None."""
    schema = index.resolve(schema)
    kind = schema.get("type", "string")
    if kind == "integer" or kind == "number":
        try:
            number = int(raw) if kind == "integer" else float(raw)
        except ValueError:
            return f"{raw!r} is not an {kind}"
        if "minimum" in schema and number < schema["minimum"]:
            return f"{raw} is below the minimum {schema['minimum']}"
        if "maximum" in schema and number > schema["maximum"]:
            return f"{raw} is above the maximum {schema['maximum']}"
        return None
    if kind == "boolean":
        return None if raw.lower() in _BOOLEANS else f"{raw!r} is not true or false"
    if "enum" in schema and raw not in schema["enum"]:
        return f"{raw!r} is not one of {schema['enum']}"
    if "minLength" in schema and len(raw) < schema["minLength"]:
        return f"{raw!r} is shorter than {schema['minLength']}"
    if "maxLength" in schema and len(raw) > schema["maxLength"]:
        return f"{raw!r} is longer than {schema['maxLength']}"
    if "pattern" in schema and not re.search(schema["pattern"], raw):
        return f"{raw!r} does not match {schema['pattern']}"
    ignore_format = schema.get("x-twilio", {}).get("ignoreFormat", False)
    fmt = None if ignore_format else schema.get("format")
    if fmt == "date-time" and _parse_when(raw) is None:
        return f"{raw!r} is not a date-time"
    if fmt == "uri":
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return f"{raw!r} is not an absolute http(s) URL"
    return None


def _check_params(
    index: SpecIndex, pairs: list[tuple[str, str]], schemas: dict[str, dict], where: str
) -> tuple[dict[str, Any], list[tuple[int, str]]]:
    """Group ``pairs`` by name (arrays as lists) and check them against ``schemas``."""
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    values: dict[str, Any] = {}
    problems: list[tuple[int, str]] = []
    for name, given in grouped.items():
        schema = schemas.get(name)
        if schema is None:
            problems.append((20001, f"unknown {where} parameter {name!r}"))
            values[name] = given if len(given) > 1 else given[0]
            continue
        schema = index.resolve(schema)
        if schema.get("type") == "array":
            values[name] = given
            items = schema.get("items", {})
        else:
            values[name] = given[0] if len(given) == 1 else given
            items = schema
            if len(given) > 1:
                problems.append((20001, f"{where} parameter {name!r} given {len(given)} times"))
        for value in given:
            why = _check_value(index, value, items)
            if why:
                problems.append((20001, f"{where} parameter {name!r}: {why}"))
    return values, problems


# --------------------------------------------------------------------------- segments

_GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = set("^{}\\[~]|€\f")


def segment_count(body: str) -> int:
    """SMS segments for ``body``: GSM-7 (160 septets, 153 per part; an escaped character
    takes two and is never split) when every character fits, else UCS-2 (70 UTF-16 units,
    67 per part; a surrogate pair is never split)."""
    if not body:
        return 1
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENDED for c in body):
        sizes = [2 if c in _GSM7_EXTENDED else 1 for c in body]
        single, part = 160, 153
    else:
        sizes = [2 if ord(c) > 0xFFFF else 1 for c in body]
        single, part = 70, 67
    if sum(sizes) <= single:
        return 1
    segments, used = 1, 0
    for size in sizes:
        if used + size > part:
            segments, used = segments + 1, 0
        used += size
    return segments


# --------------------------------------------------------------------------- the server


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, Any]
    form: dict[str, Any]
    headers: dict[str, str]
    operation: str | None = None
    status: int | None = None  # the HTTP status answered (None: no answer, e.g. stopped)
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class _Reply(NamedTuple):
    status: int
    body: Any  # dict -> JSON, str -> text/html
    headers: dict[str, str] = {}


def _rfc2822(instant: datetime) -> str:
    return format_datetime(instant.astimezone(UTC).replace(microsecond=0))


class FakeTwilio:
    """A fake Twilio Messages API on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        account_sid: str | None = None,
        auth_token: str | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
        spec: Path | str | None = None,
    ):
        self.account_sid = account_sid or "AC" + secrets.token_hex(16)
        self.auth_token = auth_token or secrets.token_hex(16)
        if not re.fullmatch(r"AC[0-9a-fA-F]{32}", self.account_sid):
            raise ValueError(f"not an account SID: {self.account_sid!r}")
        self.clock = clock or (lambda: datetime.now(UTC))
        self.spec = load_spec(spec)
        self._statuses = self.spec.message_statuses
        self._expected_auth = "Basic " + base64.b64encode(
            f"{self.account_sid}:{self.auth_token}".encode()).decode("ascii")
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self.requests: list[RecordedRequest] = []
        self.messages: dict[str, dict[str, Any]] = {}
        self.violations: list[str] = []
        self.counts: Counter[str] = Counter()
        self._script: deque[Outcome] = deque()
        self._default: Outcome | FailRate = ok()
        self._created_at: dict[str, tuple[datetime, int]] = {}
        self._sent_at: dict[str, datetime | None] = {}
        self._seq = 0
        self.default_messaging_service_sid = "MG" + uuid.uuid5(
            uuid.NAMESPACE_URL, self.account_sid).hex

    # ---- lifecycle

    def start(self) -> "FakeTwilio":
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"FakeTwilio:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wakes hanging handlers, which then answer nothing
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:  # keep-alive connections of pooled clients
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "FakeTwilio":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeTwilio is not running")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- behaviour

    def script(self, *outcomes: Outcome) -> None:
        """Queue outcomes for the next CreateMessage requests, in order (then the default)."""
        for outcome in outcomes:
            if not isinstance(outcome, Outcome):
                raise TypeError(f"not an Outcome (use ok(), error(), ...): {outcome!r}")
        with self._lock:
            self._script.extend(outcomes)

    def set_default(self, outcome: Outcome | FailRate) -> None:
        """What CreateMessage does when the script is empty (initially ``ok()``)."""
        if not isinstance(outcome, Outcome | FailRate):
            raise TypeError(f"not an Outcome or FailRate: {outcome!r}")
        with self._lock:
            self._default = outcome

    def fail_rate(
        self,
        rate_503: float = 0.05,
        rate_timeout: float = 0.01,
        seed: int | None = None,
        hang_seconds: float = 2.0,
    ) -> FailRate:
        """Make random 503s and accept-then-hangs the default outcome (for benchmarks)."""
        chooser = FailRate(rate_503, rate_timeout, seed, hang_seconds)
        self.set_default(chooser)
        return chooser

    @property
    def pending_script(self) -> int:
        with self._lock:
            return len(self._script)

    def set_status(
        self, sid: str, status: str, error_code: int | None = None,
        error_message: str | None = None,
    ) -> dict[str, Any]:
        """Change a stored message's status (as Twilio does while delivering it)."""
        if status not in self._statuses:
            raise ValueError(f"{status!r} is not a message status: {self._statuses}")
        with self._lock:
            message = self.messages[sid]
            message["status"] = status
            message["error_code"] = error_code
            message["error_message"] = (
                error_message if error_message is not None
                else DELIVERY_ERRORS.get(error_code, "Unknown error") if error_code else None)
            now = self.clock()
            message["date_updated"] = _rfc2822(now)
            if status in ("sent", "delivered") and self._sent_at.get(sid) is None:
                self._sent_at[sid] = now
                message["date_sent"] = _rfc2822(now)
            return dict(message)

    def reset(self) -> None:
        """Forget requests, messages, violations, the script and the default outcome."""
        with self._lock:
            self.requests.clear()
            self.messages.clear()
            self.violations.clear()
            self.counts.clear()
            self._script.clear()
            self._default = ok()
            self._created_at.clear()
            self._sent_at.clear()

    # ---- inspection

    def sent_bodies(self, to: str | None = None) -> list[str | None]:
        """Bodies of the stored messages, oldest first, optionally only those to ``to``."""
        with self._lock:
            return [m["body"] for m in self.messages.values() if to is None or m["to"] == to]

    def messages_to(self, to: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(m) for m in self.messages.values() if m["to"] == to]

    def duplicates(self) -> dict[tuple[str, str | None], int]:
        """(to, body) pairs stored more than once, with their count."""
        with self._lock:
            seen = Counter((m["to"], m["body"]) for m in self.messages.values())
        return {key: count for key, count in seen.items() if count > 1}

    def create_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.operation == "CreateMessage"]

    # ---- request handling (runs in the server's handler threads)

    def _violation(self, method: str, path: str, problem: str) -> None:
        with self._lock:
            self.violations.append(f"{method} {path}: {problem}")

    def _error(self, status: int, code: int | None, message: str | None = None,
               headers: dict[str, str] | None = None, **fields: str | None) -> _Reply:
        if message is None:
            message = ERROR_MESSAGES.get(code, "Error").format(
                path=fields.get("path") or "", to=fields.get("to") or "",
                from_=fields.get("from_") or "")
        body: dict[str, Any] = {"code": code, "message": message,
                                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                                "status": status}
        if code == 20003:
            body["detail"] = "Your AccountSid or AuthToken was incorrect."
        return _Reply(status, body, headers or {})

    def _handle(self, handler: "_Handler") -> None:
        method = handler.command
        headers = dict(handler.headers.items())
        lowered = {name.lower(): value for name, value in headers.items()}
        length = int(lowered.get("content-length") or 0)
        raw_body = handler.rfile.read(length) if length > 0 else b""
        split = urlsplit(handler.path)
        path = unquote(split.path)
        query_pairs = parse_qsl(split.query, keep_blank_values=True)
        record = RecordedRequest(method, path, dict(query_pairs), {}, headers)
        with self._lock:
            self.requests.append(record)
        reply = self._route(record, lowered, raw_body, query_pairs)
        if reply is not None:
            record.status = reply.status
            handler.reply(reply)

    def _route(self, record: RecordedRequest, headers: dict[str, str], raw_body: bytes,
               query_pairs: list[tuple[str, str]]) -> _Reply | None:
        method, path = record.method, record.path
        found = self.spec.match(path)
        if found is None:
            self._violation(method, path, "no such path in Twilio's API")
            return self._error(404, 20404, path=path)
        template, path_values, methods = found
        operation = methods.get(method)
        if operation is None:
            self._violation(method, path, f"{template} has no {method} in Twilio's API")
            return self._error(405, 20004, headers={"Allow": ", ".join(methods)})
        record.operation = operation.operation_id
        if template not in (MESSAGES_PATH, MESSAGE_PATH) or method not in ("GET", "POST"):
            self._violation(method, path, f"{operation.operation_id} is in Twilio's API but "
                                          "FakeTwilio does not serve it")
            return self._error(404, 20404, f"FakeTwilio does not serve {operation.operation_id}")
        if operation.operation_id == "UpdateMessage":
            self._violation(method, path, "UpdateMessage is not served by FakeTwilio")
            return self._error(404, 20404, "FakeTwilio does not serve UpdateMessage")

        if (headers.get("authorization") != self._expected_auth
                or path_values.get("AccountSid") != self.account_sid):
            with self._lock:
                self.counts["401"] += 1
            return self._error(401, 20003,
                               headers={"WWW-Authenticate": 'Basic realm="Twilio API"'})

        problems: list[tuple[int, str]] = []
        for name, schema in operation.path_params.items():
            why = _check_value(self.spec, path_values[name], schema)
            if why:
                problems.append((20404, f"path parameter {name}: {why}"))
        query, query_problems = _check_params(
            self.spec, query_pairs, operation.query_params, "query")
        record.query = query
        problems += query_problems
        form: dict[str, Any] = {}
        if method == "POST":
            content_type = (headers.get("content-type") or "").split(";")[0].strip()
            if content_type.lower() not in operation.body_types:
                self._violation(method, path, f"Content-Type {content_type!r} is not one of "
                                              f"{list(operation.body_types)}")
                return self._error(400, 20001, f"Content-Type {content_type!r} is not supported")
            try:
                pairs = parse_qsl(raw_body.decode("utf-8"), keep_blank_values=True,
                                  strict_parsing=bool(raw_body))
            except (UnicodeDecodeError, ValueError) as exc:
                pairs = []
                problems.append((20001, f"body is not form-encoded UTF-8: {exc}"))
            form, form_problems = _check_params(
                self.spec, pairs, operation.body_properties, "form")
            record.form = form
            problems += form_problems
            for name in operation.body_required:
                if not form.get(name):
                    problems.append((21604 if name == "To" else 20001,
                                     f"required form parameter {name!r} is missing"))
        elif raw_body:
            problems.append((20001, f"{method} with a body ({len(raw_body)} bytes)"))

        if operation.operation_id == "CreateMessage" and not problems:
            if not (form.get("From") or form.get("MessagingServiceSid")):
                problems.append((21603, "one of 'From' or 'MessagingServiceSid' is required"))
            if not (form.get("Body") or form.get("MediaUrl") or form.get("ContentSid")):
                problems.append((21602, "one of 'Body', 'MediaUrl' or 'ContentSid' is required"))

        if problems:
            for _, problem in problems:
                self._violation(method, path, problem)
            code, problem = problems[0]
            status = 404 if code == 20404 else 400
            if code == 20001:
                return self._error(status, code, problem[0].upper() + problem[1:])
            return self._error(status, code, path=path)

        if operation.operation_id == "CreateMessage":
            return self._create(form)
        if operation.operation_id == "FetchMessage":
            return self._fetch(path_values["Sid"], path)
        return self._list(query)

    def _next_outcome(self) -> Outcome:
        with self._lock:
            if self._script:
                return self._script.popleft()
            default = self._default
        return default.pick() if isinstance(default, FailRate) else default

    def _create(self, form: dict[str, Any]) -> _Reply | None:
        to, from_ = form["To"], form.get("From")
        if len(form.get("Body") or "") > MAX_BODY_CHARS:
            return self._error(400, 21617)
        outcome = self._next_outcome()
        if outcome.kind == "hang":
            with self._lock:
                self.counts["hang"] += 1
            if self._stopping.wait(outcome.seconds):
                return None
            outcome = outcome.then or unavailable()
        if outcome.kind == "error":
            with self._lock:
                self.counts[str(outcome.status)] += 1
            headers = {}
            if outcome.retry_after is not None:
                headers["Retry-After"] = f"{outcome.retry_after:g}"
            if not outcome.json_body:
                return _Reply(outcome.status, f"<html><body><h1>{outcome.status}</h1>"
                                              "</body></html>", headers)
            return self._error(outcome.status, outcome.code, outcome.message, headers,
                               to=to, from_=from_)
        message = self._store(form, outcome.message_status)
        if outcome.kind == "accept_then_hang":
            with self._lock:
                self.counts["accept_then_hang"] += 1
            if self._stopping.wait(outcome.seconds):
                return None
        else:
            with self._lock:
                self.counts["201"] += 1
        return _Reply(201, message)

    def _store(self, form: dict[str, Any], status: str) -> dict[str, Any]:
        media = form.get("MediaUrl") or []
        sid = ("MM" if media else "SM") + uuid.uuid4().hex
        now = self.clock()
        stamp = _rfc2822(now)
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        body = form.get("Body")
        message = {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": stamp,
            "date_sent": stamp,
            "date_updated": stamp,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid")
            or self.default_messaging_service_sid,
            "num_media": str(len(media)),
            "num_segments": str(segment_count(body or "")),
            "price": None,
            "price_unit": None,
            "sid": sid,
            "status": status,
            "subresource_uris": {"media": f"{base}/Media.json",
                                 "feedback": f"{base}/Feedback.json"},
            "to": form["To"],
            "uri": f"{base}.json",
        }
        with self._lock:
            self._seq += 1
            self.messages[sid] = message
            self._created_at[sid] = (now, self._seq)
            self._sent_at[sid] = now
            return dict(message)

    def _fetch(self, sid: str, path: str) -> _Reply:
        with self._lock:
            message = self.messages.get(sid)
            if message is not None:
                return _Reply(200, dict(message))
        return self._error(404, 20404, path=path)

    def _list(self, query: dict[str, Any]) -> _Reply:
        filters: list[Callable[[dict[str, Any], datetime | None], bool]] = []
        if "To" in query:
            filters.append(lambda m, _sent, to=query["To"]: m["to"] == to)
        if "From" in query:
            filters.append(lambda m, _sent, from_=query["From"]: m["from"] == from_)
        for name in ("DateSent", "DateSent<", "DateSent>"):
            if name in query:
                filters.append(_date_filter(name, *_parse_when(query[name])))
        page_size = int(query.get("PageSize", 50))
        page = int(query.get("Page", 0))
        with self._lock:
            chosen = [
                (self._created_at[sid], message)
                for sid, message in self.messages.items()
                if all(keep(message, self._sent_at.get(sid)) for keep in filters)]
            chosen.sort(key=lambda item: item[0], reverse=True)  # newest first, as Twilio
            start = page * page_size
            on_page = [dict(message) for _, message in chosen[start:start + page_size]]
            more = len(chosen) > start + page_size

        kept = [(name, query[name]) for name in ("To", "From", "DateSent", "DateSent<",
                                                 "DateSent>") if name in query]
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"

        def uri(number: int, token: str | None = None) -> str:
            params = [*kept, ("PageSize", page_size), ("Page", number)]
            if token:
                params.append(("PageToken", token))
            return f"{base}?{urlencode(params)}"

        next_uri = uri(page + 1, "PA" + on_page[-1]["sid"]) if more and on_page else None
        previous_uri = uri(page - 1, "PB" + on_page[0]["sid"]) if page > 0 and on_page else None
        return _Reply(200, {
            "end": start + max(len(on_page) - 1, 0),
            "first_page_uri": uri(0),
            "messages": on_page,
            "next_page_uri": next_uri,
            "page": page,
            "page_size": page_size,
            "previous_page_uri": previous_uri,
            "start": start,
            "uri": uri(page, query.get("PageToken")),
        })


def _date_filter(name: str, when: datetime, bare_date: bool):
    """Twilio's DateSent filters: ``DateSent>`` means on or after, ``DateSent<`` on or
    before; a bare date covers the whole (UTC) day."""
    day_end = when + timedelta(days=1)

    def keep(_message: dict[str, Any], sent: datetime | None) -> bool:
        if sent is None:
            return False
        if name == "DateSent>":
            return sent >= when
        if name == "DateSent<":
            return sent < day_end if bare_date else sent <= when
        return when <= sent < day_end if bare_date else sent.date() == when.date()

    return keep


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    fake: FakeTwilio

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):  # a client that went away
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: 20,000 requests must not use 20,000 ports
    disable_nagle_algorithm = True
    server: _Server

    def version_string(self) -> str:
        return "FakeTwilio/1.0"

    def setup(self) -> None:
        super().setup()
        with self.server.fake._lock:
            self.server.fake._connections.add(self.connection)

    def finish(self) -> None:
        with self.server.fake._lock:
            self.server.fake._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def handle(self) -> None:
        with contextlib.suppress(ConnectionError, TimeoutError):
            super().handle()

    def _dispatch(self) -> None:
        self.server.fake._handle(self)
        if self.server.fake._stopping.is_set():
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch

    def reply(self, reply: _Reply) -> None:
        if isinstance(reply.body, str):
            payload, content_type = reply.body.encode(), "text/html; charset=utf-8"
        else:
            payload = json.dumps(reply.body).encode()
            content_type = "application/json; charset=utf-8"
        phrase = self.responses.get(reply.status, ("",))[0]
        lines = [
            f"HTTP/1.1 {reply.status} {phrase}",
            f"Date: {self.date_time_string()}",
            "Server: FakeTwilio/1.0",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(payload)}",
            f"Twilio-Request-Id: RQ{uuid.uuid4().hex}",
            *(f"{name}: {value}" for name, value in reply.headers.items()),
        ]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:  # one write: headers and body in one segment
            self.wfile.write(head if self.command == "HEAD" else head + payload)
        except OSError:  # the client gave up (timeout) and closed the connection
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


__all__: Iterable[str] = [
    "FailRate", "FakeTwilio", "Outcome", "RecordedRequest", "accept_then_hang", "error",
    "fail_rate", "hang", "load_spec", "ok", "segment_count", "server_error", "throttled",
    "unavailable",
]
