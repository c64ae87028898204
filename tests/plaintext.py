"""Looking for plaintext on disk: windows of a recording's bytes, of its decoded audio and of
its transcript, and the magic numbers of media and WAV files, searched for in every file under
the directories a job could write to."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import numpy as np

from workers.transcription.audio import decode_audio

WINDOW = 64
# File starts that say "this is media": WAV, MP4/M4A (ftyp at offset 4), MP3, Ogg, FLAC.
_MAGIC = (b"RIFF", b"ID3", b"OggS", b"fLaC")


def windows(data: bytes, count: int = 64) -> list[bytes]:
    """Up to `count` 64-byte windows spread over `data`, skipping dull ones (silence, padding)
    that any file of zeros would match."""
    if len(data) < WINDOW:
        return []
    step = max(1, (len(data) - WINDOW) // (count * 4))
    found = []
    for start in range(0, len(data) - WINDOW + 1, step):
        window = data[start:start + WINDOW]
        if len(set(window)) >= 24:
            found.append(window)
            if len(found) == count:
                break
    return found


def needles(media: bytes, transcript_text: str = "") -> list[bytes]:
    """What a plaintext copy of `media` would contain: its own bytes, its audio decoded to
    16 kHz as 16-bit PCM (what a WAV holds) or float32 (what a numpy dump holds), and the
    transcript's words."""
    samples = np.concatenate(list(decode_audio(io.BytesIO(media))))
    pcm16 = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    found = windows(media) + windows(pcm16) + windows(samples.astype("<f4").tobytes())
    if transcript_text:
        found += windows(transcript_text.encode("utf-8"), 32)
    return found


def plaintext_files(directories, found_in: list[bytes], *, skip=()) -> list[str]:
    """Every file under `directories` that holds one of `found_in` or starts like media."""
    skip = {Path(s).resolve() for s in skip}
    hits = []
    for directory in directories:
        for root, _, files in os.walk(directory):
            for name in files:
                path = Path(root, name)
                if path.resolve() in skip or any(p in skip for p in path.resolve().parents):
                    continue
                try:
                    if not stat.S_ISREG(path.lstat().st_mode):
                        continue  # a socket (the embedded Redis's), a pipe, a link
                    data = path.read_bytes()
                except OSError:
                    continue  # gone while we looked
                if data.startswith(_MAGIC) or data[4:8] == b"ftyp" or any(n in data for n in found_in):
                    hits.append(str(path))
    return hits
