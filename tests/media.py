"""Recordings made in memory with PyAV for the tests: tones and speech in the containers
Zoom and Meet deliver (MP4 with its index at the end, M4A) and a few others."""

from __future__ import annotations

import io
import wave
from fractions import Fraction

import av
import numpy as np

# container format, audio codec, sample format the encoder takes
FORMATS = {
    "m4a": ("ipod", "aac", "fltp"),
    "mp4": ("mp4", "aac", "fltp"),
    "mp3": ("mp3", "libmp3lame", "fltp"),
    "ogg": ("ogg", "libopus", "s16"),
    "flac": ("flac", "flac", "s16"),
    "wav": ("wav", "pcm_s16le", "s16"),
}


def tone(seconds: float, rate: int = 44_100, *, hz: float = 440.0, channels: int = 2) -> np.ndarray:
    """A sine (float32, shape (channels, n)) at a quarter of full scale."""
    t = np.arange(int(seconds * rate)) / rate
    mono = (0.25 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    return np.tile(mono, (channels, 1))


def encode(samples: np.ndarray, rate: int, fmt: str = "m4a", *, video: bool = False) -> bytes:
    """`samples` (float32, (channels, n)) encoded into `fmt`, all in memory.

    MP4 and M4A keep their index (moov) at the end, as cloud recordings often do; `video`
    adds a small video stream before the audio, like a Zoom MP4.
    """
    samples = np.atleast_2d(samples)
    buffer = io.BytesIO()
    encode_blocks([samples], rate, buffer, fmt, video=video)
    return buffer.getvalue()


def encode_blocks(blocks, rate: int, out_file, fmt: str = "m4a", *, video: bool = False) -> None:
    """Encode float32 blocks (each (channels, n)) into `out_file` (a path or binary file),
    one block at a time, so an hours-long recording never sits whole in memory."""
    container_format, codec, sample_format = FORMATS[fmt]
    with av.open(out_file, "w", format=container_format) as out:
        picture = None
        if video:
            picture = out.add_stream("mpeg4", rate=5)
            picture.width, picture.height, picture.pix_fmt = 64, 48, "yuv420p"
        sound = None
        planar = sample_format.endswith("p")
        position = frames_written = 0
        for block in blocks:
            block = np.atleast_2d(block)
            if sound is None:
                sound = out.add_stream(codec, rate=rate, layout="stereo" if block.shape[0] == 2 else "mono")
            for start in range(0, block.shape[1], 1024):
                piece = block[:, start:start + 1024]
                if sample_format == "s16":
                    data = (piece * 32767).astype(np.int16)
                    data = data.T.reshape(1, -1) if not planar else data
                else:
                    data = np.ascontiguousarray(piece, dtype=np.float32)
                frame = av.AudioFrame.from_ndarray(data, format=sample_format, layout=sound.layout.name)
                frame.sample_rate = rate
                frame.pts = position
                frame.time_base = Fraction(1, rate)
                position += piece.shape[1]
                for packet in sound.encode(frame):
                    out.mux(packet)
                while picture is not None and frames_written * rate / 5 <= position:
                    image = av.VideoFrame.from_ndarray(
                        np.full((48, 64, 3), frames_written % 255, dtype=np.uint8), format="rgb24")
                    image.pts = frames_written
                    for packet in picture.encode(image):
                        out.mux(packet)
                    frames_written += 1
        for packet in sound.encode(None):
            out.mux(packet)
        if picture is not None:
            for packet in picture.encode(None):
                out.mux(packet)


def moov_at_end(data: bytes) -> bool:
    """Whether an MP4's index comes after its media data."""
    return 0 <= data.find(b"mdat") < data.find(b"moov")


def wav_file_bytes(path) -> tuple[np.ndarray, int]:
    """A 16-bit mono WAV's samples as float32 and its rate."""
    with wave.open(str(path), "rb") as w:
        rate = w.getframerate()
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    return samples.astype(np.float32) / 32768.0, rate
