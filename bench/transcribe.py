"""Transcription speed and memory: the PyAV path a job takes against the old ffmpeg path and
against faster-whisper on a plain file, and the OpenAI-compatible engine's concurrency.

Local: espeak-ng speech (the test scripts, read over and over) encoded as an M4A whose index
is at the end, as Zoom delivers audio, and stored in a vault on the local disk. Three ways
to transcribe it, each in a fresh process with the same packaged model and decoding options:

- `pyav`: what a job does now: `vault.open_file()` → PyAV decode in memory → `LocalWhisper`
  in chunks cut at silences (no file written);
- `ffmpeg`: what a job did before: the decrypted recording spooled to a file, converted by the
  ffmpeg binary to a 16 kHz WAV file, and that file given to faster-whisper (skipped, saying
  so, where ffmpeg is not installed);
- `file`: faster-whisper's own `WhisperModel.transcribe()` on the plaintext M4A (it decodes the
  whole file into memory first).

Peak RSS is the process's high-water mark after the model has loaded (reset through
/proc/self/clear_refs), so it shows what transcription itself holds, for a short and a long
recording. OpenAI: tone bursts sent to the local stand-in, which holds each request for a
fixed delay; the wall time is compared with the latency of a single one-chunk request.

    .venv/bin/python bench/transcribe.py [--minutes 10] [--long-minutes 120] [--skip-openai]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from integrations.openai_api import make_client  # noqa: E402
from tests.media import encode_blocks  # noqa: E402
from tests.openaistub import OpenAIStub, write_tone_wav  # noqa: E402
from vault import LocalMasterKey, Vault  # noqa: E402
from vault.backends import FileBackend  # noqa: E402
from workers.transcription.openai_engine import OpenAITranscriber  # noqa: E402

CLIENT = "bench-client"


# --- the recording -------------------------------------------------------------------------------

def speech_m4a(minutes: float, out: Path) -> float:
    """`minutes` of test speech as an M4A (index at the end) at `out`; its duration."""
    from tests.speech.generate import generate_session
    with tempfile.TemporaryDirectory() as tmp:
        session = generate_session("session1", Path(tmp), repeat=max(1, math.ceil(minutes * 60 / 160)))
        with wave.open(str(session.mixed), "rb") as w:
            rate, frames = w.getframerate(), min(w.getnframes(), int(minutes * 60 * w.getframerate()))

            def blocks():
                left = frames
                while left > 0:
                    pcm = np.frombuffer(w.readframes(min(left, rate * 60)), dtype=np.int16)
                    left -= len(pcm)
                    yield (pcm.astype(np.float32) / 32768.0)[None, :]

            encode_blocks(blocks(), rate, str(out), "m4a")
    return frames / rate


def vault_at(root: Path, master_hex: str) -> Vault:
    return Vault(FileBackend(root), LocalMasterKey(bytes.fromhex(master_hex)))


# --- one measurement, in its own process --------------------------------------------------------

def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak_rss() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM := current RSS
    except OSError:
        pass


def _cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measure(mode: str, media: Path, vault_root: Path, key: str) -> dict:
    from workers.transcription.local import LocalWhisper
    engine = LocalWhisper()
    model = engine.model  # loaded (and its halves joined) before the clock and the peak start
    options = dict(beam_size=engine.beam_size, vad_filter=engine.vad_filter,
                   word_timestamps=engine.word_timestamps)
    _reset_peak_rss()
    baseline = _peak_rss_mb()
    wall, cpu = time.perf_counter(), _cpu()
    child_peak = 0.0
    if mode == "pyav":
        vault = vault_at(vault_root, os.environ["BENCH_MASTER_KEY"])
        with vault.open_file(key) as reader:
            segments = engine.transcribe(reader).segments
    elif mode == "ffmpeg":
        vault = vault_at(vault_root, os.environ["BENCH_MASTER_KEY"])
        with tempfile.TemporaryDirectory() as work:
            spool, wav = Path(work) / "source", Path(work) / "audio.wav"
            with open(spool, "wb") as f:
                for chunk in vault.open(key):
                    f.write(chunk)
            subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(spool), "-vn",
                            "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", str(wav)], check=True)
            spool.unlink()
            child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            segments = list(model.transcribe(str(wav), **options)[0])
    else:
        segments = list(model.transcribe(str(media), **options)[0])
    return {"wall": time.perf_counter() - wall, "cpu": _cpu() - cpu, "segments": len(segments),
            "peak_mb": _peak_rss_mb(), "baseline_mb": baseline, "ffmpeg_peak_mb": child_peak}


def run_measure(mode: str, media: Path, vault_root: Path, key: str, master_hex: str) -> dict:
    env = {**os.environ, "BENCH_MASTER_KEY": master_hex}
    out = subprocess.run([sys.executable, __file__, "--measure", mode, str(media), str(vault_root), key],
                         check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


# --- the local engine ---------------------------------------------------------------------------

def bench_local(minutes: float, long_minutes: float) -> None:
    have_ffmpeg = shutil.which("ffmpeg") is not None
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        master_hex = os.urandom(32).hex()  # handed to each measuring process
        vault = vault_at(tmp / "vault", master_hex)
        print(f"local engine, packaged Whisper base, {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f}; each row a fresh process:")
        rows = {}
        for length in [m for m in (minutes, long_minutes) if m]:
            media = tmp / f"speech-{length:g}.m4a"
            duration = speech_m4a(length, media)
            vault.ensure_client_key(CLIENT)
            with open(media, "rb") as f:
                key = vault.put_stream(CLIENT, f"bench/{length:g}.m4a", f, "audio/mp4").key
            modes = ["pyav"] if length != minutes else ["pyav", "ffmpeg", "file"]
            for mode in modes:
                if mode == "ffmpeg" and not have_ffmpeg:
                    print(f"  {length:5.0f} min  ffmpeg  skipped: the ffmpeg binary is not installed")
                    continue
                r = run_measure(mode, media, tmp / "vault", key, master_hex)
                rows[(length, mode)] = r
                extra = f" (+ ffmpeg itself {r['ffmpeg_peak_mb']:.0f} MB)" if r["ffmpeg_peak_mb"] else ""
                print(f"  {duration / 60:5.1f} min  {mode:6s}  wall {r['wall']:7.1f} s  RTF {r['wall'] / duration:.3f}"
                      f"  CPU {r['cpu']:7.1f} s  peak RSS {r['peak_mb']:5.0f} MB"
                      f" ({r['peak_mb'] - r['baseline_mb']:+.0f} MB over the loaded model){extra}"
                      f"  {r['segments']} segments")
        pyav = rows.get((minutes, "pyav"))
        for other in ("ffmpeg", "file"):
            if pyav and (minutes, other) in rows:
                o = rows[(minutes, other)]
                print(f"  pyav / {other}: wall {pyav['wall'] / o['wall']:.2f}, CPU {pyav['cpu'] / o['cpu']:.2f}"
                      " (goal against ffmpeg: at most 1.0)")
        if long_minutes and (long_minutes, "pyav") in rows and pyav:
            long = rows[(long_minutes, "pyav")]
            print(f"  peak RSS over the model, {long_minutes:g} min against {minutes:g} min: "
                  f"{long['peak_mb'] - long['baseline_mb']:.0f} MB against "
                  f"{pyav['peak_mb'] - pyav['baseline_mb']:.0f} MB (goal: flat)")


# --- the OpenAI-compatible engine ----------------------------------------------------------------

def bench_openai(minutes: float, delay: float, concurrencies: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp, OpenAIStub(delay=delay) as stub:
        client = make_client(base_url=stub.base_url, api_key="sk-test")
        chunks = math.ceil(minutes * 60 * 32000 / OpenAITranscriber(client).max_chunk_bytes)
        short = Path(tmp) / "one-chunk.wav"
        write_tone_wav(short, minutes * 60 / chunks)
        latencies = []
        for _ in range(3):
            started = time.perf_counter()
            OpenAITranscriber(client).transcribe(short)
            latencies.append(time.perf_counter() - started)
        one = statistics.median(latencies)

        recording = Path(tmp) / "long.wav"
        write_tone_wav(recording, minutes * 60)
        print(f"openai engine against the stub ({delay:.1f} s per request; {minutes:.0f} min, "
              f"{recording.stat().st_size / 1e6:.0f} MB as WAV; one {minutes / chunks:.0f}-minute "
              f"chunk alone: {one:.2f} s):")
        for concurrency in concurrencies:
            stub.uploads.clear()
            stub.max_in_flight = 0
            started = time.perf_counter()
            OpenAITranscriber(client, max_concurrency=concurrency).transcribe(recording)
            wall = time.perf_counter() - started
            print(f"  max_concurrency {concurrency}: {len(stub.uploads)} chunks, {stub.max_in_flight} in flight, "
                  f"wall {wall:.2f} s = {wall / one:.2f} x one chunk's latency")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes of speech for the comparison")
    parser.add_argument("--long-minutes", type=float, default=120.0, help="a long recording's minutes, for memory (0: skip)")
    parser.add_argument("--openai-minutes", type=float, default=60.0)
    parser.add_argument("--delay", type=float, default=2.0, help="the stub's fixed per-request delay")
    parser.add_argument("--skip-local", action="store_true")
    parser.add_argument("--skip-openai", action="store_true")
    parser.add_argument("--measure", nargs=4, metavar=("MODE", "MEDIA", "VAULT", "KEY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        mode, media, root, key = args.measure
        print(json.dumps(measure(mode, Path(media), Path(root), key)))
        return
    if not args.skip_local:
        bench_local(args.minutes, args.long_minutes)
    if not args.skip_openai:
        bench_openai(args.openai_minutes, args.delay, [1, 4, 8])


if __name__ == "__main__":
    main()
