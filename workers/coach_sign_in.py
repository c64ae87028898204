"""A coach's sign-in: the one-time emailed (or Slack-given) link, and the server-side web
session it opens. The link is signed with itsdangerous and lives 15 minutes; its nonce is
claimed in Redis on first use, so it signs in once. The web session is a random id kept in
Redis, so signing out (or a Redis flush) ends it everywhere, not only in one browser.

The dashboard (portal/coach.py) redeems links and keeps the cookie; the Slack command and the
demo only issue links. Nothing here knows of Flask."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

LOGIN_SALT = "holdspace.coach-login"
LOGIN_TTL_SECONDS = 15 * 60
SESSION_LIFETIME = timedelta(hours=12)
AUTH_PATH = "/coach/auth/"
# Where a link may land: a dashboard page, never another site.
SAFE_NEXT = re.compile(r"/coach(?:/[A-Za-z0-9_\-/]*)?")


class LinkExpired(Exception):
    """A genuine sign-in link, older than LOGIN_TTL_SECONDS."""


class NotALink(Exception):
    """Anything else: a forged, truncated or foreign token."""


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=LOGIN_SALT)


def safe_next(path) -> str | None:
    """`path` when it is a dashboard page a link may land on, else None."""
    return path if isinstance(path, str) and SAFE_NEXT.fullmatch(path) else None


def login_link(rt, coach_id: str, next_path: str | None = None) -> str:
    """A one-time sign-in URL for this coach, valid 15 minutes (the email, Slack's "open the
    dashboard"). `next_path` (a /coach page) is where it lands."""
    payload = {"c": coach_id, "n": secrets.token_urlsafe(18)}
    if safe_next(next_path):
        payload["next"] = next_path
    return f"{rt.settings.public_base_url}{AUTH_PATH}{_serializer(rt.settings.secret_key).dumps(payload)}"


def read_link(secret_key: str, token: str) -> dict:
    """What a sign-in token says: {"c": coach id, "n": nonce, maybe "next"}; LinkExpired or
    NotALink otherwise. Reading does not use it up: `claim` does."""
    try:
        data = _serializer(secret_key).loads(token, max_age=LOGIN_TTL_SECONDS)
    except SignatureExpired:
        raise LinkExpired() from None
    except BadSignature:
        raise NotALink() from None
    if not (isinstance(data, dict) and isinstance(data.get("c"), str) and isinstance(data.get("n"), str)):
        raise NotALink()
    return data


def claim(rt, nonce: str) -> bool:
    """True for the first redemption of a link's nonce, False after. The claim outlives the
    link, so a used link cannot come back. Raises what Redis raises when it is down."""
    return bool(rt.redis.set(f"holdspace:coach-login-used:{nonce}", 1, nx=True, ex=LOGIN_TTL_SECONDS + 60))


def _web_session_key(sid: str) -> str:
    return f"holdspace:coach-web-session:{sid}"


def open_web_session(rt, coach_id: str) -> str:
    """A new web session for the coach: its id, for the cookie."""
    sid = secrets.token_urlsafe(24)
    rt.redis.set(_web_session_key(sid), coach_id, ex=int(SESSION_LIFETIME.total_seconds()))
    return sid


def web_session_is(rt, sid: str, coach_id: str) -> bool:
    """Whether web session `sid` is open and the coach's; False too when Redis cannot say."""
    try:
        stored = rt.redis.get(_web_session_key(sid))
    except Exception:  # noqa: BLE001 - without Redis no one is signed in
        return False
    return stored is not None and stored.decode() == coach_id


def close_web_session(rt, sid: str) -> None:
    rt.redis.delete(_web_session_key(sid))
