"""Audio in memory: decoding any container with PyAV from a file object, cutting at silences
into bounded chunks, and stitching chunk transcripts back without loss or repeats."""

from __future__ import annotations

import io

import numpy as np
import pytest

from tests.media import FORMATS, encode, moov_at_end, tone, wav_file_bytes
from tests.openaistub import hear_tones, write_tone_wav
from workers.transcription import Segment
from workers.transcription.audio import AudioError, Chunk, decode_audio, iter_chunks, silences, stitch

RATE = 16_000


class OneWayReader(io.RawIOBase):
    """A file object that counts how often it was asked to seek (a vault reader stand-in)."""

    def __init__(self, data: bytes):
        self._data, self._pos, self.seeks = data, 0, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=io.SEEK_SET):
        self.seeks += 1
        self._pos = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._data)}[whence] + offset
        return self._pos

    def tell(self):
        return self._pos

    def readinto(self, b):
        piece = self._data[self._pos:self._pos + len(b)]
        b[:len(piece)] = piece
        self._pos += len(piece)
        return len(piece)


def peak_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.argmax(spectrum) * RATE / len(samples))


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_container_decodes_to_16k_mono_float(fmt):
    rate = 48_000 if fmt == "ogg" else 44_100  # Opus only takes 48 kHz
    data = encode(tone(5.0, rate, hz=440.0), rate, fmt)
    blocks = list(decode_audio(io.BytesIO(data), block_seconds=2.0))
    samples = np.concatenate(blocks)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert len(samples) / RATE == pytest.approx(5.0, abs=0.05)
    assert len(blocks) >= 2 and all(len(b) <= 2.1 * RATE for b in blocks[:-1])  # bounded blocks
    assert peak_hz(samples[RATE:3 * RATE]) == pytest.approx(440.0, abs=2.0)  # resampled, not sped up
    assert 0.2 < np.abs(samples).max() < 0.3


@pytest.mark.parametrize("video", [False, True])
def test_an_mp4_with_its_index_at_the_end_is_read_by_seeking(video):
    data = encode(tone(4.0, 44_100, hz=300.0), 44_100, "mp4", video=video)
    assert moov_at_end(data)
    reader = OneWayReader(data)
    samples = np.concatenate(list(decode_audio(reader)))
    assert reader.seeks > 0  # the demuxer jumped to the index and back
    assert len(samples) / RATE == pytest.approx(4.0, abs=0.05)
    assert peak_hz(samples[RATE:3 * RATE]) == pytest.approx(300.0, abs=2.0)


def test_what_is_not_audio_is_a_clear_error():
    with pytest.raises(AudioError, match="not a recording"):
        list(decode_audio(io.BytesIO(b"this is not media at all" * 100)))
    silent_film = io.BytesIO()
    import av
    with av.open(silent_film, "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), dtype=np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    silent_film.seek(0)
    with pytest.raises(AudioError, match="no audio stream"):
        list(decode_audio(silent_film))


def test_silences_are_found_where_the_sound_stops():
    sound = tone(1.0, RATE, channels=1)[0]
    quiet = np.zeros(int(0.5 * RATE), dtype=np.float32)
    found = silences(np.concatenate([sound, quiet, sound, quiet[:RATE // 10], sound]))
    assert len(found) == 1  # 0.1 s is a breath, not a silence
    first, end = found[0]
    assert first / RATE == pytest.approx(1.0, abs=0.02) and end / RATE == pytest.approx(1.5, abs=0.02)


def tone_samples(tmp_path, seconds: float):
    path = tmp_path / "tones.wav"
    words = write_tone_wav(path, seconds)
    samples, _ = wav_file_bytes(path)
    return samples, words


def blocks_of(samples: np.ndarray, seconds: float = 7.0):
    step = int(seconds * RATE)
    for i in range(0, len(samples), step):
        yield samples[i:i + step]


def test_chunks_are_bounded_and_cut_at_silences(tmp_path):
    samples, words = tone_samples(tmp_path, 120.0)
    chunks = list(iter_chunks(blocks_of(samples), max_seconds=31.0))
    assert len(chunks) == 4
    total = 0.0
    heard = []
    for chunk in chunks:
        assert chunk.duration <= 31.0 and len(chunk.samples) == round(chunk.duration * RATE)
        assert chunk.keep_from is None and chunk.keep_until is None  # all cut at silences
        assert chunk.offset_seconds == pytest.approx(total, abs=1e-3)
        total += chunk.duration
        pcm = (chunk.samples * 32768).astype(np.int16)
        heard.append((chunk, [Segment(s["start"], s["end"], s["text"].strip()) for s in hear_tones(pcm, RATE)]))
    assert total == pytest.approx(120.0, abs=1e-3)
    stitched = stitch(heard)
    assert [(round(s.start, 1), s.text) for s in stitched] == [(round(t, 1), w) for t, w in words]


def test_a_short_recording_is_one_chunk(tmp_path):
    samples, _ = tone_samples(tmp_path, 5.0)
    (chunk,) = iter_chunks(blocks_of(samples, 2.0), max_seconds=300.0)
    assert chunk.offset_seconds == 0 and chunk.duration == pytest.approx(5.0)
    assert np.array_equal(chunk.samples, samples)
    (empty,) = iter_chunks([], max_seconds=300.0)
    assert empty.duration == 0 and len(empty.samples) == 0


def test_audio_without_silences_is_hard_cut_with_shared_seconds():
    rng = np.random.default_rng(1)
    noise = (rng.standard_normal(RATE * 100) * 0.1).astype(np.float32)
    chunks = list(iter_chunks(blocks_of(noise), max_seconds=31.0, overlap=1.0))
    assert len(chunks) == 4
    assert all(c.duration <= 31.0 for c in chunks)
    for previous, chunk in zip(chunks, chunks[1:]):
        # Each pair shares one second, and both agree on where the seam is.
        assert previous.offset_seconds + previous.duration - chunk.offset_seconds == pytest.approx(1.0, abs=1e-3)
        assert previous.keep_until == chunk.keep_from == pytest.approx(chunk.offset_seconds + 0.5)
        shared = previous.samples[-RATE:]
        assert np.array_equal(shared, chunk.samples[:RATE])  # the very same audio, not a gap
    assert chunks[0].keep_from is None and chunks[-1].keep_until is None
    assert chunks[-1].offset_seconds + chunks[-1].duration == pytest.approx(100.0)


def test_stitch_after_a_hard_cut_keeps_each_word_once():
    # Chunk 2 starts 1 s before chunk 1 ends; both heard "gamma" around the cut.
    first = Chunk(samples=None, offset_seconds=0.0, duration=30.0, keep_until=29.5)
    second = Chunk(samples=None, offset_seconds=29.0, duration=30.0, keep_from=29.5)
    pieces = [
        (first, [Segment(0.0, 10.0, "alpha"), Segment(20.0, 30.0, "beta gamma")]),
        (second, [Segment(0.0, 0.4, "beta"), Segment(0.0, 4.0, "gamma delta"), Segment(5.0, 9.0, "epsilon")]),
    ]
    words = " ".join(s.text for s in stitch(pieces)).split()
    assert words == ["alpha", "beta", "gamma", "delta", "epsilon"]


def test_stitch_after_silence_cuts_keeps_everything_on_the_whole_clock():
    first = Chunk(samples=None, offset_seconds=0.0, duration=10.0)
    second = Chunk(samples=None, offset_seconds=10.0, duration=10.0)
    # A server that times the last word a little past the end of its audio is clamped.
    out = stitch([(first, [Segment(8.0, 10.3, "one")]), (second, [Segment(0.2, 1.0, "two")])])
    assert [(s.start, s.end, s.text) for s in out] == [(8.0, 10.0, "one"), (10.2, 11.0, "two")]
