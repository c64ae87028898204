"""No plaintext media, WAV or transcript on disk, during a whole pipeline run and after a
worker is killed in the middle of transcribing: the recording is decoded in memory from the
vault's decrypting reader, and nothing else is written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlmodel import select

from models import CoachingSession, Transcript
from tests.media import encode, wav_file_bytes
from tests.plaintext import needles, plaintext_files
from tests.zoomhelpers import audio_recording, coach_and_client, post_zoom

ROOT = Path(__file__).resolve().parents[2]


def speech_m4a(speech, name: str = "session1") -> bytes:
    samples, rate = wav_file_bytes(speech[name].mixed)
    return encode(samples[None, :], rate, "m4a")  # the index at the end, as Zoom's often is


class FileWrites:
    """Every file this process opens for writing (Python's own `open` audit event)."""

    def __init__(self):
        self.paths: list[str] = []
        self.on = False
        sys.addaudithook(self._hook)  # hooks cannot be removed; `on` scopes this one

    def _hook(self, event, args):
        if self.on and event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            mode, flags = args[1], args[2]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            if writing:
                self.paths.append(os.fsdecode(args[0]))


_writes = FileWrites()


def test_a_whole_pipeline_run_writes_no_plaintext_anywhere(hs_factory, database_url, zoom_stub,
                                                          smtp_sink, speech, tmp_path, monkeypatch):
    private_tmp = tmp_path / "tmpdir"
    private_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(private_tmp))
    monkeypatch.setattr("tempfile.tempdir", str(private_tmp))
    hs = hs_factory(database_url, zoom_stub=zoom_stub, smtp_url=smtp_sink.url, TRANSCRIBE_ENGINE="local",
                    SUMMARY_ENGINE="offline")
    coach_and_client(hs)
    media = speech_m4a(speech, "session2")
    assert post_zoom(hs.http, audio_recording(zoom_stub, media)).status_code == 200
    _writes.paths.clear()
    _writes.on = True
    try:
        hs.drain()
    finally:
        _writes.on = False
    with hs.db() as db:
        (session,) = db.exec(select(CoachingSession)).all()
        (transcript,) = db.exec(select(Transcript)).all()
    assert session.state == "delivered", session.error
    assert len(transcript.text) > 500

    vault_dir = tmp_path / "vault"
    database = Path(database_url.removeprefix("sqlite:///"))
    # The only files the job opened for writing are the vault's (ciphertext) and the database's.
    outside = [p for p in _writes.paths if not Path(p).resolve().is_relative_to(vault_dir.resolve())
               and not Path(p).name.startswith(database.name)]
    assert outside == []
    assert any(Path(p).is_relative_to(vault_dir) for p in _writes.paths)  # the hook did see writes
    found = needles(media, transcript.text)
    hits = plaintext_files([hs.rt.settings.var_dir, private_tmp, Path.cwd()], found,
                           skip=[ROOT / ".venv", ROOT / ".git", ROOT / "demo", ROOT / "tests"])
    assert hits == []
    assert plaintext_files([vault_dir], found) == []  # the vault holds only ciphertext


@pytest.mark.slow
def test_a_worker_killed_mid_transcription_leaves_no_plaintext(hs_factory, database_url, zoom_stub,
                                                               smtp_sink, speech, tmp_path):
    hs = hs_factory(database_url, zoom_stub=zoom_stub, smtp_url=smtp_sink.url, TRANSCRIBE_ENGINE="local",
                    SUMMARY_ENGINE="offline")
    coach_and_client(hs)
    media = speech_m4a(speech, "session1")
    assert post_zoom(hs.http, audio_recording(zoom_stub, media)).status_code == 200
    work, private_tmp = tmp_path / "cwd", tmp_path / "tmpdir"
    work.mkdir()
    private_tmp.mkdir()
    # A real worker, started in an empty directory with its own TMPDIR: it downloads the
    # recording into the vault, then starts transcribing it.
    env = {**os.environ, **hs.env, "TMPDIR": str(private_tmp), "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "worker"], cwd=work, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        state = None
        while time.monotonic() < deadline and worker.poll() is None:
            with hs.db() as db:
                sessions = db.exec(select(CoachingSession)).all()
                state = sessions[0].state if sessions else None
            if state == "transcribing":
                break
            time.sleep(0.1)
        assert state == "transcribing", worker.stderr.read().decode()[-2000:] if worker.poll() is not None else state
        time.sleep(4)  # well into decoding and Whisper
        assert worker.poll() is None, "the transcription ended before it could be killed"
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    found = needles(media)
    assert plaintext_files([hs.rt.settings.var_dir, private_tmp, work], found) == []
    assert plaintext_files([tmp_path / "vault"], found) == []


def test_the_scan_finds_every_kind_of_plaintext_copy(speech, tmp_path):
    # The checks above can only pass for the right reason if the scan sees each kind of copy.
    import io

    import numpy as np

    from workers.transcription.audio import decode_audio, wav_bytes
    media = speech_m4a(speech, "session2")
    text = " ".join(s.text for s in speech["session2"].segments)
    found = needles(media, text)
    samples = np.concatenate(list(decode_audio(io.BytesIO(media))))
    copies = {
        "spool": media[1000:200_000],                          # part of the recording
        "audio.wav": wav_bytes(samples),                       # a WAV, header and all
        "raw.pcm": wav_bytes(samples)[44 + 64_000:400_000],    # headerless 16-bit PCM
        "dump.npy": samples[50_000:120_000].astype("<f4").tobytes(),  # a float dump
        "notes.txt": text[200:600].encode(),                   # the words
    }
    for name, data in copies.items():
        directory = tmp_path / name.replace(".", "-")
        directory.mkdir()
        (directory / name).write_bytes(data)
        assert plaintext_files([directory], found) == [str(directory / name)], name
