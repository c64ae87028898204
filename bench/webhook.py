"""Zoom webhook answer time under load.

Runs the real app under gunicorn (on SQLite, the embedded default, and on PostgreSQL, with a
real Redis, all in temporary directories) and, in the same run, a bare Flask endpoint under
the same gunicorn settings. A load generator in
another process sends signed `recording.completed` deliveries (half new, half duplicates) at
a fixed rate and prints requests/s and p50/p99 answer times, and the ratios between the two.

    .venv/bin/python bench/webhook.py [--rate 200] [--seconds 15] [--workers 2] [--database both]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import multiprocessing as mp
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.services import PostgresServer, RedisServer, free_port, wait_for_port  # noqa: E402

SECRET = "bench-secret"


def payload(n: int) -> bytes:
    files = [{"id": f"f{n}-{t}", "file_type": t, "file_extension": t, "file_size": 1000,
              "download_url": f"https://example.zoom.us/rec/download/f{n}-{t}", "status": "completed",
              "recording_type": "audio_only"} for t in ("MP4", "M4A")]
    return json.dumps({"event": "recording.completed", "event_ts": n, "download_token": f"tok{n}",
                       "payload": {"object": {"uuid": f"bench-{n}==", "id": n, "host_id": "nobody",
                                              "topic": "bench", "recording_files": files}}}).encode()


def load(url: str, rate: int, seconds: float, out: mp.Queue) -> None:
    """Open-loop load: request i is due at t0 + i/rate, whatever the previous ones did."""
    import requests
    local = threading.local()

    def one(i: int, due: float):
        s = getattr(local, "s", None) or requests.Session()
        local.s = s
        # Every other delivery repeats an earlier one, as Zoom's retries do.
        body = payload(i if i % 2 == 0 else i - 1)
        ts = str(int(time.time()))
        sig = hmac.new(SECRET.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        start = time.perf_counter()
        r = s.post(url, data=body, headers={"x-zm-request-timestamp": ts, "x-zm-signature": f"v0={sig}",
                                             "content-type": "application/json"}, timeout=10)
        return time.perf_counter() - start, r.status_code

    total = int(rate * seconds)
    t0 = time.perf_counter() + 0.5
    with ThreadPoolExecutor(max_workers=64) as pool:
        futures = [pool.submit(one, i, t0 + i / rate) for i in range(total)]
        results = [f.result() for f in futures]
    wall = time.perf_counter() - t0
    out.put((results, wall))


def measure(app_spec: str, env: dict, workers: int, rate: int, seconds: float) -> dict:
    port = free_port()
    proc = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "-w", str(workers), "-k", "gthread", "--threads", "4",
         "-b", f"127.0.0.1:{port}", "--log-level", "warning", app_spec],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, 30)
        url = f"http://127.0.0.1:{port}/webhooks/zoom"
        q: mp.Queue = mp.Queue()
        # Two seconds of warm-up (connections opened, modules loaded), not counted.
        for phase_seconds in (2.0, seconds):
            gen = mp.Process(target=load, args=(url, rate, phase_seconds, q))
            gen.start()
            results, wall = q.get()
            gen.join()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    lat = sorted(r[0] * 1000 for r in results)
    codes = {}
    for _, c in results:
        codes[c] = codes.get(c, 0) + 1
    return {"rps": len(results) / wall, "p50": statistics.median(lat),
            "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))], "codes": codes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--database", choices=("sqlite", "postgres", "both"), default="both")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="hs-bench-"))
    redis = RedisServer()
    redis.start()
    pg = None
    results = {}
    try:
        base_env = {**os.environ, "REDIS_URL": redis.url, "ZOOM_WEBHOOK_SECRET": SECRET,
                    "SECRET_KEY": "bench", "HOLDSPACE_VAR_DIR": str(tmp / "bare")}
        results["bare Flask 200"] = measure("bench.bare_app:create_app()", base_env, args.workers,
                                            args.rate, args.seconds)
        databases = ["sqlite", "postgres"] if args.database == "both" else [args.database]
        for name in databases:
            env = {**base_env, "HOLDSPACE_VAR_DIR": str(tmp / name)}
            if name == "postgres":
                pg = PostgresServer()
                pg.start()
                env["DATABASE_URL"] = pg.create_database("bench")
            subprocess.run([str(ROOT / ".venv/bin/flask"), "--app", "app", "init-db"], cwd=ROOT,
                           env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            results[f"holdspace on {name}"] = measure("app:create_app()", env, args.workers,
                                                      args.rate, args.seconds)
    finally:
        redis.close()
        if pg:
            pg.close()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"target {args.rate} req/s for {args.seconds:.0f}s, gunicorn {args.workers} workers x 4 threads,"
          f" {os.cpu_count()} cores; half the deliveries are duplicates")
    bare = results["bare Flask 200"]
    for name, r in results.items():
        ratio = "" if r is bare else (f"   vs bare: p50 {r['p50'] / bare['p50']:.1f}x, "
                                      f"p99 {r['p99'] / bare['p99']:.1f}x, throughput {r['rps'] / bare['rps']:.2f}x")
        print(f"  {name:22s} {r['rps']:6.1f} req/s  p50 {r['p50']:6.2f} ms  p99 {r['p99']:7.2f} ms"
              f"  {r['codes']}{ratio}")
    for name, r in results.items():
        if r is not bare:
            print(f"  goal p99 < 50 ms at {args.rate} req/s, {name}: {'met' if r['p99'] < 50 else 'NOT met'}")


if __name__ == "__main__":
    main()
