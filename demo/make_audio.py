"""Regenerate demo/session.m4a from conversation.txt: espeak-ng reads it in two voices and
PyAV encodes the result as AAC in an M4A.

Only needed to change the demo recording; the generated file is committed so that
`make demo` needs neither espeak-ng nor anything else beyond the requirements.

    .venv/bin/python demo/make_audio.py [out.m4a]
"""

from __future__ import annotations

import io
import subprocess
import sys
import wave
from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).resolve().parent
VOICES = {"COACH": ["-v", "en-us+m3", "-s", "165"], "CLIENT": ["-v", "en-gb+f3", "-s", "160"]}
ESPEAK_RATE = 22050  # espeak-ng's native output rate
OUT_RATE = 16000  # plenty for speech, and what Whisper works at
BIT_RATE = 32000
GAP_SECONDS = 0.8  # a short pause between turns, as in a real conversation


def lines(path: Path):
    for raw in path.read_text().splitlines():
        if raw.strip() and not raw.startswith("#"):
            speaker, text = raw.split(":", 1)
            yield speaker.strip(), text.strip()


def speak(speaker: str, text: str) -> np.ndarray:
    """One utterance from espeak-ng, as 16-bit mono samples at ESPEAK_RATE."""
    wav = subprocess.run(["espeak-ng", *VOICES[speaker], "--stdout", text],
                         check=True, capture_output=True).stdout
    with wave.open(io.BytesIO(wav)) as w:
        assert w.getframerate() == ESPEAK_RATE and w.getnchannels() == 1 and w.getsampwidth() == 2
        # The --stdout header claims a huge length; readframes stops at the real end.
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def encode_m4a(samples: np.ndarray, rate: int) -> bytes:
    """16-bit mono `samples` as AAC in an M4A with its index first (so a player starts at once)."""
    # `faststart` would reopen the output by name to move the index, which an in-memory
    # buffer has not got; reserving room for the index at the start puts it first in one pass.
    # Its sample tables take a few bytes per AAC packet of 1024 samples; the rest of the
    # reserve is left as a `free` box.
    packets = len(samples) * OUT_RATE // rate // 1024 + 1
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="ipod", options={"moov_size": str(4096 + 8 * packets)}) as out:
        stream = out.add_stream("aac", rate=OUT_RATE, layout="mono")
        stream.bit_rate = BIT_RATE
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        frame.pts = 0
        # PyAV resamples to the stream's rate and sample format, and cuts the audio into
        # frames of the size the AAC encoder takes.
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


def render(script: Path, out: Path) -> None:
    gap = np.zeros(int(GAP_SECONDS * ESPEAK_RATE), dtype=np.int16)
    parts = []
    for speaker, text in lines(script):
        parts += [speak(speaker, text), gap]
    out.write_bytes(encode_m4a(np.concatenate(parts), ESPEAK_RATE))


if __name__ == "__main__":
    render(HERE / "conversation.txt", Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "session.m4a")
