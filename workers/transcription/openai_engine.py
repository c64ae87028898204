"""Transcription through any OpenAI-compatible server (`POST /v1/audio/transcriptions`).

Uploads are capped (25 MB at OpenAI), so a long recording is split at silences into chunks
under the cap, the chunks are sent a few at a time, and their timestamps are put back on the
recording's clock. Retries on 429 and 5xx, with exponential backoff and the server's
Retry-After, are the openai client's own (its `max_retries`; see integrations/openai_api.py).
"""

from __future__ import annotations

import collections
import concurrent.futures
from pathlib import Path
from typing import Any

from workers.transcription import Segment, TranscriptResult
from workers.transcription.audio import Chunk, iter_chunks, stitch, write_chunk

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

    def _transcribe_chunk(
        self, wav: Path, index: int, chunk: Chunk, workdir: Path
    ) -> tuple[list[Segment], str | None]:
        own_file = chunk.path is None
        try:
            path = write_chunk(wav, chunk, workdir, index)
            return self._upload(index, chunk, path)
        finally:
            if own_file and chunk.path is not None:
                chunk.path.unlink(missing_ok=True)  # a plaintext copy lives only while it is sent

    def _upload(self, index: int, chunk: Chunk, path: Path) -> tuple[list[Segment], str | None]:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "response_format": "verbose_json",
            "timestamp_granularities": ["segment"],
        }
        if self.language:
            kwargs["language"] = self.language
        try:
            with open(path, "rb") as audio:
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

    def transcribe(self, wav_path: Path | str, workdir: Path | str) -> TranscriptResult:
        """Split `wav_path` into chunks in `workdir`, transcribe them concurrently, stitch them."""
        wav, workdir = Path(wav_path), Path(workdir)
        # Each chunk is sent as soon as its cut is decided (the silence scan goes on behind
        # it) and written only when a worker takes it, so at most `max_concurrency` copies
        # of the audio exist at a time.
        chunks: list[Chunk] = []
        futures: list[concurrent.futures.Future] = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            try:
                for index, chunk in enumerate(iter_chunks(wav, self.max_chunk_bytes)):
                    chunks.append(chunk)
                    futures.append(pool.submit(self._transcribe_chunk, wav, index, chunk, workdir))
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
