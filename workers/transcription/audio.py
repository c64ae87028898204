"""Audio in memory: decode any recording with PyAV, cut it into bounded chunks at silences,
and put the chunks' transcripts back on the recording's clock.

Nothing here writes a file. The recording is read through a seekable file object (the vault's
decrypting reader), decoded and resampled to 16 kHz mono float32 in blocks, and held only as
long as the chunk being transcribed needs it, so memory stays flat however long the session.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import re
import wave
from collections.abc import Iterable, Iterator

import av
import numpy as np

from workers.transcription import Segment

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
BLOCK_SECONDS = 30.0


class AudioError(RuntimeError):
    """The recording holds no audio we can decode; the message says why."""


# --- decoding ----------------------------------------------------------------------------------


def decode_audio(source, *, block_seconds: float = BLOCK_SECONDS) -> Iterator[np.ndarray]:
    """16 kHz mono float32 samples of the first audio stream in `source`, in blocks.

    `source` is a seekable binary file object (or a path): MP4/M4A with the index at the end
    work because the demuxer seeks to it. Each block is about `block_seconds` long. A packet
    that fails to decode is skipped, as faster-whisper's own decoder does; a recording with
    no audio stream, or none that decodes at all, raises AudioError.
    """
    try:
        container = av.open(source, mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise AudioError(f"not a recording PyAV can read: {exc}") from None
    with container:
        stream = next((s for s in container.streams if s.type == "audio"), None)
        if stream is None:
            raise AudioError("the recording has no audio stream")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        target = max(1, int(block_seconds * SAMPLE_RATE))
        pending: list[np.ndarray] = []
        held = 0
        decoded = 0

        def frames() -> Iterator:
            try:
                for packet in container.demux(stream):
                    try:
                        yield from packet.decode()
                    except av.error.InvalidDataError:
                        continue
            except av.error.FFmpegError as exc:
                if not decoded:
                    raise AudioError(f"the audio could not be decoded: {exc}") from None
                # What came before is real audio; a damaged tail should not cost the session.
                log.warning("audio ends early after %.0f s: %s", decoded / SAMPLE_RATE, exc)
            yield None  # flush the resampler

        for frame in frames():
            for out in resampler.resample(frame):
                samples = out.to_ndarray().reshape(-1)
                pending.append(samples)
                held += len(samples)
                decoded += len(samples)
            if held >= target:
                block = np.concatenate(pending)
                pending, held = [], 0
                yield block.astype(np.float32) / 32768.0
        if pending:
            yield np.concatenate(pending).astype(np.float32) / 32768.0
        if not decoded:
            raise AudioError("the recording's audio stream holds no samples")


def seconds_of(recording) -> float | None:
    """How long a recording is, from its header (None when it does not say), without decoding
    it; a file object is left where it was, so decoding can start from there."""
    if isinstance(recording, np.ndarray):
        return len(recording) / SAMPLE_RATE
    at = recording.tell() if hasattr(recording, "tell") else None
    try:
        with av.open(recording, mode="r", metadata_errors="ignore") as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is not None and stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base)
            return container.duration / av.time_base if container.duration else None
    except (av.error.FFmpegError, UnicodeDecodeError):
        return None  # decoding will say what is wrong with it
    finally:
        if at is not None:
            recording.seek(at)


def blocks_of(recording) -> Iterable[np.ndarray]:
    """What an engine hears: float32 16 kHz samples as they are, or any recording decoded."""
    if isinstance(recording, np.ndarray):
        return [np.asarray(recording, dtype=np.float32)]
    return decode_audio(recording)


def wav_bytes(samples: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    """A 16-bit mono WAV of float samples, built in memory (for an upload, never a file)."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buffer.getvalue()


# --- chunks and silences -----------------------------------------------------------------------


@dataclasses.dataclass
class Chunk:
    """A stretch of the recording: its samples, where it starts in the whole, how long it is.

    After a hard cut two chunks share `overlap` seconds of audio; `keep_from`/`keep_until`
    (times in the whole recording, the middle of the shared stretch) then tell stitch()
    which segments a chunk may keep: those reaching its side of that middle. None means the
    chunk keeps everything on that side, as after a cut at a silence, where nothing is shared.
    """

    samples: np.ndarray | None
    offset_seconds: float
    duration: float
    keep_from: float | None = None
    keep_until: float | None = None


def silences(samples: np.ndarray, *, noise_db: float = -35.0, min_silence: float = 0.3,
             rate: int = SAMPLE_RATE) -> list[tuple[int, int]]:
    """(first, end) sample indices of every stretch quieter than `noise_db` for at least
    `min_silence` seconds, judged on 10 ms frames."""
    frame = rate // 100
    count = len(samples) // frame
    if count == 0:
        return []
    frames = samples[: count * frame].reshape(count, frame)
    rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
    quiet = rms < 10 ** (noise_db / 20)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], quiet.view(np.int8), [0]))))
    runs = edges.reshape(-1, 2)
    need = int(round(min_silence * 100))
    return [(int(a) * frame, int(b) * frame) for a, b in runs if b - a >= need]


def _cut_at_silence(samples: np.ndarray, limit: int, **silence_args) -> int | None:
    """Where to end a chunk of at most `limit` samples: the middle of the longest silence in
    the second half of the window (the likeliest end of a turn), or None if there is none."""
    window = samples[:limit]
    found = [(b - a, (a + b) // 2) for a, b in silences(window, **silence_args)
             if limit // 2 <= (a + b) // 2 < limit]
    if not found:
        return None
    return max(found)[1]


def iter_chunks(
    blocks: Iterable[np.ndarray],
    max_seconds: float,
    *,
    overlap: float = 1.0,
    noise_db: float = -35.0,
    min_silence: float = 0.3,
    rate: int = SAMPLE_RATE,
) -> Iterator[Chunk]:
    """Chunks of at most `max_seconds` each, as soon as each is decided.

    Cuts fall in the middle of a silence where the second half of the window has one, so no
    word is split and nothing is shared. Where it has none, the cut is hard and the next chunk
    starts `overlap` seconds early, so the word cut in two is heard whole by one chunk;
    `keep_from`/`keep_until` tell stitch() which of the shared words each chunk keeps.
    At most one chunk and one incoming block are held at a time.
    """
    if max_seconds <= overlap * 2:
        raise ValueError("chunks must be longer than twice the overlap")
    limit = int(max_seconds * rate)
    shared = int(overlap * rate)
    pending: list[np.ndarray] = []
    held = 0
    offset = 0  # samples of the whole before the first pending one
    keep_from: float | None = None
    yielded = False

    def take(n: int) -> np.ndarray:
        nonlocal pending, held
        whole = np.concatenate(pending) if len(pending) != 1 else pending[0]
        taken, rest = whole[:n], whole[n:]
        pending, held = ([rest] if len(rest) else []), len(rest)
        return taken

    for block in blocks:
        if len(block):
            pending.append(np.asarray(block, dtype=np.float32))
            held += len(block)
        while held > limit:
            window = np.concatenate(pending)
            pending = [window]
            cut = _cut_at_silence(window, limit, noise_db=noise_db, min_silence=min_silence,
                                  rate=rate)
            if cut is not None:
                samples = take(cut)
                yield Chunk(samples, offset / rate, cut / rate, keep_from=keep_from)
                offset += cut
                keep_from = None
            else:
                samples = window[:limit]
                chunk = Chunk(samples, offset / rate, limit / rate, keep_from=keep_from,
                              keep_until=(offset + limit) / rate - overlap / 2)
                take(limit - shared)
                offset += limit - shared
                keep_from = offset / rate + overlap / 2
                yield chunk
            yielded = True
    if held or not yielded:
        samples = take(held) if held else np.zeros(0, dtype=np.float32)
        yield Chunk(samples, offset / rate, len(samples) / rate, keep_from=keep_from)


# --- stitching ---------------------------------------------------------------------------------


def _norm_words(text: str) -> list[str]:
    return [re.sub(r"[^\w']", "", w.lower()) for w in text.split()]


def _trim_repeat(before: list[Segment], placed: list[Segment]) -> list[Segment]:
    """`placed` less its leading words that repeat the last words of `before`.

    Both chunks heard the shared stretch, so the longest run of words that ends `before` and
    starts `placed` is said once, not twice.
    """
    tail = _norm_words(" ".join(s.text for s in before))[-40:]
    head: list[tuple[int, str]] = []
    for index, segment in enumerate(placed):
        head += [(index, word) for word in segment.text.split()]
        if len(head) >= 40:
            break
    norm_head = _norm_words(" ".join(word for _, word in head))
    repeat = 0
    for n in range(min(len(tail), len(norm_head)), 0, -1):
        if tail[-n:] == norm_head[:n]:
            repeat = n
            break
    if not repeat:
        return placed
    dropped_per_segment: dict[int, int] = {}
    for index, _ in head[:repeat]:
        dropped_per_segment[index] = dropped_per_segment.get(index, 0) + 1
    trimmed = []
    for index, segment in enumerate(placed):
        words = segment.text.split()[dropped_per_segment.get(index, 0):]
        if words:
            trimmed.append(dataclasses.replace(segment, text=" ".join(words)))
    return trimmed


def stitch(pieces: Iterable[tuple[Chunk, list[Segment]]]) -> list[Segment]:
    """Put each chunk's segments (timed from the chunk's start) back on the whole's clock.

    After a cut at a silence nothing is shared, so every segment is kept as it is. After a
    hard cut, each chunk keeps the segments that reach its side of the cut, and the words
    the next chunk repeats from the shared stretch are dropped, so none is lost or doubled.
    """
    out: list[Segment] = []
    for chunk, segments in pieces:
        placed = []
        for segment in segments:
            # Servers sometimes time a last word past the end of the audio they were sent.
            start = chunk.offset_seconds + min(max(segment.start, 0.0), chunk.duration)
            end = chunk.offset_seconds + min(max(segment.end, segment.start, 0.0), chunk.duration)
            if chunk.keep_from is not None and end <= chunk.keep_from:
                continue  # heard whole by the previous chunk
            if chunk.keep_until is not None and start >= chunk.keep_until:
                continue  # heard whole by the next chunk
            placed.append(dataclasses.replace(segment, start=round(start, 3), end=round(end, 3)))
        if chunk.keep_from is not None:
            placed = _trim_repeat([s for s in out if s.end > chunk.offset_seconds], placed)
        out.extend(placed)
    out.sort(key=lambda s: (s.start, s.end))
    return out
