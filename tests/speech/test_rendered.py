"""The committed test speech matches the scripts, and sessions are built from it without
espeak-ng: a script edited without `python -m tests.speech.generate --refresh` fails here."""

from __future__ import annotations

import wave

import pytest

from tests.speech import generate
from tests.speech.generate import (
    ESPEAK_RATE, MissingSpeech, generate_session, load_index, load_script, missing_lines,
    rendered_utterances, script_names, utterance_key,
)

REFRESH = "python -m tests.speech.generate --refresh"


@pytest.fixture
def no_espeak(monkeypatch, tmp_path):
    """A PATH with nothing on it, as on a machine without espeak-ng."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))


def test_there_are_scripts():
    assert {"session1", "session2"} <= set(script_names())


@pytest.mark.parametrize("name", script_names())
def test_every_script_line_has_its_rendered_utterance(name):
    missing = missing_lines(name)
    assert not missing, (
        f"{name}.txt has {len(missing)} line(s) without rendered speech "
        f"(run `{REFRESH}` with espeak-ng installed and commit tests/speech/rendered/): "
        + "; ".join(f"{line.speaker}: {line.text}" for line in missing))


@pytest.mark.parametrize("name", script_names())
def test_index_and_audio_agree(name):
    index = load_index(name)
    assert index["sample_rate"] == ESPEAK_RATE
    offset = 0
    for u in index["utterances"]:
        assert u["offset"] == offset and u["length"] > ESPEAK_RATE // 4, u["text"]
        assert u["key"] == utterance_key(generate.Line(u["speaker"], u["text"]))
        offset += u["length"]
    audio = rendered_utterances(name)
    assert len(audio) == len(index["utterances"])
    assert sum(len(a) for a in audio.values()) == offset
    assert len(generate.decode_flac(generate.RENDERED / index["audio"])) == offset
    # Nothing stale: every utterance is still a line of the script.
    stale = {u["key"] for u in index["utterances"]} - {utterance_key(line) for line in load_script(name)}
    assert not stale, f"{name}: rendered utterances no script line uses; run `{REFRESH}`"


def test_a_session_is_built_without_espeak(no_espeak, tmp_path):
    session = generate_session("session2", tmp_path)
    lines = load_script("session2")
    assert [s.text for s in session.segments] == [line.text for line in lines]
    with wave.open(str(session.mixed)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (ESPEAK_RATE, 1, 2)
        assert w.getnframes() / ESPEAK_RATE == pytest.approx(session.duration)
    for track in session.tracks.values():
        with wave.open(str(track)) as w:
            assert w.getnframes() == round(session.duration * ESPEAK_RATE)
    # Turns are separated by the same pause as before.
    first, second = session.segments[:2]
    assert second.start - first.end == pytest.approx(generate.TURN_GAP_SECONDS, abs=0.002)


def test_a_new_line_without_espeak_is_named(no_espeak, tmp_path):
    script = tmp_path / "session1.txt"
    script.write_text(generate.script_path("session1").read_text()
                      + "CLIENT: A line nobody has rendered yet.\n", encoding="utf-8")
    with pytest.raises(MissingSpeech) as caught:
        generate_session(script, tmp_path / "out")
    message = str(caught.value)
    assert "1 line(s)" in message and "CLIENT: A line nobody has rendered yet." in message
    assert "espeak-ng is not installed" in message and "--refresh" in message
