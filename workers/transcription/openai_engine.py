"""Transcription through any OpenAI-compatible server (`POST /v1/audio/transcriptions`).

Uploads are capped (25 MB at OpenAI), so a long recording is decoded and cut at silences into
chunks under the cap, each chunk is encoded as a WAV in memory (never a file) and the chunks are
sent a few at a time; their timestamps are then put back on the recording's clock. Retries on 429 and 5xx, with exponential backoff and the server's
Retry-After, are the openai client's own (its `max_retries`; see integrations/openai_api.py).
"""

from __future__ import annotations

import collections
import concurrent.futures
import threading
from typing import Any

from workers.transcription import Segment, TranscriptResult
from workers.transcription.audio import SAMPLE_RATE, Chunk, blocks_of, iter_chunks, stitch, wav_bytes

MAX_UPLOAD_BYTES = 25 * 1024 * 1024


# OpenAI's verbose_json names the language ("english"); the local engine gives a code ("en").
# The common ones are mapped so a transcript's language reads the same whichever engine ran.
_LANGUAGE_CODES = {
    "english": "en", "german": "de", "french": "fr", "spanish": "es", "italian": "it",
    "portuguese": "pt", "dutch": "nl", "swedish": "sv", "danish": "da", "norwegian": "no",
    "finnish": "fi", "polish": "pl", "czech": "cs", "greek": "el", "turkish": "tr",
    "russian": "ru", "ukrainian": "uk", "arabic": "ar", "hebrew": "he", "hindi": "hi",
    "chinese": "zh", "japanese": "ja", "korean": "ko", "indonesian": "id", "vietnamese": "vi",
    "thai": "th", "romanian": "ro", "hungarian": "hu", "catalan": "ca", "welsh": "cy",
}


def language_code(language: str | None) -> str | None:
    if not language:
        return None
    return _LANGUAGE_CODES.get(language.strip().lower(), language.strip().lower())


class TranscriptionFailed(RuntimeError):
    """The server would not transcribe a chunk, even after the client's retries."""


def _field(item: Any, name: str, default: Any = None) -> Any:
    if isinstance(item, dict):
        return item.get(name, default)
    return getattr(item, name, default)


class OpenAITranscriber:
    """Transcribes a 16 kHz mono WAV with an `openai.OpenAI` client and a model name."""

    engine = "openai"

    def __init__(
        self,
        client,
        model: str = "whisper-1",
        *,
        max_concurrency: int = 4,
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
        language: str | None = None,
    ):
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.client = client
        self.model = model
        self.max_concurrency = max_concurrency
        # Leave room for the multipart envelope around the file.
        self.max_chunk_bytes = max_upload_bytes - 64 * 1024
        self.language = language

    def _upload(self, index: int, chunk: Chunk, audio: bytes) -> tuple[list[Segment], str | None]:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "response_format": "verbose_json",
            "timestamp_granularities": ["segment"],
        }
        if self.language:
            kwargs["language"] = self.language
        try:
            response = self.client.audio.transcriptions.create(
                file=(f"chunk-{index:04d}.wav", audio, "audio/wav"), **kwargs
            )
        except Exception as exc:
            raise TranscriptionFailed(
                f"chunk {index} ({chunk.offset_seconds:.0f}s to "
                f"{chunk.offset_seconds + chunk.duration:.0f}s) failed: {exc}"
            ) from exc
        pieces = _field(response, "segments") or []
        segments = [
            Segment(float(_field(p, "start", 0.0)), float(_field(p, "end", 0.0)), str(_field(p, "text", "")).strip())
            for p in pieces
        ]
        if not pieces and str(_field(response, "text", "")).strip():
            # A server that ignores verbose_json still gives the words; time them to the chunk.
            segments = [Segment(0.0, chunk.duration, str(_field(response, "text")).strip())]
        return [s for s in segments if s.text], language_code(_field(response, "language"))

    def _send(self, index: int, chunk: Chunk, slots: threading.Semaphore) -> tuple[list[Segment], str | None]:
        try:
            audio = wav_bytes(chunk.samples)
            chunk.samples = None  # the encoded copy is all the upload needs
            return self._upload(index, chunk, audio)
        finally:
            slots.release()

    def transcribe(self, audio) -> TranscriptResult:
        """Transcribe a recording (a seekable file object or path of any media PyAV reads, or
        16 kHz mono float32 samples): chunks are cut, encoded and sent concurrently, then
        stitched back together."""
        blocks = blocks_of(audio)
        # 16-bit mono: two bytes a sample, after the 44-byte WAV header.
        max_seconds = (self.max_chunk_bytes - 44) / (2 * SAMPLE_RATE)
        # Each chunk is sent as soon as its cut is decided, while decoding goes on behind it;
        # a slot is taken before a chunk is cut, so at most `max_concurrency` chunks of audio
        # are in memory (plus the one being filled), however long the recording.
        slots = threading.Semaphore(self.max_concurrency)
        chunks: list[Chunk] = []
        futures: list[concurrent.futures.Future] = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            try:
                pieces = iter_chunks(blocks, max_seconds)
                while True:
                    slots.acquire()
                    if any(f.done() and f.exception() for f in futures):
                        break  # a chunk failed for good: the result is lost, stop sending
                    chunk = next(pieces, None)
                    if chunk is None:
                        break
                    chunks.append(chunk)
                    futures.append(pool.submit(self._send, len(chunks) - 1, chunk, slots))
                results = [f.result() for f in futures]
            except BaseException:
                for future in futures:
                    future.cancel()  # don't start uploads whose result we will throw away
                raise
        languages = [language for _, language in results if language]
        segments = stitch((chunk, segs) for chunk, (segs, _) in zip(chunks, results))
        # The language most chunks heard (the first of a tie), so one odd chunk cannot decide it.
        language = collections.Counter(languages).most_common(1)[0][0] if languages else self.language
        return TranscriptResult(segments=segments, engine=self.engine, language=language)
