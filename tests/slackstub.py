"""A local stand-in for Slack: the Web API's chat.postMessage and auth.test, response_url hooks,
and the OAuth v2 install (the authorize page, as a user clicking "Allow", and oauth.v2.access).

Tokens are per workspace: `BOT_TOKEN` is the single workspace's (SLACK_BOT_TOKEN); each
install issues a new one for its team, which `uninstall` kills. A dead token is answered
`token_revoked`, an unknown one `invalid_auth`. Every message records the token it came with."""

from __future__ import annotations

import base64
import json
import secrets
from urllib.parse import urlencode

from tests.localserver import LocalServer, StubHandler

BOT_TOKEN = "xoxb-test-token"
APP_ID = "A0HOLDSPACE"


class _Handler(StubHandler):
    stub: "SlackStub"

    def route(self, method: str) -> None:
        sent = self.request_record
        if self.raw_path == "/oauth/v2/authorize":
            return self._authorize()
        data = (sent.json() or {}) if "json" in (self.headers.get("Content-Type") or "") else sent.form()
        if self.raw_path.startswith("/hooks/"):
            with self.stub._lock:
                self.stub.responses.append({"hook": self.raw_path.rsplit("/", 1)[1], **data})
            return self._answer(b"ok", "text/plain")
        if self.raw_path == "/api/oauth.v2.access":
            return self._json(self.stub._exchange(self.headers.get("Authorization") or "", data))
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        refusal = self.stub._refusal(token)
        if self.raw_path == "/api/auth.test":
            return self._json(refusal or self.stub._whoami(token))
        if self.raw_path == "/api/chat.postMessage":
            if refusal:
                return self._json(refusal)
            with self.stub._lock:
                self.stub.messages.append({**data, "_token": token})
                ts = f"{len(self.stub.messages)}.0001"
            return self._json({"ok": True, "channel": data.get("channel"), "ts": ts})
        self._json({"ok": False, "error": "unknown_method"})

    def _authorize(self) -> None:
        """Slack's consent page, with the user clicking "Allow": back to redirect_uri with a code."""
        q = {k: v[0] for k, v in self.query.items()}
        stub = self.stub
        if q.get("client_id") != stub.client_id or not q.get("redirect_uri") or stub.installer is None:
            return self._answer(b"invalid_client_id", "text/plain", status=400)
        code = secrets.token_urlsafe(12)
        with stub._lock:
            stub.authorizations.append(q)
            stub._codes[code] = {**stub.installer, "redirect_uri": q["redirect_uri"], "scope": q.get("scope", "")}
        self.send_response(302)
        self.send_header("Location", f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q.get('state', '')})}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _json(self, obj):
        self._answer(json.dumps(obj).encode(), "application/json")

    def _answer(self, body, ctype, status=200):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class SlackStub(LocalServer):
    handler_class = _Handler

    def __init__(self):
        super().__init__()
        self.messages: list[dict] = []      # chat.postMessage calls that went through, with "_token"
        self.responses: list[dict] = []     # posts to response_url hooks
        self.client_id = "1234567890.0987654321"
        self.client_secret = "slack-client-secret-" + secrets.token_hex(8)
        self.installer: dict | None = None  # who clicks "Allow" next (see `will_install`)
        self.authorizations: list[dict] = []
        self._codes: dict[str, dict] = {}
        self._tokens: dict[str, dict] = {}  # token -> {"team_id", "bot_user_id", "alive"}

    @property
    def api_base_url(self) -> str:
        return self.base_url + "/api/"

    @property
    def authorize_url(self) -> str:
        return self.base_url + "/oauth/v2/authorize"

    def env(self) -> dict:
        return {"SLACK_API_BASE_URL": self.api_base_url, "SLACK_CLIENT_ID": self.client_id,
                "SLACK_CLIENT_SECRET": self.client_secret, "SLACK_AUTHORIZE_URL": self.authorize_url}

    def response_url(self, name: str = "r1") -> str:
        return f"{self.base_url}/hooks/{name}"

    def dms_to(self, user_id: str) -> list[str]:
        with self._lock:
            return [m.get("text", "") for m in self.messages if m.get("channel") == user_id]

    def tokens_used_for(self, user_id: str) -> list[str]:
        with self._lock:
            return [m["_token"] for m in self.messages if m.get("channel") == user_id]

    # --- workspaces ------------------------------------------------------------------------------

    def will_install(self, team_id: str, user_id: str, team_name: str | None = None) -> None:
        """The next "Add to Slack" is approved by `user_id` in workspace `team_id`."""
        self.installer = {"team_id": team_id, "user_id": user_id, "team_name": team_name or f"Team {team_id}"}

    def bot_user_of(self, team_id: str) -> str:
        return f"U0BOT{team_id}"

    def tokens_of(self, team_id: str) -> list[str]:
        with self._lock:
            return [t for t, info in self._tokens.items() if info["team_id"] == team_id]

    def live_token(self, team_id: str) -> str:
        with self._lock:
            (token,) = [t for t, info in self._tokens.items() if info["team_id"] == team_id and info["alive"]]
            return token

    def uninstall(self, team_id: str) -> None:
        """The app is removed from the workspace: every token of it dies."""
        with self._lock:
            for info in self._tokens.values():
                if info["team_id"] == team_id:
                    info["alive"] = False

    def calls_with(self, token: str, path: str = "/api/chat.postMessage") -> int:
        return sum(1 for r in self.requests_to(path) if r.authorization == f"Bearer {token}")

    # --- the API's answers -------------------------------------------------------------------

    def _refusal(self, token: str) -> dict | None:
        if token == BOT_TOKEN:
            return None
        with self._lock:
            info = self._tokens.get(token)
        if info is None:
            return {"ok": False, "error": "invalid_auth"}
        return None if info["alive"] else {"ok": False, "error": "token_revoked"}

    def _whoami(self, token: str) -> dict:
        info = self._tokens.get(token, {"team_id": "T0SINGLE", "bot_user_id": "U0BOT"})
        return {"ok": True, "url": f"https://{info['team_id'].lower()}.slack.com/", "team_id": info["team_id"],
                "user_id": info["bot_user_id"], "bot_id": f"B{info['team_id']}"}

    def _exchange(self, authorization: str, form: dict) -> dict:
        """oauth.v2.access: the app's credentials (HTTP Basic, as slack_sdk sends them, or in
        the form), a code issued by the authorize page and not yet used, the same redirect_uri."""
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if authorization.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(authorization[6:]).decode().partition(":")
        if client_id != self.client_id:
            return {"ok": False, "error": "invalid_client_id"}
        if client_secret != self.client_secret:
            return {"ok": False, "error": "bad_client_secret"}
        with self._lock:
            grant = self._codes.pop(form.get("code") or "", None)
            if grant is None:
                return {"ok": False, "error": "invalid_code"}
            if form.get("redirect_uri") != grant["redirect_uri"]:
                return {"ok": False, "error": "bad_redirect_uri"}
            team = grant["team_id"]
            # A re-install replaces the workspace's token: the old one dies.
            for info in self._tokens.values():
                if info["team_id"] == team:
                    info["alive"] = False
            token = f"xoxb-{team}-{secrets.token_hex(12)}"
            self._tokens[token] = {"team_id": team, "bot_user_id": self.bot_user_of(team), "alive": True}
        return {"ok": True, "access_token": token, "token_type": "bot", "scope": grant["scope"],
                "bot_user_id": self.bot_user_of(team), "app_id": APP_ID,
                "team": {"id": team, "name": grant["team_name"]}, "enterprise": None,
                "is_enterprise_install": False, "authed_user": {"id": grant["user_id"]}}
