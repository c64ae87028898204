"""A coach's own Zoom connection: its sealed tokens, one refresh at a time across every worker
and process, what happens when Zoom ends it, and the Zoom client that acts for that coach.

Zoom spends the refresh token on every refresh (the old one dies at once), so two workers that
find the access token expired must not both refresh. The connection row carries a version and a
short refresh lease: a worker claims the lease with a compare-and-swap on the version, refreshes,
and stores the new pair with the version bumped; the others wait for the new version and use
its token. A deauthorisation or disconnect bumps the version too, so a refresh that was in flight
cannot bring the tokens back."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import or_, update

from integrations.zoom import ZoomApiError, ZoomClient
from integrations.zoom_oauth import Grant, ZoomGrantRefused, ZoomOAuthApp
from models import ZoomConnection, audit, utcnow
from models import queries as q
from models.db import session_scope
from workers import notify

log = logging.getLogger(__name__)

TOKEN_PURPOSE = "zoom-{kind}-token:{coach_id}"
# A token is renewed this long before Zoom says it expires, so no call leaves with one that
# dies in flight.
EXPIRY_MARGIN = timedelta(seconds=60)
# Longer than a refresh can take (the token request times out well within it): a lease left
# by a worker killed mid-refresh frees itself.
REFRESH_LEASE = timedelta(seconds=60)
# How soon a job that found the refresh claimed by another worker runs again.
BUSY_RETRY_S = 2.0


class ZoomNotConnected(ZoomApiError):
    """The coach's Zoom connection is not usable (never made, broken, deauthorised or
    disconnected): nothing may be fetched for them until they connect again."""

    def __init__(self, message: str):
        super().__init__(message, status=401)

    @property
    def retryable(self) -> bool:
        return False


class ZoomTokenBusy(ZoomApiError):
    """Another worker is refreshing this coach's token right now: try again in a moment."""

    def __init__(self):
        super().__init__("another worker is refreshing this coach's Zoom token", retry_after=BUSY_RETRY_S)

    @property
    def retryable(self) -> bool:
        return True


def oauth_app(rt) -> ZoomOAuthApp | None:
    s = rt.settings
    if not s.zoom_connect_configured:
        return None
    return ZoomOAuthApp(s.zoom_app_client_id, s.zoom_app_client_secret, token_url=s.zoom_oauth_url,
                        authorize_url=s.zoom_authorize_url)


def _seal(rt, coach_id: str, kind: str, token: str) -> str:
    return rt.vault.seal(token.encode(), TOKEN_PURPOSE.format(kind=kind, coach_id=coach_id))


def _unseal(rt, coach_id: str, kind: str, sealed: str) -> str:
    return rt.vault.unseal(sealed, TOKEN_PURPOSE.format(kind=kind, coach_id=coach_id)).decode()


def reconnect_url(rt) -> str:
    return f"{rt.settings.public_base_url}/coach/zoom"


# --- connecting ----------------------------------------------------------------------------

class ZoomUserTaken(Exception):
    """That Zoom user is already connected to another holdspace coach."""


def connect(rt, coach_id: str, grant: Grant, me: dict, *, ip: str | None = None) -> ZoomConnection:
    """Record a coach's new connection from a code exchange and `GET /users/me`: who they are at
    Zoom, and the tokens, sealed. A reconnection replaces the old tokens and mends a broken one."""
    user_id, account_id = str(me.get("id") or ""), str(me.get("account_id") or "")
    if not user_id or not account_id:
        raise ZoomApiError("Zoom did not say which user and account connected")
    with session_scope(rt.engine) as db:
        other = q.coach_by_zoom_user(db, user_id)
        if other is not None and other.id != coach_id:
            raise ZoomUserTaken(user_id)
        coach = q.coach_by_id(db, coach_id)
        coach.zoom_user_id = user_id
        conn = q.zoom_connection_of(db, coach_id) or ZoomConnection(coach_id=coach_id, zoom_user_id=user_id,
                                                          zoom_account_id=account_id)
        conn.zoom_user_id, conn.zoom_account_id = user_id, account_id
        _store(rt, conn, grant)
        conn.token_version += 1
        conn.status, conn.status_reason, conn.connected_at = "active", None, utcnow()
        db.add(coach)
        db.add(conn)
        audit.record(db, f"coach:{coach_id}", "zoom.connected", f"coach:{coach_id}", coach_id=coach_id,
                     ip=ip, zoom_account_id=account_id)
        return conn


def _store(rt, conn: ZoomConnection, grant: Grant) -> None:
    conn.access_token_sealed = _seal(rt, conn.coach_id, "access", grant.access_token)
    conn.refresh_token_sealed = _seal(rt, conn.coach_id, "refresh", grant.refresh_token)
    conn.access_expires_at = utcnow() + timedelta(seconds=grant.expires_in)
    conn.scope = grant.scope[:500] or None
    conn.refresh_lease_until = None
    conn.updated_at = utcnow()


# --- the access token, refreshed once at a time ----------------------------------------------

def access_token(rt, coach_id: str, stale: str | None = None) -> str:
    """A live access token of the coach's own Zoom: the stored one, or, when it is near expiry
    or is `stale` (a 401 just came back for it), a refreshed one. Whichever worker claims the
    refresh makes the one call to Zoom; one that finds the refresh claimed by another raises
    ZoomTokenBusy, and its job runs again shortly, with the new token (a worker never waits).

    Raises ZoomNotConnected when there is no usable connection, ZoomApiError (retryable) when
    Zoom could not be reached."""
    for _ in range(3):  # a refresh whose connection moved on meanwhile is read once more
        with session_scope(rt.engine) as db:
            conn = q.zoom_connection_of(db, coach_id)
            if conn is None or conn.status != "active" or not conn.refresh_token_sealed:
                raise ZoomNotConnected("this coach's Zoom is not connected")
            now, version = utcnow(), conn.token_version
            token = _unseal(rt, coach_id, "access", conn.access_token_sealed) if conn.access_token_sealed else None
            if (token and token != stale and conn.access_expires_at is not None
                    and conn.access_expires_at - EXPIRY_MARGIN > now):
                return token
            claimed = db.execute(
                update(ZoomConnection)
                .where(ZoomConnection.id == conn.id, ZoomConnection.token_version == version,
                       or_(ZoomConnection.refresh_lease_until.is_(None),
                           ZoomConnection.refresh_lease_until <= now))
                .values(refresh_lease_until=now + REFRESH_LEASE)
                .execution_options(synchronize_session=False)).rowcount == 1
            if not claimed:
                raise ZoomTokenBusy()
            refresh_token = _unseal(rt, coach_id, "refresh", conn.refresh_token_sealed)
            conn_id = conn.id
        token = _refresh(rt, coach_id, conn_id, version, refresh_token)
        if token is not None:
            return token
    raise ZoomTokenBusy()


def _refresh(rt, coach_id: str, conn_id: str, version: int, refresh_token: str) -> str | None:
    """Spend the refresh token (this worker holds the lease); the new access token, or None
    when the connection changed meanwhile."""
    app = oauth_app(rt)
    if app is None:
        raise ZoomNotConnected("Zoom connect is not configured (ZOOM_APP_CLIENT_ID)")
    try:
        grant = app.refresh(refresh_token)
    except ZoomGrantRefused as exc:
        if _break(rt, coach_id, conn_id, version, str(exc)):
            raise ZoomNotConnected("Zoom refused to refresh this coach's connection") from None
        return None
    except ZoomApiError:
        _release(rt, conn_id, version)
        raise
    with session_scope(rt.engine) as db:
        conn = db.get(ZoomConnection, conn_id)
        if conn is None or conn.token_version != version or conn.status != "active":
            stored = False
        else:
            _store(rt, conn, grant)
            conn.token_version = version + 1
            db.add(conn)
            stored = True
    if not stored:
        # Deauthorised or disconnected while Zoom answered: the new grant must not live on.
        app.revoke(grant.access_token)
        return None
    log.info("Zoom token of coach %s refreshed", coach_id)
    return grant.access_token


def _release(rt, conn_id: str, version: int) -> None:
    with session_scope(rt.engine) as db:
        db.execute(update(ZoomConnection)
                   .where(ZoomConnection.id == conn_id, ZoomConnection.token_version == version)
                   .values(refresh_lease_until=None)
                   .execution_options(synchronize_session=False))


def _break(rt, coach_id: str, conn_id: str, version: int, reason: str) -> bool:
    """Zoom refused the refresh: the tokens are dead. Mark the connection broken and tell the
    coach once. False when another worker had already moved the connection on (its refresh
    spent the token this one tried: not a breakage)."""
    with session_scope(rt.engine) as db:
        conn = db.get(ZoomConnection, conn_id)
        if conn is None or conn.token_version != version:
            return False
        _end(conn, "broken", "Zoom refused to refresh the connection")
        audit.record(db, "system", "zoom.connection_broken", f"coach:{coach_id}", coach_id=coach_id,
                     reason=reason[:200])
        coach = q.coach_by_id(db, coach_id)
        notify.tell_coach(db, rt, coach, key=f"zoom-broken:{conn_id}:{version}",
                          subject="Reconnect your Zoom",
                          body="Zoom no longer accepts holdspace's connection to your account (it was "
                               "revoked, or unused for 90 days), so new recordings are not being fetched. "
                               f"Reconnect it here: {reconnect_url(rt)}")
    log.warning("Zoom connection of coach %s is broken: the refresh was refused", coach_id)
    return True


def _end(conn: ZoomConnection, status: str, reason: str) -> None:
    """Drop the tokens and make every worker's next read see it (the version moves on)."""
    conn.access_token_sealed = conn.refresh_token_sealed = None
    conn.access_expires_at = conn.refresh_lease_until = None
    conn.token_version += 1
    conn.status, conn.status_reason, conn.updated_at = status, reason, utcnow()


# --- Zoom ends it, or the coach does ----------------------------------------------------------

def deauthorized(rt, account_id: str, user_id: str) -> bool:
    """`app_deauthorized`: the user removed holdspace from their Zoom. Their tokens are deleted
    at once, the coach is told, and it is audited; False when no live connection matched (a
    repeated delivery, or a user holdspace never knew)."""
    with session_scope(rt.engine) as db:
        conn = q.zoom_connection_for_host(db, account_id, user_id)
        if conn is None or conn.status != "active":
            return False
        _end(conn, "deauthorized", "holdspace was removed from Zoom")
        db.add(conn)
        audit.record(db, "zoom", "zoom.deauthorized", f"coach:{conn.coach_id}", coach_id=conn.coach_id)
        coach = q.coach_by_id(db, conn.coach_id)
        notify.tell_coach(db, rt, coach, key=f"zoom-deauthorized:{conn.id}:{conn.token_version}",
                          subject="Zoom is disconnected",
                          body="holdspace was removed from your Zoom account, so its access is deleted and "
                               "no new recording will be fetched. What holdspace already keeps stays, under "
                               f"your clients' consent. To connect again: {reconnect_url(rt)}")
    return True


def disconnect(rt, coach_id: str, *, ip: str | None = None) -> bool:
    """The coach disconnects from the dashboard: the grant is revoked at Zoom (as far as Zoom
    answers) and the tokens are deleted here, whatever Zoom said."""
    with session_scope(rt.engine) as db:
        conn = q.zoom_connection_of(db, coach_id)
        if conn is None or conn.status != "active":
            return False
        sealed = conn.access_token_sealed
        token = _unseal(rt, coach_id, "access", sealed) if sealed else None
        _end(conn, "disconnected", "disconnected by the coach")
        db.add(conn)
        audit.record(db, f"coach:{coach_id}", "zoom.disconnected", f"coach:{coach_id}",
                     coach_id=coach_id, ip=ip)
    app = oauth_app(rt)
    if app is not None and token:
        if not app.revoke(token):
            log.warning("Zoom did not confirm revoking coach %s's token; it is deleted here", coach_id)
    return True


# --- the client that acts for a coach ---------------------------------------------------------

def zoom_for(rt, coach_id: str) -> ZoomClient | None:
    """The Zoom client to use for this coach's recordings and meetings: their own connection's,
    or, for a coach who never connected one, the practice's Server-to-Server app (which may be
    unconfigured: then only a webhook's download token can fetch). None when the coach's own
    connection exists but is not usable: nothing of theirs may be fetched until they reconnect."""
    with session_scope(rt.engine) as db:
        conn = q.zoom_connection_of(db, coach_id)
        status = conn.status if conn else None
    if status is None:
        return rt.zoom
    if status != "active":
        return None
    s = rt.settings
    return ZoomClient(None, None, None, token_source=lambda stale: access_token(rt, coach_id, stale),
                      api_base_url=s.zoom_api_base_url, oauth_url=s.zoom_oauth_url,
                      download_hosts=s.zoom_download_hosts)
