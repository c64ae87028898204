"""A local stand-in for Slack: the Web API's chat.postMessage, and response_url hooks."""

from __future__ import annotations

import json

from tests.localserver import LocalServer, StubHandler

BOT_TOKEN = "xoxb-test-token"


class _Handler(StubHandler):
    stub: "SlackStub"

    def route(self, method: str) -> None:
        sent = self.request_record
        data = (sent.json() or {}) if "json" in (self.headers.get("Content-Type") or "") else sent.form()
        if self.path.startswith("/hooks/"):
            with self.stub._lock:
                self.stub.responses.append({"hook": self.path.rsplit("/", 1)[1], **data})
            return self._answer(b"ok", "text/plain")
        if self.path == "/api/chat.postMessage":
            if self.headers.get("Authorization") != f"Bearer {BOT_TOKEN}":
                return self._json({"ok": False, "error": "invalid_auth"})
            with self.stub._lock:
                self.stub.messages.append(data)
                ts = f"{len(self.stub.messages)}.0001"
            return self._json({"ok": True, "channel": data.get("channel"), "ts": ts})
        self._json({"ok": False, "error": "unknown_method"})

    def _json(self, obj):
        self._answer(json.dumps(obj).encode(), "application/json")

    def _answer(self, body, ctype):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class SlackStub(LocalServer):
    handler_class = _Handler

    def __init__(self):
        super().__init__()
        self.messages: list[dict] = []      # chat.postMessage calls
        self.responses: list[dict] = []     # posts to response_url hooks

    @property
    def api_base_url(self) -> str:
        return self.base_url + "/api/"

    def response_url(self, name: str = "r1") -> str:
        return f"{self.base_url}/hooks/{name}"

    def dms_to(self, user_id: str) -> list[str]:
        with self._lock:
            return [m.get("text", "") for m in self.messages if m.get("channel") == user_id]
