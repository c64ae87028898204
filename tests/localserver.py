"""What every local stand-in (Zoom, Google, Slack) shares: a real HTTP server on 127.0.0.1,
on a free port, serving from a thread until stopped; the log of requests it received; and the
request handler's plumbing (verbs, path, query, headers, body), each stand-in keeping only
what it answers (`StubHandler.route`)."""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str                       # as sent: still percent-encoded, no query
    query: dict[str, list[str]]
    headers: dict[str, str]         # names lower-cased
    body: bytes = b""

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def json(self):
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode(), keep_blank_values=True).items()}


class StubHandler(BaseHTTPRequestHandler):
    """Parses and records each request, then calls `route(method)`; a client hanging up mid-
    answer (a test killing a download) is not an error."""

    stub: "LocalServer"
    # HTTP/1.0: one request per connection, so a dropped or length-less body ends at close.
    protocol_version = "HTTP/1.0"

    def log_message(self, format, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        self.raw_path = parts.path
        self.query = parse_qs(parts.query, keep_blank_values=True)
        headers = {k.lower(): v for k, v in self.headers.items()}
        length = int(headers.get("content-length") or 0)
        self.body = self.rfile.read(length) if length else b""
        self.request_record = RecordedRequest(method, self.raw_path, self.query, headers, self.body)
        self.stub._record(self.request_record)
        try:
            self.route(method)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def route(self, method: str) -> None:
        raise NotImplementedError


class LocalServer:
    """Subclasses give `handler_class` (it gets `.stub` = the server's owner) and call
    `super().__init__()`."""

    handler_class: type[BaseHTTPRequestHandler]

    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._requests: list[RecordedRequest] = []

    def start(self):
        handler = type(f"{type(self).__name__}Handler", (self.handler_class,), {"stub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server, f"{type(self).__name__} is not started"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- what it received ---------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, path_prefix: str, method: str | None = None) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.startswith(path_prefix)
                and (method is None or r.method == method)]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()


# --- paging, as the platforms' list calls do it -----------------------------------------------

def page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def page_offset(token: str | None) -> int | None:
    """The offset a page token names; 0 for no token, None for one we never issued."""
    if not token:
        return 0
    try:
        kind, _, offset = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        return int(offset) if kind == "offset" else None
    except (ValueError, UnicodeDecodeError):
        return None
