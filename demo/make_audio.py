"""Regenerate demo/session.m4a from conversation.txt with espeak-ng (two voices) and ffmpeg.

Only needed to change the demo recording; the generated file is committed so that
`make demo` needs neither tool."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
VOICES = {"COACH": ["-v", "en-us+m3", "-s", "165"], "CLIENT": ["-v", "en-gb+f3", "-s", "160"]}


def lines(path: Path):
    for raw in path.read_text().splitlines():
        if raw.strip() and not raw.startswith("#"):
            speaker, text = raw.split(":", 1)
            yield speaker.strip(), text.strip()


def render(script: Path, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        # A short pause between turns, as in a real conversation.
        gap = Path(tmp) / "gap.wav"
        subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                        "anullsrc=r=22050:cl=mono", "-t", "0.8", "-c:a", "pcm_s16le", str(gap)], check=True)
        parts = []
        for i, (speaker, text) in enumerate(lines(script)):
            wav = Path(tmp) / f"{i:03d}.wav"
            subprocess.run(["espeak-ng", *VOICES[speaker], "-w", str(wav), text], check=True)
            parts += [wav, gap]
        listing = Path(tmp) / "list.txt"
        listing.write_text("".join(f"file '{p}'\n" for p in parts))
        subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-f", "concat", "-safe", "0",
                        "-i", str(listing), "-ac", "1", "-ar", "16000",
                        "-c:a", "aac", "-b:a", "32k", "-movflags", "+faststart", str(out)], check=True)


if __name__ == "__main__":
    render(HERE / "conversation.txt", Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "session.m4a")
