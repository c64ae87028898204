"""Google Meet through Google's own client libraries: checking Pub/Sub push tokens, reading
Workspace Events envelopes, a coach's OAuth consent, and a thin client for the Meet, Drive,
People, Workspace Events and Calendar APIs. Plain values in and out; knows nothing of Flask or
our tables.

Google's traps this module absorbs (see shared/PLATFORMS.md): google-auth skips the audience
check when given None, push tokens must also name our push service account with a verified
email, recordings are large Drive files that must stream and resume, subscription calls answer
with long-running operations, and oauthlib raises when Google grants other scopes than asked."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import http.client
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlsplit

import google.auth.exceptions
import google.auth.jwt
import google.auth.transport.requests
import google_auth_httplib2
import httplib2
import requests
from google.oauth2 import credentials as oauth2_credentials
from google.oauth2 import id_token, service_account
from googleapiclient import discovery
from googleapiclient import errors as api_errors
from googleapiclient import http as api_http

from integrations.payloads import PayloadError, load_json

log = logging.getLogger(__name__)

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"   # signs Pub/Sub push tokens
GOOGLE_AUTH_URI = "https://accounts.google.com/o/oauth2/auth"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")

# Scopes, each the narrowest that does its job:
# - meetings.space.readonly: conference records, recordings, transcripts and their entries,
#   participants; it is also the scope Workspace Events asks for to subscribe to a user's Meet
#   events (and to get/patch/delete that subscription).
# - drive.meet.readonly: download only the Drive files Meet itself created (the recording MP4),
#   not the rest of the coach's Drive as drive.readonly would.
# - People: Meet names a signed-in participant `users/{id}`; `people/{id}` shows an email only
#   through a source the caller may read. directory.readonly reads domain profiles (a coach's
#   colleagues in the same Workspace); contacts.other.readonly reads "other contacts", the
#   people the coach has emailed or met, which is where an outside client usually is. Both are
#   read-only; contacts.readonly (saved contacts) is deliberately left out. Emails stay a
#   fallback for matching a client: often neither source shows one, and then it is None.
SCOPE_MEET = "https://www.googleapis.com/auth/meetings.space.readonly"
SCOPE_DRIVE_MEET = "https://www.googleapis.com/auth/drive.meet.readonly"
SCOPE_DIRECTORY = "https://www.googleapis.com/auth/directory.readonly"
SCOPE_OTHER_CONTACTS = "https://www.googleapis.com/auth/contacts.other.readonly"
SCOPES = (SCOPE_MEET, SCOPE_DRIVE_MEET, SCOPE_DIRECTORY, SCOPE_OTHER_CONTACTS)
# Asked for in the coach's consent only (not in domain-wide delegation): the ID token that comes
# with the refresh token then says which Google account connected (its `sub` is the id Meet and
# Workspace Events write as `users/{id}`) and its email.
SIGN_IN_SCOPES = ("openid", "https://www.googleapis.com/auth/userinfo.email")
# Calendar, for the briefing before a Meet session: events.list on the coach's primary calendar.
# events.owned.readonly ("see the events on Google calendars you own") is the narrowest scope
# that still shows attendees and the Meet link: "owned" is about the calendar, not who
# organised the event, and the coach owns their primary calendar, where the invitations they
# receive land too. calendar.events.readonly would add the calendars others share with the
# coach; calendar.readonly also the calendars' settings and sharing; the freebusy scopes show
# no attendees. It is asked for in the consent only, and left out of SCOPES on purpose: a
# delegated token asking for a scope the Workspace admin did not grant is refused outright (Meet
# would stop too), and a coach who unticks it keeps Meet recordings, without the briefings.
SCOPE_CALENDAR_EVENTS = "https://www.googleapis.com/auth/calendar.events.owned.readonly"
OAUTH_SCOPES = SIGN_IN_SCOPES + SCOPES + (SCOPE_CALENDAR_EVENTS,)
PEOPLE_SOURCES = ("READ_SOURCE_TYPE_PROFILE", "READ_SOURCE_TYPE_OTHER_CONTACT")

# Workspace Events types (CloudEvents `ce-type`).
RECORDING_GENERATED = "google.workspace.meet.recording.v2.fileGenerated"
TRANSCRIPT_GENERATED = "google.workspace.meet.transcript.v2.fileGenerated"
CONFERENCE_ENDED = "google.workspace.meet.conference.v2.ended"
EXPIRATION_REMINDER = "google.workspace.events.subscription.v1.expirationReminder"
SUSPENDED = "google.workspace.events.subscription.v1.suspended"
EXPIRED = "google.workspace.events.subscription.v1.expired"
MEET_EVENT_TYPES = (RECORDING_GENERATED, TRANSCRIPT_GENERATED, CONFERENCE_ENDED)
LIFECYCLE_EVENT_TYPES = (EXPIRATION_REMINDER, SUSPENDED, EXPIRED)
HANDLED_EVENT_TYPES = MEET_EVENT_TYPES + LIFECYCLE_EVENT_TYPES

MAX_SUBSCRIPTION_TTL_S = 7 * 86400          # Meet events without resource data
DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024
DOWNLOAD_ATTEMPTS = 5                       # consecutive failures without progress
NUM_RETRIES = 3                             # googleapiclient's own retries of 429/5xx
PAGE_SIZE = 100
MAX_PAGES = 1000
PUSH_CLOCK_SKEW_S = 30
CERTS_TIMEOUT_S = 5.0                       # Pub/Sub waits 10 s for the whole answer
CERTS_DEFAULT_MAX_AGE_S = 300
CERTS_MAX_AGE_CAP_S = 6 * 3600
CERTS_MIN_REFETCH_S = 60.0                  # an unknown key id refetches at most this often

# What each API is built from, and its service path under a GOOGLE_API_BASE_URL root (the
# discovery documents' `servicePath`: Drive keeps its `drive/v3/`, the others start with
# their version).
_APIS = {
    "meet": ("meet", "v2", ""),
    "drive": ("drive", "v3", "drive/v3/"),
    "people": ("people", "v1", ""),
    "workspaceevents": ("workspaceevents", "v1", ""),
    "calendar": ("calendar", "v3", "calendar/v3/"),
}

# The members of a Calendar event the briefing reads (a partial response: the description,
# location and attachments of the coach's events stay at Google).
CALENDAR_EVENT_FIELDS = (
    "nextPageToken,items(id,status,summary,start,organizer(email,self),"
    "attendees(email,self,organizer,resource,responseStatus),hangoutLink,"
    "conferenceData(conferenceId,conferenceSolution/key/type,"
    "entryPoints(entryPointType,uri,meetingCode)))")
MEET_HOST = "meet.google.com"
# How a 403's body says the access token lacks a scope: the legacy `errors[].reason` and the
# google.rpc.ErrorInfo reason (some APIs also send RFC 6750's WWW-Authenticate error).
_SCOPE_REASONS = ("insufficientPermissions", "ACCESS_TOKEN_SCOPE_INSUFFICIENT")

# google.rpc.Code of a failed long-running operation, as the HTTP status Google maps it to.
_RPC_HTTP = {1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400,
             10: 409, 11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401}

# Transport failures a request or a streamed body can raise once googleapiclient gives up:
# httplib2's own, a body cut short (http.client.IncompleteRead), sockets and TLS (OSError).
_TRANSPORT_ERRORS = (httplib2.HttpLib2Error, http.client.HTTPException, OSError)

_SEGMENT = r"[^/?#\s]+"
NAME_PATTERNS = {
    "conference": re.compile(rf"conferenceRecords/{_SEGMENT}"),
    "recording": re.compile(rf"conferenceRecords/{_SEGMENT}/recordings/{_SEGMENT}"),
    "transcript": re.compile(rf"conferenceRecords/{_SEGMENT}/transcripts/{_SEGMENT}"),
    "user": re.compile(r"users/[0-9A-Za-z_-]+"),
    "subscription": re.compile(rf"subscriptions/{_SEGMENT}"),
    "operation": re.compile(rf"operations/{_SEGMENT}"),
    "participant_session": re.compile(
        rf"conferenceRecords/{_SEGMENT}/participants/{_SEGMENT}/participantSessions/{_SEGMENT}"),
}


# --- errors ----------------------------------------------------------------------------------

class GoogleError(Exception):
    """Anything that went wrong with Google. Messages never carry a token or secret."""


class PushAuthError(GoogleError):
    """A push request whose bearer token is missing, garbled, or not Google's push identity."""


class PushCertsUnavailable(PushAuthError):
    """Google's signing certificates could not be fetched: the token is neither good nor bad
    yet, and the sender should try again later."""


class PushFormatError(GoogleError):
    """A push body that is not a Pub/Sub envelope carrying a Workspace event."""


class NotWorkspaceEvent(PushFormatError):
    """A well-formed Pub/Sub push whose message is not a Workspace event (no ce-type): some
    other publisher on the topic. It is acknowledged, or Pub/Sub would redeliver it for days."""


class GoogleApiError(GoogleError):
    """An API call Google refused or did not answer. `status` is the HTTP status (None when no
    answer came back); `retryable` says whether trying again later can help."""

    def __init__(self, status: int | None, message: str):
        super().__init__(message)
        self.status = status

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status in (408, 429) or self.status >= 500


class GoogleScopeError(GoogleApiError):
    """Google refused a call because the coach's grant lacks the scope it needs (403,
    insufficientPermissions): only connecting again, granting it, can help."""


class GoogleAuthError(GoogleApiError):
    """Our credentials were refused: a revoked or expired refresh token (the coach must
    connect again), a service account without domain-wide delegation, or a token endpoint
    that did not answer (`retryable`)."""

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(None if retryable else 401, message)
        self._retryable = retryable

    @property
    def retryable(self) -> bool:
        return self._retryable


# --- push authentication ---------------------------------------------------------------------

class CachedCertsRequest:
    """A google-auth transport that keeps each GET answer (the signing certificates) for as
    long as its Cache-Control max-age says, capped, so a push costs no outbound request.

    Thread-safe; concurrent misses may both fetch, which is harmless."""

    def __init__(self, session: requests.Session | None = None, *,
                 timeout: float = CERTS_TIMEOUT_S, clock: Callable[[], float] = time.monotonic,
                 min_refetch_s: float = CERTS_MIN_REFETCH_S):
        self._inner = google.auth.transport.requests.Request(session or requests.Session())
        self._timeout = timeout
        self._clock = clock
        self.min_refetch_s = min_refetch_s
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, float, object]] = {}   # url -> (expires, fetched, resp)

    def __call__(self, url, method="GET", body=None, headers=None, timeout=None, **kwargs):
        if method != "GET" or body is not None:
            return self._inner(url, method=method, body=body, headers=headers,
                               timeout=timeout or self._timeout, **kwargs)
        now = self._clock()
        with self._lock:
            hit = self._cache.get(url)
        if hit and now < hit[0]:
            return hit[2]
        resp = self._inner(url, method="GET", headers=headers, timeout=timeout or self._timeout,
                           **kwargs)
        if resp.status == 200:
            with self._lock:
                self._cache[url] = (now + _max_age(resp.headers), now, resp)
        return resp

    def refetch_for_unknown_key(self, url: str, key_id: str | None) -> bool:
        """Forget `url`'s cached certificates when they lack `key_id` (Google rotated its keys)
        and are at least `min_refetch_s` old, so a stream of forged key ids cannot make us
        hammer the certificate endpoint. True when forgotten."""
        if not key_id:
            return False
        with self._lock:
            hit = self._cache.get(url)
            if hit is None or self._clock() - hit[1] < self.min_refetch_s:
                return False
            try:
                known = json.loads(hit[2].data.decode("utf-8"))
            except (ValueError, UnicodeDecodeError, AttributeError):
                known = {}
            if isinstance(known, dict) and key_id in known:
                return False
            del self._cache[url]
            return True

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()


def _max_age(headers: Mapping[str, str]) -> float:
    value = ""
    for name, v in (headers or {}).items():
        if name.lower() == "cache-control":
            value = v
    for part in value.split(","):
        name, _, number = part.strip().partition("=")
        if name.lower() == "max-age":
            try:
                return float(min(max(int(number), 0), CERTS_MAX_AGE_CAP_S))
            except ValueError:
                break
        if name.lower() in ("no-store", "no-cache"):
            return 0.0
    return float(CERTS_DEFAULT_MAX_AGE_S)


_default_request: CachedCertsRequest | None = None
_default_request_lock = threading.Lock()


def default_certs_request() -> CachedCertsRequest:
    """The process-wide certificate cache `verify_push` uses when given no `request`."""
    global _default_request
    with _default_request_lock:
        if _default_request is None:
            _default_request = CachedCertsRequest()
        return _default_request


def verify_push(authorization_header: str | None, *, audience: str, service_account: str,
                certs_url: str | None = None, request=None,
                clock_skew_s: int = PUSH_CLOCK_SKEW_S) -> dict:
    """The claims of a Pub/Sub push request's `Authorization: Bearer <OIDC JWT>`, after checking
    its signature against Google's certificates, its expiry, its audience, its issuer, and that
    it was minted for `service_account` with a verified email. Raises PushAuthError (or
    PushCertsUnavailable) otherwise; never returns unverified claims."""
    if not audience:
        # google-auth skips the audience check when given None: refuse to verify instead.
        raise PushAuthError("no push audience configured")
    if not service_account:
        raise PushAuthError("no push service account configured")
    token = _bearer_token(authorization_header)
    try:
        key_id = google.auth.jwt.decode_header(token).get("kid")
    except (ValueError, TypeError, UnicodeDecodeError, binascii.Error,
            google.auth.exceptions.GoogleAuthError):
        raise PushAuthError("bearer token is not a JWT") from None
    req = request or default_certs_request()
    url = certs_url or GOOGLE_CERTS_URL
    for attempt in (1, 2):
        try:
            claims = id_token.verify_token(token, req, audience=audience, certs_url=url,
                                           clock_skew_in_seconds=clock_skew_s)
            break
        except google.auth.exceptions.TransportError:
            raise PushCertsUnavailable("could not fetch Google's signing certificates") from None
        except (ValueError, TypeError, KeyError, ImportError,
                google.auth.exceptions.GoogleAuthError) as exc:
            if (attempt == 1 and isinstance(req, CachedCertsRequest)
                    and req.refetch_for_unknown_key(url, key_id)):
                continue
            raise PushAuthError(f"token rejected ({_scrub_token(exc, token)})") from None
    if not isinstance(claims, Mapping):
        raise PushAuthError("token rejected (claims are not an object)")
    if claims.get("aud") != audience:                    # belt and braces over google-auth
        raise PushAuthError("token rejected (wrong audience)")
    if claims.get("iss") not in GOOGLE_ISSUERS:
        raise PushAuthError("token rejected (issuer is not Google)")
    email = claims.get("email")
    if not isinstance(email, str) or email.casefold() != service_account.casefold():
        raise PushAuthError("token rejected (not the configured push service account)")
    if claims.get("email_verified") is not True:
        raise PushAuthError("token rejected (email not verified)")
    return dict(claims)


def _bearer_token(header: str | None) -> str:
    if not header or not isinstance(header, str):
        raise PushAuthError("no bearer token")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise PushAuthError("Authorization header is not a bearer token")
    if token.count(".") != 2:
        raise PushAuthError("bearer token is not a JWT")
    return token


def _scrub_token(exc: Exception, token: str) -> str:
    """An exception's text without the token: google-auth quotes malformed tokens whole."""
    text = f"{type(exc).__name__}: {exc}"
    for part in sorted({token, *token.split(".")}, key=len, reverse=True):
        if len(part) >= 8:
            text = text.replace(part, "[token]")
    return text[:200]


# --- push envelopes --------------------------------------------------------------------------

# Which member of a Workspace event's data names the resource, by event type.
_RESOURCE_KEYS = {
    RECORDING_GENERATED: ("recording", "recording"),
    TRANSCRIPT_GENERATED: ("transcript", "transcript"),
    CONFERENCE_ENDED: ("conferenceRecord", "conference"),
    "google.workspace.meet.conference.v2.started": ("conferenceRecord", "conference"),
    EXPIRATION_REMINDER: ("subscription", "subscription"),
    SUSPENDED: ("subscription", "subscription"),
    EXPIRED: ("subscription", "subscription"),
}
_SUBSCRIPTION_SOURCE = "//workspaceevents.googleapis.com/"


@dataclass(frozen=True)
class PushMessage:
    """One Workspace event as Pub/Sub pushed it.

    `subscription` is the Pub/Sub subscription that pushed; `workspace_subscription` the
    Workspace Events subscription (`subscriptions/ID`) the event came through; `resource_name`
    the Meet resource (`conferenceRecords/X/recordings/Y`, ...) or, for lifecycle events, the
    Workspace Events subscription; None when the data names none (unknown types only)."""
    message_id: str
    ce_id: str | None
    ce_type: str
    ce_subject: str | None
    subscription: str | None
    resource_name: str | None
    data: dict
    attributes: dict
    publish_time: str | None = None
    ce_source: str | None = None
    ce_time: str | None = None

    @property
    def is_lifecycle(self) -> bool:
        return self.ce_type in LIFECYCLE_EVENT_TYPES

    @property
    def handled(self) -> bool:
        return self.ce_type in HANDLED_EVENT_TYPES

    @property
    def workspace_subscription(self) -> str | None:
        if self.ce_source and self.ce_source.startswith(_SUBSCRIPTION_SOURCE):
            name = self.ce_source[len(_SUBSCRIPTION_SOURCE):]
            if NAME_PATTERNS["subscription"].fullmatch(name):
                return name
        sub = self.data.get("subscription")
        if isinstance(sub, dict) and isinstance(sub.get("name"), str):
            return sub["name"]
        return None

    @property
    def conference_name(self) -> str | None:
        """`conferenceRecords/X` of a Meet event's resource."""
        if self.resource_name and self.resource_name.startswith("conferenceRecords/"):
            return "/".join(self.resource_name.split("/")[:2])
        return None

    @property
    def dedupe_key(self) -> str:
        """`google:<ce-type>:<ce-id or messageId>:<resource name>`: a redelivery (same ce-id,
        another messageId) maps to the same key."""
        return f"google:{self.ce_type}:{self.ce_id or self.message_id}:{self.resource_name or ''}"

    def to_payload(self) -> dict:
        """A JSON-able dict (what the inbox stores); `from_payload` reads it back."""
        return {"messageId": self.message_id, "publishTime": self.publish_time,
                "subscription": self.subscription, "attributes": dict(self.attributes),
                "data": self.data, "resourceName": self.resource_name}

    @classmethod
    def from_payload(cls, payload: Mapping) -> PushMessage:
        attributes = dict(payload.get("attributes") or {})
        data = payload.get("data") or {}
        ce_type = attributes.get("ce-type") or ""
        return cls(message_id=str(payload.get("messageId") or ""),
                   ce_id=attributes.get("ce-id"), ce_type=ce_type,
                   ce_subject=attributes.get("ce-subject"),
                   subscription=payload.get("subscription"),
                   resource_name=payload.get("resourceName") or _resource_name(
                       ce_type, data, attributes.get("ce-source")),
                   data=data, attributes=attributes, publish_time=payload.get("publishTime"),
                   ce_source=attributes.get("ce-source"), ce_time=attributes.get("ce-time"))


def parse_push(body: bytes | str) -> PushMessage:
    """Decode a Pub/Sub push body carrying a Workspace event; PushFormatError when it is not
    one (not JSON, no message, no ce-type, data that is not base64 JSON, a handled event whose
    data names no well-formed resource)."""
    try:
        envelope = load_json(body)
    except PayloadError as exc:
        raise PushFormatError(str(exc)) from None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("message"), dict):
        raise PushFormatError("body has no message")
    message = envelope["message"]
    attributes = message.get("attributes") or {}
    if not isinstance(attributes, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()):
        raise PushFormatError("message.attributes is not a map of strings")
    message_id = message.get("messageId") or message.get("message_id")
    if not isinstance(message_id, str) or not message_id:
        raise PushFormatError("message has no messageId")
    ce_type = attributes.get("ce-type")
    if not ce_type:
        raise NotWorkspaceEvent(f"message {message_id[:64]} has no ce-type attribute")
    subscription = envelope.get("subscription")
    if subscription is not None and not isinstance(subscription, str):
        raise PushFormatError("subscription is not a string")
    data = _decode_data(message.get("data"))
    resource_name = _resource_name(ce_type, data, attributes.get("ce-source"))
    if ce_type in HANDLED_EVENT_TYPES and resource_name is None:
        raise PushFormatError(f"{ce_type} event names no {_RESOURCE_KEYS[ce_type][0]}")
    publish_time = message.get("publishTime") or message.get("publish_time")
    return PushMessage(message_id=message_id, ce_id=attributes.get("ce-id") or None,
                       ce_type=ce_type, ce_subject=attributes.get("ce-subject"),
                       subscription=subscription, resource_name=resource_name, data=data,
                       attributes=dict(attributes),
                       publish_time=publish_time if isinstance(publish_time, str) else None,
                       ce_source=attributes.get("ce-source"), ce_time=attributes.get("ce-time"))


def _decode_data(raw) -> dict:
    if raw in (None, ""):
        return {}
    if not isinstance(raw, str):
        raise PushFormatError("message.data is not a string")
    try:
        decoded = base64.b64decode(raw, validate=True)
        data = load_json(decoded)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise PushFormatError("message.data is not base64 JSON") from None
    if not isinstance(data, dict):
        raise PushFormatError("message.data is not a JSON object")
    return data


def _resource_name(ce_type: str, data: Mapping, ce_source: str | None) -> str | None:
    key, kind = _RESOURCE_KEYS.get(ce_type, (None, None))
    if key is None:
        # An unknown type: its one named member, if it has exactly one.
        named = [v["name"] for v in data.values()
                 if isinstance(v, dict) and isinstance(v.get("name"), str)]
        return named[0] if len(named) == 1 else None
    member = data.get(key)
    name = member.get("name") if isinstance(member, dict) else None
    if name is None and kind == "subscription" and ce_source and ce_source.startswith(
            _SUBSCRIPTION_SOURCE):
        name = ce_source[len(_SUBSCRIPTION_SOURCE):]
    if not isinstance(name, str) or not valid_name(kind, name):
        return None
    return name


def valid_name(kind: str, name: str) -> bool:
    """Whether `name` is a well-formed resource name of `kind` (see NAME_PATTERNS). Names are
    expanded into API paths with slashes kept, so `..` segments are refused too."""
    return (isinstance(name, str) and bool(NAME_PATTERNS[kind].fullmatch(name))
            and not any(seg in (".", "..") for seg in name.split("/")))


def _check_name(kind: str, name: str) -> str:
    if not valid_name(kind, name):
        raise ValueError(f"not a {kind} resource name: {name!r}")
    return name


def user_target(user: str) -> str:
    """The Workspace Events target for all meetings a user owns:
    `//cloudidentity.googleapis.com/users/{id}` from `users/{id}` or a bare id."""
    user_id = user.split("/", 1)[1] if user.startswith("users/") else user
    _check_name("user", f"users/{user_id}")
    return f"//cloudidentity.googleapis.com/users/{user_id}"


# --- credentials and the coach's consent -----------------------------------------------------

def user_credentials(refresh_token: str, *, client_id: str, client_secret: str,
                     token_uri: str = GOOGLE_TOKEN_URI,
                     scopes: Sequence[str] | None = None) -> oauth2_credentials.Credentials:
    """A coach's OAuth credentials from the stored refresh token (refreshed on first use).

    With `scopes` None each refresh gets every scope the coach granted; naming scopes narrows
    the access token, and naming one the coach did not grant makes Google refuse the refresh
    (invalid_scope), so leave it None unless narrowing on purpose."""
    return oauth2_credentials.Credentials(
        token=None, refresh_token=refresh_token, token_uri=token_uri, client_id=client_id,
        client_secret=client_secret, scopes=list(scopes) if scopes else None)


def delegated_credentials(service_account_info: Mapping, subject_email: str,
                          scopes: Sequence[str] = SCOPES, *,
                          token_uri: str | None = None) -> service_account.Credentials:
    """Service-account credentials acting as `subject_email` through domain-wide delegation
    (a Workspace admin must have granted this client id these scopes). `token_uri` overrides
    the key file's."""
    info = dict(service_account_info)
    if token_uri:
        info["token_uri"] = token_uri
    try:
        creds = service_account.Credentials.from_service_account_info(info, scopes=list(scopes))
    except (ValueError, KeyError) as exc:
        raise GoogleAuthError(f"service account key is not usable ({type(exc).__name__})") \
            from None
    return creds.with_subject(subject_email)


def pkce_verifier(client_secret: str, state: str) -> str:
    """The PKCE code verifier for one consent, derived from its `state` and our client secret
    so the callback needs nothing stored beyond the state it already checks: 43 URL-safe
    characters that no one without the secret can compute."""
    digest = hmac.new(client_secret.encode(), b"holdspace-pkce:" + state.encode(),
                      hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _flow(client_id: str, client_secret: str, redirect_uri: str, state: str, *,
          auth_uri: str, token_uri: str, scopes: Sequence[str]):
    from google_auth_oauthlib.flow import Flow
    config = {"web": {"client_id": client_id, "client_secret": client_secret,
                      "auth_uri": auth_uri, "token_uri": token_uri,
                      "redirect_uris": [redirect_uri]}}
    return Flow.from_client_config(config, scopes=list(scopes), redirect_uri=redirect_uri,
                                   state=state,
                                   code_verifier=pkce_verifier(client_secret, state))


def authorization_url(client_id: str, client_secret: str, redirect_uri: str, state: str, *,
                      auth_uri: str = GOOGLE_AUTH_URI, token_uri: str = GOOGLE_TOKEN_URI,
                      scopes: Sequence[str] = OAUTH_SCOPES,
                      login_hint: str | None = None) -> str:
    """Where to send a coach to connect Google: offline access (a refresh token), the consent
    screen every time (so a refresh token comes back even on a reconnect), incremental scopes,
    PKCE (S256). `state` must be unguessable and checked on the way back."""
    if not state:
        raise ValueError("state is required")
    flow = _flow(client_id, client_secret, redirect_uri, state, auth_uri=auth_uri,
                 token_uri=token_uri, scopes=scopes)
    extra = {"login_hint": login_hint} if login_hint else {}
    url, _ = flow.authorization_url(access_type="offline", prompt="consent",
                                    include_granted_scopes="true", **extra)
    return url


def exchange_code(code: str, *, client_id: str, client_secret: str, redirect_uri: str,
                  state: str, token_uri: str = GOOGLE_TOKEN_URI,
                  scopes: Sequence[str] = OAUTH_SCOPES, timeout: float = 30) -> dict:
    """Trade the authorization code from the redirect for tokens. Returns `refresh_token`
    (None if Google sent none), `access_token`, `expires_at` (Unix seconds), `scopes` (granted),
    `missing_scopes` (of SCOPES, not granted: the coach unticked them), and from the ID token
    `google_user_id` (the `{id}` of `users/{id}`) and `email`.

    `state` is the one the consent started with (it derives the PKCE verifier). Raises
    GoogleAuthError when Google refuses the code (used, expired, wrong redirect)."""
    flow = _flow(client_id, client_secret, redirect_uri, state, auth_uri=GOOGLE_AUTH_URI,
                 token_uri=token_uri, scopes=scopes)
    try:
        token = flow.fetch_token(code=code, timeout=timeout)
    except Warning as warning:
        # include_granted_scopes makes Google answer with every scope the coach ever granted,
        # and a coach may untick some: oauthlib raises on any difference. The token is fine.
        token = getattr(warning, "token", None)
        if token is None:
            raise
    except requests.RequestException as exc:
        raise GoogleAuthError(f"token endpoint did not answer ({type(exc).__name__})",
                              retryable=True) from None
    except Exception as exc:  # noqa: BLE001 - oauthlib's errors share no useful base
        raise GoogleAuthError(f"authorization code refused "
                              f"({_oauth_error(exc, (code, client_secret))})") from None
    granted = token.get("scope") or []
    if isinstance(granted, str):
        granted = granted.split()
    claims = {}
    if token.get("id_token"):
        # Straight from the token endpoint over TLS: the channel vouches for the issuer
        # (OpenID Connect Core 3.1.3.7), but it must still be for our client.
        try:
            claims = google.auth.jwt.decode(token["id_token"], verify=False)
        except (ValueError, google.auth.exceptions.GoogleAuthError):
            claims = {}
        if claims.get("aud") not in (client_id, None) or claims.get("iss") not in (
                None, *GOOGLE_ISSUERS):
            raise GoogleAuthError("ID token is not for this client")
    return {
        "refresh_token": token.get("refresh_token"),
        "access_token": token.get("access_token"),
        "expires_at": token.get("expires_at"),
        "scopes": list(granted),
        "missing_scopes": [s for s in SCOPES if granted and s not in granted],
        "google_user_id": claims.get("sub"),
        "email": claims.get("email") if claims.get("email_verified", True) else None,
    }


def _oauth_error(exc: Exception, secrets: Iterable[str]) -> str:
    text = getattr(exc, "error", None) or type(exc).__name__
    description = getattr(exc, "description", None)
    if description:
        text = f"{text}: {description}"
    text = str(text)
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, "[redacted]")
    return text[:200]


# --- the API client --------------------------------------------------------------------------

class _ChunkSink:
    """MediaIoBaseDownload's file: keeps the bytes objects it is given, uncopied, until taken."""

    def __init__(self):
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(data)
        return len(data)

    def take(self) -> bytes:
        parts, self._parts = self._parts, []
        return parts[0] if len(parts) == 1 else b"".join(parts)


class GoogleClient:
    """Meet v2, Drive v3, People v1, Workspace Events v1 and Calendar v3 for one set of
    credentials, through googleapiclient with the discovery documents bundled in the package
    (no network).

    `api_base_url` replaces Google's hosts with one root under which each API keeps its service
    path (tests, proxies). Not thread-safe (httplib2): one client per job or thread."""

    def __init__(self, credentials, *, api_base_url: str | None = None,
                 http: httplib2.Http | None = None, num_retries: int = NUM_RETRIES,
                 download_attempts: int = DOWNLOAD_ATTEMPTS,
                 operation_timeout_s: float = 60.0,
                 sleep: Callable[[float], None] = time.sleep):
        self.credentials = credentials
        self.api_base_url = api_base_url.rstrip("/") if api_base_url else None
        # googleapiclient takes either credentials or an http, so the credentials go in
        # through google-auth-httplib2 (which also refreshes on a 401 and retries once).
        self._http = google_auth_httplib2.AuthorizedHttp(
            credentials, http=http if http is not None else api_http.build_http())
        self.num_retries = num_retries
        self.download_attempts = download_attempts
        self.operation_timeout_s = operation_timeout_s
        self._sleep = sleep
        self._services: dict[str, object] = {}

    def __repr__(self) -> str:
        return f"GoogleClient(api_base_url={self.api_base_url!r})"

    def close(self) -> None:
        self._drop_connections()

    def __enter__(self) -> GoogleClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- Meet --------------------------------------------------------------------------------

    def get_conference(self, name: str) -> dict:
        """`conferenceRecords/{id}`: `startTime`, `endTime` (absent while running), `space`."""
        records = self._service("meet").conferenceRecords()
        return self._execute(records.get(name=_check_name("conference", name)), f"get {name}")

    def get_recording(self, name: str) -> dict:
        """A recording: `state` (STARTED, ENDED, FILE_GENERATED), `driveDestination.file` (the
        Drive file id, once FILE_GENERATED), `startTime`, `endTime`."""
        recordings = self._service("meet").conferenceRecords().recordings()
        return self._execute(recordings.get(name=_check_name("recording", name)),
                             f"get {name}")

    def recordings(self, conference_name: str) -> list[dict]:
        """Every recording of a conference (a stopped and restarted recording makes several)."""
        recordings = self._service("meet").conferenceRecords().recordings()
        request = recordings.list(parent=_check_name("conference", conference_name),
                                  pageSize=PAGE_SIZE)
        return self._list_all(recordings, request, "recordings", f"list {conference_name} recordings")

    def get_transcript(self, name: str) -> dict:
        """A transcript: `state`, `docsDestination.document`, `startTime`, `endTime`."""
        transcripts = self._service("meet").conferenceRecords().transcripts()
        return self._execute(transcripts.get(name=_check_name("transcript", name)),
                             f"get {name}")

    def transcripts(self, conference_name: str) -> list[dict]:
        transcripts = self._service("meet").conferenceRecords().transcripts()
        request = transcripts.list(parent=_check_name("conference", conference_name),
                                   pageSize=PAGE_SIZE)
        return self._list_all(transcripts, request, "transcripts",
                              f"list {conference_name} transcripts")

    def transcript_entries(self, transcript_name: str) -> list[dict]:
        """Every entry of a transcript, in order: `participant`
        (`conferenceRecords/X/participants/P`), `text`, `languageCode`, `startTime`, `endTime`.
        Meet keeps entries 30 days."""
        entries = self._service("meet").conferenceRecords().transcripts().entries()
        request = entries.list(parent=_check_name("transcript", transcript_name),
                               pageSize=PAGE_SIZE)
        return self._list_all(entries, request, "transcriptEntries",
                              f"list {transcript_name} entries")

    def participants(self, conference_name: str) -> list[dict]:
        """Every participant: `name`, `earliestStartTime`, `latestEndTime`, and one of
        `signedinUser` {`user`: `users/{id}`, `displayName`}, `anonymousUser` {`displayName`},
        `phoneUser` {`displayName`}."""
        participants = self._service("meet").conferenceRecords().participants()
        request = participants.list(parent=_check_name("conference", conference_name),
                                    pageSize=PAGE_SIZE)
        return self._list_all(participants, request, "participants",
                              f"list {conference_name} participants")

    # --- People ------------------------------------------------------------------------------

    def person_email(self, user_name: str,
                     sources: Sequence[str] = PEOPLE_SOURCES) -> str | None:
        """The email People shows us for Meet's `users/{id}`: the primary one, else the first;
        None when it is hidden from us, absent, or the person is unknown (404) or off limits
        (403)."""
        person_id = _check_name("user", user_name).split("/", 1)[1]
        people = self._service("people").people()
        request = people.get(resourceName=f"people/{person_id}", personFields="emailAddresses",
                             sources=list(sources))
        person = self._execute(request, f"get people/{person_id}", missing=(403, 404))
        if person is None:
            return None
        emails = [e for e in person.get("emailAddresses") or []
                  if isinstance(e, dict) and isinstance(e.get("value"), str) and e["value"].strip()]
        if not emails:
            return None
        primary = [e for e in emails if (e.get("metadata") or {}).get("primary")]
        return (primary or emails)[0]["value"].strip()

    # --- Drive -------------------------------------------------------------------------------

    def drive_file(self, file_id: str) -> dict:
        """A Drive file's metadata: `id`, `name`, `mimeType`, `size` (int or None),
        `md5Checksum`, `sha256Checksum` (when Drive has them)."""
        files = self._service("drive").files()
        meta = self._execute(
            files.get(fileId=file_id, supportsAllDrives=True,
                      fields="id,name,mimeType,size,md5Checksum,sha256Checksum,createdTime"),
            f"get Drive file {file_id}")
        size = meta.get("size")
        meta["size"] = int(size) if isinstance(size, (str, int)) and str(size).isdigit() else None
        return meta

    def drive_file_size(self, file_id: str) -> int | None:
        return self.drive_file(file_id)["size"]

    def download_drive_file(self, file_id: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                            start: int = 0) -> Iterator[bytes]:
        """A Drive file's bytes from offset `start`, yielded one ranged chunk at a time (memory
        stays at about one chunk however large the file).

        A 429/5xx answer or a connection that drops mid-chunk is retried with backoff and the
        download resumes with a Range from the last byte yielded, not from the start; after
        `download_attempts` consecutive failures without progress it raises GoogleApiError
        (`retryable`), having yielded only whole good chunks before. A consumer that must not
        keep a partial stream (a multipart upload) aborts on that exception."""
        if chunk_size <= 0 or start < 0:
            raise ValueError("chunk_size must be positive and start non-negative")
        what = f"download of Drive file {file_id}"
        request = self._service("drive").files().get_media(fileId=file_id,
                                                            supportsAllDrives=True)
        sink = _ChunkSink()
        downloader = api_http.MediaIoBaseDownload(sink, request, chunksize=chunk_size)
        # MediaIoBaseDownload has no public way to begin elsewhere than byte 0; its `_progress`
        # is the offset its next Range starts from.
        downloader._progress = start
        offset = start
        failures = 0
        while True:
            try:
                status, done = downloader.next_chunk(num_retries=0)
            except api_errors.HttpError as exc:
                code = exc.status_code or exc.resp.status
                if code == 416 and _range_total(exc.resp) == offset:
                    return                               # `start` was already the end
                error = GoogleApiError(code, f"{what}: HTTP {code} at byte {offset}"
                                             f"{_reason(exc)}")
            except google.auth.exceptions.RefreshError as exc:
                raise _auth_error(exc, what) from None
            except google.auth.exceptions.TransportError as exc:
                error = GoogleApiError(None, f"{what}: token refresh failed "
                                             f"({type(exc).__name__})")
            except _TRANSPORT_ERRORS as exc:
                error = GoogleApiError(None, f"{what}: connection failed at byte {offset} "
                                             f"({type(exc).__name__})")
            else:
                data = sink.take()
                offset += len(data)
                if status.total_size is not None and offset > status.total_size:
                    raise GoogleApiError(None, f"{what}: the server ignored the Range "
                                               f"(got past the {status.total_size} bytes)")
                if data:
                    failures = 0
                    yield data
                if done:
                    return
                if not data:
                    error = GoogleApiError(None, f"{what}: empty chunk at byte {offset}")
                else:
                    continue
            sink.take()
            if not error.retryable:
                raise error
            failures += 1
            if failures >= self.download_attempts:
                raise GoogleApiError(error.status, f"{error} (gave up after {failures} tries)")
            log.warning("%s; retrying from byte %d", error, offset)
            self._drop_connections()
            self._sleep(_backoff(failures))
            downloader._progress = offset

    # --- Workspace Events subscriptions ------------------------------------------------------

    def create_subscription(self, target: str, event_types: Sequence[str], topic: str,
                            ttl_seconds: int = MAX_SUBSCRIPTION_TTL_S) -> dict:
        """Subscribe `topic` (`projects/P/topics/T`) to `event_types` on `target` (see
        `user_target`); the Subscription once created (`name`, `state`, `expireTime`, ...).
        A user may hold one subscription per target: a second raises GoogleApiError 409
        (find the existing one with `list_subscriptions`)."""
        if not event_types:
            raise ValueError("event_types is empty")
        body = {"targetResource": target, "eventTypes": list(event_types),
                "notificationEndpoint": {"pubsubTopic": topic}, "ttl": _duration(ttl_seconds)}
        subs = self._service("workspaceevents").subscriptions()
        what = f"create subscription on {target}"
        return self._finish(self._execute(subs.create(body=body), what), what)

    def renew_subscription(self, name: str, ttl_seconds: int = MAX_SUBSCRIPTION_TTL_S) -> dict:
        """Extend a subscription by `ttl_seconds` from now (0: the maximum); the updated
        Subscription. 404 (GoogleApiError) once it has expired: create a new one."""
        subs = self._service("workspaceevents").subscriptions()
        what = f"renew {name}"
        request = subs.patch(name=_check_name("subscription", name), updateMask="ttl",
                             body={"ttl": _duration(ttl_seconds)})
        return self._finish(self._execute(request, what), what)

    def reactivate_subscription(self, name: str) -> dict:
        """Resume a SUSPENDED subscription once its cause is fixed (e.g. the coach
        re-consented after USER_SCOPE_REVOKED)."""
        subs = self._service("workspaceevents").subscriptions()
        what = f"reactivate {name}"
        request = subs.reactivate(name=_check_name("subscription", name), body={})
        return self._finish(self._execute(request, what), what)

    def get_subscription(self, name: str) -> dict | None:
        """The Subscription, or None when it no longer exists (expired, deleted)."""
        subs = self._service("workspaceevents").subscriptions()
        return self._execute(subs.get(name=_check_name("subscription", name)), f"get {name}",
                             missing=(404,))

    def delete_subscription(self, name: str) -> None:
        """Delete a subscription; one already gone is fine."""
        subs = self._service("workspaceevents").subscriptions()
        what = f"delete {name}"
        op = self._execute(subs.delete(name=_check_name("subscription", name),
                                       allowMissing=True), what, missing=(404,))
        if op is not None:
            try:
                self._finish(op, what)
            except GoogleApiError as exc:
                if exc.status != 404:
                    raise

    def list_subscriptions(self, event_type: str, target: str | None = None) -> list[dict]:
        """Our subscriptions for `event_type` (Workspace Events insists on one), optionally on
        one `target`."""
        query = f'event_types:"{event_type}"'
        if target:
            query += f' AND target_resource="{target}"'
        subs = self._service("workspaceevents").subscriptions()
        return self._list_all(subs, subs.list(filter=query, pageSize=PAGE_SIZE),
                              "subscriptions", "list subscriptions")

    # --- Calendar ----------------------------------------------------------------------------

    def upcoming_meet_events(self, time_min: datetime, time_max: datetime) -> list[dict]:
        """The coach's events with a Meet link on their primary calendar that are under way or
        start between `time_min` and `time_max` (aware datetimes), soonest first, every page
        read. Each is a plain dict: `id`, `start` (an aware datetime in UTC), `summary`,
        `attendees` (the emails of everyone else invited: not the coach, not rooms), `meet_code`
        and `meet_link`. Cancelled events, all-day ones and those the coach declined are left
        out. Raises GoogleScopeError when the coach's grant has no calendar scope."""
        events = self._service("calendar").events()
        request = events.list(calendarId="primary", singleEvents=True, orderBy="startTime",
                              timeMin=_rfc3339(time_min), timeMax=_rfc3339(time_max),
                              maxResults=PAGE_SIZE, fields=CALENDAR_EVENT_FIELDS)
        items = self._list_all(events, request, "items", "list calendar events")
        found = (meet_event(item) for item in items)
        return [event for event in found if event is not None]

    # --- plumbing ----------------------------------------------------------------------------

    def _service(self, key: str):
        service = self._services.get(key)
        if service is None:
            api, version, service_path = _APIS[key]
            options = None
            if self.api_base_url:
                options = {"api_endpoint": f"{self.api_base_url}/{service_path}"}
            service = discovery.build(api, version, http=self._http, static_discovery=True,
                                      cache_discovery=False, client_options=options)
            self._services[key] = service
        return service

    def _execute(self, request, what: str, *, missing: Iterable[int] = ()) -> dict | None:
        """Run one API request (googleapiclient retries 429/5xx `num_retries` times with
        backoff); its JSON body, or None when the status is one of `missing`."""
        try:
            return request.execute(num_retries=self.num_retries)
        except api_errors.HttpError as exc:
            code = exc.status_code or exc.resp.status
            if code in tuple(missing):
                return None
            kind = GoogleScopeError if code == 403 and _lacks_scope(exc) else GoogleApiError
            raise kind(code, f"{what}: HTTP {code}{_reason(exc)}") from None
        except google.auth.exceptions.RefreshError as exc:
            raise _auth_error(exc, what) from None
        except google.auth.exceptions.TransportError as exc:
            raise GoogleAuthError(f"{what}: token endpoint did not answer "
                                  f"({type(exc).__name__})", retryable=True) from None
        except _TRANSPORT_ERRORS as exc:
            self._drop_connections()
            raise GoogleApiError(None, f"{what}: no answer from Google "
                                       f"({type(exc).__name__})") from None

    def _list_all(self, collection, request, key: str, what: str) -> list[dict]:
        items: list[dict] = []
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            page = self._execute(request, what) or {}
            items.extend(i for i in page.get(key) or [] if isinstance(i, dict))
            token = page.get("nextPageToken")
            if not token or token in seen:
                break
            seen.add(token)
            request = collection.list_next(request, page)
            if request is None:
                break
        return items

    def _finish(self, operation: dict, what: str) -> dict:
        """A long-running operation's result: polled with operations.get until `done` (bounded
        by `operation_timeout_s`); its `error` raised as GoogleApiError."""
        deadline = time.monotonic() + self.operation_timeout_s
        delay = 0.25
        ops = None
        while not operation.get("done"):
            name = operation.get("name")
            if not name or not valid_name("operation", name):
                raise GoogleApiError(None, f"{what}: unfinished operation without a name")
            if time.monotonic() >= deadline:
                raise GoogleApiError(None, f"{what}: {name} still running after "
                                           f"{self.operation_timeout_s:.0f} s")
            self._sleep(delay)
            delay = min(delay * 2, 5.0)
            ops = ops or self._service("workspaceevents").operations()
            operation = self._execute(ops.get(name=name), f"{what}: poll {name}")
        error = operation.get("error")
        if error:
            code = error.get("code") if isinstance(error, dict) else None
            message = error.get("message") if isinstance(error, dict) else None
            raise GoogleApiError(_RPC_HTTP.get(code, 500),
                                 f"{what}: failed ({message or 'no message'})")
        result = dict(operation.get("response") or {})
        result.pop("@type", None)
        return result

    def _drop_connections(self) -> None:
        """Close pooled connections, so a retry after a cut body starts on a fresh socket."""
        inner = getattr(self._http, "http", None)
        for conn in list(getattr(inner, "connections", {}).values()):
            try:
                conn.close()
            except OSError:
                pass
        if inner is not None and hasattr(inner, "connections"):
            inner.connections.clear()


def _reason(exc: api_errors.HttpError) -> str:
    reason = getattr(exc, "reason", None) or ""
    reason = str(reason).strip()
    return f" ({reason[:200]})" if reason else ""


def _lacks_scope(exc: api_errors.HttpError) -> bool:
    """Whether a 403 says the access token lacks a scope, rather than that the coach may not
    see the thing (or a quota ran out)."""
    if "insufficient_scope" in str((exc.resp or {}).get("www-authenticate", "")):
        return True
    try:
        error = json.loads(exc.content or b"{}").get("error")
    except (ValueError, AttributeError):
        return False
    if not isinstance(error, dict):
        return False
    entries = [*(error.get("errors") or []), *(error.get("details") or [])]
    return any(isinstance(e, dict) and e.get("reason") in _SCOPE_REASONS for e in entries)


def meet_event(item: Mapping) -> dict | None:
    """A Calendar event as `upcoming_meet_events` returns it; None when it has no Meet link,
    no start time (all day), was cancelled, or the coach declined it."""
    start = (item.get("start") or {}).get("dateTime")
    if item.get("status") == "cancelled" or not isinstance(start, str) or not item.get("id"):
        return None
    attendees = [a for a in item.get("attendees") or [] if isinstance(a, dict)]
    if any(a.get("self") and a.get("responseStatus") == "declined" for a in attendees):
        return None
    code, link = _meet_of(item)
    if not link:
        return None
    try:
        when = datetime.fromisoformat(start.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    # The coach is `self` among the attendees, and the organizer when the event is theirs; a
    # client who sent the invitation is the organizer too, and stays.
    organizer = item.get("organizer") or {}
    coach = organizer.get("email") if organizer.get("self") else None
    others = [a["email"] for a in attendees
              if isinstance(a.get("email"), str) and not a.get("self") and not a.get("resource")
              and a["email"] != coach]
    return {"id": str(item["id"]), "start": when.astimezone(timezone.utc),
            "summary": item.get("summary") or "", "attendees": others,
            "meet_code": code, "meet_link": link}


def _meet_of(item: Mapping) -> tuple[str | None, str | None]:
    """The Meet code and link of an event: its Meet conference, or a Meet video link on an
    event whose conference is another kind (pasted in by a scheduling tool, say)."""
    conference = item.get("conferenceData") or {}
    solution = ((conference.get("conferenceSolution") or {}).get("key") or {}).get("type")
    video = [e for e in conference.get("entryPoints") or []
             if isinstance(e, dict) and e.get("entryPointType") == "video"
             and _is_meet_link(e.get("uri"))]
    meet_id = conference.get("conferenceId") if solution == "hangoutsMeet" else None
    link = item.get("hangoutLink") if _is_meet_link(item.get("hangoutLink")) else None
    link = link or (video[0]["uri"] if video else None)
    if not link and isinstance(meet_id, str) and meet_id:
        link = f"https://{MEET_HOST}/{meet_id}"      # a Meet conference whose links are omitted
    if not link:
        return None, None
    code = meet_id or (video[0].get("meetingCode") if video else None) \
        or urlsplit(link).path.strip("/") or None
    return code, link


def _is_meet_link(uri) -> bool:
    if not isinstance(uri, str):
        return False
    parts = urlsplit(uri)
    return parts.scheme == "https" and (parts.hostname or "").lower() == MEET_HOST


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("times given to Google must be timezone-aware")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _auth_error(exc: google.auth.exceptions.RefreshError, what: str) -> GoogleAuthError:
    # google-auth puts the token endpoint's error in the message (e.g. "invalid_grant: Token
    # has been expired or revoked."), never the refresh token itself.
    detail = str(exc.args[0]) if exc.args else type(exc).__name__
    return GoogleAuthError(f"{what}: credentials refused ({detail[:200]})",
                           retryable=bool(getattr(exc, "retryable", False)))


def _range_total(resp) -> int | None:
    content_range = (resp or {}).get("content-range", "") if resp is not None else ""
    try:
        return int(content_range.rsplit("/", 1)[1])
    except (IndexError, ValueError):
        return None


def _duration(seconds: int) -> str:
    seconds = int(seconds)
    if seconds < 0:
        raise ValueError("ttl_seconds must not be negative")
    return f"{seconds}s"


def _backoff(failures: int) -> float:
    return min(0.5 * 2 ** (failures - 1), 8.0)
