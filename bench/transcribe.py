"""Transcription speed: the local engine's real-time factor and pipeline overhead, and the
OpenAI-compatible engine's wall time against one chunk's latency.

Local: about ten minutes of espeak-ng speech (the test scripts, read over and over) encoded
as M4A, as Zoom delivers audio. "Direct" is faster-whisper's `WhisperModel.transcribe` on the
file; "pipeline" is what a job does: the file's bytes streamed through `extract_audio` into a
private workdir, then `LocalWhisper.transcribe`. Both use the same loaded model and the same
decoding options, so the difference is the pipeline's own cost.

OpenAI: sixty minutes of tone bursts sent to the local stand-in, which holds every request
for a fixed delay; the wall time is compared with the latency of a single one-chunk request.

    .venv/bin/python bench/transcribe.py [--minutes 10] [--repeat 1] [--delay 2.0] [--skip-local]
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from integrations.openai_api import make_client  # noqa: E402
from tests.openaistub import OpenAIStub, write_tone_wav  # noqa: E402
from tests.speech.generate import generate_session  # noqa: E402
from workers.transcription.audio import extract_audio, private_workdir, wav_duration  # noqa: E402
from workers.transcription.local import LocalWhisper  # noqa: E402
from workers.transcription.openai_engine import OpenAITranscriber  # noqa: E402


def speech_file(minutes: float, tmp: Path) -> tuple[Path, float]:
    session = generate_session("session1", tmp, repeat=max(1, round(minutes * 60 / 168)))
    m4a = tmp / "speech.m4a"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(session.mixed),
         "-t", str(minutes * 60), "-c:a", "aac", "-b:a", "64k", str(m4a)],
        check=True,
    )
    return m4a, min(session.duration, minutes * 60)


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # ffmpeg, once it has exited
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def stream(path: Path, size: int = 256 * 1024):
    with open(path, "rb") as f:
        while chunk := f.read(size):
            yield chunk


def bench_local(minutes: float, repeat: int) -> None:
    engine = LocalWhisper()
    model = engine.model  # load once, outside the timings
    options = dict(beam_size=engine.beam_size, vad_filter=engine.vad_filter, word_timestamps=engine.word_timestamps)
    with tempfile.TemporaryDirectory() as tmp:
        media, duration = speech_file(minutes, Path(tmp))
        list(model.transcribe(str(media), **options)[0])  # warm caches and threads

        # Interleaved, so a change in the machine's load hits both alike; CPU time (all
        # threads, and ffmpeg's) is reported beside wall time as it hardly moves with load.
        direct, pipeline, extract = [], [], []
        for _ in range(repeat):
            wall, cpu = time.perf_counter(), cpu_seconds()
            list(model.transcribe(str(media), **options)[0])
            direct.append((time.perf_counter() - wall, cpu_seconds() - cpu))

            wall, cpu = time.perf_counter(), cpu_seconds()
            with private_workdir(Path(tmp) / "work") as workdir:
                wav = extract_audio(stream(media), workdir)
                extract.append(time.perf_counter() - wall)
                engine.transcribe(wav)
            pipeline.append((time.perf_counter() - wall, cpu_seconds() - cpu))

    def median(runs, i):
        return statistics.median(r[i] for r in runs)

    dw, dc, pw, pc = median(direct, 0), median(direct, 1), median(pipeline, 0), median(pipeline, 1)
    e = statistics.median(extract)
    print(f"local engine ({engine.model_name}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
          f"{duration / 60:.1f} min of speech, median of {repeat}):")
    print(f"  direct   WhisperModel.transcribe(file)    wall {dw:6.1f} s (RTF {dw / duration:.3f})  CPU {dc:6.1f} s")
    print(f"  pipeline extract_audio + LocalWhisper     wall {pw:6.1f} s (RTF {pw / duration:.3f})  CPU {pc:6.1f} s")
    print(f"    of which extract_audio (ffmpeg, wall)   {e:6.1f} s")
    print(f"  pipeline overhead over direct: wall {100 * (pw - dw) / dw:+.1f}%, CPU {100 * (pc - dc) / dc:+.1f}% "
          "(goal: under 10%)")


def bench_openai(minutes: float, delay: float, concurrencies: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp, OpenAIStub(delay=delay) as stub:
        client = make_client(base_url=stub.base_url, api_key="sk-test")
        # One chunk's latency: a single upload as long as each chunk of the long recording.
        chunks = math.ceil(minutes * 60 * 32000 / OpenAITranscriber(client).max_chunk_bytes)
        short = Path(tmp) / "one-chunk.wav"
        write_tone_wav(short, minutes * 60 / chunks)
        latencies = []
        for _ in range(3):
            started = time.perf_counter()
            with private_workdir(Path(tmp) / "work") as workdir:
                OpenAITranscriber(client).transcribe(short, workdir)
            latencies.append(time.perf_counter() - started)
        one = statistics.median(latencies)

        recording = Path(tmp) / "long.wav"
        write_tone_wav(recording, minutes * 60)
        print(f"openai engine against the stub ({delay:.1f} s per request; {minutes:.0f} min, "
              f"{recording.stat().st_size / 1e6:.0f} MB of WAV; one {minutes / chunks:.0f}-minute "
              f"chunk alone: {one:.2f} s):")
        for concurrency in concurrencies:
            stub.uploads.clear()
            stub.max_in_flight = 0
            started = time.perf_counter()
            with private_workdir(Path(tmp) / "work") as workdir:
                OpenAITranscriber(client, max_concurrency=concurrency).transcribe(recording, workdir)
            wall = time.perf_counter() - started
            print(f"  max_concurrency {concurrency}: {len(stub.uploads)} chunks, {stub.max_in_flight} in flight, "
                  f"wall {wall:.2f} s = {wall / one:.2f} x one chunk's latency")
        print(f"  (audio duration {wav_duration(recording) / 60:.0f} min)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes of speech for the local engine")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--openai-minutes", type=float, default=60.0)
    parser.add_argument("--delay", type=float, default=2.0, help="the stub's fixed per-request delay")
    parser.add_argument("--skip-local", action="store_true")
    args = parser.parse_args()
    if not args.skip_local:
        bench_local(args.minutes, args.repeat)
    bench_openai(args.openai_minutes, args.delay, [1, 4, 8])


if __name__ == "__main__":
    main()
