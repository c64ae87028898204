"""Property-based fuzzing of holdspace's HTTP surface, shared by tests/test_fuzz.py (a quick
profile in the normal suite) and bench/fuzz.py (10,000 cases and more).

Every case is one request to a route taken from `app.url_map`, sent anonymously or from a
signed-in coach's browser, with fuzzed path values, query, headers (the ones we parse: Zoom's and
Slack's signature headers, Range and the conditional headers, Content-Length, Content-Type,
Authorization) and body (bytes, JSON with odd types, huge numbers and deep nesting, forms,
multipart). Some deliveries are validly signed (Zoom's v0 HMAC, Slack's v0 signature, a Pub/Sub
push token Google's stand-in signs), so the fuzz gets past the signature checks into payload
handling. Two things must hold for every case:

- no answer is a 5xx (and no exception escapes the app, not even while a body streams);
- no log line (every record of every logger, at DEBUG, and anything written to stderr) holds a
  secret the fuzz put into play: the client's link tokens, a coach's sign-in token, Zoom
  download tokens and the client's email address.

Secrets go where callers really put them (a token in its link path, in the fresh-link form or a
query string; a download token in a Zoom event; the email in forms, Slack commands and event
payloads), not into arbitrary slots such as a header name: a log line echoing a caller's own
garbage back is not a leak of anything the service holds.

SQLAlchemy's loggers are left at the WARNING level SQLAlchemy gives them on import: at INFO and
DEBUG they echo every statement with its bound parameters, which is reading the database (where
the inbox keeps a delivery's download token until it is processed), not a log line the service
writes. The SMTP stand-in's own logger (aiosmtpd's `mail.log`) is kept at WARNING too: at DEBUG
it echoes every line of every message it receives, which is the recipient's mail server reading
the email (where a session link belongs), not the service logging it. Everything else is
raised to DEBUG while the fuzz runs.

Strategies build plain descriptions (`Case`) holding `Ref`s to the world's values (tokens, ids,
the media's ETag), resolved when the request is sent, so a case stays meaningful when the world
is rebuilt under it and reads well when hypothesis prints a falsifying example."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import itertools
import json
import logging
import os
import re
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any, Callable
from urllib.parse import quote, urlencode

# Hypothesis keeps caches (source constants, Unicode tables) in .hypothesis/ under the working
# directory even with no example database; they go to the temporary directory instead, so a run
# leaves nothing in the checkout. Read when first needed, so setting it here is early enough.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY",
                      os.path.join(tempfile.gettempdir(), "holdspace-hypothesis"))

from hypothesis import HealthCheck, Phase, example, given, settings  # noqa: E402
from hypothesis import seed as hypothesis_seed  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.zoomhelpers import CLIENT_EMAIL, COACH_ZOOM_ID, ZOOM_SECRET  # noqa: E402

SLACK_SECRET = "slack-signing-secret-for-the-fuzz"
SLACK_USER = "U0FUZZCOACH"
# The platform's transcript and the offline summariser: a delivered session with a transcript,
# a summary and a journey in about two seconds, no model loaded.
ENGINES = {"TRANSCRIBE_ENGINE": "platform", "SUMMARY_ENGINE": "offline", "PLATFORM_TRANSCRIPT_WAIT_SECONDS": 0}
# Download tokens the fuzz's own Zoom events carry (the delivered session's fixture adds its own).
FUZZ_DOWNLOAD_TOKENS = ("dlfuzz-Q2hvb3NlQVRva2VuVGhhdElzTG9uZw", "dlfuzz-b3RoZXJEb3dubG9hZFRva2VuMg")


# --- values resolved when a request is sent ------------------------------------------------------

@dataclass(frozen=True)
class Ref:
    """A value of the world, looked up at send time: `World.value(name, arg)`."""
    name: str
    arg: Any = None


@dataclass(frozen=True)
class Join:
    """Parts (strings and Refs) concatenated at send time."""
    parts: tuple


@dataclass(frozen=True)
class Raw:
    """A JSON fragment written as is (a 5,000-digit number, NaN, 3,000 nested brackets, an
    escaped lone surrogate): what json.dumps cannot or will not write."""
    text: str


@dataclass(frozen=True)
class B64Json:
    """base64 of a JSON value, as a JSON string (Pub/Sub's message.data), made at send time."""
    value: Any


@dataclass(frozen=True)
class JsonBody:
    value: Any
    ascii: bool = True


@dataclass(frozen=True)
class FormBody:
    pairs: tuple


@dataclass(frozen=True)
class MultipartBody:
    boundary: str
    pairs: tuple


@dataclass(frozen=True)
class Signed:
    """Sign the body the way a platform does, at send time. kind: zoom, slack or google.
    `offset`: seconds from now for the timestamp; `tamper`: None (valid), or what to spoil."""
    kind: str
    offset: int = 0
    tamper: str | None = None
    claims: tuple = ()


@dataclass(frozen=True)
class Case:
    who: str                      # "anonymous" or "coach"
    method: str
    rule: str                     # the url_map rule, e.g. /s/<token>/media
    path_values: tuple = ()       # (argument, value, keep slashes)
    query: Any = ()               # ((key, value), ...) or a raw query string
    headers: tuple = ()           # ((name, value), ...)
    body: Any = None              # bytes | JsonBody | FormBody | MultipartBody | Raw | None
    content_length: Any = None    # a CONTENT_LENGTH that disagrees with the body, as sent
    signed: Signed | None = None


# --- the log check ---------------------------------------------------------------------------------

def secret_variants(value: str) -> set[str]:
    """The spellings of a secret a log line could carry (compared lower-cased): as is, percent-
    encoded, and for a signed token its signature alone (the part that makes it a credential)."""
    out = {value.lower(), quote(value, safe="").lower()}
    if "." in value and len(value.rsplit(".", 1)[1]) >= 16:
        out.add(value.rsplit(".", 1)[1].lower())
    return {v for v in out if len(v) >= 8}


def leaks(lines, secrets: dict[str, str]) -> list[tuple[str, str]]:
    """(what, line) for every line holding one of `secrets` ({what: value})."""
    wanted = [(what, v) for what, value in secrets.items() for v in secret_variants(value)]
    found = []
    for line in lines:
        low = line.lower()
        hit = next((what for what, v in wanted if v in low), None)
        if hit:
            found.append((hit, line))
    return found


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record):
        try:
            self.lines.append(self.format(record))
        except Exception:  # noqa: BLE001 - a record that cannot be formatted still counts
            self.lines.append(f"{record.levelname} {record.name}: {record.msg!r} {record.args!r}")


class LogCapture:
    """While open: every record of every logger at DEBUG (SQLAlchemy's statement echo aside, see
    the module docstring) goes to one collecting handler and nowhere else, and stderr, Python's
    and file descriptor 2 alike, goes to buffers. `take()` returns what came since the last take."""

    def __init__(self):
        self.handler = _Collect()
        self._saved_levels: dict[str, int] = {}
        self._extra: list[logging.Logger] = []
        self._disabled: list[logging.Logger] = []

    def __enter__(self):
        root = logging.getLogger()
        self._root_state = (root.level, root.handlers[:], logging.root.manager.disable)
        root.handlers = [self.handler]
        root.setLevel(logging.DEBUG)
        logging.disable(logging.NOTSET)
        self._raise_levels()
        self._stderr = sys.stderr
        self._stderr.flush()
        self._py_err = io.StringIO()
        sys.stderr = self._py_err
        self._fd_file = tempfile.TemporaryFile()
        self._fd_saved = os.dup(2)
        os.dup2(self._fd_file.fileno(), 2)
        self._py_pos = self._fd_pos = 0
        return self

    def _raise_levels(self):
        # Loggers made or reconfigured since the last look (modules imported lazily) too.
        for name, logger in list(logging.root.manager.loggerDict.items()):
            if not isinstance(logger, logging.Logger) or name.split(".")[0] == "sqlalchemy":
                continue
            if name == "mail.log":  # the SMTP stand-in, reading what it received (see above)
                if logger.level != logging.WARNING:
                    self._saved_levels.setdefault(name, logger.level)
                    logger.setLevel(logging.WARNING)
                continue
            if logger.level not in (logging.NOTSET, logging.DEBUG):
                self._saved_levels.setdefault(name, logger.level)
                logger.setLevel(logging.DEBUG)
            if logger.disabled:
                self._disabled.append(logger)
                logger.disabled = False
            if not logger.propagate and self.handler not in logger.handlers:
                logger.addHandler(self.handler)
                self._extra.append(logger)

    def take(self) -> list[str]:
        self._raise_levels()
        lines, self.handler.lines = self.handler.lines, []
        text = self._py_err.getvalue()
        lines += [f"stderr: {line}" for line in text[self._py_pos:].splitlines()]
        self._py_pos = len(text)
        self._fd_file.seek(self._fd_pos)
        raw = self._fd_file.read()
        self._fd_pos += len(raw)
        lines += [f"fd2: {line}" for line in raw.decode("utf-8", "replace").splitlines()]
        return lines

    def __exit__(self, *exc):
        os.dup2(self._fd_saved, 2)
        os.close(self._fd_saved)
        self._fd_file.close()
        sys.stderr = self._stderr
        for logger in self._extra:
            logger.removeHandler(self.handler)
        for logger in self._disabled:
            logger.disabled = True
        for name, level in self._saved_levels.items():
            logging.getLogger(name).setLevel(level)
        root = logging.getLogger()
        level, handlers, disable = self._root_state
        root.handlers = handlers
        root.setLevel(level)
        logging.disable(disable)


# --- the world the fuzz runs against -----------------------------------------------------------

class World:
    """One app on SQLite with a coach (Zoom and Slack ids), a client who consented to everything,
    a Zoom recording ingested and delivered (its link taken from the client's email), a journey
    and a consent link, a signed-in coach browser and an unused coach sign-in link.

    The fuzz may revoke the links, sign the coach out, delete the session or withdraw the
    client; `ensure()` mends what it can before each case (new links, a new sign-in) and builds
    a new world when the session or the client is gone."""

    def __init__(self, make_hs: Callable[..., Any], zoom_stub, smtp_sink, google_stub):
        self.make_hs, self.zoom_stub, self.smtp_sink, self.google = make_hs, zoom_stub, smtp_sink, google_stub
        self.secrets: dict[str, str] = {f"download token {i}": t for i, t in enumerate(FUZZ_DOWNLOAD_TOKENS)}
        self.secrets["client email"] = CLIENT_EMAIL
        self.builds = self.mends = 0
        self._n = itertools.count()
        self._nonces = itertools.count()
        self.hs = None
        self.build()

    # building and mending

    def build(self) -> None:
        from tests.portalhelpers import delivered_session
        if self.hs is not None:
            self.hs.rt.engine.dispose()
        self.smtp_sink.clear()
        self.hs = self.make_hs(next(self._n), SLACK_SIGNING_SECRET=SLACK_SECRET,
                               PUBLIC_BASE_URL="https://holdspace.example", **ENGINES, **self.google.env())
        # Consent to all four scopes (scopes=None), so downloads and the transcript are served.
        payload, path = delivered_session(self.hs, self.zoom_stub, self.smtp_sink, scopes=None,
                                          fixture="recording_completed")
        self.secrets["fixture download token"] = payload["download_token"]
        from models import Asset, Client, Coach, CoachingSession
        from sqlmodel import select
        with self.hs.db() as db:
            coach = db.exec(select(Coach)).one()
            coach.slack_user_id = SLACK_USER
            db.add(coach)
            db.commit()
            self.coach_id = coach.id
            self.client_id = db.exec(select(Client)).one().id
            self.session_id = db.exec(select(CoachingSession)).one().id
            asset = next(a for a in db.exec(select(Asset)) if a.kind in ("audio", "video"))
            self.asset_id = asset.id
        self.tokens: dict[str, str] = {"session": path.rsplit("/", 1)[1]}
        # Earlier builds' tokens stay secrets too: the dict only grows.
        self.secrets["session token" + (f" (build {self.builds + 1})" if self.builds else "")] = \
            self.tokens["session"]
        self._mend_links()
        self._sign_in()
        self._new_login_token()
        self.builds += 1
        self.dirty = False

    def _issue(self, purpose: str) -> str:
        from models.db import session_scope
        from workers import links
        with session_scope(self.hs.rt.engine) as db:
            _, token = links.issue(db, self.hs.rt.settings.secret_key, coach_id=self.coach_id,
                                   client_id=self.client_id, purpose=purpose, ttl_seconds=86400,
                                   session_id=self.session_id if purpose == "session" else None)
        return token

    def _live(self, purpose: str) -> bool:
        from models.db import session_scope
        from workers import links
        token = self.tokens.get(purpose)
        if token is None:
            return False
        with session_scope(self.hs.rt.engine) as db:
            try:
                links.check(db, self.hs.rt.settings.secret_key, token, purpose, count_use=False)
                return True
            except (links.LinkGone, links.LinkNotFound):
                return False

    def _mend_links(self) -> None:
        for purpose in ("session", "journey", "consent"):
            if not self._live(purpose):
                self.tokens[purpose] = self._issue(purpose)
                self.secrets[f"{purpose} token {len(self.secrets)}"] = self.tokens[purpose]

    def _sign_in(self) -> None:
        from portal.coach import login_link
        browser = self.hs.app.test_client()
        browser.get("/" + login_link(self.hs.rt, self.coach_id).split("/", 3)[3])
        self.cookie = browser.get_cookie("session").value
        data = self.hs.app.session_interface.get_signing_serializer(self.hs.app).loads(self.cookie)
        self.csrf, self.sid = data["csrf"], data["sid"]

    def _new_login_token(self) -> None:
        from portal.coach import login_link
        self.login_token = login_link(self.hs.rt, self.coach_id).rsplit("/", 1)[1]
        self.secrets[f"sign-in token {len(self.secrets)}"] = self.login_token

    def _healthy(self) -> bool:
        from models import Asset, Client, CoachingSession
        from models import queries as q
        with self.hs.db() as db:
            client, session = db.get(Client, self.client_id), db.get(CoachingSession, self.session_id)
            return (client is not None and client.withdrawn_at is None and session is not None
                    and session.state == "delivered" and db.get(Asset, self.asset_id) is not None
                    and q.active_consent(db, self.coach_id, self.client_id) is not None)

    def touched(self, case: Case) -> None:
        """Note a case that may have changed the world (every write, and a sign-in link's use)."""
        if case.method not in ("GET", "HEAD", "OPTIONS") or "/auth/" in case.rule:
            self.dirty = True

    def ensure(self) -> None:
        """Mend the world after a case that changed it (cheap checks first)."""
        if not self.dirty:
            return
        self.dirty = False
        rt = self.hs.rt
        if not self._healthy():
            self.build()
            return
        mended = False
        if not all(self._live(p) for p in ("session", "journey", "consent")):
            self._mend_links()
            mended = True
        from workers.coach_sign_in import web_session_is
        if not web_session_is(rt, self.sid, self.coach_id):
            self._sign_in()
            mended = True
        if rt.redis.exists(f"holdspace:coach-login-used:{self._login_nonce()}"):
            self._new_login_token()
            mended = True
        self.mends += mended

    def _login_nonce(self) -> str:
        from workers.coach_sign_in import _serializer
        return _serializer(self.hs.rt.settings.secret_key).loads(self.login_token)["n"]

    # values for Refs

    def value(self, name: str, arg=None) -> str:
        if name == "token":
            return self.tokens[arg]
        if name == "mutated":            # a real token, spoilt
            purpose, how = arg
            token = self.tokens[purpose]
            return {"cut": token[:-1], "extra": token + "A", "flip": token[:-2] + token[-1] + token[-2],
                    "case": token.swapcase(), "payload": token.split(".")[0],
                    "sig": "x." + token.split(".")[-1]}[how]
        if name == "login":
            return self.login_token
        if name == "id":
            return {"session": self.session_id, "client": self.client_id, "coach": self.coach_id,
                    "asset": self.asset_id}[arg]
        if name == "csrf":
            return self.csrf
        if name == "email":
            return {None: CLIENT_EMAIL, "upper": CLIENT_EMAIL.upper(), "padded": f" {CLIENT_EMAIL} "}[arg]
        if name == "download":
            return self.secrets["fixture download token"] if arg is None else FUZZ_DOWNLOAD_TOKENS[arg]
        if name == "nonce":
            return f"{next(self._nonces)}.{time.time_ns()}"
        if name == "slack_user":
            return SLACK_USER
        if name == "zoom_user":
            return COACH_ZOOM_ID
        if name == "now":
            return str(int(time.time()) + (arg or 0))
        if name == "etag":
            from portal.client import _media_etag
            from models import Asset
            with self.hs.db() as db:
                return _media_etag(db.get(Asset, self.asset_id))
        if name == "last_modified":
            from models import Asset
            with self.hs.db() as db:
                created = db.get(Asset, self.asset_id).created_at
            return format_datetime(created.replace(tzinfo=timezone.utc) + timedelta(seconds=arg or 0),
                                   usegmt=True)
        if name == "google_push":
            return "Bearer " + self.google.push_token(**dict(arg or ()))
        raise KeyError(name)

    def resolve(self, v):
        if isinstance(v, Ref):
            return self.value(v.name, v.arg)
        if isinstance(v, Join):
            return "".join(str(self.resolve(p)) for p in v.parts)
        if isinstance(v, B64Json):
            return Raw(json.dumps(base64.b64encode(
                dump_json(self.resolve(v.value)).encode("utf-8", "surrogatepass")).decode()))
        if isinstance(v, JsonBody):
            return replace(v, value=self.resolve(v.value))
        if isinstance(v, (FormBody, MultipartBody)):
            return replace(v, pairs=self.resolve(v.pairs))
        if isinstance(v, tuple):
            return tuple(self.resolve(x) for x in v)
        if isinstance(v, list):
            return [self.resolve(x) for x in v]
        if isinstance(v, dict):
            return {self.resolve(k): self.resolve(x) for k, x in v.items()}
        return v


def dump_json(value, ascii_only: bool = True) -> str:
    """JSON text for a resolved value tree that may hold Raw fragments."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{dump_json(str(k), ascii_only)}:{dump_json(v, ascii_only)}"
                              for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dump_json(v, ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


def open_world(root, redis_url: str, zoom_stub, smtp_sink, google_stub) -> World:
    """A World whose apps live under `root` (one directory per build) on the given services.
    The logs of building it (a recording ingested and delivered by a real worker) are checked
    like any case's: `world.setup_leaks`."""
    from tests.conftest import Holdspace, make_env

    def make_hs(n: int, **env):
        where = root / f"world{n}"
        where.mkdir(parents=True, exist_ok=True)
        return Holdspace(make_env(where, f"sqlite:///{where / 'holdspace.db'}", redis_url,
                                  zoom_stub=zoom_stub, smtp_url=smtp_sink.url, **env))

    with LogCapture() as capture:
        world = World(make_hs, zoom_stub, smtp_sink, google_stub)
        world.setup_leaks = leaks(capture.take(), world.secrets)
    return world


# --- sending a case ------------------------------------------------------------------------------

@dataclass
class Outcome:
    method: str
    path: str
    query: str
    headers: list
    body: bytes
    status: int | None = None
    error: str | None = None
    response: bytes = b""
    leaks: list = field(default_factory=list)
    scanned: int = 0              # log and stderr lines read for this case

    @property
    def is_5xx(self) -> bool:
        return self.error is not None or (self.status or 0) >= 500

    @property
    def ok(self) -> bool:
        return not self.is_5xx and not self.leaks

    def reproducer(self) -> str:
        lines = [f"{self.method} {self.path}{'?' + self.query if self.query else ''}"]
        lines += [f"{k}: {v[:300]}{'…' if len(v) > 300 else ''}" for k, v in self.headers]
        body = self.body if len(self.body) <= 2000 else self.body[:2000] + b"..."
        lines.append(f"body ({len(self.body)} bytes): {body!r}")
        if self.is_5xx:
            lines.append(f"-> {self.status or 'exception'} {self.error or ''} {self.response[:300]!r}")
        for what, line in self.leaks:
            lines.append(f"-> log line holds the {what}: {line[:500]}")
        return "\n".join(lines)


def _utf8(value) -> bytes:
    # Lone surrogates too: they are what a hostile client's bytes decode to.
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")


def _urlencode(pairs) -> str:
    return urlencode([(_utf8(k), _utf8(v)) for k, v in pairs])


def _path(rule: str, values: dict) -> str:
    def sub(m):
        name = m.group(2)
        value, keep_slash = values.get(name, ("x", False))
        return quote(_utf8(value), safe="/" if keep_slash else "") or "x"
    return re.sub(r"<(?:([^:<>]+):)?([^<>]+)>", sub, rule)


def _body_bytes(world: World, body) -> tuple[bytes, str | None]:
    """The bytes of a body and the Content-Type that naturally goes with it."""
    body = world.resolve(body)
    if body is None:
        return b"", None
    if isinstance(body, bytes):
        return body, None
    if isinstance(body, Raw):
        return body.text.encode("utf-8", "surrogatepass"), "application/json"
    if isinstance(body, JsonBody):
        return dump_json(body.value, body.ascii).encode("utf-8", "surrogatepass"), "application/json"
    if isinstance(body, FormBody):
        return _urlencode(body.pairs).encode(), "application/x-www-form-urlencoded"
    if isinstance(body, MultipartBody):
        out = io.BytesIO()
        for k, v in body.pairs:
            out.write(f"--{body.boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n"
                      .encode("utf-8", "surrogatepass"))
            out.write(_utf8(v))
            out.write(b"\r\n")
        out.write(f"--{body.boundary}--\r\n".encode("utf-8", "surrogatepass"))
        return out.getvalue(), f"multipart/form-data; boundary={body.boundary}"
    raise TypeError(type(body))


def _signature_headers(world: World, signed: Signed, body: bytes) -> list[tuple[str, str]]:
    if signed.kind == "google":
        return [("Authorization", world.value("google_push", signed.claims))]
    ts = str(int(time.time()) + signed.offset)
    secret = ZOOM_SECRET if signed.kind == "zoom" else SLACK_SECRET
    if signed.tamper == "secret":
        secret += "x"
    signed_ts = ts + "1" if signed.tamper == "timestamp" else ts
    signed_body = body + b" " if signed.tamper == "body" else body
    mac = hmac.new(secret.encode(), f"v0:{signed_ts}:".encode() + signed_body, hashlib.sha256).hexdigest()
    sig = f"v0={mac}"
    if signed.tamper == "case":
        sig = sig.upper()
    elif signed.tamper == "truncate":
        sig = sig[:-1]
    if signed.kind == "zoom":
        return [("x-zm-request-timestamp", ts), ("x-zm-signature", sig)]
    return [("X-Slack-Request-Timestamp", ts), ("X-Slack-Signature", sig)]


def send(world: World, case: Case, capture: LogCapture) -> Outcome:
    """Send one case to the app (its WSGI callable, the body streamed out in full) and read
    what it logged."""
    from werkzeug.test import EnvironBuilder, run_wsgi_app
    path = _path(case.rule, {k: (world.resolve(v), keep) for k, v, keep in case.path_values})
    query = world.resolve(case.query)
    query = query if isinstance(query, str) else _urlencode(query)
    body, natural_type = _body_bytes(world, case.body)
    headers = [(k, world.resolve(v)) for k, v in case.headers]
    if natural_type and not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", natural_type))
    if case.signed is not None:
        signature = _signature_headers(world, case.signed, body)
        if case.signed.tamper != "duplicate":
            # The platform's own headers, not a second copy beside the fuzz's (a server joins
            # repeated headers with commas, which no signature check accepts).
            names = {k.lower() for k, _ in signature}
            headers = [(k, v) for k, v in headers if k.lower() not in names]
        headers += signature
    if case.who == "coach":
        headers = [(k, v) for k, v in headers if k.lower() != "cookie"]
        headers.append(("Cookie", f"session={world.cookie}"))
    outcome = Outcome(case.method, path, query, headers, body)
    # Built outside the try: a request the harness cannot build is its own bug, not the app's.
    environ = EnvironBuilder(path=path, method=case.method, query_string=query or None,
                             headers=headers, data=body).get_environ()
    if case.content_length is not None:
        environ["CONTENT_LENGTH"] = world.resolve(case.content_length)
    try:
        app_iter, status, _ = run_wsgi_app(world.hs.app, environ, buffered=True)
        outcome.status = int(status.split()[0])
        outcome.response = b"".join(app_iter)[:2000]
    except Exception as exc:  # noqa: BLE001 - anything escaping the app is the failure we report
        outcome.error = f"{type(exc).__name__}: {exc}"[:500]
    lines = capture.take()
    outcome.scanned = len(lines)
    outcome.leaks = leaks(lines, world.secrets)
    return outcome


# --- strategies ----------------------------------------------------------------------------------

HOSTILE = ["", "x", "0", "-1", "..", "../../etc/passwd", "%00", "\x00", "😀" * 20, "a" * 3000,
           "<script>alert(1)</script>", "' OR 1=1 --", "{}", "[]", "null", "IjEi.AAAA",
           "conferenceRecords/../x", "\ud800", "１２３", "²", "1e999", "NaN", "\r\nX-Injected: 1"]


def _same(value):
    return value


def weighted(*pairs):
    """one_of with weights: `(3, a), (1, b)` draws a about three times as often as b. (one_of
    drops repeated branches, so a weight needs distinct strategy objects: a.map(_same).)"""
    return st.one_of(*[strategy.map(_same) for weight, strategy in pairs for _ in range(weight)])


any_text = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=40),
                     st.text(st.characters(codec="utf-8"), max_size=200))
# What an HTTP server hands a WSGI app as a header value: latin-1 from the space up (no
# control characters, so no CR, LF or NUL).
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                      max_size=80)
digits = st.text("0123456789", min_size=1, max_size=30)
big_int = st.one_of(st.integers(-10, 10), st.integers(0, 300_000), st.integers(-(2 ** 70), 2 ** 70))


real_tokens = st.sampled_from([Ref("token", "session"), Ref("token", "journey"), Ref("token", "consent")])
mutated_tokens = st.builds(lambda p, how: Ref("mutated", (p, how)),
                           st.sampled_from(["session", "journey", "consent"]),
                           st.sampled_from(["cut", "extra", "flip", "case", "payload", "sig"]))
token_value = weighted((2, real_tokens), (1, mutated_tokens), (1, any_text), (1, st.just(Ref("login"))))
id_value = st.one_of(st.sampled_from([Ref("id", "session"), Ref("id", "client"), Ref("id", "coach"),
                                      Ref("id", "asset")]), any_text)
email_value = st.one_of(
    st.just(Ref("email")), st.just(Ref("email", "upper")), st.just(Ref("email", "padded")),
    st.emails(), any_text)


_plain_leaf = st.one_of(st.none(), st.booleans(), big_int, st.floats(allow_nan=False, allow_infinity=False),
                       any_text)
# What json.dumps will not write, or a parser chokes on: 5,000 digits, NaN, an escaped lone
# surrogate, 3,000 nested brackets.
_odd_leaf = st.one_of(
    st.sampled_from([Raw("1" * 5000), Raw("-" + "9" * 400), Raw("1e999999"), Raw("-0"), Raw("NaN"),
                     Raw("Infinity"), Raw('"\\ud800"'), Raw('"\\u0000"'), Raw("0.1e-99999")]),
    st.integers(1, 3000).map(lambda d: Raw("[" * d + "]" * d)),
    st.integers(1, 200).map(lambda d: Raw('{"a":' * d + "1" + "}" * d)))


def _json(leaf):
    return st.recursive(leaf, lambda kids: st.one_of(
        st.lists(kids, max_size=5),
        st.dictionaries(st.one_of(st.text(max_size=12), any_text), kids, max_size=5)), max_leaves=25)


# Any JSON value, mostly one a parser takes (so what reads it is reached), sometimes with odd
# leaves; no secrets (those go only where callers put them, see the module docstring).
json_values = weighted((2, _json(_plain_leaf)), (1, _json(st.one_of(_plain_leaf, _odd_leaf))))

words = st.one_of(any_text, st.sampled_from(["yes", "dashboard", "record", "transcribe", "summarise",
                                             "share_with_client", "/coach/google", "/holdspace", "1"]))
# What each form field and query parameter the app reads may carry; others carry anything.
FIELD_VALUES = {
    "csrf_token": weighted((2, st.just(Ref("csrf"))), (1, any_text)),
    "email": email_value, "token": token_value, "scope": words, "confirm": words, "back": words,
    "body": st.one_of(any_text, email_value), "text": st.one_of(any_text, email_value),
    "q": st.one_of(any_text, email_value), "next": words, "code": any_text, "state": any_text,
    "page": st.one_of(big_int.map(str), any_text), "at": st.one_of(big_int.map(str), any_text),
    "saved": words, "notice": any_text, "error": any_text, "user_id": any_text,
    "command": words, "response_url": any_text}


def _pairs(fields, max_size):
    named = st.sampled_from(sorted(fields)).flatmap(lambda k: st.tuples(st.just(k), FIELD_VALUES[k]))
    return st.lists(weighted((3, named), (1, st.tuples(st.text(max_size=10), any_text))),
                    max_size=max_size).map(tuple)


form_pairs = _pairs(FIELD_VALUES, 8)
PATH_VALUES = {"token": st.one_of(token_value, st.sampled_from(["vtt", "txt"])),
               # Mostly the real ids, so the signed-in coach's pages get past their 404.
               "session_id": weighted((2, st.just(Ref("id", "session"))), (1, id_value)),
               "client_id": weighted((2, st.just(Ref("id", "client"))), (1, id_value)),
               "fmt": st.one_of(st.sampled_from(["vtt", "txt", "mp4"]), any_text),
               "filename": st.one_of(st.sampled_from(["portal.css", "coach.css", "app.js", "../app.py",
                                                      "../../config.py", "%2e%2e/x"]), any_text)}


def bodies(json_strategy=json_values):
    return st.one_of(
        st.none(), st.binary(max_size=300),
        st.builds(JsonBody, json_strategy, st.booleans()),
        st.builds(FormBody, form_pairs),
        st.builds(MultipartBody, st.sampled_from(["b", "----x", "a" * 70]), form_pairs),
        st.sampled_from([Raw("{"), Raw("[]"), Raw("\xff"), Raw('{"event": 1}'), Raw("a=1&a=2&text=%ff")]),
        st.integers(1, 20000).map(lambda d: Raw("[" * d + "]" * d)))


def _joined(items, sep: str) -> Join:
    return Join(tuple(x for i, item in enumerate(items) for x in ((sep, item) if i else (item,))))


def _http_date():
    return st.one_of(
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31),
                     timezones=st.just(timezone.utc)).map(lambda d: format_datetime(d, usegmt=True)),
        st.just(Ref("last_modified", 0)), st.just(Ref("last_modified", -3600)),
        st.just(Ref("last_modified", 3600)), header_text)


def _etag():
    return st.one_of(st.just(Join(('"', Ref("etag"), '"'))), st.just(Join(('W/"', Ref("etag"), '"'))),
                     st.just("*"), header_text.map(lambda s: f'"{s}"'), header_text)


_range_spec = st.one_of(
    st.tuples(big_int, big_int).map(lambda t: f"{t[0]}-{t[1]}"),
    big_int.map(lambda n: f"{n}-"), big_int.map(lambda n: f"-{n}"), header_text)
# Ranges a player sends, about the size of the delivered recording (318,734 bytes of video):
# inside it, across its end, past it.
sensible_range = st.one_of(
    st.tuples(st.integers(0, 400_000), st.integers(0, 400_000)).map(
        lambda t: f"bytes={min(t)}-{max(t)}"),
    st.integers(0, 400_000).map(lambda n: f"bytes={n}-"), st.integers(0, 400_000).map(lambda n: f"bytes=-{n}"))
range_value = st.one_of(
    sensible_range,
    st.lists(_range_spec, min_size=1, max_size=4).map(lambda r: "bytes=" + ",".join(r)),
    st.sampled_from(["bytes=0-0", "bytes=-0", "bits=1-2", "bytes=x-y", "bytes=0-1,2-3", "bytes= 5 - 9"]),
    header_text)
timestamp_value = st.one_of(st.builds(lambda n: Ref("now", n), st.integers(-400, 400)), digits,
                            st.sampled_from(["²", "1" * 5000, "-1", " 1", "1.5", "0x10"]), header_text)
signature_value = st.one_of(
    st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda h: "v0=" + h),
    st.sampled_from(["v0=", "v0=00", "v1=" + "0" * 64, "", "v0=" + "z" * 64]), header_text)
content_type_value = st.one_of(st.sampled_from([
    "application/json", "application/json; charset=utf-8", "application/json; charset=utf-32",
    "application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=bogus",
    "multipart/form-data", "multipart/form-data; boundary=", "multipart/form-data; boundary=b",
    "text/plain", "", "*/*", "application/json;;;"]), header_text)
authorization_value = st.one_of(
    st.builds(lambda s: "Bearer " + s, header_text),
    st.builds(lambda a, b, c: "Bearer " + ".".join(base64.urlsafe_b64encode(x.encode()).decode().rstrip("=")
                                                   for x in (a, b, c)),
              st.sampled_from(['{"alg":"RS256","kid":"nope"}', '{"alg":"none"}', '{"alg":"HS256"}', "{}"]),
              st.sampled_from(['{"aud":"x"}', "[]", "{}", '{"exp":1e999}']), st.text(max_size=10)),
    st.sampled_from(["Bearer", "Basic Zm9vOmJhcg==", "bearer a.b.c", ""]),
    st.just(Join(("Bearer ", Ref("token", "session")))), header_text)

# The headers we parse, each with values from its own grammar or anything.
HEADER_VALUES = {
    "x-zm-request-timestamp": timestamp_value, "x-zm-signature": signature_value,
    "X-Slack-Request-Timestamp": timestamp_value, "X-Slack-Signature": signature_value,
    "Range": range_value, "If-Range": st.one_of(_etag(), _http_date()),
    "If-None-Match": st.lists(_etag(), min_size=1, max_size=3).map(lambda tags: _joined(tags, ", ")) | _etag(),
    "If-Modified-Since": _http_date(), "If-Unmodified-Since": _http_date(),
    "If-Match": _etag(), "Content-Type": content_type_value, "Authorization": authorization_value,
    "Cookie": st.one_of(header_text.map(lambda s: "session=" + s), header_text),
    "User-Agent": header_text, "Accept": header_text,
}


def _header_pair(names=tuple(HEADER_VALUES)):
    return st.sampled_from(names).flatmap(
        lambda n: st.tuples(st.sampled_from([n, n.lower(), n.upper()]), HEADER_VALUES[n]))


def fuzz_headers(names=tuple(HEADER_VALUES)):
    # Half the cases without any: every other draw carries one to six of them.
    return st.one_of(st.just(()), st.lists(_header_pair(names), min_size=1, max_size=6).map(tuple))


# A CONTENT_LENGTH that disagrees with the body, as a server would pass it on.
content_length = st.one_of(big_int.map(str), header_text,
                           st.sampled_from(["", "-1", "1e3", " 5", "99999999999999999999"]))
query = st.one_of(
    _pairs(("q", "page", "at", "state", "code", "next", "saved", "token", "notice", "error", "email"), 4),
    st.sampled_from(["a=%ff", "%", "&&&", "x" * 3000, "q=%00"]))


def route_table(app) -> list[tuple[str, tuple, tuple]]:
    """(rule, arguments, methods) of every route in the url_map, static files included."""
    out = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        out.append((rule.rule, tuple(sorted(rule.arguments)), tuple(sorted(rule.methods))))
    return out


def _path_values(args, keep=st.booleans()):
    return st.tuples(*[st.tuples(st.just(a), PATH_VALUES.get(a, any_text), keep) for a in args])


# A form as the coach's own pages send it: with the session's CSRF token first.
coach_form = st.builds(lambda pairs: FormBody((("csrf_token", Ref("csrf")),) + pairs), form_pairs)


def any_route_cases(routes):
    """Any route, any method it takes (and one it does not), anonymous or signed in."""
    def for_route(route):
        rule, args, methods = route
        return st.builds(
            Case, who=st.sampled_from(["anonymous", "coach"]),
            # Mostly a method the rule takes; sometimes one it does not (405).
            method=weighted((3, st.sampled_from(sorted(set(methods) - {"OPTIONS"}))),
                            (1, st.sampled_from(["OPTIONS", "PUT", "DELETE", "PATCH", "GET", "POST"]))),
            rule=st.just(rule), path_values=_path_values(args), query=query,
            headers=fuzz_headers(), body=weighted((3, coach_form), (1, bodies())),
            content_length=weighted((4, st.none()), (1, content_length)))
    return st.sampled_from(routes).flatmap(for_route)


ZOOM_EVENTS = ["recording.completed", "recording.transcript_completed", "meeting.ended",
               "endpoint.url_validation", "app_deauthorized", "meeting.started"]
FILE_TYPES = ["MP4", "M4A", "TRANSCRIPT", "CC", "CHAT", "TIMELINE", "CSV", "SUMMARY", "mp4", ""]


def _odd(strategy):
    """Mostly `strategy`, sometimes any JSON value instead (the wrong type)."""
    return weighted((3, strategy), (1, json_values))


zoom_file = st.fixed_dictionaries({}, optional={
    "id": _odd(st.text(max_size=20)), "meeting_id": _odd(st.text(max_size=30)),
    "file_type": _odd(st.sampled_from(FILE_TYPES)), "file_extension": _odd(st.sampled_from(FILE_TYPES)),
    "file_size": _odd(big_int), "status": _odd(st.sampled_from(["completed", "processing", ""])),
    "recording_type": _odd(st.sampled_from(["audio_only", "shared_screen_with_speaker_view", "x"])),
    "download_url": _odd(st.one_of(
        st.just("https://example.zoom.us/rec/download/abc"),
        st.builds(lambda t: Join(("https://example.zoom.us/rec/download/a?access_token=", t)),
                  st.sampled_from([Ref("download", 0), Ref("download", 1)])),
        any_text)),
    "recording_start": _odd(any_text), "recording_end": _odd(any_text),
    "participant_email": _odd(email_value)})
zoom_object = st.fixed_dictionaries({}, optional={
    "uuid": _odd(st.one_of(st.sampled_from(["k7Yq2PzLR0eHj1mN6tVw3g==", "//double/slash==", "/a", "a" * 500]),
                           any_text)),
    "id": _odd(big_int), "host_id": _odd(st.one_of(st.just(Ref("zoom_user")), any_text)),
    "host_email": _odd(email_value), "topic": _odd(any_text), "start_time": _odd(any_text),
    "duration": _odd(big_int), "timezone": _odd(any_text), "account_id": _odd(any_text),
    "recording_files": _odd(st.lists(_odd(zoom_file), max_size=3)),
    "participant_audio_files": _odd(st.lists(_odd(zoom_file), max_size=2)),
    "participants": _odd(st.lists(st.fixed_dictionaries({"user_email": email_value}), max_size=2))})
zoom_message = st.fixed_dictionaries({"event": _odd(st.sampled_from(ZOOM_EVENTS))}, optional={
    "event_ts": _odd(big_int),
    "download_token": _odd(st.sampled_from([Ref("download", 0), Ref("download", 1), Ref("download", None)])),
    "payload": _odd(st.fixed_dictionaries({}, optional={
        "object": _odd(zoom_object), "plainToken": _odd(any_text), "account_id": _odd(any_text)}))})

# Well-formed events (the fields the handler and the ingest read, of the right types) with odd
# values, so a signed delivery gets as far as the inbox; the shapes above cover the rest.
zoom_file_ok = st.fixed_dictionaries({
    "id": st.text("abcdef0123456789-", min_size=1, max_size=20), "file_type": st.sampled_from(FILE_TYPES),
    "download_url": st.one_of(st.just("https://example.zoom.us/rec/download/abc"), any_text),
    "status": st.sampled_from(["completed", "processing"]), "file_size": big_int},
    optional={"recording_type": any_text, "meeting_id": any_text, "file_extension": any_text})
zoom_object_ok = st.fixed_dictionaries({
    # A lone surrogate among them: json.loads takes its escape, a UTF-8 encoder does not.
    "uuid": weighted((2, st.sampled_from(["k7Yq2PzLR0eHj1mN6tVw3g==", "//double/slash==", "/a"])),
                     (1, st.sampled_from(["a\ud800", "\udc00"])), (1, st.text(min_size=1, max_size=40)),
                     (1, any_text.filter(bool))),
    "host_id": st.one_of(st.just(Ref("zoom_user")), any_text),
    "recording_files": st.lists(weighted((2, zoom_file_ok), (1, zoom_file)), max_size=3)},
    optional={"host_email": email_value, "topic": any_text, "start_time": any_text, "duration": big_int,
              "id": big_int, "participant_audio_files": st.lists(zoom_file_ok, max_size=2)})
zoom_message_ok = st.fixed_dictionaries({
    "event": st.sampled_from(ZOOM_EVENTS),
    "payload": st.fixed_dictionaries({"object": zoom_object_ok},
                                     optional={"plainToken": any_text, "account_id": any_text})},
    optional={"event_ts": big_int,
              "download_token": st.sampled_from([Ref("download", 0), Ref("download", 1), Ref("download", None)])})

signed_zoom = weighted((1, st.just(Signed("zoom"))), (3, st.builds(Signed, st.just("zoom"), st.integers(-1000, 1000),
              st.sampled_from([None, "body", "secret", "timestamp", "case", "truncate", "duplicate"]))))


def zoom_cases():
    return st.builds(
        Case, who=st.just("anonymous"), method=st.just("POST"), rule=st.just("/webhooks/zoom"),
        headers=fuzz_headers(("Content-Type", "x-zm-request-timestamp", "x-zm-signature", "Authorization")),
        # Mostly \u-escaped, as platforms write JSON; raw UTF-8 (and invalid bytes) the rest.
        body=weighted((3, st.builds(JsonBody, zoom_message_ok)), (1, st.builds(JsonBody, zoom_message_ok, st.just(False))),
                      (1, st.builds(JsonBody, zoom_message, st.booleans())), (1, bodies())),
        content_length=weighted((8, st.none()), (1, content_length)),
        # Mostly validly signed (payload handling); the rest spoilt or unsigned.
        signed=weighted((5, st.just(Signed("zoom"))), (2, signed_zoom), (1, st.none())))


SLACK_WORDS = ["help", "clients", "sessions", "consent", "request", "verbal", "status", "assign",
               "brief", "search", "note", "resend", "revoke", "delete", "session", "client",
               "confirm", "dashboard", "connect", "google", "nope"]
slack_word = st.one_of(st.sampled_from(SLACK_WORDS), email_value, id_value,
                       st.sampled_from(['"', "'", "\\", "a b", "--x"]), any_text)
slack_text = st.lists(slack_word, max_size=6).map(tuple)
slack_form = st.fixed_dictionaries({}, optional={
    "command": st.one_of(st.just("/holdspace"), st.just("/x-holdspace"), any_text),
    "user_id": st.one_of(st.just(Ref("slack_user")), st.just(Ref("slack_user")), any_text),
    "text": slack_text, "response_url": st.one_of(st.sampled_from(
        ["https://hooks.slack.com/commands/T1/1/x", "http://hooks.slack.com/x", "https://evil.example/x",
         "https://slack.com/api/x", ""]), any_text),
    "team_id": any_text, "channel_id": any_text, "trigger_id": any_text,
    "user_name": any_text}).map(lambda d: tuple(
        (k, _joined(v, " ")) if k == "text" else (k, v) for k, v in d.items()))
slack_form_ok = st.fixed_dictionaries({
    "command": st.just("/holdspace"), "user_id": st.just(Ref("slack_user")), "text": slack_text,
    "response_url": st.just("https://hooks.slack.com/commands/T1/1/x"),
    # Unique per request, as Slack's is: hypothesis repeats simple cases, and a repeated signed
    # body inside the same second is (rightly) refused as a replay.
    "trigger_id": st.just(Ref("nonce"))},
    optional={"team_id": any_text, "channel_id": any_text, "user_name": any_text}).map(
    lambda d: tuple((k, _joined(v, " ")) if k == "text" else (k, v) for k, v in d.items()))
signed_slack = weighted((1, st.just(Signed("slack"))), (3, st.builds(Signed, st.just("slack"), st.integers(-1000, 1000),
              st.sampled_from([None, "body", "secret", "timestamp", "case", "truncate", "duplicate"]))))


def slack_cases():
    return st.builds(
        Case, who=st.just("anonymous"), method=st.just("POST"), rule=st.just("/slack/commands"),
        headers=fuzz_headers(("Content-Type", "X-Slack-Request-Timestamp", "X-Slack-Signature")),
        body=weighted((3, st.builds(FormBody, slack_form_ok)), (1, st.builds(FormBody, slack_form)),
                      (1, bodies())),
        content_length=weighted((8, st.none()), (1, content_length)),
        signed=weighted((5, st.just(Signed("slack"))), (2, signed_slack), (1, st.none())))


GOOGLE_TYPES = ["google.workspace.meet.recording.v2.fileGenerated",
                "google.workspace.meet.transcript.v2.fileGenerated",
                "google.workspace.meet.conference.v2.ended",
                "google.workspace.events.subscription.v1.expirationReminder",
                "google.workspace.events.subscription.v1.suspended",
                "google.workspace.events.subscription.v1.expired", "x.unknown"]
google_names = st.one_of(st.sampled_from([
    "conferenceRecords/abc-mtng-xyz", "conferenceRecords/abc/recordings/rec1",
    "conferenceRecords/abc/transcripts/tr1", "subscriptions/meet-user-1", "conferenceRecords/../x"]), any_text)
google_data = st.fixed_dictionaries({}, optional={
    k: _odd(st.fixed_dictionaries({"name": _odd(google_names)}, optional={"driveDestination": json_values}))
    for k in ("recording", "transcript", "conferenceRecord", "subscription")})
google_envelope = st.fixed_dictionaries({"message": _odd(st.fixed_dictionaries({}, optional={
    "attributes": _odd(st.dictionaries(st.sampled_from(["ce-type", "ce-id", "ce-source", "ce-subject",
                                                        "ce-time"]),
                                       st.one_of(st.sampled_from(GOOGLE_TYPES), any_text), max_size=5)),
    "data": st.one_of(google_data.map(B64Json), json_values, any_text),
    "messageId": _odd(st.text("0123456789", min_size=1, max_size=20)), "message_id": _odd(any_text),
    "publishTime": _odd(any_text)}))}, optional={"subscription": _odd(any_text)})
# Each event's resource as the stand-in's fixtures name it.
GOOGLE_RESOURCES = {"recording": "conferenceRecords/abc-mtng-xyz/recordings/rec1",
                    "transcript": "conferenceRecords/abc-mtng-xyz/transcripts/tr1",
                    "conferenceRecord": "conferenceRecords/abc-mtng-xyz",
                    "subscription": "subscriptions/meet-user-11111-a1b2c3"}
google_envelope_ok = st.fixed_dictionaries({"message": st.fixed_dictionaries({
    "attributes": st.fixed_dictionaries({"ce-type": st.sampled_from(GOOGLE_TYPES)}, optional={
        k: weighted((3, any_text), (1, st.sampled_from(["a\ud800", "\udc00"])))
        for k in ("ce-id", "ce-source", "ce-subject", "ce-time")}),
    "data": st.fixed_dictionaries({k: st.fixed_dictionaries({"name": weighted((3, st.just(name)), (1, google_names))})
                                   for k, name in GOOGLE_RESOURCES.items()}).map(B64Json),
    "messageId": st.text("0123456789", min_size=1, max_size=20)}, optional={"publishTime": any_text})},
    optional={"subscription": st.just("projects/holdspace-test/subscriptions/meet-events-push")})
google_claims = st.one_of(st.just(()), st.sampled_from([
    (("aud", "https://elsewhere.example"),), (("email", "someone@example.com"),),
    (("exp", 1),), (("iss", "https://evil.example"),), (("email_verified", False),)]))


def google_cases():
    return st.builds(
        Case, who=st.just("anonymous"), method=st.just("POST"), rule=st.just("/webhooks/google"),
        headers=fuzz_headers(("Content-Type", "Authorization")),
        body=weighted((3, st.builds(JsonBody, google_envelope_ok)), (1, st.builds(JsonBody, google_envelope)),
                      (1, bodies())),
        signed=weighted((5, st.just(Signed("google"))), (2, st.builds(Signed, st.just("google"), claims=google_claims)),
                        (1, st.none())))


# (rule, methods, the token it is opened with); the media routes twice, for the Range cases.
LINK_ROUTES = [("/s/<token>", ("GET", "HEAD"), Ref("token", "session")),
               ("/s/<token>/media", ("GET", "HEAD"), Ref("token", "session")),
               ("/s/<token>/media", ("GET",), Ref("token", "session")),
               ("/s/<token>/download/recording", ("GET", "HEAD"), Ref("token", "session")),
               ("/s/<token>/download/recording", ("GET",), Ref("token", "session")),
               ("/s/<token>/transcript.<fmt>", ("GET",), Ref("token", "session")),
               ("/j/<token>", ("GET",), Ref("token", "journey")),
               ("/c/<token>", ("GET", "POST"), Ref("token", "consent")),
               ("/c/<token>/withdraw", ("POST",), Ref("token", "consent")),
               ("/coach/auth/<token>", ("GET",), Ref("login"))]
CONDITIONAL = ("Range", "If-Range", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since",
               "If-Match", "Content-Type", "Cookie", "User-Agent")


def link_cases():
    """The client's token routes (and the coach's sign-in link) with real, spoilt and garbage
    tokens and the Range and conditional headers; the fresh-link form with real tokens and the
    client's address."""
    def for_route(route):
        rule, methods, own_token = route
        # Mostly the route's own live token, so the fuzz gets past the link check.
        token = weighted((6, st.just(own_token)), (1, token_value))
        values = [st.tuples(st.just("token"), token, st.just(False))]
        if "<fmt>" in rule:
            values.append(st.tuples(st.just("fmt"), weighted((3, st.sampled_from(["vtt", "txt"])), (1, any_text)),
                                    st.just(False)))
        return st.builds(Case, who=weighted((2, st.just("anonymous")), (1, st.just("coach"))),
                         method=st.sampled_from(methods), rule=st.just(rule),
                         path_values=st.tuples(*values), query=st.one_of(st.just(()), query),
                         headers=st.builds(lambda r, rest: ((("Range", r),) if r else ()) + rest,
                                           st.one_of(st.none(), sensible_range), fuzz_headers(CONDITIONAL)),
                         body=st.one_of(st.none(), st.builds(FormBody, form_pairs)))
    fresh = st.builds(
        Case, who=st.sampled_from(["anonymous", "coach"]), method=st.just("POST"), rule=st.just("/links/fresh"),
        headers=fuzz_headers(("Content-Type", "User-Agent")),
        body=st.builds(lambda t, e, rest: FormBody((("token", t), ("email", e)) + rest),
                       token_value, email_value, form_pairs))
    routes = st.sampled_from(LINK_ROUTES).flatmap(for_route)
    return weighted((8, routes), (1, fresh))


# --- the properties --------------------------------------------------------------------------------

@dataclass
class Tally:
    """What one property's cases came to: counts, statuses, and the first few failures."""
    cases: int = 0
    five_xx: int = 0
    leaking_lines: int = 0
    scanned_lines: int = 0
    statuses: Counter = field(default_factory=Counter)
    examples: list = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        self.cases += 1
        self.statuses[outcome.status or "exception"] += 1
        self.five_xx += outcome.is_5xx
        self.leaking_lines += len(outcome.leaks)
        self.scanned_lines += outcome.scanned
        if not outcome.ok and len(self.examples) < 5:
            self.examples.append(outcome.reproducer())


class Properties(dict):
    """name -> strategy of cases; its repr stays short (a strategy's own runs to megabytes)."""

    def __repr__(self) -> str:
        return f"Properties({', '.join(self)})"


def properties(world: World) -> Properties:
    """The properties, built from the app's url_map (which no rebuild changes)."""
    routes = route_table(world.hs.app)
    return Properties({"any route": any_route_cases(routes), "zoom webhook": zoom_cases(),
                       "slack command": slack_cases(), "google push": google_cases(),
                       "client links": link_cases()})


def fuzz_settings(max_examples: int, *, derandomize: bool = True) -> settings:
    return settings(max_examples=max_examples, deadline=None, derandomize=derandomize, database=None,
                    print_blob=False, report_multiple_bugs=False,
                    suppress_health_check=list(HealthCheck),
                    phases=(Phase.explicit, Phase.generate, Phase.shrink))


# What the fuzz found, minimised, tried first on every run (hypothesis's explicit examples):
# each was a 500 before its fix.
REGRESSIONS = {
    "slack command": (
        # A non-ASCII signature with a fresh timestamp: slack_sdk's compare_digest raised.
        Case("anonymous", "POST", "/slack/commands", body=FormBody(()),
             headers=(("X-Slack-Request-Timestamp", Ref("now", 0)), ("X-Slack-Signature", "\x80"))),
        # A body that is not UTF-8, any signature: slack_sdk decoded it before checking.
        Case("anonymous", "POST", "/slack/commands", body=b"\x9d",
             headers=(("X-Slack-Request-Timestamp", Ref("now", 0)), ("X-Slack-Signature", "v0=00")))),
    "zoom webhook": (
        # A lone surrogate escape in the meeting uuid, validly signed: the inbox's dedupe key.
        Case("anonymous", "POST", "/webhooks/zoom", signed=Signed("zoom"), body=JsonBody(
            {"event": "recording.completed", "payload": {"object": {"uuid": "a\ud800"}}})),),
    "google push": (
        # The same in a push's ce-id, with a valid push token.
        Case("anonymous", "POST", "/webhooks/google", signed=Signed("google"), body=JsonBody(
            {"message": {"attributes": {"ce-type": GOOGLE_TYPES[0], "ce-id": "a\ud800"},
                         "data": B64Json({"recording": {"name": GOOGLE_RESOURCES["recording"]}}),
                         "messageId": "1"}})),),
}


def run_property(world: World, capture: LogCapture, strategy, max_examples: int, tally: Tally, *,
                 raise_on_failure: bool = True, seed: int | None = None, examples=()) -> None:
    """Run one property: every case 2xx-4xx and leak-free, `examples` (REGRESSIONS) first.
    With raise_on_failure, the first failure is raised (and shrunk by hypothesis); without,
    failures are only counted."""
    def check(case: Case) -> None:
        world.ensure()
        before = capture.take()  # a rebuild's or a mend's own logs
        outcome = send(world, case, capture)
        world.touched(case)
        outcome.leaks = leaks(before, world.secrets) + outcome.leaks
        outcome.scanned += len(before)
        tally.add(outcome)
        if raise_on_failure:
            assert outcome.ok, "\n" + outcome.reproducer()

    test = given(strategy)(check)
    for case in reversed(examples):  # decorators apply inside out
        test = example(case)(test)
    if seed is not None:
        test = hypothesis_seed(seed)(test)
    fuzz_settings(max_examples, derandomize=seed is None)(test)()
