"""Test speech: coaching-session scripts read aloud by espeak-ng in two voices.

Each script line is `COACH: text` or `CLIENT: text`. `generate_session()` renders every line
with espeak-ng, lays the utterances end to end with a pause between turns, and writes the mixed
recording plus one track per speaker (silence where the other one talks, like Zoom's
per-participant audio files). `script_segments()` gives the same script as timed transcript
segments without rendering audio, for tests that only need text.

Run as a script to render a script into a folder: `python -m tests.speech.generate session1 out/`.
"""

from __future__ import annotations

import array
import dataclasses
import io
import subprocess
import sys
import wave
from pathlib import Path

from workers.transcription import Segment

HERE = Path(__file__).resolve().parent

# Two clearly different voices, so the mix sounds like two people.
VOICES = {"COACH": "en-gb+f3", "CLIENT": "en-us+m1"}
WORDS_PER_MINUTE = 160
TURN_GAP_SECONDS = 0.7
ESPEAK_RATE = 22050  # espeak-ng's native output rate


@dataclasses.dataclass
class Line:
    speaker: str  # "COACH" or "CLIENT"
    text: str


@dataclasses.dataclass
class GeneratedSession:
    mixed: Path  # the whole conversation, mono 22.05 kHz WAV
    tracks: dict[str, Path]  # speaker -> that speaker's own track, same length as `mixed`
    segments: list[Segment]  # ground truth: one per line, with the rendered timings
    duration: float


def script_path(name: str) -> Path:
    return HERE / f"{name}.txt"


def load_script(name_or_path: str | Path) -> list[Line]:
    path = Path(name_or_path)
    if not path.exists():
        path = script_path(str(name_or_path))
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        raw = raw.strip()
        if not raw or raw.startswith("#"):
            continue
        speaker, _, text = raw.partition(":")
        if speaker not in VOICES or not text.strip():
            raise ValueError(f"{path}: bad script line {raw!r}")
        lines.append(Line(speaker, text.strip()))
    return lines


def script_text(name: str) -> str:
    return " ".join(line.text for line in load_script(name))


def script_segments(name: str, *, speaker_names: dict[str, str] | None = None) -> list[Segment]:
    """The script as segments with timings estimated from word counts (no audio rendered)."""
    names = speaker_names or {"COACH": "Coach", "CLIENT": "Client"}
    t = 0.0
    out = []
    for line in load_script(name):
        duration = max(1.0, len(line.text.split()) * 60.0 / WORDS_PER_MINUTE)
        out.append(Segment(round(t, 3), round(t + duration, 3), line.text, names[line.speaker]))
        t += duration + TURN_GAP_SECONDS
    return out


def _espeak(text: str, voice: str) -> array.array:
    wav_bytes = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(WORDS_PER_MINUTE), "--stdout", text],
        check=True,
        capture_output=True,
    ).stdout
    with wave.open(io.BytesIO(wav_bytes)) as w:
        assert w.getframerate() == ESPEAK_RATE and w.getnchannels() == 1 and w.getsampwidth() == 2
        samples = array.array("h", w.readframes(w.getnframes()))
    # espeak's --stdout header claims a huge length; readframes stops at the real end.
    return samples


def _write_wav(path: Path, samples: array.array) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(ESPEAK_RATE)
        w.writeframes(samples.tobytes())


def generate_session(
    name: str,
    out_dir: Path,
    *,
    speaker_names: dict[str, str] | None = None,
    repeat: int = 1,
) -> GeneratedSession:
    """Render script `name` (`repeat` times over, for long recordings) into `out_dir`."""
    names = speaker_names or {"COACH": "Coach", "CLIENT": "Client"}
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = load_script(name) * repeat
    gap = array.array("h", bytes(2 * int(TURN_GAP_SECONDS * ESPEAK_RATE)))
    mixed = array.array("h")
    tracks = {speaker: array.array("h") for speaker in VOICES}
    segments = []
    rendered: dict[tuple[str, str], array.array] = {}
    for line in lines:
        key = (line.speaker, line.text)
        if key not in rendered:
            rendered[key] = _espeak(line.text, VOICES[line.speaker])
        speech = rendered[key]
        start = len(mixed) / ESPEAK_RATE
        silence = array.array("h", bytes(2 * len(speech)))
        mixed.extend(speech)
        for speaker, track in tracks.items():
            track.extend(speech if speaker == line.speaker else silence)
        end = len(mixed) / ESPEAK_RATE
        segments.append(Segment(round(start, 3), round(end, 3), line.text, names[line.speaker]))
        mixed.extend(gap)
        for track in tracks.values():
            track.extend(gap)
    mixed_path = out_dir / f"{name}.wav"
    _write_wav(mixed_path, mixed)
    track_paths = {}
    for speaker, track in tracks.items():
        path = out_dir / f"{name}-{speaker.lower()}.wav"
        _write_wav(path, track)
        track_paths[names[speaker]] = path
    return GeneratedSession(mixed_path, track_paths, segments, len(mixed) / ESPEAK_RATE)


if __name__ == "__main__":
    session = generate_session(sys.argv[1], Path(sys.argv[2]))
    print(f"{session.mixed} {session.duration:.1f}s")
