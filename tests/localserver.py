"""What every local stand-in (Zoom, Google, Slack) shares: a real HTTP server on 127.0.0.1,
on a free port, serving from a thread until stopped."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LocalServer:
    """Subclasses give `handler_class` (a BaseHTTPRequestHandler; it gets `.stub` = the server's owner)."""

    handler_class: type[BaseHTTPRequestHandler]

    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

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
