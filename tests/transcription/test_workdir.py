"""Decrypted audio leaves nothing behind: private work directories and ffmpeg extraction."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
import wave
from pathlib import Path

import pytest

from workers.transcription.audio import (
    AudioError,
    extract_audio,
    private_workdir,
    sweep_stale_workdirs,
)

ROOT = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def tone(seconds: float, fmt: str, tmp_path: Path, *extra: str) -> bytes:
    out = tmp_path / f"tone.{fmt}"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", f"anoisesrc=d={seconds}:a=0.3:r=44100", "-ac", "2", *extra, str(out)],
        check=True,
    )
    return out.read_bytes()


def pieces(data: bytes, size: int = 4096):
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_workdir_is_private_and_removed_after_success(tmp_path):
    with private_workdir(tmp_path) as workdir:
        assert mode(workdir) == 0o700
        wav = extract_audio(pieces(tone(2, "mp3", tmp_path)), workdir)
        assert mode(wav) == 0o600
        assert wav.parent == workdir
    assert not workdir.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["tone.mp3"]


def test_workdir_is_removed_when_the_job_fails_midway(tmp_path):
    parent = tmp_path / "work"

    def decrypted_then_broken():
        yield tone(1, "wav", tmp_path)[:30000]
        raise ValueError("vault: segment 3 failed authentication")

    with pytest.raises(ValueError, match="segment 3"):
        with private_workdir(parent) as workdir:
            extract_audio(decrypted_then_broken(), workdir)
    assert list(parent.iterdir()) == []


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from workers.transcription.audio import private_workdir, extract_audio
    data = Path(sys.argv[2]).read_bytes()
    with private_workdir(Path(sys.argv[1])) as workdir:
        extract_audio([data], workdir)
        print(workdir, flush=True)
        time.sleep(600)
    """
)


def spawn_holder(parent: Path, media: Path) -> tuple[subprocess.Popen, Path]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(parent), str(media)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    line = child.stdout.readline().strip()
    assert line, "child did not report its workdir"
    return child, Path(line)


def test_sigkilled_job_leaves_a_dir_that_the_sweep_removes(tmp_path):
    parent = tmp_path / "work"
    media = tmp_path / "tone.wav"
    media.write_bytes(tone(1, "wav", tmp_path))

    live_child, live_dir = spawn_holder(parent, media)
    killed_child, killed_dir = spawn_holder(parent, media)
    try:
        killed_child.send_signal(signal.SIGKILL)
        killed_child.wait()
        assert (killed_dir / "audio.wav").exists()  # SIGKILL left the plaintext behind

        with private_workdir(parent) as own_dir:
            removed = sweep_stale_workdirs(parent, older_than_seconds=0)
            # Only the dead process's directory goes; a live process's never does.
            assert removed == [killed_dir]
            assert live_dir.exists() and own_dir.exists()
        assert sweep_stale_workdirs(parent, older_than_seconds=0) == []
    finally:
        live_child.kill()
        live_child.wait()
    # Once its owner is gone, the other one goes too, and nothing is left.
    assert sweep_stale_workdirs(parent, older_than_seconds=0) == [live_dir]
    assert list(parent.iterdir()) == []


def test_sweep_respects_age_and_leaves_foreign_names_alone(tmp_path):
    parent = tmp_path / "work"
    media = tmp_path / "tone.wav"
    media.write_bytes(tone(1, "wav", tmp_path))
    child, workdir = spawn_holder(parent, media)
    child.kill()
    child.wait()
    (parent / "not-ours").mkdir()
    assert sweep_stale_workdirs(parent, older_than_seconds=3600) == []  # too young to judge
    old = time.time() - 7200
    os.utime(workdir, (old, old))
    assert sweep_stale_workdirs(parent, older_than_seconds=3600) == [workdir]
    assert [p.name for p in parent.iterdir()] == ["not-ours"]


@pytest.mark.parametrize(
    "fmt, extra",
    [
        ("mp3", ()),
        ("ogg", ()),
        ("m4a", ("-movflags", "+faststart")),  # index first: readable straight from the pipe
        ("m4a", ()),  # index (moov) last, as ffmpeg writes it: only the spool can be read
        ("mp4", ("-f", "mp4")),
    ],
)
def test_extract_audio_gives_16k_mono_wav(tmp_path, fmt, extra):
    data = tone(30, fmt, tmp_path, *extra)
    with private_workdir(tmp_path / "work") as workdir:
        wav = extract_audio(pieces(data, 65536), workdir)
        with wave.open(str(wav)) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
            assert w.getnframes() / 16000 == pytest.approx(30, abs=0.1)
        assert sorted(p.name for p in workdir.iterdir()) == ["audio.wav"]  # the spool is gone


def test_extract_audio_rejects_what_is_not_audio(tmp_path):
    with private_workdir(tmp_path / "work") as workdir:
        with pytest.raises(AudioError, match="ffmpeg could not read the audio"):
            extract_audio([b"this is not media at all" * 100], workdir)
