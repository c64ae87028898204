"""A local stand-in for an OpenAI-compatible server, speaking the real HTTP API shape.

`POST /v1/audio/transcriptions` really decodes the uploaded WAV: it finds the bursts of tone
in it and hears each burst as a word named by the burst's pitch (see `write_tone_wav()`), so
a stitched transcript can be checked word for word and second for second. It records each
upload (size, duration, start and end time) and the most requests it had in flight at once,
can hold each request for a fixed delay, and can answer the next N requests with 429 or 500.

`POST /v1/chat/completions` answers with a configurable message in the chat-completion shape
and records each request body, so tests can look at `response_format` and the prompt.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import threading
import time
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import numpy as np

# The tone code book: a burst at TONE_BASE_HZ + k * TONE_STEP_HZ is the word f"word{k:02d}".
TONE_BASE_HZ = 400.0
TONE_STEP_HZ = 25.0
TONE_WORDS = 40
WORD_SECONDS = 1.2
GAP_SECONDS = 0.8


def tone_word(k: int) -> str:
    return f"word{k:02d}"


def write_tone_wav(path: Path, seconds: float, *, rate: int = 16_000) -> list[tuple[float, str]]:
    """Write `seconds` of mono 16-bit tone bursts (WORD_SECONDS on, GAP_SECONDS off) to `path`.

    Returns the (start, word) the stub will hear for each burst. Cheap for long recordings:
    one cycle through the code book is computed and then written over and over.
    """
    step = WORD_SECONDS + GAP_SECONDS
    word_samples, step_samples = int(WORD_SECONDS * rate), int(step * rate)
    fade = np.minimum(1.0, np.minimum(np.arange(word_samples), np.arange(word_samples)[::-1]) / (0.01 * rate))
    t = np.arange(word_samples) / rate
    cycle = np.zeros(step_samples * TONE_WORDS, dtype=np.int16)
    for k in range(TONE_WORDS):
        burst = 0.3 * 32767 * fade * np.sin(2 * np.pi * (TONE_BASE_HZ + k * TONE_STEP_HZ) * t)
        cycle[k * step_samples : k * step_samples + word_samples] = burst.astype(np.int16)
    total = int(seconds * rate)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        written = 0
        while written < total:
            piece = cycle[: total - written]
            w.writeframes(piece.tobytes())
            written += len(piece)
    words = []
    i = 0
    while i * step + WORD_SECONDS <= seconds:
        words.append((round(i * step, 3), tone_word(i % TONE_WORDS)))
        i += 1
    return words


def hear_tones(samples: np.ndarray, rate: int) -> list[dict[str, Any]]:
    """The stub's 'speech recognition': one segment per burst of tone, named by its pitch."""
    frame = rate // 100  # 10 ms
    usable = len(samples) // frame * frame
    if usable == 0:
        return []
    frames = samples[:usable].astype(np.float64).reshape(-1, frame)
    loud = np.sqrt((frames**2).mean(axis=1)) > 300
    segments = []
    i = 0
    while i < len(loud):
        if not loud[i]:
            i += 1
            continue
        j = i
        while j < len(loud) and loud[j]:
            j += 1
        if j - i >= 5:  # at least 50 ms
            burst = samples[i * frame : j * frame].astype(np.float64)
            crossings = np.count_nonzero(np.diff(np.signbit(burst)))
            hz = crossings / 2 / (len(burst) / rate)
            k = int(round((hz - TONE_BASE_HZ) / TONE_STEP_HZ))
            k = min(max(k, 0), TONE_WORDS - 1)
            segments.append({"start": round(i / 100, 2), "end": round(j / 100, 2), "text": " " + tone_word(k)})
        i = j
    return segments


@dataclasses.dataclass
class Upload:
    size: int  # bytes of the uploaded file
    duration: float  # seconds of audio decoded from it
    started: float  # time.monotonic() when the request arrived
    finished: float = 0.0
    fields: dict[str, str] = dataclasses.field(default_factory=dict)
    status: int = 200


def _parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, str], bytes | None]:
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise ValueError("multipart body without a boundary")
    delimiter = b"--" + match.group(1).encode()
    fields: dict[str, str] = {}
    file_bytes = None
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, _, content = part.partition(b"\r\n\r\n")
        content = content[:-2] if content.endswith(b"\r\n") else content
        disposition = re.search(rb'name="([^"]*)"', head)
        if not disposition:
            continue
        name = disposition.group(1).decode()
        if b"filename=" in head:
            file_bytes = content
        elif name in fields:
            fields[name] += "," + content.decode()
        else:
            fields[name] = content.decode()
    return fields, file_bytes


class OpenAIStub:
    """Start with `with OpenAIStub() as stub:`; point a client at `stub.base_url`."""

    def __init__(self, *, delay: float = 0.0, api_key: str = "sk-test"):
        self.delay = delay
        self.api_key = api_key
        self.uploads: list[Upload] = []
        self.chat_requests: list[dict[str, Any]] = []
        self.failures_served: list[int] = []
        self.max_in_flight = 0
        self.chat_reply: str | dict | Callable[[dict], str] = "{}"
        self._in_flight = 0
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- control ---------------------------------------------------------------------------

    def fail_next(self, count: int, status: int) -> None:
        """Answer the next `count` API requests with `status` (e.g. 429, 500)."""
        with self._lock:
            self._failures += [status] * count

    @property
    def base_url(self) -> str:
        assert self._server, "stub not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> OpenAIStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                stub._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def close(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> OpenAIStub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- requests --------------------------------------------------------------------------

    def _reply(self, handler, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json" if not isinstance(payload, bytes) else "text/plain")
        handler.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    def _error(self, handler, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        kind = {401: "invalid_request_error", 429: "rate_limit_exceeded"}.get(status, "server_error")
        self._reply(handler, status, {"error": {"message": message, "type": kind, "code": kind}}, headers)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length)
        if handler.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._error(handler, 401, "Incorrect API key provided")
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if failure:
                self.failures_served.append(failure)
                # A short Retry-After keeps the client's backoff (and the test) quick.
                headers = {"retry-after-ms": "50"} if failure == 429 else {}
                return self._error(handler, failure, f"injected {failure}", headers)
            path = handler.path.split("?")[0]
            if path == "/v1/audio/transcriptions":
                return self._transcribe(handler, body)
            if path == "/v1/chat/completions":
                return self._chat(handler, body)
            return self._error(handler, 404, f"no route {path}")
        finally:
            with self._lock:
                self._in_flight -= 1

    def _transcribe(self, handler, body: bytes) -> None:
        started = time.monotonic()
        try:
            fields, audio = _parse_multipart(body, handler.headers.get("Content-Type", ""))
        except ValueError as exc:
            return self._error(handler, 400, str(exc))
        if not audio:
            return self._error(handler, 400, "no file uploaded")
        try:
            with wave.open(io.BytesIO(audio)) as w:
                rate, frames = w.getframerate(), w.getnframes()
                if w.getsampwidth() != 2 or w.getnchannels() != 1:
                    raise wave.Error("expected mono 16-bit PCM")
                samples = np.frombuffer(w.readframes(frames), dtype=np.int16)
        except (wave.Error, EOFError) as exc:
            return self._error(handler, 400, f"could not decode audio: {exc}")
        upload = Upload(size=len(audio), duration=frames / rate, started=started, fields=fields)
        with self._lock:
            self.uploads.append(upload)
        if self.delay:
            time.sleep(self.delay)
        segments = hear_tones(samples, rate)
        upload.finished = time.monotonic()
        text = "".join(s["text"] for s in segments).strip()
        fmt = fields.get("response_format", "json")
        if fmt == "text":
            return self._reply(handler, 200, text.encode())
        if fmt != "verbose_json":
            return self._reply(handler, 200, {"text": text})
        return self._reply(handler, 200, {
            "task": "transcribe",
            "language": "english",
            "duration": upload.duration,
            "text": text,
            "segments": [
                {"id": i, "seek": 0, "start": s["start"], "end": s["end"], "text": s["text"],
                 "tokens": [], "temperature": 0.0, "avg_logprob": -0.1,
                 "compression_ratio": 1.0, "no_speech_prob": 0.0}
                for i, s in enumerate(segments)
            ],
        })

    def _chat(self, handler, body: bytes) -> None:
        try:
            request = json.loads(body)
        except ValueError:
            return self._error(handler, 400, "body is not JSON")
        with self._lock:
            self.chat_requests.append(request)
        if self.delay:
            time.sleep(self.delay)
        reply = self.chat_reply(request) if callable(self.chat_reply) else self.chat_reply
        content = reply if isinstance(reply, str) else json.dumps(reply)
        self._reply(handler, 200, {
            "id": f"chatcmpl-stub-{len(self.chat_requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model", "stub"),
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }],
            "usage": {"prompt_tokens": len(body) // 4, "completion_tokens": len(content) // 4,
                      "total_tokens": (len(body) + len(content)) // 4},
        })
