"""Zoom API client: Server-to-Server OAuth, the meeting and cloud-recording calls holdspace
needs, and a guarded, streaming download of recording files. Plain values in and out.

Zoom's traps this module absorbs (see shared/PLATFORMS.md): uuids with `/` that must be
double-encoded, download tokens that arrive already expired, refused downloads that answer
200 with an HTML login page, and S2S tokens that cannot be refreshed, only replaced."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import quote, urljoin, urlsplit

import requests
import urllib3

log = logging.getLogger(__name__)

DEFAULT_API_BASE_URL = "https://api.zoom.us/v2"
DEFAULT_OAUTH_URL = "https://zoom.us/oauth/token"
DEFAULT_DOWNLOAD_HOSTS = ("zoom.us", "*.zoom.us")

# Zoom's S2S tokens live 3600 s and cannot be refreshed; take a new one a minute early so a
# request never leaves with a token that expires in flight.
TOKEN_EXPIRY_MARGIN_S = 60.0
MAX_ATTEMPTS = 3                 # per API call, for 429 / 5xx / no answer
MAX_RETRY_WAIT_S = 30.0          # a longer Retry-After (daily quota) is the caller's to schedule
MAX_REDIRECTS = 5
# The most a download may send when neither Content-Length nor Zoom's file_size bounds it: a
# long cloud recording is a few GB; a transcript or chat is text.
MAX_DOWNLOAD_BYTES = {"media": 16 << 30, "text": 64 << 20}
PAGE_SIZE = 300                  # Zoom's maximum for the list calls we make
MAX_PAGES = 1000                 # a server that keeps handing out page tokens must not loop us
RECORDINGS_WINDOW_DAYS = 30      # /users/{id}/recordings answers at most a month per request
SNIFF_BYTES = 1024

OCTET_STREAM = frozenset({"application/octet-stream", "binary/octet-stream"})
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
HTML_STARTS = (b"<!doctype", b"<html", b"<head", b"<body")
DOWNLOAD_KINDS = ("media", "text")

# Errors a streamed body can raise once the headers are in: requests wraps most of them, but
# urllib3's own and the socket's can surface from raw reads.
_STREAM_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, OSError)


def encode_uuid(uuid: str) -> str:
    """A meeting uuid as one API path segment.

    Zoom decodes the path once before routing, so a uuid that starts with `/` or contains `//`
    must be encoded twice or it is read as extra path segments (and the call 404s). Any other
    uuid is encoded once; `/`, `+` and `=` from its base64 are still escaped."""
    uuid = str(uuid)
    once = quote(uuid, safe="")
    if uuid.startswith("/") or "//" in uuid:
        return quote(once, safe="")
    return once


class ZoomError(Exception):
    """Anything that went wrong talking to Zoom. Messages never carry a token or secret."""


class ZoomApiError(ZoomError):
    """An API or OAuth call Zoom refused or did not answer.

    `status` is the HTTP status (None when no answer came back), `code` Zoom's own error code
    when the body had one, and `retry_after` the seconds Zoom asked us to wait on a 429."""

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None,
                 retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status == 429 or self.status >= 500


class DownloadError(ZoomError):
    """A recording file that could not be fetched (whole).

    `retryable` says whether trying again later can help (an HTML page, a dropped connection,
    a 5xx, a 429 with `retry_after` seconds) or cannot (a host outside the allow-list, a
    refusal with every credential we had, a missing file)."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None,
                 status: int | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status


class _Refused(Exception):
    """Internal: the file server turned this credential away (401/403, or an HTML page)."""

    def __init__(self, reason: str, *, status: int | None, html: bool):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.html = html


class Download:
    """An open recording download: `content_type`, `size` (Content-Length, else the expected
    size), and iteration over `bytes` chunks. Use it as a context manager.

    The iterator raises `DownloadError(retryable=True)` when the connection drops or the body
    ends at a length other than announced/expected, after the last good chunk, so a consumer
    streaming into a multipart upload sees the failure and aborts instead of completing a
    truncated object."""

    def __init__(self, response: requests.Response, first: bytes, *, chunk_size: int,
                 content_type: str, content_length: int | None, expected_size: int | None,
                 kind: str = "media", what: str):
        self._response = response
        self._first = first
        self._chunk_size = chunk_size
        self._content_length = content_length
        self._expected_size = expected_size
        bounds = [n for n in (content_length, expected_size) if n is not None]
        self._limit = min(bounds) if bounds else MAX_DOWNLOAD_BYTES.get(kind, MAX_DOWNLOAD_BYTES["text"])
        self._what = what
        self._started = False
        self.content_type = content_type
        self.size = content_length if content_length is not None else expected_size

    def __enter__(self) -> Download:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._response.close()

    def __iter__(self) -> Iterator[bytes]:
        if self._started:
            raise ZoomError(f"{self._what}: a download can be read only once")
        self._started = True
        return self._chunks()

    def _chunks(self) -> Iterator[bytes]:
        total = 0
        try:
            if self._first:
                total += len(self._first)
                yield self._first
            body = self._response.iter_content(self._chunk_size)
            while True:
                # Pull outside the `yield` so only transport errors are translated, never
                # something the consumer throws into this generator.
                try:
                    chunk = next(body)
                except StopIteration:
                    break
                except _STREAM_ERRORS as exc:
                    raise DownloadError(
                        f"{self._what}: connection failed after {total} bytes "
                        f"({type(exc).__name__})", retryable=True) from exc
                if chunk:
                    total += len(chunk)
                    if total > self._limit:
                        # Refused as the bytes arrive, not at the end: a server that keeps
                        # sending must not fill the vault.
                        raise DownloadError(f"{self._what}: sent more than the {self._limit} bytes "
                                            "it may hold", retryable=False)
                    yield chunk
            if self._content_length is not None and total != self._content_length:
                raise DownloadError(
                    f"{self._what}: stream ended after {total} of {self._content_length} "
                    f"announced bytes", retryable=True)
            if self._expected_size is not None and total != self._expected_size:
                raise DownloadError(
                    f"{self._what}: received {total} bytes, expected {self._expected_size} "
                    f"(the file_size Zoom reported)", retryable=True)
        finally:
            self.close()

    def __repr__(self) -> str:
        return f"Download({self._what}, content_type={self.content_type!r}, size={self.size})"


# Where a client acting for one Zoom user gets its access token: called with the token a 401
# just came back for (None at first), it answers a token that is not that one.
TokenSource = Callable[["str | None"], str]


class ZoomClient:
    """Zoom's REST API, and recording downloads, with a Server-to-Server OAuth app or, given
    `token_source`, with the tokens of one user who connected the user-authorised app.

    Thread-safe: the S2S access token is cached behind a lock and shared between threads."""

    def __init__(self, account_id: str | None, client_id: str | None,
                 client_secret: str | None, *,
                 token_source: TokenSource | None = None,
                 api_base_url: str = DEFAULT_API_BASE_URL,
                 oauth_url: str = DEFAULT_OAUTH_URL,
                 download_hosts: Sequence[str] = DEFAULT_DOWNLOAD_HOSTS,
                 session: requests.Session | None = None,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep,
                 timeout: float = 30):
        self.account_id = account_id
        self.client_id = client_id
        self._token_source = token_source
        self._client_secret = client_secret
        self.api_base_url = api_base_url.rstrip("/")
        self.oauth_url = oauth_url
        self.download_hosts = tuple(h.strip().rstrip(".").lower() for h in download_hosts)
        self._session = session or requests.Session()
        self._clock = clock
        self._sleep = sleep
        self._timeout = timeout
        self._token_lock = threading.Lock()
        self._token: str | None = None
        self._token_good_until = 0.0
        # Every token we have held, so that no message of ours can echo one.
        self._seen_tokens: deque[str] = deque(maxlen=16)

    @property
    def configured(self) -> bool:
        return self._token_source is not None or bool(
            self.account_id and self.client_id and self._client_secret)

    @property
    def acts_for_user(self) -> bool:
        """Whether this client holds one user's own tokens (not an account-wide S2S app)."""
        return self._token_source is not None

    def __repr__(self) -> str:
        mode = "user" if self.acts_for_user else "s2s"
        return f"ZoomClient(account_id={self.account_id!r}, mode={mode}, configured={self.configured})"

    # --- users -----------------------------------------------------------------------------

    def get_me(self) -> dict:
        """`GET /users/me`: who the token belongs to (`id`, `account_id`, `email`)."""
        return self._api("GET", "/users/me", missing=()) or {}

    # --- meetings --------------------------------------------------------------------------

    def get_meeting(self, meeting_id: int | str) -> dict:
        """`GET /meetings/{id}`; raises ZoomApiError (status 404) for an unknown meeting."""
        body = self._api("GET", f"/meetings/{quote(str(meeting_id), safe='')}", missing=())
        return body or {}

    def meeting_invitee_emails(self, meeting_id: int | str) -> list[str]:
        """Emails from `settings.meeting_invitees`; [] when the meeting is gone (404)."""
        body = self._api("GET", f"/meetings/{quote(str(meeting_id), safe='')}")
        if not body:
            return []
        invitees = (body.get("settings") or {}).get("meeting_invitees") or []
        return _unique_emails(i.get("email") for i in invitees if isinstance(i, dict))

    def registrant_emails(self, meeting_id: int | str) -> list[str]:
        """Approved registrants' emails, every page; [] when the meeting is gone (404) or has
        no registration (400)."""
        items = self._paged(f"/meetings/{quote(str(meeting_id), safe='')}/registrants",
                            {}, "registrants", missing=(400, 404))
        return _unique_emails(r.get("email") for r in items if isinstance(r, dict))

    def participant_emails(self, meeting_uuid: str) -> list[str]:
        """Emails of a past meeting instance's participants, every page. Zoom hides
        `user_email` for most guests (it comes back empty), so this is often incomplete;
        [] when Zoom has no such instance (404)."""
        items = self._paged(f"/past_meetings/{encode_uuid(meeting_uuid)}/participants",
                            {}, "participants", missing=(404,))
        return _unique_emails(p.get("user_email") for p in items if isinstance(p, dict))

    def list_upcoming_meetings(self, user_id: str) -> list[dict]:
        """`GET /users/{id}/meetings?type=upcoming`, every page."""
        return self._paged(f"/users/{quote(str(user_id), safe='')}/meetings",
                           {"type": "upcoming"}, "meetings", missing=())

    # --- cloud recordings ------------------------------------------------------------------

    def get_recordings(self, meeting_uuid: str, *, ttl: int = 3600) -> dict | None:
        """One meeting instance's recordings (the webhook's `payload.object` shape) with a
        fresh `download_access_token` valid `ttl` seconds; None when Zoom has none (404).

        As in the webhook, `CC` and `TIMELINE` entries may have no `id`, `status` or
        `file_size`, and a file is downloadable only once its `status` is `completed`."""
        return self._api("GET", f"/meetings/{encode_uuid(meeting_uuid)}/recordings",
                         {"include_fields": "download_access_token", "ttl": int(ttl)})

    def trash_recordings(self, meeting_uuid: str) -> bool:
        """Move an instance's recordings to Zoom's trash (recoverable there for 30 days).
        False when there was nothing to trash (404), which is as good as done."""
        body = self._api("DELETE", f"/meetings/{encode_uuid(meeting_uuid)}/recordings",
                         {"action": "trash"})
        return body is not None

    def list_user_recordings(self, user_id: str, from_date: date,
                             to_date: date) -> list[dict]:
        """Meetings with cloud recordings of one user between two dates (inclusive), every
        page. Zoom answers at most a month per request, so longer ranges are asked for in
        30-day windows; a meeting seen twice is returned once."""
        if to_date < from_date:
            return []
        path = f"/users/{quote(str(user_id), safe='')}/recordings"
        meetings: list[dict] = []
        seen: set[str] = set()
        start = from_date
        while start <= to_date:
            end = min(start + timedelta(days=RECORDINGS_WINDOW_DAYS - 1), to_date)
            params = {"from": start.isoformat(), "to": end.isoformat()}
            for meeting in self._paged(path, params, "meetings", missing=()):
                key = str(meeting.get("uuid") or id(meeting))
                if key not in seen:
                    seen.add(key)
                    meetings.append(meeting)
            start = end + timedelta(days=1)
        return meetings

    # --- downloads -------------------------------------------------------------------------

    def open_download(self, download_url: str, *, expected_size: int | None, kind: str,
                      download_token: str | None = None, chunk_size: int = 1 << 20) -> Download:
        """Open a recording file for streaming.

        `kind` is 'media' (MP4/M4A) or 'text' (VTT/TXT/chat); `expected_size` is the
        webhook's `file_size` (None where Zoom gave none, as for `CC`/`TIMELINE` entries).
        Every URL and every redirect hop must be on `download_hosts`.

        Authorises with `download_token` first; when that is refused (401/403, or the HTML
        login page) or was not given, with the API access token: a download token lives 24 h
        and can be spent before a late or retried event reaches us.
        Raises DownloadError; see `Download` for errors raised while iterating."""
        if kind not in DOWNLOAD_KINDS:
            raise ValueError(f"kind must be one of {DOWNLOAD_KINDS}, not {kind!r}")
        what = f"download of {_describe(download_url)}"
        self._check_download_url(download_url, what)

        credentials: list[tuple[str, str | None]] = []
        if download_token:
            credentials.append(("download token", download_token))
        if self.configured:
            credentials.append(("access token", None))     # fetched only if we get there
        if not credentials:
            credentials.append(("no credentials", ""))

        refusal: _Refused | None = None
        refreshed = False
        i = 0
        while i < len(credentials):
            label, token = credentials[i]
            if token is None:
                token = self._download_access_token(what)
            try:
                return self._open_once(download_url, token, kind=kind,
                                       expected_size=expected_size,
                                       chunk_size=chunk_size, what=what)
            except _Refused as exc:
                refusal = exc
                log.info("%s: %s refused (%s)", what, label, exc.reason)
                if label == "access token" and exc.status == 401 and not refreshed:
                    # A cached S2S token can be revoked early; fetch one new one, once.
                    refreshed = True
                    credentials.append((label, self._download_access_token(what, stale=token)))
                i += 1
        assert refusal is not None
        tried = ", then ".join(dict.fromkeys(label for label, _ in credentials))
        if refusal.html:
            # Zoom answers some refusals with a 200 login page; a later attempt (a fresh
            # token from GET /meetings/{uuid}/recordings) may well succeed.
            raise DownloadError(f"{what}: Zoom answered an HTML page instead of the file "
                                f"(tried {tried})", retryable=True, status=refusal.status)
        raise DownloadError(f"{what}: refused with HTTP {refusal.status} (tried {tried})",
                            retryable=False, status=refusal.status)

    def _download_access_token(self, what: str, stale: str | None = None) -> str:
        try:
            return self._access_token(stale=stale)
        except ZoomApiError as exc:
            raise DownloadError(f"{what}: could not get an access token: {exc}",
                                retryable=exc.retryable, retry_after=exc.retry_after,
                                status=exc.status) from None

    def _open_once(self, url: str, token: str, *, kind: str, expected_size: int | None,
                   chunk_size: int, what: str) -> Download:
        origin = urlsplit(url)
        current = url
        redirects = 0
        while True:
            hop = urlsplit(current)
            headers = {"Accept-Encoding": "identity"}    # lengths must be the file's own
            # Like requests itself, keep the credential on the original host only: Zoom's
            # redirect target is a signed URL that needs none, and a token is not for sharing.
            if token and hop.hostname == origin.hostname:
                headers["Authorization"] = f"Bearer {token}"
            try:
                resp = self._session.get(current, headers=headers, stream=True,
                                         allow_redirects=False, timeout=self._timeout)
            except requests.RequestException as exc:
                raise DownloadError(f"{what}: no answer from {_describe(current)} "
                                    f"({type(exc).__name__})", retryable=True) from exc
            if resp.status_code in (301, 302, 303, 307, 308) and resp.headers.get("Location"):
                resp.close()
                redirects += 1
                if redirects > MAX_REDIRECTS:
                    raise DownloadError(f"{what}: more than {MAX_REDIRECTS} redirects",
                                        retryable=False, status=resp.status_code)
                target = urljoin(current, resp.headers["Location"])
                # The allow-list binds every hop, not only the first URL: a redirect is
                # where a forged or compromised download_url would send us elsewhere.
                self._check_download_url(target, what, previous=current)
                current = target
                continue
            break

        status = resp.status_code
        if status != 200:
            resp.close()
            if status in (401, 403):
                raise _Refused(f"HTTP {status}", status=status, html=False)
            if status == 429:
                retry_after = _retry_after_seconds(resp.headers.get("Retry-After"), self._clock)
                raise DownloadError(f"{what}: rate limited by Zoom (HTTP 429)", retryable=True,
                                    retry_after=retry_after, status=status)
            if status >= 500 or status == 408:
                raise DownloadError(f"{what}: Zoom answered HTTP {status}", retryable=True,
                                    status=status)
            raise DownloadError(f"{what}: Zoom answered HTTP {status}", retryable=False,
                                status=status)

        content_type = _media_type(resp.headers.get("Content-Type"))
        if content_type in HTML_TYPES:
            # The HTML-200 pitfall: a refused download (expired token, recording behind a
            # passcode or sign-in) is a login page with status 200. Never store it as media.
            resp.close()
            raise _Refused("HTML page", status=status, html=True)
        if not _type_allowed(kind, content_type):
            resp.close()
            raise DownloadError(f"{what}: unexpected content type {content_type or 'none'!r} "
                                f"for {kind}", retryable=True, status=status)
        try:
            first = resp.raw.read(SNIFF_BYTES, decode_content=True) or b""
        except _STREAM_ERRORS as exc:
            resp.close()
            raise DownloadError(f"{what}: connection failed at the start "
                                f"({type(exc).__name__})", retryable=True) from exc
        # The same login page also comes as application/octet-stream; sniff media (and
        # anything untyped) so HTML never reaches the vault as a "recording".
        if (kind == "media" or content_type in OCTET_STREAM) and _looks_like_html(first):
            resp.close()
            raise _Refused("HTML body", status=status, html=True)
        content_length = _int_or_none(resp.headers.get("Content-Length"))
        if (expected_size is not None and content_length is not None
                and content_length != expected_size):
            resp.close()
            raise DownloadError(f"{what}: Content-Length {content_length} does not match the "
                                f"expected {expected_size} bytes", retryable=True, status=status)
        return Download(resp, first, chunk_size=chunk_size, content_type=content_type,
                        content_length=content_length, expected_size=expected_size, kind=kind,
                        what=what)

    def _check_download_url(self, url: str, what: str, previous: str | None = None) -> None:
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").rstrip(".").lower()
            userinfo = parts.username is not None or parts.password is not None
            scheme = parts.scheme.lower()
            port = parts.port or {"https": 443, "http": 80}.get(scheme)
        except ValueError:
            raise DownloadError(f"{what}: not a usable URL", retryable=False) from None
        step = "redirect to" if previous else "URL"
        if scheme not in ("https", "http"):
            raise DownloadError(f"{what}: {step} with scheme {scheme or 'none'!r} refused",
                                retryable=False)
        if userinfo or not host or not _host_allowed(host, port, scheme, self.download_hosts):
            raise DownloadError(f"{what}: {step} host {host or 'none'!r} port {port} is not an "
                                f"allowed Zoom download host", retryable=False)
        if previous and urlsplit(previous).scheme.lower() == "https" and scheme == "http":
            raise DownloadError(f"{what}: redirect from https down to http refused",
                                retryable=False)

    # --- OAuth and the API plumbing --------------------------------------------------------

    def _access_token(self, *, stale: str | None = None) -> str:
        """The cached S2S token, or a new one when it is near expiry or is `stale` (the token
        a 401 just came back for; if another thread already replaced it, that one is used)."""
        if self._token_source is not None:
            token = self._token_source(stale)
            self._seen_tokens.append(token)
            return token
        if not self.configured:
            raise ZoomError("Zoom Server-to-Server OAuth is not configured "
                            "(account id, client id and client secret are all needed)")
        with self._token_lock:
            now = self._clock()
            if self._token and self._token != stale and now < self._token_good_until:
                return self._token
            token, expires_in = self._fetch_token()
            self._token = token
            self._token_good_until = now + max(expires_in - TOKEN_EXPIRY_MARGIN_S, 0.0)
            self._seen_tokens.append(token)
            return token

    def _fetch_token(self) -> tuple[str, float]:
        resp = self._send("POST", self.oauth_url, "Zoom OAuth token request",
                          params={"grant_type": "account_credentials",
                                  "account_id": self.account_id},
                          auth=(self.client_id, self._client_secret))
        if resp.status_code != 200:
            raise self._error(resp, "Zoom OAuth token request")
        try:
            body = resp.json()
            token = str(body["access_token"])
            expires_in = float(body.get("expires_in") or 3600)
        except (ValueError, KeyError, TypeError):
            raise ZoomApiError("Zoom OAuth token request: answer without an access_token",
                               status=resp.status_code) from None
        return token, expires_in

    def _api(self, method: str, path: str, params: dict | None = None, *,
             missing: Iterable[int] = (404,)) -> dict | None:
        """One API call as JSON; None when the status is one of `missing`."""
        what = f"Zoom API {method} {path}"
        url = self.api_base_url + path
        token = self._access_token()
        resp = self._send(method, url, what, params=params,
                          headers={"Authorization": f"Bearer {token}"})
        if resp.status_code == 401:
            # A token can die before its expiry (S2S tokens rotated, a user token revoked:
            # code 124): one new token, one more try, then the 401 stands.
            resp.close()
            token = self._access_token(stale=token)
            resp = self._send(method, url, what, params=params,
                              headers={"Authorization": f"Bearer {token}"})
        if resp.status_code in tuple(missing):
            resp.close()
            return None
        if resp.status_code >= 400:
            raise self._error(resp, what)
        if resp.status_code == 204 or not resp.content:
            return {}
        try:
            return resp.json()
        except ValueError:
            raise ZoomApiError(f"{what}: answer is not JSON", status=resp.status_code) from None

    def _paged(self, path: str, params: dict, key: str, *,
               missing: Iterable[int]) -> list[dict]:
        items: list[dict] = []
        page_token = ""
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            query = dict(params, page_size=PAGE_SIZE)
            if page_token:
                query["next_page_token"] = page_token
            body = self._api("GET", path, query, missing=missing)
            if body is None:
                break
            items.extend(body.get(key) or [])
            page_token = body.get("next_page_token") or ""
            if not page_token or page_token in seen:
                break
            seen.add(page_token)
        return items

    def _send(self, method: str, url: str, what: str, **kwargs) -> requests.Response:
        """One request with bounded retries: 429 waits out Retry-After (up to
        MAX_RETRY_WAIT_S), 5xx and no-answer back off briefly. The last answer is returned."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            last = attempt == MAX_ATTEMPTS
            try:
                resp = self._session.request(method, url, timeout=self._timeout, **kwargs)
            except requests.RequestException as exc:
                if last:
                    raise ZoomApiError(f"{what}: no answer from Zoom ({type(exc).__name__})",
                                       status=None) from exc
                self._sleep(_backoff(attempt))
                continue
            if resp.status_code == 429:
                wait = _retry_after_seconds(resp.headers.get("Retry-After"), self._clock)
                if last or (wait is not None and wait > MAX_RETRY_WAIT_S):
                    return resp
                resp.close()
                self._sleep(wait if wait is not None else _backoff(attempt))
                continue
            if resp.status_code >= 500 and not last:
                resp.close()
                self._sleep(_backoff(attempt))
                continue
            return resp
        raise AssertionError("unreachable")

    def _error(self, resp: requests.Response, what: str) -> ZoomApiError:
        code = None
        detail = ""
        try:
            body = resp.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            # API errors are {"code", "message"}; OAuth errors are {"reason", "error"}.
            code = body.get("code") if isinstance(body.get("code"), int) else None
            detail = str(body.get("message") or body.get("reason") or body.get("error") or "")
        detail = self._scrub(detail)[:200]
        retry_after = None
        if resp.status_code == 429:
            retry_after = _retry_after_seconds(resp.headers.get("Retry-After"), self._clock)
        resp.close()
        text = f"{what}: HTTP {resp.status_code}"
        if code is not None or detail:
            text += f" ({'code ' + str(code) + ': ' if code is not None else ''}{detail})"
        return ZoomApiError(text, status=resp.status_code, code=code, retry_after=retry_after)

    def _scrub(self, text: str) -> str:
        for secret in (self._client_secret, *tuple(self._seen_tokens)):
            if secret and secret in text:
                text = text.replace(secret, "[redacted]")
        return text


def _unique_emails(values: Iterable[object]) -> list[str]:
    """Stripped, non-empty, first spelling kept, duplicates (case-insensitive) dropped."""
    out: list[str] = []
    seen: set[str] = set()
    for value in values:
        email = str(value or "").strip()
        if email and email.lower() not in seen:
            seen.add(email.lower())
            out.append(email)
    return out


def _host_allowed(host: str, port: int | None, scheme: str, patterns: Sequence[str]) -> bool:
    """Whether host and port match an entry of ZOOM_DOWNLOAD_HOSTS: `host`, `*.domain`, or
    either with `:port`. An entry without a port allows the scheme's own port only, so an
    allowed name on another port (another service on the same machine) is refused."""
    default = {"https": 443, "http": 80}.get(scheme)
    for pattern in patterns:
        name, _, wanted = pattern.rpartition(":") if re.search(r":\d+$", pattern) else (pattern, "", "")
        if port != (int(wanted) if wanted else default):
            continue
        if name.startswith("*."):
            if host.endswith(name[1:]) and len(host) > len(name) - 1:
                return True
        elif host == name:
            return True
    return False


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def _type_allowed(kind: str, content_type: str) -> bool:
    if content_type in OCTET_STREAM:
        return True
    if kind == "media":
        return content_type.startswith(("video/", "audio/"))
    return content_type.startswith("text/")


def _looks_like_html(head: bytes) -> bool:
    head = head.lstrip(b"\xef\xbb\xbf").lstrip().lower()
    return head.startswith(HTML_STARTS)


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _retry_after_seconds(value: str | None, clock: Callable[[], float]) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max((when - datetime.fromtimestamp(clock(), timezone.utc)).total_seconds(), 0.0)


def _backoff(attempt: int) -> float:
    return 0.5 * 2 ** (attempt - 1)


def _describe(url: str) -> str:
    """Host and path of a URL for messages: never its query, where signatures live."""
    try:
        parts = urlsplit(url)
        text = f"{parts.hostname or '?'}{parts.path}"
    except ValueError:
        return "an unparseable URL"
    return text if len(text) <= 96 else text[:93] + "..."
