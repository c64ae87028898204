"""The OpenAI-compatible engine against the local stand-in: chunking, concurrency, retries, stitching."""

from __future__ import annotations

import pytest

from integrations.openai_api import make_client
from tests.openaistub import WORD_SECONDS, write_tone_wav
from workers.transcription.openai_engine import MAX_UPLOAD_BYTES, OpenAITranscriber, TranscriptionFailed


def client_for(stub, **kwargs):
    return make_client(base_url=stub.base_url, api_key="sk-test", **kwargs)


@pytest.mark.slow
def test_seventy_minutes_in_concurrent_chunks_stitch_back_exactly(tmp_path, openai_stub):
    recording = tmp_path / "session.wav"
    truth = write_tone_wav(recording, 70 * 60)  # 134 MB of 16 kHz mono: far over one upload
    openai_stub.delay = 0.3  # long enough that concurrent uploads overlap
    openai_stub.fail_next(1, 429)
    openai_stub.fail_next(1, 500)

    engine = OpenAITranscriber(client_for(openai_stub), "whisper-1", max_concurrency=4)
    with open(recording, "rb") as media:
        result = engine.transcribe(media)
    assert list(tmp_path.iterdir()) == [recording]  # every chunk was encoded in memory

    uploads = openai_stub.uploads
    print(f"\n{len(uploads)} uploads: {[u.size for u in uploads]} bytes; max in flight {openai_stub.max_in_flight}")
    assert len(uploads) >= 6
    assert all(u.size < MAX_UPLOAD_BYTES for u in uploads)
    assert sum(u.duration for u in uploads) == pytest.approx(70 * 60, abs=0.1)  # no audio sent twice
    assert 1 < openai_stub.max_in_flight <= 4
    assert openai_stub.failures_served == [429, 500]  # both were retried: the result is whole
    assert all(u.fields["response_format"] == "verbose_json" for u in uploads)
    assert all(u.fields["timestamp_granularities[]"] == "segment" for u in uploads)

    # Every word exactly once, in order, each at its true time in the whole recording.
    assert [s.text for s in result.segments] == [word for _, word in truth]
    for segment, (start, _) in zip(result.segments, truth):
        assert segment.start == pytest.approx(start, abs=0.02)
        assert segment.end == pytest.approx(start + WORD_SECONDS, abs=0.02)
    starts = [s.start for s in result.segments]
    assert starts == sorted(starts)
    assert result.engine == "openai" and result.language == "en"  # the server said "english"


def test_a_short_recording_is_one_upload(tmp_path, openai_stub):
    recording = tmp_path / "short.wav"
    truth = write_tone_wav(recording, 30)
    result = OpenAITranscriber(client_for(openai_stub)).transcribe(recording)
    assert len(openai_stub.uploads) == 1
    assert [s.text for s in result.segments] == [w for _, w in truth]


def test_concurrency_is_bounded(tmp_path, openai_stub):
    recording = tmp_path / "tones.wav"
    write_tone_wav(recording, 240)
    openai_stub.delay = 0.2
    engine = OpenAITranscriber(client_for(openai_stub), max_concurrency=2, max_upload_bytes=1_200_000)
    engine.transcribe(recording)
    assert len(openai_stub.uploads) >= 6
    assert openai_stub.max_in_flight == 2


def test_a_server_that_keeps_failing_is_a_clear_error(tmp_path, openai_stub):
    recording = tmp_path / "short.wav"
    write_tone_wav(recording, 10)
    openai_stub.fail_next(3, 500)
    engine = OpenAITranscriber(client_for(openai_stub, max_retries=2))
    with pytest.raises(TranscriptionFailed, match=r"chunk 0 \(0s to 10s\) failed"):
        engine.transcribe(recording)
    assert openai_stub.failures_served == [500, 500, 500]  # one try and two retries
