"""A local stand-in for Zoom: a real HTTP server (OAuth, the API calls holdspace makes,
recording downloads with Zoom's awkward answers) plus helpers to load the webhook fixtures
in tests/fixtures/zoom/ and serve their files.

    with ZoomStub() as zoom:
        payload, body = load_fixture("recording_completed", zoom.base_url)
        register_fixture_files(zoom, payload)
        client = ZoomClient(**zoom.client_kwargs())
"""

from __future__ import annotations

import base64
import json
import random
import struct
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

from tests.localserver import LocalServer, StubHandler, page_offset, page_token

FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures" / "zoom"
FIXTURE_FILE_HOST = "https://example.zoom.us"

# The people and account the fixtures are written for (the test author adds them to the DB).
ACCOUNT_ID = "hsTestAcct-7QmW2xYz9k"
HOST_ID = "z8yCxjabcdEFGHfp8uQ"
HOST_EMAIL = "coach@example.com"
CLIENT_EMAIL = "client@example.com"
COACH_NAME = "Alex Morgan"
CLIENT_NAME = "Sam Rivera"

# A download token this stub refuses with 401 whatever else happens: the fixture
# recording_completed_expired_token.json carries it.
EXPIRED_DOWNLOAD_TOKEN = "expired-download-token"

FILE_MODES = ("ok", "html", "html_octet", "drop", "short", "short_no_length", "endless_no_length",
              "429", "503", "redirect_offlist", "redirect_loop", "slow")
# Where each mode acts: at download_url (before the 302) or at the file itself.
_REDIRECT_STAGE = frozenset({"html", "html_octet", "429", "503", "redirect_offlist",
                             "redirect_loop"})
_FILE_STAGE = frozenset({"drop", "short", "short_no_length", "endless_no_length", "slow"})

CONTENT_TYPES = {
    "MP4": "video/mp4",
    "M4A": "audio/mp4",
    "TRANSCRIPT": "text/vtt",
    "CC": "text/vtt",
    "CHAT": "text/plain",
    "TIMELINE": "application/json",
    "CSV": "text/csv",
    "SUMMARY": "application/json",
}

LOGIN_PAGE = (b"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
              b"<title>Sign In | Zoom</title></head><body><form action=\"/signin\">"
              b"<input name=\"email\"><input name=\"password\" type=\"password\"></form>"
              b"</body></html>\n")


@dataclass
class StubFile:
    data: bytes
    content_type: str
    mode: str = "ok"
    times: int | None = None        # None: the mode stays; n: n more uses, then 'ok'
    downloads: int = 0


@dataclass
class StubMeeting:
    id: int
    uuid: str
    host_id: str
    host_email: str
    topic: str
    type: int
    start_time: str
    duration: int
    timezone: str
    invitees: list[str]
    registrants: list[str] | None
    participants: list[dict]
    files: list[dict] = field(default_factory=list)
    participant_audio_files: list[dict] = field(default_factory=list)
    share_url: str | None = None


class ZoomStub(LocalServer):
    """Zoom on 127.0.0.1: `POST /oauth/token`, `/v2/...` API calls, `/rec/download/<id>`
    (302) and `/files/<id>` (the bytes). State is set with the `add_*` / `set_*` methods and
    read back through `requests`, `token_requests`, `trashed` and `file_downloads()`."""

    account_id = ACCOUNT_ID
    client_id = "stub-client-id"
    client_secret = "stub-client-secret-Hq3v9"

    handler_class = None  # set below, once _Handler is defined

    def __init__(self, *, expires_in: int = 3600, page_size: int = 2,
                 slow_delay: float = 0.05, slow_chunk: int = 4096):
        self.expires_in = expires_in
        self.page_size = page_size
        self.slow_delay = slow_delay
        self.slow_chunk = slow_chunk
        self.token_requests = 0
        self.trashed: set[str] = set()
        super().__init__()
        self._access_tokens: dict[str, bool] = {}       # token -> still valid
        self._download_tokens: dict[str, bool] = {}
        self._meetings: dict[str, StubMeeting] = {}     # by uuid, in insertion order
        self._upcoming: dict[str, list[dict]] = {}
        self._files: dict[str, StubFile] = {}
        self._failures: list[list] = []                 # [path_prefix, status, retry_after, n]
        # The user-authorised app: Zoom users who may connect, and their grants.
        self._users: dict[str, dict] = {}               # user id -> {"account_id", "email"}
        self._token_users: dict[str, str] = {}          # access token -> user id (none: S2S)
        self._codes: dict[str, tuple[str, str]] = {}    # code -> (user id, redirect_uri)
        self._refresh_tokens: dict[str, str] = {}       # live refresh token -> user id
        self.signed_in_user: str | None = None          # who "clicks Allow" at /oauth/authorize
        self.refreshes = 0                              # refresh grants answered
        self.refused_refreshes = 0
        self.refresh_delay = 0.0                        # seconds a refresh takes (widens races)
        self.revoked: list[str] = []                    # tokens revoked through /oauth/revoke

    @property
    def api_base_url(self) -> str:
        return self.base_url + "/v2"

    @property
    def oauth_url(self) -> str:
        return self.base_url + "/oauth/token"

    @property
    def authorize_url(self) -> str:
        return self.base_url + "/oauth/authorize"

    app_client_id = "stub-app-client-id"
    app_client_secret = "stub-app-secret-Zx8p"

    def app_env(self) -> dict:
        """Environment for holdspace's user-authorised Zoom app pointed at this stub (no S2S)."""
        return {"ZOOM_APP_CLIENT_ID": self.app_client_id, "ZOOM_APP_CLIENT_SECRET": self.app_client_secret,
                "ZOOM_AUTHORIZE_URL": self.authorize_url, "ZOOM_OAUTH_URL": self.oauth_url,
                "ZOOM_API_BASE_URL": self.api_base_url, "ZOOM_DOWNLOAD_HOSTS": f"127.0.0.1:{self.port}"}

    # --- users of the user-authorised app --------------------------------------------------

    def add_user(self, user_id: str, account_id: str, email: str) -> None:
        """A Zoom user who can connect the app (and whose meetings only their token sees)."""
        with self._lock:
            self._users[user_id] = {"account_id": account_id, "email": email}

    def live_refresh_tokens(self, user_id: str) -> list[str]:
        with self._lock:
            return [t for t, u in self._refresh_tokens.items() if u == user_id]

    def kill_refresh_tokens(self, user_id: str) -> None:
        """The user's grant dies at Zoom (revoked there, or 90 days unused)."""
        with self._lock:
            for token in [t for t, u in self._refresh_tokens.items() if u == user_id]:
                del self._refresh_tokens[token]

    def expire_user_access_tokens(self, user_id: str) -> None:
        with self._lock:
            for token, owner in self._token_users.items():
                if owner == user_id:
                    self._access_tokens[token] = False

    def client_kwargs(self) -> dict:
        """Keyword arguments for `integrations.zoom.ZoomClient` pointed at this stub."""
        return {"account_id": self.account_id, "client_id": self.client_id,
                "client_secret": self.client_secret, "api_base_url": self.api_base_url,
                "oauth_url": self.oauth_url, "download_hosts": (f"127.0.0.1:{self.port}",)}

    # --- recorded requests -----------------------------------------------------------------




    # --- tokens ----------------------------------------------------------------------------

    def revoke_access_tokens(self) -> None:
        """Every access token issued so far answers 401 from now on."""
        with self._lock:
            for token in self._access_tokens:
                self._access_tokens[token] = False

    def issue_download_token(self) -> str:
        with self._lock:
            token = f"dl-{len(self._download_tokens) + 1}-{random.getrandbits(48):012x}"
            self._download_tokens[token] = True
            return token

    def accept_download_token(self, token: str) -> None:
        """Treat a token from a fixture as valid (the expired literal stays refused)."""
        with self._lock:
            self._download_tokens[token] = token != EXPIRED_DOWNLOAD_TOKEN

    def expire_download_tokens(self) -> None:
        with self._lock:
            for token in self._download_tokens:
                self._download_tokens[token] = False

    def fail_next(self, status: int, *, times: int = 1, retry_after: float | None = None,
                  path_prefix: str = "/v2/") -> None:
        """The next `times` requests whose path starts with `path_prefix` answer `status`
        (with `Retry-After` when given) before anything else is looked at."""
        with self._lock:
            self._failures.append([path_prefix, status, retry_after, times])

    # --- meetings --------------------------------------------------------------------------

    def add_meeting(self, meeting_id: int | str, uuid: str, host_id: str = HOST_ID,
                    topic: str = "Coaching session",
                    start_time: str = "2024-05-14T15:00:00Z", duration: int = 60,
                    invitees: list[str] = (), registrants: list[str] | None = None,
                    participants: list[dict] = (), files: list[dict] = (), *,
                    participant_audio_files: list[dict] = (), host_email: str = HOST_EMAIL,
                    timezone: str = "Europe/London", type: int = 2,
                    share_url: str | None = None) -> StubMeeting:
        """Register one meeting instance. `registrants=None` means registration is off (the
        registrants call answers 400); `files` are recording file dicts as in the webhook."""
        meeting = StubMeeting(
            id=int(meeting_id), uuid=uuid, host_id=host_id, host_email=host_email,
            topic=topic, type=type, start_time=start_time, duration=duration,
            timezone=timezone, invitees=list(invitees),
            registrants=None if registrants is None else list(registrants),
            participants=[dict(p) for p in participants],
            files=[dict(f) for f in files],
            participant_audio_files=[dict(f) for f in participant_audio_files],
            share_url=share_url)
        with self._lock:
            self._meetings[uuid] = meeting
        return meeting

    def add_recording_files(self, uuid: str, files: list[dict],
                            participant_audio_files: list[dict] = ()) -> None:
        """Add files to a registered instance; a file whose id is already there replaces it."""
        with self._lock:
            meeting = self._meetings[uuid]
            for target, new in ((meeting.files, files),
                                (meeting.participant_audio_files, participant_audio_files)):
                for f in new:
                    for i, old in enumerate(target):
                        if f.get("id") and old.get("id") == f.get("id"):
                            target[i] = dict(f)
                            break
                    else:
                        target.append(dict(f))
            self.trashed.discard(uuid)

    def meeting(self, uuid: str) -> StubMeeting | None:
        with self._lock:
            return self._meetings.get(uuid)

    def add_upcoming(self, user_id: str, meeting: dict) -> None:
        with self._lock:
            self._upcoming.setdefault(user_id, []).append(dict(meeting))

    def recordings_object(self, uuid: str) -> dict | None:
        """What `GET /meetings/{uuid}/recordings` answers (less the download token): the
        webhook's `payload.object` shape. None when the instance has no recordings."""
        with self._lock:
            m = self._meetings.get(uuid)
            if m is None or not m.files or uuid in self.trashed:
                return None
            obj = {
                "uuid": m.uuid, "id": m.id, "account_id": self.account_id,
                "host_id": m.host_id, "host_email": m.host_email, "topic": m.topic,
                "type": m.type, "start_time": m.start_time, "timezone": m.timezone,
                "duration": m.duration,
                "total_size": sum(int(f.get("file_size") or 0) for f in m.files),
                "recording_count": len(m.files),
                "share_url": m.share_url or f"{self.base_url}/rec/share/{m.id}",
                "recording_files": [dict(f) for f in m.files],
            }
            if m.participant_audio_files:
                obj["participant_audio_files"] = [dict(f) for f in m.participant_audio_files]
            return obj

    # --- files -----------------------------------------------------------------------------

    def add_file(self, file_id: str, data: bytes, content_type: str = "video/mp4",
                 mode: str = "ok") -> None:
        _check_mode(mode)
        with self._lock:
            self._files[file_id] = StubFile(data=bytes(data), content_type=content_type,
                                            mode=mode)

    def set_file_mode(self, file_id: str, mode: str, times: int | None = None) -> None:
        """Serve `file_id` in `mode`; with `times`, only for that many requests, then 'ok'."""
        _check_mode(mode)
        with self._lock:
            f = self._files[file_id]
            f.mode, f.times = mode, times

    def download_url_for(self, file_id: str) -> str:
        return f"{self.base_url}/rec/download/{file_id}"

    def file_downloads(self, file_id: str) -> int:
        """How many times every byte of the file was sent."""
        with self._lock:
            f = self._files.get(file_id)
            return f.downloads if f else 0

    def file_data(self, file_id: str) -> bytes:
        with self._lock:
            return self._files[file_id].data

    # --- used by the handler ---------------------------------------------------------------


    def _take_failure(self, path: str) -> tuple[int, float | None] | None:
        with self._lock:
            for failure in self._failures:
                prefix, status, retry_after, times = failure
                if path.startswith(prefix) and times > 0:
                    failure[3] -= 1
                    if failure[3] == 0:
                        self._failures.remove(failure)
                    return status, retry_after
        return None

    def _take_mode(self, file_id: str, stage: frozenset[str]) -> str:
        with self._lock:
            f = self._files[file_id]
            if f.mode not in stage:
                return "ok"
            mode = f.mode
            if f.times is not None:
                f.times -= 1
                if f.times <= 0:
                    f.mode, f.times = "ok", None
            return mode

    def _issue_access_token(self, user_id: str | None = None) -> str:
        with self._lock:
            token = f"access-{len(self._access_tokens) + 1}"
            if user_id:  # a user's token is a secret worth looking for in files and logs
                token += f"-{random.getrandbits(40):010x}"
            self._access_tokens[token] = True
            if user_id:
                self._token_users[token] = user_id
            return token

    def _issue_grant(self, user_id: str) -> dict:
        refresh = f"refresh-{random.getrandbits(64):016x}"
        with self._lock:
            self._refresh_tokens[refresh] = user_id
        return {"access_token": self._issue_access_token(user_id), "token_type": "bearer",
                "refresh_token": refresh, "expires_in": self.expires_in,
                "scope": "meeting:read recording:read recording:write user:read"}

    def _token_user(self, token: str | None) -> str | None:
        with self._lock:
            return self._token_users.get(token or "")

    def _visible(self, token: str | None, m: StubMeeting | None) -> StubMeeting | None:
        """A user's token sees that user's meetings only; an S2S token sees the account's."""
        user = self._token_user(token)
        if m is None or user is None:
            return m
        return m if m.host_id == user else None

    def _access_token_valid(self, token: str | None) -> bool:
        with self._lock:
            return bool(token) and self._access_tokens.get(token, False)

    def _download_token_valid(self, token: str | None) -> bool:
        with self._lock:
            return (bool(token) and token != EXPIRED_DOWNLOAD_TOKEN
                    and self._download_tokens.get(token, False))

    def _meeting_by_ref(self, ref: str, *, with_files: bool = False) -> StubMeeting | None:
        """A uuid, or a numeric meeting id (then the latest instance registered with it)."""
        with self._lock:
            if ref in self._meetings:
                return self._meetings[ref]
            if ref.isdigit():
                for m in reversed(list(self._meetings.values())):
                    if m.id == int(ref) and (not with_files or m.files):
                        return m
            return None

    def _hosts_file(self, user_id: str, file_id: str) -> bool:
        with self._lock:
            return any(m.host_id == user_id and any(f.get("id") == file_id for f in
                                                     m.files + m.participant_audio_files)
                       for m in self._meetings.values())

    def _known_user(self, user_id: str) -> bool:
        with self._lock:
            return user_id in self._upcoming or user_id in self._users or any(
                user_id in (m.host_id, m.host_email) for m in self._meetings.values())


def _check_mode(mode: str) -> None:
    if mode not in FILE_MODES:
        raise ValueError(f"unknown file mode {mode!r}; one of {FILE_MODES}")


def _decode_uuid(segment: str) -> str | None:
    """A uuid path segment as Zoom reads it: decoded once before routing, so a singly encoded
    uuid that starts with `/` or has `//` no longer names one segment (404); a double-encoded
    one is decoded again."""
    once = unquote(segment)
    if once.startswith("/") or "//" in once:
        return None
    return unquote(once) if "%" in once else once


class _Handler(StubHandler):
    stub: ZoomStub
    server_version = "ZoomStub/1.0"

    def route(self, method: str) -> None:
        failure = self.stub._take_failure(self.raw_path)
        if failure:
            status, retry_after = failure
            extra = {"Retry-After": _num(retry_after)} if retry_after is not None else {}
            return self._json(status, {"code": status, "message": _reason(status)}, extra)
        if self.raw_path == "/oauth/token" and method == "POST":
            return self._oauth()
        if self.raw_path == "/oauth/authorize" and method == "GET":
            return self._authorize()
        if self.raw_path == "/oauth/revoke" and method == "POST":
            return self._revoke()
        if self.raw_path.startswith("/v2/"):
            return self._api(method)
        if self.raw_path.startswith("/rec/download/") and method == "GET":
            return self._download(self.raw_path[len("/rec/download/"):])
        if self.raw_path.startswith("/files/") and method == "GET":
            return self._file(self.raw_path[len("/files/"):])
        return self._json(404, {"code": 404, "message": "Not found"})

    def _send(self, status: int, body: bytes, content_type: str,
              extra: dict[str, str] | None = None, length: int | None = -1) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length == -1:
            length = len(body)
        if length is not None:
            self.send_header("Content-Length", str(length))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _json(self, status: int, body: dict, extra: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), "application/json;charset=UTF-8", extra)

    def _bearer(self) -> str | None:
        value = self.headers.get("Authorization") or ""
        return value[7:].strip() if value.lower().startswith("bearer ") else None

    def _param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def _paged(self, items: list, key: str, extra: dict | None = None) -> None:
        try:
            requested = int(self._param("page_size") or 30)
        except ValueError:
            requested = 30
        size = max(1, min(requested, 300, self.stub.page_size))
        offset = page_offset(self._param("next_page_token"))
        if offset is None:
            return self._json(400, {"code": 300, "message": "Invalid next_page_token."})
        end = offset + size
        body = dict(extra or {})
        body.update({"page_size": size, "total_records": len(items),
                     "next_page_token": page_token(end) if end < len(items) else "",
                     key: items[offset:end]})
        return self._json(200, body)

    # --- OAuth -----------------------------------------------------------------------------

    def _oauth(self) -> None:
        stub = self.stub
        with stub._lock:
            stub.token_requests += 1
        expected = base64.b64encode(f"{stub.client_id}:{stub.client_secret}".encode()).decode()
        form = self.request_record.form() if self.body else {}
        if form.get("grant_type") in ("authorization_code", "refresh_token"):
            return self._user_grant(form)
        if (self.headers.get("Authorization") or "") != f"Basic {expected}":
            return self._json(401, {"reason": "Invalid client_id or client_secret",
                                    "error": "invalid_client"})
        if self._param("grant_type") != "account_credentials":
            return self._json(400, {"reason": "unsupported grant type",
                                    "error": "unsupported_grant_type"})
        if self._param("account_id") != stub.account_id:
            return self._json(400, {"reason": "Invalid account_id", "error": "invalid_request"})
        return self._json(200, {
            "access_token": stub._issue_access_token(), "token_type": "bearer",
            "expires_in": stub.expires_in,
            "scope": "meeting:read:admin recording:read:admin recording:write:admin "
                     "user:read:admin",
            "api_url": stub.base_url})

    def _app_auth_ok(self) -> bool:
        stub = self.stub
        expected = base64.b64encode(f"{stub.app_client_id}:{stub.app_client_secret}".encode()).decode()
        return (self.headers.get("Authorization") or "") == f"Basic {expected}"

    def _authorize(self) -> None:
        """Zoom's consent page, as if the signed-in user clicked Allow: back to redirect_uri."""
        stub = self.stub
        if self._param("client_id") != stub.app_client_id or self._param("response_type") != "code":
            return self._json(400, {"reason": "Invalid client_id", "error": "invalid_request"})
        user, redirect_uri = stub.signed_in_user, self._param("redirect_uri") or ""
        if user is None or user not in stub._users:
            return self._send(200, LOGIN_PAGE, "text/html;charset=utf-8")
        code = f"code-{random.getrandbits(48):012x}"
        with stub._lock:
            stub._codes[code] = (user, redirect_uri)
        sep = "&" if "?" in redirect_uri else "?"
        target = f"{redirect_uri}{sep}code={code}&state={quote(self._param('state') or '', safe='')}"
        return self._send(302, b"", "text/html", {"Location": target})

    def _user_grant(self, form: dict) -> None:
        stub = self.stub
        if not self._app_auth_ok():
            return self._json(401, {"reason": "Invalid client_id or client_secret", "error": "invalid_client"})
        if form["grant_type"] == "authorization_code":
            with stub._lock:
                user, redirect_uri = stub._codes.pop(form.get("code", ""), (None, None))
            if user is None or redirect_uri != form.get("redirect_uri"):
                return self._json(400, {"reason": "Invalid authorization code", "error": "invalid_grant"})
            return self._json(200, stub._issue_grant(user))
        if stub.refresh_delay:
            time.sleep(stub.refresh_delay)
        with stub._lock:
            # Zoom rotates: the refresh token is spent by its first use.
            user = stub._refresh_tokens.pop(form.get("refresh_token", ""), None)
            if user is None:
                stub.refused_refreshes += 1
            else:
                stub.refreshes += 1
        if user is None:
            return self._json(400, {"reason": "Invalid Token!", "error": "invalid_grant"})
        return self._json(200, stub._issue_grant(user))

    def _revoke(self) -> None:
        stub = self.stub
        if not self._app_auth_ok():
            return self._json(401, {"reason": "Invalid client_id or client_secret", "error": "invalid_client"})
        token = self._param("token") or ""
        with stub._lock:
            stub.revoked.append(token)
            user = stub._token_users.get(token) or stub._refresh_tokens.get(token)
            if user:
                for t, owner in list(stub._token_users.items()):
                    if owner == user:
                        stub._access_tokens[t] = False
                for t in [t for t, owner in stub._refresh_tokens.items() if owner == user]:
                    del stub._refresh_tokens[t]
        return self._json(200, {"status": "success"})

    # --- API -------------------------------------------------------------------------------

    def _api(self, method: str) -> None:
        stub = self.stub
        if not stub._access_token_valid(self._bearer()):
            return self._json(401, {"code": 124, "message": "Invalid access token."})
        seg = self.raw_path[len("/v2/"):].split("/")
        route = (method, seg[0], len(seg), seg[-1] if len(seg) == 3 else None)
        token_user = stub._token_user(self._bearer())
        if route[:3] == ("GET", "users", 2) and seg[1] == "me":
            if token_user is None:
                return self._json(400, {"code": 200, "message": "This API only supports OAuth2 user tokens."})
            with stub._lock:
                user = dict(stub._users.get(token_user) or {})
            return self._json(200, {"id": token_user, "account_id": user.get("account_id"),
                                    "email": user.get("email"), "type": 1, "status": "active"})
        if seg[0] == "users" and len(seg) >= 2 and seg[1] in ("me", token_user) and token_user:
            seg[1] = token_user
        elif seg[0] == "users" and token_user and len(seg) >= 2:
            return self._json(404, {"code": 1001, "message": "User does not exist."})

        if route[:3] == ("GET", "meetings", 2):
            m = stub._visible(self._bearer(), stub._meeting_by_ref(unquote(seg[1])))
            if m is None:
                return self._meeting_missing(unquote(seg[1]))
            return self._json(200, _meeting_body(m))
        if route == ("GET", "meetings", 3, "registrants"):
            m = stub._visible(self._bearer(), stub._meeting_by_ref(unquote(seg[1])))
            if m is None:
                return self._meeting_missing(unquote(seg[1]))
            if m.registrants is None:
                return self._json(400, {"code": 3000,
                                        "message": "Registration has not been enabled for "
                                                   "this meeting."})
            items = [{"id": f"reg{i}", "email": e, "first_name": e.split("@")[0],
                      "last_name": "", "status": "approved"}
                     for i, e in enumerate(m.registrants)]
            return self._paged(items, "registrants")
        if route[:2] == ("GET", "past_meetings") and route[2:] == (3, "participants"):
            uuid = _decode_uuid(seg[1])
            m = stub._visible(self._bearer(), stub.meeting(uuid) if uuid is not None else None)
            if m is None:
                return self._meeting_missing(uuid or unquote(seg[1]))
            items = [dict({"id": f"p{i}", "user_id": str(16778240 + i), "name": "",
                           "user_email": "", "join_time": m.start_time,
                           "leave_time": m.start_time, "duration": m.duration * 60}, **p)
                     for i, p in enumerate(m.participants)]
            return self._paged(items, "participants")
        if route[1:] == ("meetings", 3, "recordings") and method in ("GET", "DELETE"):
            uuid = _decode_uuid(seg[1])
            m = stub._meeting_by_ref(uuid, with_files=True) if uuid is not None else None
            m = stub._visible(self._bearer(), m)
            obj = stub.recordings_object(m.uuid) if m else None
            if obj is None:
                return self._json(404, {"code": 3301, "message": "This recording does not "
                                                                 "exist."})
            if method == "DELETE":
                if self._param("action") not in ("trash", "delete"):
                    return self._json(400, {"code": 300, "message": "Invalid action."})
                with stub._lock:
                    stub.trashed.add(m.uuid)
                return self._send(204, b"", "application/json", length=None)
            if "download_access_token" in (self._param("include_fields") or "").split(","):
                obj["download_access_token"] = stub.issue_download_token()
            return self._json(200, obj)
        if route == ("GET", "users", 3, "recordings"):
            user = unquote(seg[1])
            if not stub._known_user(user):
                return self._json(404, {"code": 1001, "message": "User does not exist: "
                                                                 f"{user}."})
            lo, hi = self._param("from") or "", self._param("to") or "9999-12-31"
            with stub._lock:
                ms = [m for m in stub._meetings.values()
                      if user in (m.host_id, m.host_email) and m.files
                      and m.uuid not in stub.trashed and lo <= m.start_time[:10] <= hi]
            ms.sort(key=lambda m: m.start_time, reverse=True)
            items = [stub.recordings_object(m.uuid) for m in ms]
            return self._paged(items, "meetings", {"from": lo, "to": hi})
        if route == ("GET", "users", 3, "meetings"):
            user = unquote(seg[1])
            if not stub._known_user(user):
                return self._json(404, {"code": 1001, "message": "User does not exist: "
                                                                 f"{user}."})
            kind = self._param("type") or "scheduled"
            with stub._lock:
                items = list(stub._upcoming.get(user, [])) if kind in (
                    "upcoming", "upcoming_meetings") else []
            return self._paged(items, "meetings")
        return self._json(404, {"code": 300, "message": "Invalid api or method."})

    def _meeting_missing(self, ref: str) -> None:
        return self._json(404, {"code": 3001, "message": f"Meeting does not exist: {ref}."})

    # --- downloads -------------------------------------------------------------------------

    def _download(self, file_id: str) -> None:
        stub = self.stub
        if file_id not in stub._files:
            return self._json(404, {"code": 3301, "message": "This recording does not exist."})
        mode = stub._take_mode(file_id, _REDIRECT_STAGE)
        if mode == "429":
            return self._json(429, {"code": 429, "message": "You have reached the maximum "
                                    "per-second rate limit for this API."},
                              {"Retry-After": "1"})
        if mode == "503":
            return self._json(503, {"code": 503, "message": "Service unavailable."})
        if mode == "html":
            return self._send(200, LOGIN_PAGE, "text/html;charset=utf-8")
        if mode == "html_octet":
            # BOM and whitespace first: the client must sniff past them.
            return self._send(200, b"\xef\xbb\xbf\r\n  " + LOGIN_PAGE,
                              "application/octet-stream")
        if "access_token" in self.query:
            return self._json(401, {"code": 124, "message": "Query-string access tokens are "
                                                            "no longer accepted."})
        token = self._bearer()
        if not (stub._download_token_valid(token) or stub._access_token_valid(token)):
            return self._json(401, {"code": 124, "message": "Invalid access token."})
        owner = stub._token_user(token)
        if owner is not None and not stub._hosts_file(owner, file_id):
            return self._json(403, {"code": 200, "message": "No permission."})
        if mode == "redirect_offlist":
            target = f"http://localhost:{stub.port}/files/{file_id}"
        elif mode == "redirect_loop":
            target = f"{stub.base_url}/rec/download/{file_id}"
        else:
            target = f"{stub.base_url}/files/{file_id}"
        return self._send(302, b"", "text/html", {"Location": target})

    def _file(self, file_id: str) -> None:
        stub = self.stub
        if file_id not in stub._files:
            return self._json(404, {"code": 3301, "message": "This recording does not exist."})
        mode = stub._take_mode(file_id, _FILE_STAGE)
        with stub._lock:
            f = stub._files[file_id]
            data, ctype = f.data, f.content_type
        if mode == "drop":
            # Full Content-Length, half the body, then the connection closes.
            return self._send(200, data[:len(data) // 2], ctype, length=len(data))
        if mode == "short":
            cut = data[:len(data) * 3 // 4]
            return self._send(200, cut, ctype)
        if mode == "short_no_length":
            return self._send(200, data[:len(data) * 3 // 4], ctype, length=None)
        if mode == "endless_no_length":  # more than file_size, with nothing announcing it
            self._send(200, b"", ctype, length=None)
            try:
                for _ in range(64):
                    self.wfile.write(data)
                    self.wfile.flush()
            except OSError:
                pass  # the client hung up, as it should
            return None
        # The download is counted just before its last byte goes out, so a client that has
        # read the whole file always sees it counted (counting after would race the client).
        if mode == "slow":
            pieces = [data[i:i + stub.slow_chunk] for i in range(0, len(data), stub.slow_chunk)]
        else:
            pieces = [data[:-1], data[-1:]]
        pieces = [p for p in pieces if p] or [b""]
        self._send(200, b"", ctype, length=len(data))
        for index, piece in enumerate(pieces):
            if index == len(pieces) - 1:
                with stub._lock:
                    f.downloads += 1
            self.wfile.write(piece)
            self.wfile.flush()
            if mode == "slow":
                time.sleep(stub.slow_delay)


def _meeting_body(m: StubMeeting) -> dict:
    return {
        "id": m.id, "uuid": m.uuid, "host_id": m.host_id, "host_email": m.host_email,
        "topic": m.topic, "type": m.type, "status": "waiting", "start_time": m.start_time,
        "duration": m.duration, "timezone": m.timezone,
        "join_url": f"https://example.zoom.us/j/{m.id}",
        "settings": {"meeting_invitees": [{"email": e} for e in m.invitees],
                     "approval_type": 2 if m.registrants is None else 0,
                     "auto_recording": "cloud"},
    }


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _reason(status: int) -> str:
    return {429: "You have reached the maximum per-second rate limit for this API.",
            401: "Invalid access token."}.get(status, "Stub failure.")


# --- deterministic file contents ------------------------------------------------------------

def media_bytes(seed: str, size: int, *, brand: bytes = b"mp42") -> bytes:
    """`size` deterministic bytes that begin like an MP4 (an `ftyp` box, then `mdat`), the
    rest pseudo-random from `seed`."""
    ftyp = struct.pack(">I4s4sI8s", 24, b"ftyp", brand, 0, brand + b"isom")
    mdat = struct.pack(">I4s", max(size - 24, 8), b"mdat")
    body = random.Random(f"media:{seed}").randbytes(max(size - 32, 0))
    return (ftyp + mdat + body)[:size]


_DIALOGUE = [
    (COACH_NAME, "What would make this session useful for you today?"),
    (CLIENT_NAME, "I want to work out how to raise the workload issue with my manager."),
    (COACH_NAME, "What have you tried so far, and what happened?"),
    (CLIENT_NAME, "I mentioned it once in a standup but it got brushed aside."),
    (COACH_NAME, "If the conversation went well, what would be different next week?"),
    (CLIENT_NAME, "I'd have two projects off my plate and a clear priority list."),
    (COACH_NAME, "What's one small step you could commit to before we next meet?"),
    (CLIENT_NAME, "I'll book a one-to-one for Thursday and write down my three asks."),
    (COACH_NAME, "How confident do you feel about that, from one to ten?"),
    (CLIENT_NAME, "About a seven. Writing it down first helps."),
]


def _vtt_time(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def transcript_bytes(seed: str, size: int) -> bytes:
    """A Zoom-style WebVTT transcript (`Speaker: text` cues) of exactly `size` bytes; a NOTE
    block pads the end."""
    rng = random.Random(f"vtt:{seed}")
    out = "WEBVTT\n\n"
    t, n = 1.0, 1
    while True:
        speaker, text = _DIALOGUE[(n - 1) % len(_DIALOGUE)]
        length = 2.5 + rng.random() * 5
        cue = f"{n}\n{_vtt_time(t)} --> {_vtt_time(t + length)}\n{speaker}: {text}\n\n"
        if len(out) + len(cue) + 7 > size:
            break
        out += cue
        t += length + rng.random()
        n += 1
    pad = size - len(out)
    out += ("NOTE " + "-" * (pad - 7) + "\n\n") if pad >= 7 else "\n" * pad
    return out.encode("ascii")[:size]


def chat_bytes(seed: str, size: int) -> bytes:
    """A Zoom-style saved chat (`HH:MM:SS From X to Everyone:` / tab-indented text) of
    exactly `size` bytes, padded with blank lines."""
    rng = random.Random(f"chat:{seed}")
    out, t, n = "", 60, 0
    while True:
        speaker, text = _DIALOGUE[n % len(_DIALOGUE)]
        line = (f"{t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d} From {speaker} to "
                f"Everyone:\n\t{text}\n")
        if len(out) + len(line) > size:
            break
        out += line
        t += rng.randint(20, 300)
        n += 1
    return (out + "\n" * (size - len(out))).encode("ascii")[:size]


def file_bytes(file: dict) -> bytes:
    """The bytes the stub serves for a webhook recording-file dict, `file_size` long."""
    file_id, size, ftype = str(file["id"]), int(file.get("file_size") or 0), file["file_type"]
    if ftype in ("TRANSCRIPT", "CC"):
        return transcript_bytes(file_id, size)
    if ftype == "CHAT":
        return chat_bytes(file_id, size)
    return media_bytes(file_id, size, brand=b"M4A " if ftype == "M4A" else b"mp42")


# --- fixtures --------------------------------------------------------------------------------

def fixture_names() -> list[str]:
    return sorted(p.stem for p in FIXTURES_DIR.glob("*.json"))


def load_fixture(name: str, file_base_url: str) -> tuple[dict, bytes]:
    """tests/fixtures/zoom/<name>.json with every `download_url` moved from
    https://example.zoom.us to `file_base_url`: the parsed payload and its body bytes (as a
    webhook request would carry them)."""
    name = name[:-5] if name.endswith(".json") else name
    payload = json.loads((FIXTURES_DIR / f"{name}.json").read_text(encoding="utf-8"))
    _rebase_download_urls(payload, file_base_url.rstrip("/"))
    return payload, json.dumps(payload, separators=(",", ":")).encode("utf-8")


def _rebase_download_urls(node, base: str) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if (key == "download_url" and isinstance(value, str)
                    and value.startswith(FIXTURE_FILE_HOST)):
                node[key] = base + value[len(FIXTURE_FILE_HOST):]
            else:
                _rebase_download_urls(value, base)
    elif isinstance(node, list):
        for item in node:
            _rebase_download_urls(item, base)


def ended_meeting_files(obj: dict, base_url: str) -> list[dict]:
    """The recordings the stub holds for a meeting.ended fixture (its recording.completed
    never arrives): an MP4 and an M4A with ids derived from the uuid."""
    start, end = obj["start_time"], obj.get("end_time") or obj["start_time"]
    files = []
    for ftype, ext, rtype, size in (("MP4", "MP4", "shared_screen_with_speaker_view", 204_800),
                                    ("M4A", "M4A", "audio_only", 61_440)):
        file_id = str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"zoom:{obj['uuid']}:{ftype}"))
        files.append({
            "id": file_id, "meeting_id": obj["uuid"], "recording_start": start,
            "recording_end": end, "file_type": ftype, "file_extension": ext,
            "file_size": size, "download_url": f"{base_url}/rec/download/{file_id}",
            "status": "completed", "recording_type": rtype})
    return files


def register_fixture_files(stub: ZoomStub, payload: dict, *,
                           invitees: list[str] = (CLIENT_EMAIL,),
                           participants: list[dict] | None = None) -> StubMeeting:
    """Make `stub` hold what a fixture refers to: each file with an `id` (bytes of its
    `file_size`, content type by `file_type`), its `download_token` (the expired literal stays
    refused), and the meeting instance, so `GET /meetings/{uuid}/recordings` lists the same
    files. A meeting.ended fixture gets `ended_meeting_files()`. Registering a second fixture
    of the same instance adds its files."""
    obj = payload["payload"]["object"]
    files = [dict(f) for f in obj.get("recording_files") or []]
    audio = [dict(f) for f in obj.get("participant_audio_files") or []]
    if not files and payload.get("event") == "meeting.ended":
        files = ended_meeting_files(obj, stub.base_url)
    for f in files + audio:
        if f.get("id"):
            f["download_url"] = stub.download_url_for(f["id"])
            if f.get("file_size") is not None:
                stub.add_file(f["id"], file_bytes(f),
                              CONTENT_TYPES.get(f["file_type"], "application/octet-stream"))
    if payload.get("download_token"):
        stub.accept_download_token(payload["download_token"])
    if participants is None:
        participants = [{"name": COACH_NAME, "user_email": obj.get("host_email", HOST_EMAIL)},
                        {"name": CLIENT_NAME, "user_email": ""}]   # a guest: email hidden
    existing = stub.meeting(obj["uuid"])
    if existing:
        stub.add_recording_files(obj["uuid"], files, audio)
        return existing
    return stub.add_meeting(
        obj["id"], obj["uuid"], obj.get("host_id", HOST_ID), topic=obj.get("topic", ""),
        start_time=obj.get("start_time", ""), duration=int(obj.get("duration") or 0),
        host_email=obj.get("host_email", HOST_EMAIL),
        timezone=obj.get("timezone", "UTC"), type=int(obj.get("type") or 2),
        share_url=obj.get("share_url"),
        invitees=list(invitees), registrants=[], participants=participants,
        files=files, participant_audio_files=audio)


ZoomStub.handler_class = _Handler
