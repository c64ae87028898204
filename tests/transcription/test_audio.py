"""Splitting long audio at silences, and stitching chunk transcripts back without loss or repeats."""

from __future__ import annotations

import os
import stat
import wave

import numpy as np
import pytest

from tests.openaistub import hear_tones, write_tone_wav
from workers.transcription import Segment
from workers.transcription.audio import Chunk, plan_cuts, private_workdir, split_at_silences, stitch


def test_cuts_go_to_silences_and_chunks_come_out_even():
    silences = [(t, t + 0.8) for t in range(1, 600, 7)]
    cuts = plan_cuts(600.0, silences, max_seconds=250.0)
    assert len(cuts) == 3
    mids = {a + 0.4 for a, _ in silences}
    for start, end, at_silence in cuts[:-1]:
        assert at_silence and end - start <= 250.0
        assert min(abs(end - m) for m in mids) < 1e-9
    assert cuts[-1][1] == 600.0
    # Balanced: no chunk is much longer than another, so concurrent uploads finish together.
    lengths = [end - start for start, end, _ in cuts]
    assert max(lengths) - min(lengths) < 10


def test_no_silence_means_hard_cuts_with_overlap():
    cuts = plan_cuts(100.0, [], max_seconds=30.0, overlap=1.0)
    assert all(end - start <= 30.0 for start, end, _ in cuts)
    for (_, end, at_silence), (next_start, _, _) in zip(cuts, cuts[1:]):
        assert not at_silence and next_start == pytest.approx(end - 1.0)
    assert cuts[0][0] == 0 and cuts[-1][1] == 100.0


def test_stitch_after_a_hard_cut_keeps_each_word_once():
    # Chunk 2 starts 1 s before chunk 1 ends; both heard "gamma" around the cut.
    first = Chunk(path=None, offset_seconds=0.0, duration=30.0, keep_until=29.5)
    second = Chunk(path=None, offset_seconds=29.0, duration=30.0, keep_from=29.5)
    pieces = [
        (first, [Segment(0.0, 10.0, "alpha"), Segment(20.0, 30.0, "beta gamma")]),
        (second, [Segment(0.0, 0.4, "beta"), Segment(0.0, 4.0, "gamma delta"), Segment(5.0, 9.0, "epsilon")]),
    ]
    words = " ".join(s.text for s in stitch(pieces)).split()
    assert words == ["alpha", "beta", "gamma", "delta", "epsilon"]


def test_stitch_after_silence_cuts_keeps_everything_on_the_whole_clock():
    first = Chunk(path=None, offset_seconds=0.0, duration=10.0)
    second = Chunk(path=None, offset_seconds=10.0, duration=10.0)
    # A server that times the last word a little past the end of its audio is clamped.
    out = stitch([(first, [Segment(8.0, 10.3, "one")]), (second, [Segment(0.2, 1.0, "two")])])
    assert [(s.start, s.end, s.text) for s in out] == [(8.0, 10.0, "one"), (10.2, 11.0, "two")]


def test_split_writes_private_chunks_under_the_limit_at_silences(tmp_path):
    wav = tmp_path / "tones.wav"
    words = write_tone_wav(wav, 120.0)
    limit = 1_000_000  # ~31 s of 16 kHz audio per chunk
    with private_workdir(tmp_path / "work") as workdir:
        chunks = split_at_silences(wav, limit, workdir)
        assert len(chunks) == 4
        total = 0.0
        heard = []
        for chunk in chunks:
            assert os.path.getsize(chunk.path) <= limit
            assert stat.S_IMODE(os.stat(chunk.path).st_mode) == 0o600
            assert chunk.keep_from is None and chunk.keep_until is None  # all cut at silences
            assert chunk.offset_seconds == pytest.approx(total, abs=1e-3)
            total += chunk.duration
            with wave.open(str(chunk.path)) as w:
                samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
            heard.append((chunk, [Segment(s["start"], s["end"], s["text"].strip()) for s in hear_tones(samples, 16000)]))
        assert total == pytest.approx(120.0, abs=1e-3)
        stitched = stitch(heard)
        assert [(round(s.start, 1), s.text) for s in stitched] == [(round(t, 1), w) for t, w in words]


def test_a_small_file_is_one_chunk(tmp_path):
    wav = tmp_path / "short.wav"
    write_tone_wav(wav, 5.0)
    chunks = split_at_silences(wav, 25 * 1024 * 1024, tmp_path)
    assert len(chunks) == 1 and chunks[0].path == wav and chunks[0].offset_seconds == 0


def test_audio_without_silences_is_hard_cut_with_shared_seconds(tmp_path):
    wav = tmp_path / "noise.wav"
    rng = np.random.default_rng(1)
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((rng.standard_normal(16000 * 100) * 3000).astype(np.int16).tobytes())
    limit = 1_000_000
    with private_workdir(tmp_path / "work") as workdir:
        chunks = split_at_silences(wav, limit, workdir, overlap=1.0)
        assert len(chunks) == 4
        assert all(os.path.getsize(c.path) <= limit for c in chunks)
        for previous, chunk in zip(chunks, chunks[1:]):
            # Each pair shares one second, and both agree on where the seam is.
            assert previous.offset_seconds + previous.duration - chunk.offset_seconds == pytest.approx(1.0, abs=1e-3)
            assert previous.keep_until == chunk.keep_from == pytest.approx(chunk.offset_seconds + 0.5)
        assert chunks[0].keep_from is None and chunks[-1].keep_until is None
        assert chunks[-1].offset_seconds + chunks[-1].duration == pytest.approx(100.0)
