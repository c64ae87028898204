"""Audio handling with no plaintext left behind: private work directories, ffmpeg, splitting.

Decrypted audio only ever sits in a 0600 file inside a 0700 directory made by
`private_workdir()`, which removes it however the block ends. A process killed outright
(SIGKILL, OOM) cannot clean up, so each directory's name carries its creator's host, pid and
process start time, and `sweep_stale_workdirs()` (run by the next worker or a cron job) removes
those whose creator is gone, never one whose creator is still running.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import wave
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from workers.transcription import Segment

SAMPLE_RATE = 16_000
_WAV_HEADER = 44
_PREFIX = "hs-audio"
_NAME = re.compile(rf"^{_PREFIX}-(?P<host>[0-9a-f]{{8}})-(?P<pid>\d+)-(?P<started>\d+)-")


class AudioError(RuntimeError):
    """ffmpeg could not read or convert the audio; the message carries ffmpeg's own words."""


# --- private work directories -----------------------------------------------------------------


def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _process_start(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot), None if it is not running.

    Comparing start times as well as pids means a recycled pid never protects a dead
    process's directory.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except FileNotFoundError:
        return None
    except OSError:
        stat = ""
    # The command name (field 2) is in parentheses and may hold spaces; count from after it.
    fields = stat.rpartition(")")[2].split()
    if len(fields) > 19:
        if fields[0] == "Z":  # a zombie has exited, whatever its entry says
            return None
        return int(fields[19])
    # No /proc (not Linux): fall back to "is there a process with this pid".
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return 0


@contextlib.contextmanager
def private_workdir(parent: Path) -> Iterator[Path]:
    """A fresh 0700 directory under `parent`, removed with everything in it when the block ends.

    Removal happens on success, on any exception and on KeyboardInterrupt/SystemExit; a process
    killed with SIGKILL leaves the directory for `sweep_stale_workdirs()`.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    started = _process_start(pid) or 0
    path = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}-{_host_tag()}-{pid}-{started}-", dir=parent))
    try:
        os.chmod(path, 0o700)  # mkdtemp already does; say it where a reader looks for it
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def sweep_stale_workdirs(parent: Path, older_than_seconds: float) -> list[Path]:
    """Remove work directories left under `parent` by processes that died; return them.

    A directory goes when it is older than `older_than_seconds` and its creator is not a live
    process on this host (same pid and same start time). A directory made on another host
    (a shared parent) is judged by age alone, so keep `older_than_seconds` above the longest
    job there. Anything not named by `private_workdir()` is left alone.
    """
    parent = Path(parent)
    removed: list[Path] = []
    if not parent.is_dir():
        return removed
    here = _host_tag()
    now = time.time()
    for entry in parent.iterdir():
        match = _NAME.match(entry.name)
        if not match or entry.is_symlink() or not entry.is_dir():
            continue
        if match["host"] == here:
            started = _process_start(int(match["pid"]))
            if started is not None and started in (int(match["started"]), 0):
                continue  # its creator is still running
        try:
            age = now - entry.stat().st_mtime
        except FileNotFoundError:
            continue
        if age < older_than_seconds:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        if not entry.exists():
            removed.append(entry)
    return removed


def private_file(workdir: Path, name: str) -> Path:
    """Create `workdir/name` as an empty 0600 file (failing if it exists) and return its path."""
    path = Path(workdir) / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    return path


# --- extraction ---------------------------------------------------------------------------------


def _ffmpeg_to_wav(source: str, out: Path, stdin=None) -> subprocess.Popen:
    # -y: the output exists already (made 0600 by private_file), and ffmpeg keeps its mode.
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"]
    if stdin is None:
        args.append("-nostdin")
    args += ["-i", source, "-vn", "-ac", "1", "-ar", str(SAMPLE_RATE), "-c:a", "pcm_s16le",
             "-f", "wav", str(out)]
    return subprocess.Popen(
        args,
        stdin=stdin,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _drain(stream, sink: list[bytes]) -> None:
    # ffmpeg blocks if nobody reads its stderr; keep only the tail for the error message.
    for line in iter(stream.readline, b""):
        sink.append(line)
        del sink[:-20]


def _frames(wav: Path) -> int:
    try:
        with wave.open(str(wav), "rb") as w:
            return w.getnframes()
    except (wave.Error, EOFError, OSError):
        return 0


def extract_audio(chunks: Iterable[bytes], workdir: Path, *, name: str = "audio.wav") -> Path:
    """Pipe media bytes (any format ffmpeg reads) into ffmpeg; return a 0600 16 kHz mono WAV.

    The bytes go to ffmpeg's stdin as they arrive, so a recording is never held in memory. A
    copy is spooled to a 0600 file beside the output while piping: MP4s with their index at
    the end cannot be read from a pipe, and then ffmpeg reruns on the spool. The spool is
    deleted as soon as the WAV is written (and the whole workdir goes with private_workdir()).
    """
    workdir = Path(workdir)
    out = private_file(workdir, name)
    spool = private_file(workdir, name + ".source")
    stderr: list[bytes] = []
    process = _ffmpeg_to_wav("pipe:0", out, stdin=subprocess.PIPE)
    drainer = threading.Thread(target=_drain, args=(process.stderr, stderr), daemon=True)
    drainer.start()
    piping = True
    try:
        with open(spool, "wb") as spooled:
            for chunk in chunks:
                if not chunk:
                    continue
                spooled.write(chunk)
                if piping:
                    try:
                        process.stdin.write(chunk)
                    except BrokenPipeError:
                        piping = False  # ffmpeg gave up on the pipe; the spool still fills
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()
        returncode = process.wait()
        drainer.join()
        # ffmpeg may exit 0 having written only a header (an MP4 whose index is at the end
        # cannot be read from a pipe), so judge by what it wrote and what it complained of.
        if returncode != 0 or stderr or _frames(out) == 0:
            complaint = b"".join(stderr)
            retry = _ffmpeg_to_wav(str(spool), out)
            _, err = retry.communicate()
            if retry.returncode != 0 or _frames(out) == 0:
                message = (err or complaint).decode(errors="replace").strip()
                raise AudioError(f"ffmpeg could not read the audio: {message[-500:] or 'no audio stream'}")
    finally:
        if process.poll() is None:  # the bytes stopped coming (an exception): stop ffmpeg too
            process.kill()
            process.wait()
        with contextlib.suppress(OSError):
            process.stdin.close()
        spool.unlink(missing_ok=True)
    os.chmod(out, 0o600)
    return out


# --- WAV facts, silences and splitting ---------------------------------------------------------


@dataclasses.dataclass
class Chunk:
    """A piece of a longer WAV: its file, where it starts in the whole, and how long it is.

    After a hard cut two chunks share `overlap` seconds of audio; `keep_from`/`keep_until`
    (times in the whole recording, the middle of the shared stretch) then tell stitch()
    which segments a chunk may keep: those reaching its side of that middle. None means the
    chunk keeps everything on that side, as after a cut at a silence, where nothing is shared.
    """

    path: Path | None  # None until write_chunk() has written it
    offset_seconds: float
    duration: float
    keep_from: float | None = None
    keep_until: float | None = None


def wav_duration(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


SilenceLookup = Callable[[float, float], list[tuple[float, float]]]


def iter_cuts(
    duration: float,
    silences: list[tuple[float, float]] | SilenceLookup,
    max_seconds: float,
    *,
    overlap: float = 1.0,
    search_seconds: float | None = None,
) -> Iterator[tuple[float, float, bool]]:
    """Where to cut: (start, end, cut_at_silence) per chunk, each at most `max_seconds` long.

    Chunks aim at equal lengths (so concurrent uploads finish together), each cut going to
    the middle of the silence nearest the target, so no word is split. Where no silence lies
    in the second half of the allowed window, it is a hard cut and the next chunk starts
    `overlap` seconds early, so the word cut in two is heard whole by one chunk.

    `silences` is a list, or a function giving the silences known up to a time (the second
    argument) at least; with `search_seconds`, only that much either side of each target is
    asked for first, so a cut can be made before the whole recording has been scanned.
    """
    if max_seconds <= overlap * 2:
        raise ValueError("chunks must be longer than twice the overlap")
    lookup = silences if callable(silences) else (lambda lo, hi, known=list(silences): known)

    def mids(lo: float, hi: float) -> list[float]:
        return [m for a, b in lookup(lo, hi) if lo <= (m := (a + b) / 2) <= hi]

    start = 0.0
    while duration - start > max_seconds:
        remaining = duration - start
        target = start + remaining / math.ceil(remaining / max_seconds)
        lo, hi = start + (target - start) / 2, start + max_seconds
        found: list[float] = []
        if search_seconds is not None:
            found = mids(max(lo, target - search_seconds), min(hi, target + search_seconds))
        if not found:
            found = mids(lo, hi)
        if found:
            cut = min(found, key=lambda m: abs(m - target))
            yield (start, cut, True)
            start = cut
        else:
            cut = min(target, start + max_seconds)
            yield (start, cut, False)
            start = cut - overlap
    yield (start, duration, True)


def plan_cuts(duration: float, silences, max_seconds: float, **kwargs) -> list[tuple[float, float, bool]]:
    """All of iter_cuts() at once."""
    return list(iter_cuts(duration, silences, max_seconds, **kwargs))


class _SilenceStream:
    """One ffmpeg silencedetect pass over a file, read only as far as the planner needs.

    Cuts near the start are decided while ffmpeg is still scanning the rest, so the first
    upload need not wait for the whole recording to be scanned.
    """

    def __init__(self, wav: Path, noise_db: float, min_silence: float):
        self.silences: list[tuple[float, float]] = []
        self.known_until = 0.0
        self._began: float | None = None
        self._tail: list[bytes] = []
        self._process: subprocess.Popen | None = subprocess.Popen(
            ["ffmpeg", "-nostdin", "-hide_banner", "-i", str(wav),
             "-af", f"silencedetect=noise={noise_db}dB:d={min_silence}", "-f", "null", "-"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )

    def until(self, moment: float) -> list[tuple[float, float]]:
        while self._process is not None and self.known_until < moment:
            line = self._process.stderr.readline()
            if not line:
                self._finish()
                break
            self._tail = (self._tail + [line])[-10:]
            text = line.decode(errors="replace")
            if "silence_start:" in text:
                self._began = max(0.0, float(text.rsplit("silence_start:", 1)[1].split()[0]))
                self.known_until = max(self.known_until, self._began)
            elif "silence_end:" in text and self._began is not None:
                end = float(text.rsplit("silence_end:", 1)[1].split()[0])
                self.silences.append((self._began, end))
                self.known_until = max(self.known_until, end)
                self._began = None
        return self.silences

    def _finish(self) -> None:
        process, self._process = self._process, None
        if process.wait() != 0:
            raise AudioError(f"ffmpeg silencedetect failed: {b''.join(self._tail).decode(errors='replace')[-500:]}")
        self.known_until = float("inf")

    def close(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


def iter_chunks(
    wav: Path,
    max_bytes: int,
    *,
    overlap: float = 1.0,
    noise_db: float = -35.0,
    min_silence: float = 0.3,
    search_seconds: float = 60.0,
) -> Iterator[Chunk]:
    """The chunks a 16-bit mono WAV splits into (at most `max_bytes` each), as soon as each
    is decided, not yet written (`path=None`; see write_chunk()).

    A file already small enough is one chunk whose `path` is the file itself.
    """
    wav = Path(wav)
    with wave.open(str(wav), "rb") as w:
        rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
        frames = w.getnframes()
    duration = frames / rate
    if os.path.getsize(wav) <= max_bytes:
        yield Chunk(wav, 0.0, duration)
        return
    max_seconds = (max_bytes - _WAV_HEADER - 4096) / (rate * channels * width)
    stream = _SilenceStream(wav, noise_db, min_silence)
    try:
        hard_cut_before = False
        for start, end, at_silence in iter_cuts(
            duration, lambda lo, hi: stream.until(hi), max_seconds,
            overlap=overlap, search_seconds=search_seconds,
        ):
            first, last = int(round(start * rate)), min(frames, int(round(end * rate)))
            chunk = Chunk(None, first / rate, (last - first) / rate)
            # After a hard cut the chunks share `overlap` seconds; each keeps what reaches its
            # side of the middle of it, and stitch() removes the words both heard.
            if hard_cut_before:
                chunk.keep_from = chunk.offset_seconds + overlap / 2
            if not at_silence:
                chunk.keep_until = last / rate - overlap / 2
            hard_cut_before = not at_silence
            yield chunk
    finally:
        stream.close()


def plan_chunks(wav: Path, max_bytes: int, **kwargs) -> list[Chunk]:
    """All of iter_chunks() at once."""
    return list(iter_chunks(wav, max_bytes, **kwargs))


def write_chunk(wav: Path, chunk: Chunk, workdir: Path, index: int) -> Path:
    """Write `chunk` of `wav` as a 0600 WAV file in `workdir`, set `chunk.path`, and return it."""
    if chunk.path is not None:
        return chunk.path
    path = private_file(workdir, f"chunk-{index:04d}.wav")
    with wave.open(str(wav), "rb") as source, wave.open(str(path), "wb") as out:
        rate, channels, width = source.getframerate(), source.getnchannels(), source.getsampwidth()
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        source.setpos(int(round(chunk.offset_seconds * rate)))
        remaining = int(round(chunk.duration * rate))
        while remaining > 0:  # copy in slices so memory stays flat
            block = source.readframes(min(remaining, rate * 60))
            if not block:
                break
            out.writeframes(block)
            remaining -= len(block) // (channels * width)
    chunk.path = path
    return path


def split_at_silences(
    wav: Path,
    max_bytes: int,
    workdir: Path,
    *,
    overlap: float = 1.0,
    noise_db: float = -35.0,
    min_silence: float = 0.3,
) -> list[Chunk]:
    """Split a 16-bit mono WAV into 0600 WAV chunks of at most `max_bytes` each.

    Cuts fall at silences where possible (no overlap, nothing to de-duplicate) and are hard
    cuts with `overlap` seconds shared otherwise; each chunk's `keep_from`/`keep_until`
    tell the stitcher which of its words to keep. A file already small enough comes back whole.
    (The OpenAI engine takes chunks from iter_chunks() and writes each just before its upload.)
    """
    chunks = plan_chunks(Path(wav), max_bytes, overlap=overlap, noise_db=noise_db, min_silence=min_silence)
    for index, chunk in enumerate(chunks):
        write_chunk(Path(wav), chunk, workdir, index)
    return chunks


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
