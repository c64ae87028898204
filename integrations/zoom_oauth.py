"""Zoom's user-authorised OAuth app: the authorise URL a coach is sent to, and the token
endpoint's three calls (exchange a code, refresh, revoke). Plain values in and out; where the
tokens are kept, and how one refresh at a time is ensured, is the caller's.

Zoom rotates the refresh token on every refresh and the old one stops working, so a refresh
answer must be stored before anything else is done with it (shared/PLATFORMS.md)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

import requests

from integrations.zoom import ZoomApiError

DEFAULT_AUTHORIZE_URL = "https://zoom.us/oauth/authorize"

# Token-endpoint errors that say the grant itself is dead (revoked, expired after 90 days
# unused, already spent): trying again cannot help; the user must connect again.
_DEAD_GRANT = frozenset({"invalid_grant", "invalid_token", "unauthorized_client",
                         "invalid_request"})


class ZoomGrantRefused(ZoomApiError):
    """Zoom refused the code or refresh token for good (status 400/401 with a dead grant)."""

    @property
    def retryable(self) -> bool:
        return False


@dataclass(frozen=True)
class Grant:
    """What the token endpoint answered: an access token for `expires_in` seconds and the
    refresh token that replaces any earlier one."""
    access_token: str
    refresh_token: str
    expires_in: float
    scope: str

    def __repr__(self) -> str:  # tokens never reach a log through a repr
        return f"Grant(expires_in={self.expires_in}, scope={self.scope!r})"


class ZoomOAuthApp:
    def __init__(self, client_id: str, client_secret: str, *, token_url: str,
                 authorize_url: str = DEFAULT_AUTHORIZE_URL,
                 session: requests.Session | None = None,
                 timeout: tuple[float, float] = (5, 15)):
        self.client_id = client_id
        self._client_secret = client_secret
        self.token_url = token_url
        self.authorize_url = authorize_url
        # Zoom's revoke endpoint sits beside its token endpoint (…/oauth/revoke).
        self.revoke_url = token_url.rsplit("/", 1)[0] + "/revoke"
        self._session = session or requests.Session()
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"ZoomOAuthApp(client_id={self.client_id!r})"

    def authorization_url(self, redirect_uri: str, state: str) -> str:
        query = urlencode({"response_type": "code", "client_id": self.client_id,
                           "redirect_uri": redirect_uri, "state": state})
        return f"{self.authorize_url}?{query}"

    def exchange_code(self, code: str, redirect_uri: str) -> Grant:
        return self._grant({"grant_type": "authorization_code", "code": code,
                            "redirect_uri": redirect_uri}, "Zoom code exchange")

    def refresh(self, refresh_token: str) -> Grant:
        return self._grant({"grant_type": "refresh_token", "refresh_token": refresh_token},
                           "Zoom token refresh")

    def revoke(self, token: str) -> bool:
        """Ask Zoom to revoke a token; whether it said yes (a dead token is as good as revoked)."""
        try:
            resp = self._session.post(self.revoke_url, params={"token": token},
                                      auth=(self.client_id, self._client_secret),
                                      timeout=self._timeout)
        except requests.RequestException:
            return False
        resp.close()
        return resp.status_code < 500

    def _grant(self, form: dict, what: str) -> Grant:
        try:
            resp = self._session.post(self.token_url, data=form,
                                      auth=(self.client_id, self._client_secret),
                                      timeout=self._timeout)
        except requests.RequestException as exc:
            raise ZoomApiError(f"{what}: no answer from Zoom ({type(exc).__name__})") from None
        try:
            body = resp.json()
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else {}
        if resp.status_code != 200:
            error = str(body.get("error") or "")
            reason = str(body.get("reason") or error)[:120]
            text = f"{what}: HTTP {resp.status_code}" + (f" ({reason})" if reason else "")
            if resp.status_code in (400, 401) and (error in _DEAD_GRANT or not error):
                raise ZoomGrantRefused(text, status=resp.status_code)
            raise ZoomApiError(text, status=resp.status_code)
        try:
            return Grant(str(body["access_token"]), str(body["refresh_token"]),
                         float(body.get("expires_in") or 3600), str(body.get("scope") or ""))
        except (KeyError, TypeError, ValueError):
            raise ZoomApiError(f"{what}: answer without the tokens", status=200) from None
