"""The HTTP fuzz at length: the properties of tests/test_fuzz.py (strategies and checks in
tests/fuzzing.py) run for many cases against a real app on SQLite, a real Redis, the Zoom and
Google stand-ins and an SMTP sink, counting instead of stopping at the first failure.

    .venv/bin/python bench/fuzz.py [--cases 10000] [--seed 0]

Prints the cases run per property, the total, the answers' statuses, how many were 5xx, how
many log lines held a secret, the wall time, and a reproducer for the first failures."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tests.conftest  # noqa: E402,F401  (the suite's environment: offline, test AWS credentials)
from tests.fuzzing import REGRESSIONS, LogCapture, Tally, open_world, properties, run_property  # noqa: E402
from tests.googlestub import GoogleStub  # noqa: E402
from tests.services import RedisServer, SmtpSink  # noqa: E402
from tests.zoomstub import ZoomStub  # noqa: E402

# How the cases are shared out: the open route table gets the most, then the client's token
# routes (Range and conditional headers), then the signed webhooks and the slash command.
SHARES = {"any route": 0.30, "client links": 0.25, "zoom webhook": 0.20, "slack command": 0.15,
          "google push": 0.10}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10000, help="cases in total (default 10000)")
    ap.add_argument("--seed", type=int, default=0, help="hypothesis seed (default 0)")
    args = ap.parse_args()

    per_property = {name: max(1, round(args.cases * share)) for name, share in SHARES.items()}
    tmp = Path(tempfile.mkdtemp(prefix="hs-fuzz-"))
    redis, smtp = RedisServer(), SmtpSink()
    redis.start()
    smtp.start()
    tallies: dict[str, Tally] = {}
    walls: dict[str, float] = {}
    started = time.perf_counter()
    try:
        with ZoomStub() as zoom, GoogleStub() as google:
            world = open_world(tmp, redis.url, zoom, smtp, google)
            setup_wall = time.perf_counter() - started
            strategies = properties(world)
            for name, n in per_property.items():
                tallies[name] = Tally()
                t0 = time.perf_counter()
                with LogCapture() as capture:
                    run_property(world, capture, strategies[name], n, tallies[name],
                                 raise_on_failure=False, seed=args.seed,
                                 examples=REGRESSIONS.get(name, ()))
                walls[name] = time.perf_counter() - t0
            world.hs.rt.engine.dispose()
    finally:
        redis.close()
        smtp.close()
        shutil.rmtree(tmp, ignore_errors=True)
    wall = time.perf_counter() - started

    total = sum(t.cases for t in tallies.values())
    five_xx = sum(t.five_xx for t in tallies.values())
    leaking = sum(t.leaking_lines for t in tallies.values())
    print(f"HTTP fuzz, seed {args.seed}: {total} cases asked {args.cases}")
    print(f"  world built in {setup_wall:.1f}s (rebuilt {world.builds - 1}x, mended {world.mends}x during"
          f" the run); log lines of the build holding a secret: {len(world.setup_leaks)}")
    for name, t in tallies.items():
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(t.statuses.items(), key=lambda kv: str(kv[0])))
        print(f"  {name:14s} {t.cases:6d} cases  {t.cases / walls[name]:5.1f}/s  5xx {t.five_xx}"
              f"  leaking log lines {t.leaking_lines} of {t.scanned_lines} read  [{statuses}]")
    scanned = sum(t.scanned_lines for t in tallies.values())
    print(f"  total          {total:6d} cases  5xx {five_xx}  leaking log lines {leaking} of {scanned} read"
          f"  wall {wall:.1f}s ({total / wall:.1f} cases/s overall)")
    for name, t in tallies.items():
        for example in t.examples:
            print(f"\n--- {name}: failing case\n{example}")
    return 1 if five_xx or leaking or world.setup_leaks else 0


if __name__ == "__main__":
    sys.exit(main())
