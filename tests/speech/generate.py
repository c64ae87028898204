"""Test speech: coaching-session scripts read aloud by espeak-ng in two voices.

Each script line is `COACH: text` or `CLIENT: text`. Every distinct utterance was rendered once
by espeak-ng and is committed under `rendered/`: per script, one FLAC holding the utterances
back to back (lossless, so the samples are espeak-ng's own) and a JSON index of where each one
lies, keyed by a hash of voice, rate and text. `generate_session()` lays the utterances end to
end with a pause between turns and writes the mixed recording plus one track per speaker
(silence where the other one talks, like Zoom's per-participant audio files). A line with no
rendered utterance is read by espeak-ng when it is installed. `script_segments()` gives the
same script as timed transcript segments without any audio, for tests that only need text.

    python -m tests.speech.generate --refresh            # re-render rendered/ (needs espeak-ng)
    python -m tests.speech.generate session1 out/        # write session1's WAVs into out/
"""

from __future__ import annotations

import argparse
import array
import dataclasses
import hashlib
import io
import json
import shutil
import subprocess
import wave
from pathlib import Path

import av
import numpy as np

from workers.transcription import Segment

HERE = Path(__file__).resolve().parent
RENDERED = HERE / "rendered"

# Two clearly different voices, so the mix sounds like two people.
VOICES = {"COACH": "en-gb+f3", "CLIENT": "en-us+m1"}
WORDS_PER_MINUTE = 160
TURN_GAP_SECONDS = 0.7
ESPEAK_RATE = 22050  # espeak-ng's native output rate
FLAC_FRAME = 4608  # samples per frame handed to the encoder (FLAC's usual block size)


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


class MissingSpeech(RuntimeError):
    """Script lines with no rendered utterance, and no espeak-ng to read them."""


def script_path(name: str) -> Path:
    return HERE / f"{name}.txt"


def script_names() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.txt"))


def _resolve(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    return path if path.exists() else script_path(str(name_or_path))


def load_script(name_or_path: str | Path) -> list[Line]:
    path = _resolve(name_or_path)
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


def utterance_key(line: Line) -> str:
    """What the rendered audio depends on; a script line that changes gets a new key."""
    recipe = f"{VOICES[line.speaker]}\n{WORDS_PER_MINUTE}\n{line.text}"
    return hashlib.sha256(recipe.encode("utf-8")).hexdigest()


# --- rendered utterances ----------------------------------------------------------------------

def _index_path(name: str) -> Path:
    return RENDERED / f"{name}.json"


def _flac_path(name: str) -> Path:
    return RENDERED / f"{name}.flac"


def load_index(name: str) -> dict:
    path = _index_path(name)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"utterances": []}


def decode_flac(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        if stream.rate != ESPEAK_RATE or stream.channels != 1:
            raise ValueError(f"{path}: expected mono {ESPEAK_RATE} Hz, "
                             f"got {stream.channels} channels at {stream.rate} Hz")
        frames = [frame.to_ndarray().reshape(-1) for frame in container.decode(stream)]
    samples = np.concatenate(frames) if frames else np.zeros(0, np.int16)
    if samples.dtype != np.int16:
        raise ValueError(f"{path}: expected 16-bit samples, got {samples.dtype}")
    return samples


def encode_flac(samples: np.ndarray, path: Path) -> None:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="flac") as container:
        stream = container.add_stream("flac", rate=ESPEAK_RATE, layout="mono")
        stream.format = "s16"
        # The strongest setting FFmpeg's encoder has; a fixture is encoded once and read often.
        stream.codec_context.options = {"compression_level": "12"}
        for start in range(0, len(samples), FLAC_FRAME):
            frame = av.AudioFrame.from_ndarray(samples[start:start + FLAC_FRAME].reshape(1, -1),
                                               format="s16", layout="mono")
            frame.sample_rate = ESPEAK_RATE
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    path.write_bytes(buffer.getvalue())


def rendered_utterances(name: str) -> dict[str, array.array]:
    """Script `name`'s committed utterances by `utterance_key`; empty when it has none."""
    index = load_index(name)
    if not index["utterances"]:
        return {}
    samples = decode_flac(_flac_path(name))
    out = {}
    for u in index["utterances"]:
        piece = samples[u["offset"]:u["offset"] + u["length"]]
        if len(piece) != u["length"]:
            raise ValueError(f"{_flac_path(name)} is shorter than its index says; run --refresh")
        out[u["key"]] = array.array("h", piece.tobytes())
    return out


def missing_lines(name: str) -> list[Line]:
    """Lines of script `name` whose utterance is not in the committed fixtures."""
    have = {u["key"] for u in load_index(_resolve(name).stem)["utterances"]}
    seen, out = set(), []
    for line in load_script(name):
        key = utterance_key(line)
        if key not in have and key not in seen:
            seen.add(key)
            out.append(line)
    return out


def refresh(names: list[str] | None = None) -> list[Path]:
    """Re-render every distinct utterance of each script with espeak-ng into `rendered/`."""
    RENDERED.mkdir(exist_ok=True)
    written = []
    for name in [_resolve(n).stem for n in names] if names else script_names():
        utterances, pieces, offset = [], [], 0
        seen = set()
        for line in load_script(name):
            key = utterance_key(line)
            if key in seen:
                continue
            seen.add(key)
            speech = np.frombuffer(_espeak(line.text, VOICES[line.speaker]).tobytes(), dtype=np.int16)
            utterances.append({"speaker": line.speaker, "text": line.text, "offset": offset,
                               "length": len(speech), "key": key})
            pieces.append(speech)
            offset += len(speech)
        encode_flac(np.concatenate(pieces), _flac_path(name))
        header = {"script": f"{name}.txt", "audio": _flac_path(name).name, "sample_rate": ESPEAK_RATE,
                  "words_per_minute": WORDS_PER_MINUTE, "voices": VOICES,
                  "key": "sha256 of voice, words per minute and text"}
        # One utterance a line, so a changed script line shows up as a one-line diff.
        head = json.dumps(header, ensure_ascii=False)[:-1]
        rows = ",\n  ".join(json.dumps(u, ensure_ascii=False) for u in utterances)
        _index_path(name).write_text(f'{head}, "utterances": [\n  {rows}\n]}}\n', encoding="utf-8")
        written += [_flac_path(name), _index_path(name)]
    return written


# --- espeak-ng, for lines not rendered yet -------------------------------------------------------

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


def _speech_for(name: str, lines: list[Line]) -> dict[str, array.array]:
    rendered = rendered_utterances(_resolve(name).stem)
    missing = {}
    for line in lines:
        key = utterance_key(line)
        if key not in rendered:
            missing.setdefault(key, line)
    if missing and shutil.which("espeak-ng") is None:
        listed = "\n".join(f"  {line.speaker}: {line.text}" for line in missing.values())
        raise MissingSpeech(
            f"{_resolve(name)}: {len(missing)} line(s) have no rendered speech in "
            f"{RENDERED.relative_to(HERE.parent.parent)} and espeak-ng is not installed:\n{listed}\n"
            "Install espeak-ng and run `python -m tests.speech.generate --refresh`, then commit rendered/.")
    for key, line in missing.items():
        rendered[key] = _espeak(line.text, VOICES[line.speaker])
    return rendered


# --- the session ---------------------------------------------------------------------------------

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
    rendered = _speech_for(name, lines)
    gap = array.array("h", bytes(2 * int(TURN_GAP_SECONDS * ESPEAK_RATE)))
    mixed = array.array("h")
    tracks = {speaker: array.array("h") for speaker in VOICES}
    segments = []
    for line in lines:
        speech = rendered[utterance_key(line)]
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
    stem = _resolve(name).stem
    mixed_path = out_dir / f"{stem}.wav"
    _write_wav(mixed_path, mixed)
    track_paths = {}
    for speaker, track in tracks.items():
        path = out_dir / f"{stem}-{speaker.lower()}.wav"
        _write_wav(path, track)
        track_paths[names[speaker]] = path
    return GeneratedSession(mixed_path, track_paths, segments, len(mixed) / ESPEAK_RATE)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.speech.generate",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--refresh", action="store_true",
                        help="re-render the committed utterances with espeak-ng (every script, or the one named)")
    parser.add_argument("script", nargs="?", help="a script name (session1) or path")
    parser.add_argument("out_dir", nargs="?", type=Path, help="where to write the WAVs")
    args = parser.parse_args(argv)
    if args.refresh:
        if shutil.which("espeak-ng") is None:
            parser.error("--refresh needs espeak-ng (apt-get install espeak-ng)")
        for path in refresh([args.script] if args.script else None):
            print(f"{path.relative_to(HERE.parent.parent)} {path.stat().st_size} bytes")
        return
    if not (args.script and args.out_dir):
        parser.error("give a script and an output folder, or --refresh")
    session = generate_session(args.script, args.out_dir)
    print(f"{session.mixed} {session.duration:.1f}s")


if __name__ == "__main__":
    main()
