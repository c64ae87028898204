"""Vault throughput, range latency and memory, against plain unencrypted transfers.

For each size, a generated source (never held in memory) is written four ways, each in its
own process so its peak RSS is its own: plain boto3 `upload_fileobj` and `Vault.put_stream`
to moto's S3 server (run in another process, so the objects it keeps do not count), and a
plain file copy and `Vault.put_stream` to a local directory (both fsync). Then a 1 MiB range
in the middle of the object is read ten times, through the vault and plainly.

    .venv/bin/python bench/vault.py [--sizes 64M,1G] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.services import free_port, wait_for_port  # noqa: E402
from vault.backends import ChunkReader  # noqa: E402  (the same reader the vault uploads through)

MiB = 1024 * 1024
CLIENT = "bench-client"
RANGE = 1 * MiB
RANGE_REPEATS = 10


def parse_size(text: str) -> int:
    units = {"K": 1024, "M": MiB, "G": 1024 * MiB}
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


def source(size: int, chunk: int = MiB):
    """`size` bytes of incompressible data, made chunk by chunk."""
    block = random.Random(size).randbytes(chunk)
    sent, index = 0, 0
    while sent < size:
        n = min(chunk, size - sent)
        yield index.to_bytes(8, "big") + block[8:n] if n > 8 else block[:n]
        sent += n
        index += 1


def rss_mb() -> float:
    import psutil
    return psutil.Process().memory_info().rss / MiB


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed_ranges(read) -> list[float]:
    out = []
    for _ in range(RANGE_REPEATS):
        t = time.perf_counter()
        read()
        out.append(time.perf_counter() - t)
    return out


# --- one measurement, in its own process ------------------------------------------------------

def worker(case: str, size: int, endpoint: str, bucket: str, directory: str) -> dict:
    import boto3
    from vault import LocalMasterKey, Vault
    from vault.backends import FileBackend, S3Backend, transfer_config

    s3 = boto3.client("s3", endpoint_url=endpoint)
    baseline = rss_mb()
    middle = size // 2 - RANGE // 2
    result: dict = {"case": case, "size": size, "rss_start_mb": round(baseline, 1)}

    if case.endswith("vault"):
        backend = (S3Backend(s3, bucket, "bench") if case.startswith("s3")
                   else FileBackend(Path(directory) / "vault"))
        vault = Vault(backend, LocalMasterKey.generate())
        vault.ensure_client_key(CLIENT)
        t, cpu = time.perf_counter(), cpu_seconds()
        stored = vault.put_stream(CLIENT, "sessions/bench/video.mp4", source(size), "video/mp4")
        result["seconds"] = time.perf_counter() - t
        result["cpu_s"] = cpu_seconds() - cpu
        result["peak_rss_mb"] = round(peak_rss_mb(), 1)
        assert stored.size == size
        fresh = Vault(backend, vault._master)  # cold key cache for the first range
        first = time.perf_counter()
        data = b"".join(fresh.open_range(stored.key, middle, middle + RANGE))
        result["range_first_s"] = time.perf_counter() - first
        assert len(data) == RANGE
        result["range_s"] = timed_ranges(
            lambda: b"".join(vault.open_range(stored.key, middle, middle + RANGE)))
        vault.delete(stored.key)
        vault.shred_client_key(CLIENT)
    elif case == "s3-plain":
        key = "bench/plain/video.mp4"
        t, cpu = time.perf_counter(), cpu_seconds()
        s3.upload_fileobj(ChunkReader(source(size)), bucket, key,
                          ExtraArgs={"ServerSideEncryption": "AES256",
                                     "ContentType": "application/octet-stream"},
                          Config=transfer_config())
        result["seconds"] = time.perf_counter() - t
        result["cpu_s"] = cpu_seconds() - cpu
        result["peak_rss_mb"] = round(peak_rss_mb(), 1)
        result["range_s"] = timed_ranges(lambda: s3.get_object(
            Bucket=bucket, Key=key, Range=f"bytes={middle}-{middle + RANGE - 1}")["Body"].read())
        s3.delete_object(Bucket=bucket, Key=key)
    elif case == "file-plain":
        path = Path(directory) / "plain.bin"
        t, cpu = time.perf_counter(), cpu_seconds()
        with open(path, "wb") as f:
            for chunk in source(size):
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        result["seconds"] = time.perf_counter() - t
        result["cpu_s"] = cpu_seconds() - cpu
        result["peak_rss_mb"] = round(peak_rss_mb(), 1)

        def pread():
            with open(path, "rb") as f:
                f.seek(middle)
                return f.read(RANGE)
        result["range_s"] = timed_ranges(pread)
        path.unlink()
    else:
        raise SystemExit(f"unknown case {case}")
    return result


def run_worker(case, size, endpoint, bucket, directory) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", case, "--size", str(size), "--endpoint", endpoint,
         "--bucket", bucket, "--dir", directory], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{case} at {size} bytes failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- the report --------------------------------------------------------------------------------

def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64M,1G", help="comma-separated, e.g. 8M,64M,1G")
    parser.add_argument("--repeat", type=int, default=2, help="runs per case; the best counts")
    parser.add_argument("--backends", default="s3,file", help="s3, file or both")
    parser.add_argument("--worker")
    parser.add_argument("--size", type=int)
    parser.add_argument("--endpoint")
    parser.add_argument("--bucket")
    parser.add_argument("--dir")
    args = parser.parse_args()
    for name, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        os.environ.setdefault(name, value)
    if args.worker:
        print(json.dumps(worker(args.worker, args.size, args.endpoint, args.bucket, args.dir)))
        return

    backends = [b for b in ("s3", "file") if b in args.backends.split(",")]
    port = free_port()
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    directory = tempfile.mkdtemp(prefix="hs-bench-vault-")
    try:
        wait_for_port(port)
        endpoint = f"http://127.0.0.1:{port}"
        import boto3
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench-vault")
        print(f"vault benchmark: moto S3 at {endpoint} (separate process), files in "
              f"{directory}; {os.cpu_count()} CPUs; part 8 MiB, 4 concurrent parts")
        for size in (parse_size(s) for s in args.sizes.split(",")):
            results: dict[str, dict] = {}
            for _ in range(args.repeat):
                for case in (f"{b}-{kind}" for b in backends for kind in ("plain", "vault")):
                    r = run_worker(case, size, endpoint, "bench-vault", directory)
                    if case not in results or r["seconds"] < results[case]["seconds"]:
                        results[case] = r
            print(f"\n{size / MiB:.0f} MiB source (best of {args.repeat})")
            print("  backend  plain MB/s  vault MB/s  ratio  CPU s plain / vault  "
                  "peak RSS plain / vault (start)")
            for backend in backends:
                plain, sealed = results[f"{backend}-plain"], results[f"{backend}-vault"]
                print(f"  {backend:<7} {size / MiB / plain['seconds']:10.1f} "
                      f"{size / MiB / sealed['seconds']:11.1f} "
                      f"{plain['seconds'] / sealed['seconds']:6.2f}  "
                      f"{plain['cpu_s']:6.2f} / {sealed['cpu_s']:6.2f}      "
                      f"{plain['peak_rss_mb']:6.1f} / {sealed['peak_rss_mb']:6.1f} MB "
                      f"({sealed['rss_start_mb']:.0f} MB after imports)")
            print(f"  1 MiB range in the middle, median of {RANGE_REPEATS}:")
            for backend, plain_name in (("s3", "ranged GET"), ("file", "seek+read")):
                if backend not in backends:
                    continue
                plain, sealed = results[f"{backend}-plain"], results[f"{backend}-vault"]
                print(f"    {backend:<5} vault open_range {ms(sealed['range_s'])} "
                      f"(first, cold key cache {sealed['range_first_s'] * 1000:.1f} ms); "
                      f"plain {plain_name} {ms(plain['range_s'])}")
    finally:
        moto.terminate()
        moto.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
