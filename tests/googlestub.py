"""A local stand-in for Google: one real HTTP server serving the OIDC signing certificates,
an OAuth 2.0 authorization and token endpoint, and the REST paths googleapiclient calls when
its `api_endpoint` is this server (Meet v2, Drive v3 with Range downloads, People v1,
Workspace Events v1, Calendar v3 events.list), plus helpers to mint Pub/Sub push tokens and load
the push fixtures in tests/fixtures/google/.

    with GoogleStub() as google:
        headers = google.push_headers()                       # Authorization: Bearer <JWT>
        google.add_drive_file("f1", SeededBlob(300 << 20, seed="rec"))
        client = GoogleClient(user_credentials(google.issue_refresh_token(), **google.oauth_kwargs()),
                              api_base_url=google.api_base_url)
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
import json
import random
import re
import secrets
import socket
import string
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlencode

from tests.localserver import LocalServer, StubHandler, page_offset, page_token

import google.auth.crypt
import google.auth.exceptions
import google.auth.jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.x509.oid import NameOID

FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures" / "google"

# The people and names the fixtures are written for.
CONFERENCE = "conferenceRecords/abc-mtng-xyz"
RECORDING = f"{CONFERENCE}/recordings/rec1"
TRANSCRIPT = f"{CONFERENCE}/transcripts/tr1"
SPACE = "spaces/jQCFfuBOdN5z"
COACH_USER = "users/11111"
COACH_EMAIL = "coach@example.com"
COACH_NAME = "Alex Morgan"
CLIENT_USER = "users/22222"
CLIENT_EMAIL = "client@example.com"
CLIENT_NAME = "Sam Rivera"
WORKSPACE_SUBSCRIPTION = "subscriptions/meet-user-11111-a1b2c3"
PUBSUB_SUBSCRIPTION = "projects/holdspace-test/subscriptions/meet-events-push"
PUBSUB_TOPIC = "projects/holdspace-test/topics/meet-events"

PUSH_AUDIENCE = "https://holdspace.example.com/webhooks/google"
PUSH_SERVICE_ACCOUNT = "meet-push@holdspace-test.iam.gserviceaccount.com"

SCOPE_MEET = "https://www.googleapis.com/auth/meetings.space.readonly"
# Which granted scopes let a token through to each API, as Google's discovery documents list
# them (the subset this stub cares about).
_API_SCOPES = {
    "meet": {SCOPE_MEET, "https://www.googleapis.com/auth/meetings.space.created"},
    "drive": {"https://www.googleapis.com/auth/drive.meet.readonly",
              "https://www.googleapis.com/auth/drive.readonly",
              "https://www.googleapis.com/auth/drive"},
    "people": {"https://www.googleapis.com/auth/directory.readonly",
               "https://www.googleapis.com/auth/contacts.other.readonly",
               "https://www.googleapis.com/auth/contacts.readonly"},
    "events": {SCOPE_MEET},
    # The scopes that show an event's attendees and conference (not the freebusy ones).
    "calendar": {"https://www.googleapis.com/auth/calendar.events.owned.readonly",
                 "https://www.googleapis.com/auth/calendar.events.owned",
                 "https://www.googleapis.com/auth/calendar.events.readonly",
                 "https://www.googleapis.com/auth/calendar.events",
                 "https://www.googleapis.com/auth/calendar.readonly",
                 "https://www.googleapis.com/auth/calendar"},
}
# What Google names the method a token lacked a scope for (ErrorInfo metadata).
_API_METHODS = {"meet": ("meet.googleapis.com", "google.apps.meet.v2"),
                "drive": ("drive.googleapis.com", "drive.v3"),
                "people": ("people.googleapis.com", "people.v1"),
                "events": ("workspaceevents.googleapis.com", "google.apps.events.subscriptions.v1"),
                "calendar": ("calendar-json.googleapis.com", "calendar.v3.Events.List")}
CALENDAR_MAX_RESULTS = 2500
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# google-auth addresses service-account assertions to Google's token URI whatever token_uri
# the key file names, and Google accepts that audience only.
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
MiB = 1 << 20


# --- keys and certificates -------------------------------------------------------------------

@dataclass(frozen=True)
class SigningKey:
    """An RSA key with a self-signed certificate, as Google serves its token-signing keys."""
    key_id: str
    private_pem: bytes
    certificate_pem: str

    @classmethod
    def generate(cls, key_id: str | None = None, common_name: str = "holdspace-test") -> SigningKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = dt.datetime.now(dt.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=30))
                .sign(key, hashes.SHA256()))
        private_pem = key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
        return cls(key_id=key_id or secrets.token_hex(20), private_pem=private_pem,
                   certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode())

    @property
    def signer(self) -> google.auth.crypt.RSASigner:
        return google.auth.crypt.RSASigner.from_string(self.private_pem, key_id=self.key_id)

    def sign(self, claims: dict) -> str:
        return google.auth.jwt.encode(self.signer, claims).decode()


# --- deterministic big files -----------------------------------------------------------------

class SeededBlob:
    """`size` bytes generated block by block (1 MiB) from a PRNG seeded with `seed` and the
    block's index: any range can be served, or recomputed by a test, without the file ever
    being in memory. It begins like an MP4 (an `ftyp` box).

    The PRNG is AES-256-CTR's keystream (key: SHA-256 of the seed; counter: the block index in
    the high 64 bits), which makes 300 MB in a fraction of a second."""

    BLOCK = MiB
    HEADER = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"

    def __init__(self, size: int, seed: str = "recording"):
        self.size = int(size)
        self.seed = seed
        self._key = hashlib.sha256(seed.encode()).digest()

    def block(self, index: int) -> bytes:
        length = min(self.BLOCK, self.size - index * self.BLOCK)
        if length <= 0:
            return b""
        counter = (index << 64).to_bytes(16, "big")
        data = Cipher(algorithms.AES(self._key), modes.CTR(counter)).encryptor().update(
            bytes(length))
        if index == 0:
            head = self.HEADER[:length]
            data = head + data[len(head):]
        return data

    def iter_range(self, start: int, end: int) -> Iterator[bytes]:
        """Bytes `start`..`end` inclusive, in pieces of at most one block."""
        end = min(end, self.size - 1)
        index = start // self.BLOCK
        while start <= end:
            block = self.block(index)
            lo = start - index * self.BLOCK
            hi = min(len(block), end - index * self.BLOCK + 1)
            yield block[lo:hi]
            start = (index + 1) * self.BLOCK
            index += 1

    def read(self, start: int, length: int) -> bytes:
        return b"".join(self.iter_range(start, start + length - 1)) if length > 0 else b""

    def sha256(self) -> str:
        h = hashlib.sha256()
        for piece in self.iter_range(0, self.size - 1):
            h.update(piece)
        return h.hexdigest()


class _BytesSource:
    def __init__(self, data: bytes):
        self.data = bytes(data)
        self.size = len(self.data)

    def iter_range(self, start: int, end: int) -> Iterator[bytes]:
        for i in range(start, min(end, self.size - 1) + 1, MiB):
            yield self.data[i:min(i + MiB, end + 1)]

    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class _FactorySource:
    """Bytes from a generator factory (called anew per request, skipping to the range)."""

    def __init__(self, factory: Callable[[], Iterable[bytes]], size: int):
        self.factory = factory
        self.size = int(size)

    def iter_range(self, start: int, end: int) -> Iterator[bytes]:
        pos = 0
        for piece in self.factory():
            lo, hi = pos, pos + len(piece)
            pos = hi
            if hi <= start:
                continue
            if lo > end:
                break
            yield piece[max(start - lo, 0):min(end + 1 - lo, len(piece))]

    def sha256(self) -> str:
        h = hashlib.sha256()
        for piece in self.factory():
            h.update(piece)
        return h.hexdigest()


# --- state -----------------------------------------------------------------------------------

@dataclass
class DriveFile:
    file_id: str
    source: object                  # SeededBlob, _BytesSource or _FactorySource
    name: str
    mime_type: str
    served: int = 0                 # bytes actually written to clients
    media_requests: list[tuple[int, int | None, int]] = field(default_factory=list)
    failures: list[list] = field(default_factory=list)   # [mode, times, after_bytes]

    @property
    def size(self) -> int:
        return self.source.size


@dataclass
class AccessToken:
    subject: str                    # the user id, or the delegated subject's email
    scopes: frozenset[str]
    expires_at: float
    valid: bool = True


class GoogleStub(LocalServer):
    """Google on 127.0.0.1. See the module docstring; state goes in with `add_*`, and what
    happened is read from `requests`, `token_requests()`, `drive_ranges()`,
    `drive_bytes_served()` and `subscription()`."""

    client_id = "stub-client-id.apps.googleusercontent.com"
    client_secret = "stub-client-secret-R7x2"
    push_audience = PUSH_AUDIENCE
    push_service_account = PUSH_SERVICE_ACCOUNT

    handler_class = None  # set below, once _Handler is defined

    def __init__(self, *, page_size: int = 2, expires_in: int = 3600,
                 operation_polls: int = 0, enforce_scopes: bool = True,
                 certs_max_age: int = 19000):
        self.page_size = page_size
        self.expires_in = expires_in
        self.operation_polls = operation_polls      # gets an operation answers not-done
        self.enforce_scopes = enforce_scopes
        self.certs_max_age = certs_max_age
        self.key = SigningKey.generate()
        self._served_keys = [self.key]
        self.service_account_key = SigningKey.generate()
        self.service_account_email = "holdspace-dwd@holdspace-test.iam.gserviceaccount.com"
        # Who consents at the authorization endpoint, and what the consent grants beyond or
        # instead of what was asked (None: exactly what was asked).
        self.consenting_user = (COACH_USER, COACH_EMAIL)
        self.grant_scopes: list[str] | None = None
        super().__init__()
        self._ids = itertools.count(1)
        self._access_tokens: dict[str, AccessToken] = {}
        self._refresh_tokens: dict[str, dict] = {}        # token -> {user, scopes, valid}
        self._codes: dict[str, dict] = {}
        self._conferences: dict[str, dict] = {}
        self._participants: dict[str, list[dict]] = {}
        self._recordings: dict[str, dict] = {}
        self._transcripts: dict[str, dict] = {}
        self._entries: dict[str, list[dict]] = {}
        self._people: dict[str, list[dict]] = {}
        self._files: dict[str, DriveFile] = {}
        self._subscriptions: dict[str, dict] = {}
        self._operations: dict[str, dict] = {}
        self._calendars: dict[str, dict[str, dict]] = {}   # user -> event id -> event
        self._calendar_owners: dict[str, str] = {}         # user -> their email (the calendar id)
        self._failures: list[list] = []                   # [path_prefix, status, times]

    @property
    def api_base_url(self) -> str:
        """What GOOGLE_API_BASE_URL / GoogleClient(api_base_url=...) should be."""
        return self.base_url

    @property
    def certs_url(self) -> str:
        return self.base_url + "/oauth2/v1/certs"

    @property
    def token_url(self) -> str:
        return self.base_url + "/token"

    @property
    def auth_url(self) -> str:
        return self.base_url + "/o/oauth2/auth"

    def oauth_kwargs(self) -> dict:
        """client_id, client_secret and token_uri for `user_credentials`."""
        return {"client_id": self.client_id, "client_secret": self.client_secret,
                "token_uri": self.token_url}

    def env(self) -> dict[str, str]:
        """GOOGLE_* settings pointing holdspace at this stub."""
        return {"GOOGLE_PUBSUB_AUDIENCE": self.push_audience,
                "GOOGLE_PUBSUB_SERVICE_ACCOUNT": self.push_service_account,
                "GOOGLE_CERTS_URL": self.certs_url, "GOOGLE_API_BASE_URL": self.api_base_url}

    # --- recorded requests -------------------------------------------------------------------



    def token_requests(self, grant_type: str | None = None) -> list[dict[str, str]]:
        """The form of every token request (with `grant_type`), oldest first."""
        forms = [r.form() for r in self.requests_to("/token", "POST")]
        return [f for f in forms if grant_type is None or f.get("grant_type") == grant_type]


    def fail_next(self, path_prefix: str, status: int, *, times: int = 1) -> None:
        """The next `times` requests under `path_prefix` answer `status` (Google's error body)."""
        with self._lock:
            self._failures.append([path_prefix, status, times])

    # --- push tokens -------------------------------------------------------------------------

    def push_claims(self, **overrides) -> dict:
        now = int(time.time())
        claims = {"aud": self.push_audience, "azp": "112233445566778899000",
                  "email": self.push_service_account, "email_verified": True,
                  "exp": now + 3600, "iat": now, "iss": "https://accounts.google.com",
                  "sub": "112233445566778899000"}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def push_token(self, *, key: SigningKey | None = None, **overrides) -> str:
        """An OIDC token as Pub/Sub mints for a push; any claim can be overridden (None drops
        it). `key` signs instead of the served key (a forgery when its certificate is not
        served)."""
        return (key or self.key).sign(self.push_claims(**overrides))

    def push_headers(self, **overrides) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.push_token(**overrides)}",
                "Content-Type": "application/json"}

    def rotate_key(self, *, keep_old: bool = False) -> SigningKey:
        """Sign with a new key and serve its certificate (and the old one's, with keep_old)."""
        with self._lock:
            new = SigningKey.generate()
            self._served_keys = ([*self._served_keys, new] if keep_old else [new])
            self.key = new
            return new

    def certificates(self) -> dict[str, str]:
        with self._lock:
            return {k.key_id: k.certificate_pem for k in self._served_keys}

    # --- OAuth -------------------------------------------------------------------------------

    def issue_refresh_token(self, user: str = COACH_USER, scopes: Iterable[str] | None = None) -> str:
        """A refresh token as if `user` had consented to `scopes` (default: holdspace's)."""
        if scopes is None:
            from integrations.google import SCOPES
            scopes = SCOPES
        token = f"1//stub-refresh-{next(self._ids)}-{secrets.token_urlsafe(12)}"
        with self._lock:
            self._refresh_tokens[token] = {"user": user, "scopes": frozenset(scopes), "valid": True}
        return token

    def revoke_refresh_token(self, token: str) -> None:
        with self._lock:
            self._refresh_tokens[token]["valid"] = False

    def expire_access_tokens(self) -> None:
        """Every access token issued so far answers 401 from now on."""
        with self._lock:
            for token in self._access_tokens.values():
                token.valid = False

    def service_account_info(self) -> dict:
        """A service-account key file (JSON) whose key this stub knows and whose token_uri is
        this stub."""
        return {
            "type": "service_account", "project_id": "holdspace-test",
            "private_key_id": self.service_account_key.key_id,
            "private_key": self.service_account_key.private_pem.decode(),
            "client_email": self.service_account_email, "client_id": "104400000000000000001",
            "auth_uri": self.auth_url, "token_uri": self.token_url,
            "auth_provider_x509_cert_url": self.certs_url,
            "client_x509_cert_url": f"{self.base_url}/robot/v1/metadata/x509/dwd",
            "universe_domain": "googleapis.com",
        }

    def access_token_info(self, token: str) -> AccessToken | None:
        with self._lock:
            return self._access_tokens.get(token)

    # --- Meet --------------------------------------------------------------------------------

    def add_conference(self, name: str = CONFERENCE, *, start_time: str = "2024-05-14T15:00:03Z",
                       end_time: str | None = "2024-05-14T16:01:10Z", space: str = SPACE) -> dict:
        record = {"name": name, "startTime": start_time, "space": space,
                  "expireTime": "2024-06-13T16:01:10Z"}
        if end_time:
            record["endTime"] = end_time
        with self._lock:
            self._conferences[name] = record
            self._participants.setdefault(name, [])
        return record

    def add_participant(self, conference: str = CONFERENCE, *, user: str | None = None,
                        display_name: str, kind: str = "signedin",
                        participant_id: str | None = None) -> dict:
        """`kind`: signedin (with `user`), anonymous or phone."""
        pid = participant_id or f"p{next(self._ids)}"
        person = {"displayName": display_name}
        if kind == "signedin":
            person["user"] = user
            key = "signedinUser"
        else:
            key = {"anonymous": "anonymousUser", "phone": "phoneUser"}[kind]
        participant = {"name": f"{conference}/participants/{pid}", key: person,
                       "earliestStartTime": "2024-05-14T15:00:03Z",
                       "latestEndTime": "2024-05-14T16:01:10Z"}
        with self._lock:
            self._participants.setdefault(conference, []).append(participant)
        return participant

    def add_recording(self, name: str = RECORDING, *, state: str = "FILE_GENERATED",
                      drive_file: str | None = "1AbCdEfGhIjKlMnOpQrStUvWxYz012345",
                      start_time: str = "2024-05-14T15:00:40Z",
                      end_time: str | None = "2024-05-14T16:01:05Z") -> dict:
        recording = {"name": name, "state": state, "startTime": start_time}
        if end_time:
            recording["endTime"] = end_time
        if drive_file and state == "FILE_GENERATED":
            recording["driveDestination"] = {
                "file": drive_file,
                "exportUri": f"https://drive.google.com/file/d/{drive_file}/view?usp=drive_web"}
        with self._lock:
            self._recordings[name] = recording
        return recording

    def add_transcript(self, name: str = TRANSCRIPT, *, state: str = "FILE_GENERATED",
                       document: str | None = "1TrAnScRiPtDoC0123456789",
                       entries: Iterable[dict] = ()) -> dict:
        """`entries`: dicts with `participant` (a participant name or id), `text`, and optional
        `startTime`, `endTime`, `languageCode`."""
        transcript = {"name": name, "state": state, "startTime": "2024-05-14T15:00:40Z",
                      "endTime": "2024-05-14T16:01:05Z"}
        if document and state == "FILE_GENERATED":
            transcript["docsDestination"] = {
                "document": document,
                "exportUri": f"https://docs.google.com/document/d/{document}/edit?usp=meet_tnfm_calendar"}
        conference = "/".join(name.split("/")[:2])
        made = []
        for i, entry in enumerate(entries, 1):
            participant = entry.get("participant") or "p0"
            if "/" not in participant:
                participant = f"{conference}/participants/{participant}"
            made.append({"name": f"{name}/entries/e{i:05d}", "participant": participant,
                         "text": entry["text"], "languageCode": entry.get("languageCode", "en-US"),
                         "startTime": entry.get("startTime", f"2024-05-14T15:{i // 60 % 60:02d}:{i % 60:02d}Z"),
                         "endTime": entry.get("endTime", f"2024-05-14T15:{i // 60 % 60:02d}:{i % 60:02d}.900Z")})
        with self._lock:
            self._transcripts[name] = transcript
            self._entries[name] = made
        return transcript

    # --- People ------------------------------------------------------------------------------

    def add_person(self, user: str, emails: Iterable[str] = (), *, hidden: bool = False) -> None:
        """`users/{id}` (or the bare id) with `emails` (the first primary); `hidden`: People knows
        the person but shows no email."""
        pid = user.split("/", 1)[1] if user.startswith("users/") else user
        entries = [] if hidden else [
            {"metadata": {"primary": i == 0, "verified": True, "sourcePrimary": i == 0,
                          "source": {"type": "OTHER_CONTACT" if i else "PROFILE", "id": pid}},
             "value": e} for i, e in enumerate(emails)]
        with self._lock:
            self._people[pid] = entries

    # --- Drive -------------------------------------------------------------------------------

    def add_drive_file(self, file_id: str, data, *, name: str = "Coaching session (2024-05-14 15:00 GMT+1) - Recording.mp4",
                       mime_type: str = "video/mp4", size: int | None = None) -> DriveFile:
        """`data`: bytes, a SeededBlob, or a generator factory (a callable returning an iterable
        of bytes, with `size`)."""
        if isinstance(data, (bytes, bytearray, memoryview)):
            source = _BytesSource(bytes(data))
        elif isinstance(data, SeededBlob):
            source = data
        elif callable(data):
            if size is None:
                raise ValueError("a generator factory needs size=")
            source = _FactorySource(data, size)
        else:
            raise TypeError("data must be bytes, a SeededBlob or a generator factory")
        f = DriveFile(file_id=file_id, source=source, name=name, mime_type=mime_type)
        with self._lock:
            self._files[file_id] = f
        return f

    def fail_drive(self, file_id: str, mode: str, *, times: int = 1,
                   after_bytes: int | None = None) -> None:
        """The next `times` media requests for the file fail: `mode` is an HTTP status ("500",
        "503", "429") answered before any byte, or "drop": the headers announce the whole
        range, `after_bytes` of it are sent (default half), then the connection closes."""
        if mode != "drop" and not mode.isdigit():
            raise ValueError(f"unknown failure mode {mode!r}")
        with self._lock:
            self._files[file_id].failures.append([mode, times, after_bytes])

    def drive_ranges(self, file_id: str) -> list[tuple[int, int | None, int]]:
        """(first byte, last byte or None, status) of every media request for the file."""
        with self._lock:
            return list(self._files[file_id].media_requests)

    def drive_bytes_served(self, file_id: str) -> int:
        with self._lock:
            return self._files[file_id].served

    # --- Calendar ----------------------------------------------------------------------------

    def add_calendar_event(self, start: dt.datetime, *, user: str = COACH_USER,
                           owner_email: str = COACH_EMAIL, minutes: int = 60,
                           summary: str = "Coaching session", attendees: Iterable[str] = (),
                           meet: str | None = "conference", status: str = "confirmed",
                           response: str = "accepted", rooms: Iterable[str] = (),
                           event_id: str | None = None, utc_offset_minutes: int = 330) -> dict:
        """An event on `user`'s primary calendar, organised by them, shaped as Calendar v3
        answers it. `meet`: "conference" (Google Meet added to the event: conferenceData and
        hangoutLink), "video" (only a Meet video entry point, under another conference
        solution), "zoom" (a Zoom add-on's link instead), or None (no conference at all).
        `response` is the owner's own answer (e.g. "declined"); `rooms` are resource emails.
        Times come back in the event's own offset (`utc_offset_minutes`), as Google writes
        them."""
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        eid = event_id or f"ev{next(self._ids)}{secrets.token_hex(6)}"
        zone = dt.timezone(dt.timedelta(minutes=utc_offset_minutes))
        now = _rfc3339(time.time())
        code = "-".join("".join(secrets.choice(string.ascii_lowercase) for _ in range(n))
                        for n in (3, 4, 3))             # a Meet code: abc-mnop-xyz
        me = {"email": owner_email, "self": True}
        event = {
            "kind": "calendar#event", "etag": f'"{random.randrange(10**15, 10**16)}"', "id": eid,
            "status": status, "htmlLink": f"https://www.google.com/calendar/event?eid={eid}",
            "created": now, "updated": now, "summary": summary, "creator": dict(me),
            "organizer": dict(me),
            "start": {"dateTime": start.astimezone(zone).isoformat(), "timeZone": "Asia/Kolkata"},
            "end": {"dateTime": (start + dt.timedelta(minutes=minutes)).astimezone(zone).isoformat(),
                    "timeZone": "Asia/Kolkata"},
            "iCalUID": f"{eid}@google.com", "sequence": 0,
            "attendees": [dict(me, organizer=True, responseStatus=response),
                          *({"email": e, "responseStatus": "needsAction"} for e in attendees),
                          *({"email": r, "displayName": "Coaching room", "resource": True,
                             "responseStatus": "accepted"} for r in rooms)],
            "reminders": {"useDefault": True}, "eventType": "default",
        }
        if meet == "conference":
            event["hangoutLink"] = f"https://meet.google.com/{code}"
            event["conferenceData"] = {
                "entryPoints": [{"entryPointType": "video", "uri": f"https://meet.google.com/{code}",
                                 "label": f"meet.google.com/{code}"},
                                {"entryPointType": "more", "uri": f"https://tel.meet/{code}?pin=1234",
                                 "pin": "1234"}],
                "conferenceSolution": {"key": {"type": "hangoutsMeet"}, "name": "Google Meet"},
                "conferenceId": code}
        elif meet == "video":
            event["conferenceData"] = {
                "entryPoints": [{"entryPointType": "video", "uri": f"https://meet.google.com/{code}",
                                 "label": f"meet.google.com/{code}", "meetingCode": code}],
                "conferenceSolution": {"key": {"type": "addOn"}, "name": "Scheduler"},
                "conferenceId": f"sched-{code}"}
        elif meet == "zoom":
            event["conferenceData"] = {
                "entryPoints": [{"entryPointType": "video", "uri": "https://us02web.zoom.us/j/81234567890",
                                 "label": "us02web.zoom.us/j/81234567890", "meetingCode": "81234567890"}],
                "conferenceSolution": {"key": {"type": "addOn"}, "name": "Zoom Meeting"},
                "conferenceId": "81234567890"}
        elif meet is not None:
            raise ValueError(f"unknown meet kind {meet!r}")
        with self._lock:
            self._calendars.setdefault(user, {})[eid] = event
            self._calendar_owners[user] = owner_email
        return json.loads(json.dumps(event))

    def move_calendar_event(self, event_id: str, start: dt.datetime, *, user: str = COACH_USER) -> None:
        """The owner drags the event to `start` (same length)."""
        with self._lock:
            event = self._calendars[user][event_id]
            old_start = dt.datetime.fromisoformat(event["start"]["dateTime"])
            length = dt.datetime.fromisoformat(event["end"]["dateTime"]) - old_start
            zone = old_start.tzinfo
            event["start"]["dateTime"] = start.astimezone(zone).isoformat()
            event["end"]["dateTime"] = (start + length).astimezone(zone).isoformat()
            event["sequence"] += 1
            event["updated"] = _rfc3339(time.time())

    # --- Workspace Events --------------------------------------------------------------------

    def subscription(self, name: str) -> dict | None:
        with self._lock:
            sub = self._subscriptions.get(name)
            return dict(sub) if sub else None

    def add_subscription(self, target: str, event_types: Iterable[str], *,
                         topic: str = PUBSUB_TOPIC, ttl_seconds: int = 7 * 86400,
                         authority: str = COACH_USER, name: str | None = None) -> dict:
        sub = self._new_subscription(target, list(event_types), topic, ttl_seconds, authority, name)
        return dict(sub)

    def expire_subscription(self, name: str) -> None:
        """What Google does at expireTime: the subscription is gone."""
        with self._lock:
            self._subscriptions.pop(name, None)

    def suspend_subscription(self, name: str, reason: str = "USER_SCOPE_REVOKED") -> None:
        with self._lock:
            sub = self._subscriptions[name]
            sub.update(state="SUSPENDED", suspensionReason=reason, updateTime=_rfc3339(time.time()))

    # --- internals used by the handler -------------------------------------------------------


    def _take_failure(self, path: str) -> int | None:
        with self._lock:
            for failure in self._failures:
                prefix, status, times = failure
                if path.startswith(prefix) and times > 0:
                    failure[2] -= 1
                    if failure[2] == 0:
                        self._failures.remove(failure)
                    return status
        return None

    def _take_drive_failure(self, f: DriveFile) -> tuple[str, int | None] | None:
        with self._lock:
            for failure in f.failures:
                if failure[1] > 0:
                    failure[1] -= 1
                    mode, after = failure[0], failure[2]
                    if failure[1] == 0:
                        f.failures.remove(failure)
                    return mode, after
        return None

    def _issue_access_token(self, subject: str, scopes: Iterable[str]) -> str:
        token = f"ya29.stub-{next(self._ids)}-{secrets.token_urlsafe(16)}"
        with self._lock:
            self._access_tokens[token] = AccessToken(subject=subject, scopes=frozenset(scopes),
                                                     expires_at=time.time() + self.expires_in)
        return token

    def _new_subscription(self, target, event_types, topic, ttl_seconds, authority,
                          name=None) -> dict:
        now = time.time()
        ttl = ttl_seconds if ttl_seconds and ttl_seconds > 0 else 7 * 86400
        with self._lock:
            name = name or f"subscriptions/meet-{next(self._ids)}-{secrets.token_hex(4)}"
            sub = {"name": name, "uid": secrets.token_hex(8), "targetResource": target,
                   "eventTypes": list(event_types),
                   "notificationEndpoint": {"pubsubTopic": topic},
                   "state": "ACTIVE", "authority": authority, "userAuthority": authority,
                   "createTime": _rfc3339(now), "updateTime": _rfc3339(now),
                   "expireTime": _rfc3339(now + min(ttl, 7 * 86400)),
                   "etag": secrets.token_hex(6), "reconciling": False}
            self._subscriptions[name] = sub
            return sub

    def _operation(self, kind: str, response: dict | None, error: dict | None = None) -> dict:
        with self._lock:
            name = f"operations/{kind}-{next(self._ids)}"
            op = {"name": name,
                  "metadata": {"@type": "type.googleapis.com/google.apps.events.subscriptions.v1."
                                        f"{kind.capitalize()}SubscriptionMetadata"}}
            final = dict(op, done=True)
            if error:
                final["error"] = error
            else:
                final["response"] = dict(response or {}, **{
                    "@type": "type.googleapis.com/google.apps.events.subscriptions.v1.Subscription"
                    if response is not None else "type.googleapis.com/google.protobuf.Empty"})
            self._operations[name] = {"final": final, "polls_left": self.operation_polls,
                                      "pending": op}
            return op if self.operation_polls > 0 else final

    def _poll_operation(self, name: str) -> dict | None:
        with self._lock:
            entry = self._operations.get(name)
            if entry is None:
                return None
            if entry["polls_left"] > 0:
                entry["polls_left"] -= 1
                return entry["pending"]
            return entry["final"]


def _calendar_time(value: str) -> dt.datetime | None:
    """An RFC 3339 time with an offset, as Calendar insists on; None for anything else."""
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    return parsed if parsed.tzinfo else None


def _rfc3339(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _status_name(status: int) -> str:
    return {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
            404: "NOT_FOUND", 409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED",
            500: "INTERNAL", 503: "UNAVAILABLE"}.get(status, "UNKNOWN")


_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


class _Handler(StubHandler):
    stub: GoogleStub
    server_version = "GoogleStub/1.0"

    def route(self, method: str) -> None:
        stub, path = self.stub, self.raw_path
        status = stub._take_failure(path)
        if status:
            return self._error(status, "Stub failure.")
        if path == "/oauth2/v1/certs" and method == "GET":
            return self._json(200, stub.certificates(),
                              {"Cache-Control": f"public, max-age={stub.certs_max_age}, "
                                                "must-revalidate, no-transform"})
        if path == "/token" and method == "POST":
            return self._token()
        if path == "/o/oauth2/auth" and method == "GET":
            return self._authorize()
        if path.startswith("/v2/conferenceRecords"):
            return self._api("meet", method, self._meet)
        if path.startswith("/drive/v3/files/"):
            return self._api("drive", method, self._drive)
        if path.startswith("/v1/people/"):
            return self._api("people", method, self._people)
        if path.startswith(("/v1/subscriptions", "/v1/operations/")):
            return self._api("events", method, self._events)
        if path.startswith("/calendar/v3/"):
            return self._api("calendar", method, self._calendar)
        return self._error(404, "Not found.")

    def _send(self, status: int, body: bytes, content_type: str,
              extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _json(self, status: int, body, extra: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), "application/json; charset=UTF-8", extra)

    def _error(self, status: int, message: str) -> None:
        return self._json(status, {"error": {"code": status, "message": message,
                                             "status": _status_name(status)}})

    def _oauth_error(self, status: int, error: str, description: str) -> None:
        return self._json(status, {"error": error, "error_description": description})

    def _param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def _api(self, api: str, method: str, route) -> None:
        value = self.headers.get("Authorization") or ""
        token = value[7:].strip() if value.lower().startswith("bearer ") else None
        info = self.stub.access_token_info(token) if token else None
        if info is None or not info.valid or info.expires_at < time.time():
            return self._error(401, "Request had invalid authentication credentials. Expected "
                                    "OAuth 2 access token, login cookie or other valid "
                                    "authentication credential.")
        if self.stub.enforce_scopes and not (info.scopes & _API_SCOPES[api]):
            return self._scope_error(api)
        return route(method, info)

    def _scope_error(self, api: str) -> None:
        """Google's answer to a token without the API's scope: the legacy reason and the
        google.rpc.ErrorInfo beside the message."""
        service, method = _API_METHODS[api]
        return self._json(403, {"error": {
            "code": 403, "message": "Request had insufficient authentication scopes.",
            "errors": [{"message": "Insufficient Permission", "domain": "global",
                        "reason": "insufficientPermissions"}],
            "status": "PERMISSION_DENIED",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                         "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT", "domain": "googleapis.com",
                         "metadata": {"service": service, "method": method}}]}})

    def _paged(self, items: list, key: str) -> None:
        try:
            requested = int(self._param("pageSize") or 100)
        except ValueError:
            return self._error(400, "Invalid pageSize.")
        size = max(1, min(requested, self.stub.page_size))
        offset = page_offset(self._param("pageToken"))
        if offset is None:
            return self._error(400, "Invalid page token.")
        body = {key: items[offset:offset + size]}
        if offset + size < len(items):
            body["nextPageToken"] = page_token(offset + size)
        return self._json(200, body)

    # --- OAuth -------------------------------------------------------------------------------

    def _client_ok(self, form: dict) -> bool:
        stub = self.stub
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        auth = self.headers.get("Authorization") or ""
        if auth.lower().startswith("basic "):
            try:
                client_id, _, client_secret = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                return False
            client_id, client_secret = unquote(client_id), unquote(client_secret)
        return client_id == stub.client_id and client_secret == stub.client_secret

    def _token(self) -> None:
        stub = self.stub
        form = {k: v[0] for k, v in parse_qs(self.body.decode(), keep_blank_values=True).items()}
        grant = form.get("grant_type")
        if grant == JWT_BEARER:
            return self._jwt_bearer(form)
        if not self._client_ok(form):
            return self._oauth_error(401, "invalid_client", "The OAuth client was not found.")
        if grant == "refresh_token":
            with stub._lock:
                record = stub._refresh_tokens.get(form.get("refresh_token") or "")
            if not record or not record["valid"]:
                return self._oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
            requested = set((form.get("scope") or "").split()) or set(record["scopes"])
            if not requested <= record["scopes"]:
                return self._oauth_error(400, "invalid_scope",
                                         "Some requested scopes were invalid.")
            token = stub._issue_access_token(record["user"], requested)
            return self._json(200, {"access_token": token, "expires_in": stub.expires_in,
                                    "scope": " ".join(sorted(requested)),
                                    "token_type": "Bearer"})
        if grant == "authorization_code":
            with stub._lock:
                code = stub._codes.pop(form.get("code") or "", None)
            if code is None:
                return self._oauth_error(400, "invalid_grant", "Malformed auth code.")
            if form.get("redirect_uri") != code["redirect_uri"]:
                return self._oauth_error(400, "redirect_uri_mismatch", "Bad Request")
            if code.get("challenge"):
                verifier = form.get("code_verifier") or ""
                digest = hashlib.sha256(verifier.encode()).digest()
                if base64.urlsafe_b64encode(digest).decode().rstrip("=") != code["challenge"]:
                    return self._oauth_error(400, "invalid_grant", "Invalid code verifier.")
            user, email = code["user"]
            scopes = code["scopes"]
            refresh = stub.issue_refresh_token(user, scopes)
            access = stub._issue_access_token(user, scopes)
            now = int(time.time())
            id_token = stub.key.sign({
                "iss": "https://accounts.google.com", "azp": stub.client_id,
                "aud": stub.client_id, "sub": user.split("/", 1)[1], "email": email,
                "email_verified": True, "at_hash": "stub", "iat": now, "exp": now + 3600})
            return self._json(200, {"access_token": access, "expires_in": stub.expires_in,
                                    "refresh_token": refresh, "scope": " ".join(scopes),
                                    "token_type": "Bearer", "id_token": id_token})
        return self._oauth_error(400, "unsupported_grant_type", "Invalid grant_type.")

    def _jwt_bearer(self, form: dict) -> None:
        stub = self.stub
        try:
            claims = google.auth.jwt.decode(form.get("assertion") or "",
                                            certs=stub.service_account_key.certificate_pem,
                                            audience=[GOOGLE_TOKEN_URI, stub.token_url])
        except (ValueError, google.auth.exceptions.GoogleAuthError):
            return self._oauth_error(400, "invalid_grant", "Invalid JWT Signature.")
        if claims.get("iss") != stub.service_account_email:
            return self._oauth_error(400, "invalid_grant", "Invalid issuer.")
        if not claims.get("sub"):
            return self._oauth_error(400, "invalid_grant", "Not a delegated request.")
        scopes = (claims.get("scope") or "").split()
        token = stub._issue_access_token(claims["sub"], scopes)
        return self._json(200, {"access_token": token, "expires_in": stub.expires_in,
                                "token_type": "Bearer"})

    def _authorize(self) -> None:
        """Google's consent screen, consenting at once: a redirect back with a code."""
        stub = self.stub
        p = self._param
        if p("client_id") != stub.client_id or p("response_type") != "code":
            return self._oauth_error(400, "invalid_request", "Bad client or response type.")
        asked = (p("scope") or "").split()
        scopes = list(stub.grant_scopes) if stub.grant_scopes is not None else asked
        code = f"4/stub-code-{secrets.token_urlsafe(16)}"
        with stub._lock:
            stub._codes[code] = {"redirect_uri": p("redirect_uri"), "user": stub.consenting_user,
                                 "scopes": scopes, "challenge": p("code_challenge")}
        query = urlencode({"state": p("state") or "", "code": code, "scope": " ".join(scopes)})
        self.send_response(302)
        self.send_header("Location", f"{p('redirect_uri')}?{query}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    # --- Meet --------------------------------------------------------------------------------

    def _meet(self, method: str, info: AccessToken) -> None:
        stub = self.stub
        if method != "GET":
            return self._error(405, "Method not allowed.")
        name = unquote(self.raw_path[len("/v2/"):])
        seg = name.split("/")
        conference = "/".join(seg[:2])
        with stub._lock:
            if conference not in stub._conferences:
                return self._error(404, "Requested entity was not found.")
            if len(seg) == 2:
                return self._json(200, stub._conferences[conference])
            kind = seg[2]
            if len(seg) == 3 and kind == "participants":
                items = list(stub._participants.get(conference, []))
                return self._paged(items, "participants")
            if len(seg) == 3 and kind in ("recordings", "transcripts"):
                table = stub._recordings if kind == "recordings" else stub._transcripts
                items = [v for k, v in table.items() if k.startswith(conference + "/")]
                return self._paged(items, kind)
            if len(seg) == 4 and kind in ("recordings", "transcripts"):
                table = stub._recordings if kind == "recordings" else stub._transcripts
                found = table.get(name)
                return (self._json(200, found) if found
                        else self._error(404, "Requested entity was not found."))
            if len(seg) == 5 and kind == "transcripts" and seg[4] == "entries":
                transcript = "/".join(seg[:4])
                if transcript not in stub._entries:
                    return self._error(404, "Requested entity was not found.")
                return self._paged(list(stub._entries[transcript]), "transcriptEntries")
        return self._error(404, "Requested entity was not found.")

    # --- People ------------------------------------------------------------------------------

    def _people(self, method: str, info: AccessToken) -> None:
        if method != "GET":
            return self._error(405, "Method not allowed.")
        if not self._param("personFields"):
            return self._error(400, "personFields mask is required. Please specify one or "
                                    "more valid paths.")
        pid = unquote(self.raw_path[len("/v1/people/"):])
        with self.stub._lock:
            emails = self.stub._people.get(pid)
        if emails is None:
            return self._error(404, "Requested entity was not found.")
        person = {"resourceName": f"people/{pid}", "etag": "%EgUBAi43PRoEAQIFByIMbm90LXRoZS1ldGFn"}
        if emails and "emailAddresses" in self._param("personFields"):
            person["emailAddresses"] = emails
        return self._json(200, person)

    # --- Drive -------------------------------------------------------------------------------

    def _drive(self, method: str, info: AccessToken) -> None:
        stub = self.stub
        if method != "GET":
            return self._error(405, "Method not allowed.")
        file_id = unquote(self.raw_path[len("/drive/v3/files/"):])
        with stub._lock:
            f = stub._files.get(file_id)
        if f is None:
            return self._error(404, f"File not found: {file_id}.")
        if self._param("alt") != "media":
            meta = {"kind": "drive#file", "id": f.file_id, "name": f.name,
                    "mimeType": f.mime_type, "size": str(f.size)}
            fields = self._param("fields") or ""
            if "sha256Checksum" in fields:
                meta["sha256Checksum"] = f.source.sha256()
            return self._json(200, meta)
        return self._media(f)

    def _media(self, f: DriveFile) -> None:
        stub = self.stub
        size = f.size
        header = self.headers.get("Range")
        if header:
            m = _RANGE.match(header.strip())
            if not m:
                return self._error(400, "Invalid Range header.")
            start = int(m.group(1))
            end = int(m.group(2)) if m.group(2) else size - 1
            if start >= size or end < start:
                with stub._lock:
                    f.media_requests.append((start, end, 416))
                return self._send(416, b"", "text/html", {"Content-Range": f"bytes */{size}"})
            end = min(end, size - 1)
            status = 206
        else:
            start, end, status = 0, size - 1, 200
        failure = stub._take_drive_failure(f)
        if failure and failure[0] != "drop":
            with stub._lock:
                f.media_requests.append((start, end if header else None, int(failure[0])))
            return self._error(int(failure[0]), "Backend Error")
        with stub._lock:
            f.media_requests.append((start, end if header else None, status))
        length = end - start + 1
        limit = length
        if failure:
            limit = failure[1] if failure[1] is not None else length // 2
        self.send_response(status)
        self.send_header("Content-Type", f.mime_type)
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        sent = 0
        for piece in f.source.iter_range(start, end):
            if sent + len(piece) > limit:
                piece = piece[:limit - sent]
            if piece:
                self.wfile.write(piece)
                sent += len(piece)
                with stub._lock:
                    f.served += len(piece)
            if sent >= limit:
                break
        if failure:
            # Cut the connection mid-body: the client sees fewer bytes than announced.
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # --- Calendar ----------------------------------------------------------------------------

    def _calendar(self, method: str, info: AccessToken) -> None:
        """events.list on a calendar of the token's user: "primary" or the owner's email."""
        stub = self.stub
        m = re.fullmatch(r"/calendar/v3/calendars/([^/]+)/events", self.raw_path)
        if m is None:
            return self._error(404, "Not Found")
        if method != "GET":
            return self._error(405, "Method not allowed.")
        calendar_id = unquote(m.group(1))
        with stub._lock:
            owner = stub._calendar_owners.get(info.subject)
            items = [json.loads(json.dumps(e)) for e in stub._calendars.get(info.subject, {}).values()]
        if calendar_id not in ("primary", owner):
            return self._error(404, "Not Found")
        single = self._param("singleEvents") == "true"
        order = self._param("orderBy")
        if order == "startTime" and not single:
            return self._error(400, "The requested ordering is not available for the particular query.")
        bounds = []
        for name in ("timeMin", "timeMax"):
            raw = self._param(name)
            moment = _calendar_time(raw) if raw else None
            if raw and moment is None:
                return self._error(400, "Bad Request")
            bounds.append(moment)
        low, high = bounds
        try:
            requested = int(self._param("maxResults") or 250)
        except ValueError:
            return self._error(400, "Invalid Value")
        if not 1 <= requested <= CALENDAR_MAX_RESULTS:
            return self._error(400, "Invalid Value")
        if self._param("showDeleted") != "true":
            items = [e for e in items if e["status"] != "cancelled"]
        # timeMin bounds an event's end and timeMax its start, both exclusive.
        items = [e for e in items
                 if (low is None or _calendar_time(e["end"]["dateTime"]) > low)
                 and (high is None or _calendar_time(e["start"]["dateTime"]) < high)]
        if order == "startTime":
            items.sort(key=lambda e: _calendar_time(e["start"]["dateTime"]))
        size = min(requested, stub.page_size)
        offset = page_offset(self._param("pageToken"))
        if offset is None:
            return self._error(410, "The page token is no longer valid.")
        body = {"kind": "calendar#events", "etag": '"p33k1"', "summary": owner or "",
                "updated": _rfc3339(time.time()), "timeZone": "Asia/Kolkata",
                "accessRole": "owner", "defaultReminders": [{"method": "popup", "minutes": 10}],
                "items": items[offset:offset + size]}
        if offset + size < len(items):
            body["nextPageToken"] = page_token(offset + size)
        return self._json(200, body)

    # --- Workspace Events --------------------------------------------------------------------

    def _events(self, method: str, info: AccessToken) -> None:
        stub = self.stub
        path = unquote(self.raw_path[len("/v1/"):])
        if path.startswith("operations/") and method == "GET":
            op = stub._poll_operation(path)
            return self._json(200, op) if op else self._error(404, "Operation not found.")
        if path == "subscriptions" and method == "POST":
            return self._create_subscription(info)
        if path == "subscriptions" and method == "GET":
            return self._list_subscriptions()
        if path.endswith(":reactivate") and method == "POST":
            name = path[:-len(":reactivate")]
            with stub._lock:
                sub = stub._subscriptions.get(name)
                if sub is None:
                    return self._error(404, "Subscription not found.")
                sub.update(state="ACTIVE", updateTime=_rfc3339(time.time()))
                sub.pop("suspensionReason", None)
                return self._json(200, stub._operation("reactivate", dict(sub)))
        with stub._lock:
            sub = stub._subscriptions.get(path)
        if method == "GET":
            return self._json(200, sub) if sub else self._error(404, "Subscription not found.")
        if method == "DELETE":
            if sub is None:
                if self._param("allowMissing") == "true":
                    return self._json(200, stub._operation("delete", None))
                return self._error(404, "Subscription not found.")
            with stub._lock:
                stub._subscriptions.pop(path, None)
            return self._json(200, stub._operation("delete", None))
        if method == "PATCH":
            if sub is None:
                return self._error(404, "Subscription not found.")
            mask = self._param("updateMask") or ""
            body = json.loads(self.body or b"{}")
            if mask != "ttl" and "ttl" not in mask.split(","):
                return self._error(400, "Only ttl can be updated in this stub.")
            ttl = _seconds(body.get("ttl"))
            if ttl is None:
                return self._error(400, "Invalid ttl.")
            ttl = ttl or 7 * 86400
            now = time.time()
            with stub._lock:
                sub.update(expireTime=_rfc3339(now + min(ttl, 7 * 86400)),
                           updateTime=_rfc3339(now), etag=secrets.token_hex(6))
                return self._json(200, stub._operation("update", dict(sub)))
        return self._error(405, "Method not allowed.")

    def _create_subscription(self, info: AccessToken) -> None:
        stub = self.stub
        try:
            body = json.loads(self.body or b"{}")
        except ValueError:
            return self._error(400, "Invalid JSON payload received.")
        target = body.get("targetResource") or ""
        types = body.get("eventTypes") or []
        topic = (body.get("notificationEndpoint") or {}).get("pubsubTopic") or ""
        if not target.startswith("//") or not types or not topic.startswith("projects/"):
            return self._error(400, "Invalid subscription.")
        if any(not t.startswith("google.workspace.meet.") for t in types):
            return self._error(400, "Event type not supported for this target resource.")
        ttl = _seconds(body.get("ttl"))
        if ttl is None:
            return self._error(400, "Invalid ttl.")
        authority = info.subject            # users/{id}, or a delegated subject's email
        with stub._lock:
            for existing in stub._subscriptions.values():
                if existing["targetResource"] == target and existing["authority"] == authority:
                    return self._error(409, "Subscription already exists for target resource.")
            sub = stub._new_subscription(target, types, topic, ttl, authority)
        return self._json(200, stub._operation("create", dict(sub)))

    def _list_subscriptions(self) -> None:
        stub = self.stub
        query = self._param("filter") or ""
        types = re.findall(r'event_types:"([^"]+)"', query)
        targets = re.findall(r'target_resource="([^"]+)"', query)
        if not types:
            return self._error(400, "Filter must contain at least one event type.")
        with stub._lock:
            items = [dict(s) for s in stub._subscriptions.values()
                     if any(t in s["eventTypes"] for t in types)
                     and (not targets or s["targetResource"] in targets)]
        return self._paged(items, "subscriptions")


def _seconds(value) -> int | None:
    if value in (None, ""):
        return 0
    m = re.fullmatch(r"(\d+)(?:\.\d+)?s", str(value))
    return int(m.group(1)) if m else None


# --- push fixtures ---------------------------------------------------------------------------

def load_push_fixture(name: str) -> tuple[dict, bytes]:
    """A push body from tests/fixtures/google/<name>.json, as parsed JSON and as the bytes to
    POST."""
    body = (FIXTURES_DIR / f"{name}.json").read_bytes()
    return json.loads(body), body


def fixture_names() -> list[str]:
    return sorted(p.stem for p in FIXTURES_DIR.glob("*.json"))


def push_data(envelope: dict) -> dict:
    """The decoded `message.data` of a push envelope."""
    return json.loads(base64.b64decode(envelope["message"]["data"]))


def make_push(ce_type: str, data: dict, *, ce_id: str | None = None,
              message_id: str | None = None, subject: str = f"//meet.googleapis.com/{SPACE}",
              source: str = f"//workspaceevents.googleapis.com/{WORKSPACE_SUBSCRIPTION}",
              subscription: str = PUBSUB_SUBSCRIPTION) -> bytes:
    """A push body in Pub/Sub's shape for a Workspace event."""
    message_id = message_id or str(random.randrange(10**15, 10**16))
    attributes = {"ce-datacontenttype": "application/json", "ce-id": ce_id or secrets.token_hex(8),
                  "ce-source": source, "ce-specversion": "1.0", "ce-subject": subject,
                  "ce-time": "2024-05-14T16:05:12.345678Z", "ce-type": ce_type}
    envelope = {"message": {"attributes": attributes,
                            "data": base64.b64encode(json.dumps(data).encode()).decode(),
                            "messageId": message_id, "message_id": message_id,
                            "orderingKey": source, "publishTime": "2024-05-14T16:05:12.901Z",
                            "publish_time": "2024-05-14T16:05:12.901Z"},
                "subscription": subscription}
    return json.dumps(envelope, indent=2).encode()



GoogleStub.handler_class = _Handler
