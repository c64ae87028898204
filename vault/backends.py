"""Where ciphertext lives: an S3 bucket (any S3-compatible endpoint) or a local directory.

Backends move opaque bytes; they never see a key or a plaintext byte.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import os
import tempfile
import time
from datetime import datetime, timedelta, timezone
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

from vault.errors import ObjectNotFound, VaultError

MiB = 1024 * 1024
PART_SIZE = 8 * MiB
UPLOAD_CONCURRENCY = 4
STREAM_CHUNK = 1 * MiB
WRITE_BATCH = 1 * MiB
TEMP_PREFIX = ".hsv-tmp-"


class ObjectChanged(VaultError):
    """The object was replaced between two reads of one operation (a re-run job wrote it)."""


def check_key(key: str) -> str:
    """Refuse storage keys that could escape the vault's root or prefix."""
    parts = key.split("/")
    if not key or key.startswith("/") or "\\" in key or "\x00" in key or any(
            p in ("", ".", "..") for p in parts):
        raise VaultError(f"invalid storage key {key!r}")
    return key


# --- local directory ---------------------------------------------------------------------------

def _makedirs_private(path: Path) -> None:
    """Like os.makedirs, but every directory it creates is 0700, not just the last one."""
    if path.is_dir():
        return
    _makedirs_private(path.parent)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _batches(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Regroup small chunks (one segment each) into writes of about `size` bytes: large
    writes are markedly faster on Linux filesystems."""
    pending, have = [], 0
    for chunk in chunks:
        pending.append(chunk)
        have += len(chunk)
        if have >= size:
            yield b"".join(pending)
            pending, have = [], 0
    if pending:
        yield b"".join(pending)


class FileReader:
    """One open file: a replaced object keeps its old inode, so all reads see one version."""

    def __init__(self, backend: FileBackend, fd: int, probe: int):
        self._backend = backend
        self._fd = fd
        self.size = os.fstat(fd).st_size
        self.head = self.read(0, min(probe, self.size))

    version_tag = None
    cached = False

    def read(self, start: int, end: int) -> bytes:
        return self._backend.pread(self._fd, start, end - start)

    def stream(self, start: int, end: int) -> Iterator[bytes]:
        def chunks() -> Iterator[bytes]:
            pos = start
            while pos < end:
                data = self._backend.pread(self._fd, pos, min(STREAM_CHUNK, end - pos))
                if not data:
                    return
                pos += len(data)
                yield data
        return chunks()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class FileBackend:
    """Objects as files under a 0700 directory, each written to a 0600 temp file and renamed in."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        _makedirs_private(self.root)

    def __repr__(self) -> str:
        return f"FileBackend({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def pread(self, fd: int, offset: int, length: int) -> bytes:
        """The one place that reads stored bytes (tests count reads here)."""
        return os.pread(fd, length, offset)

    @staticmethod
    def _temp_prefix(path: Path) -> str:
        # Names the target, so partial writes of one object can be found (abort_incomplete).
        return f"{TEMP_PREFIX}{hashlib.sha256(path.name.encode()).hexdigest()[:16]}-"

    def _write_temp(self, path: Path, chunks: Iterable[bytes]) -> str:
        for attempt in (1, 2):
            _makedirs_private(path.parent)
            try:
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=self._temp_prefix(path))
                break
            except FileNotFoundError:
                # A delete just pruned the (empty) folder we created; make it again.
                if attempt == 2:
                    raise
        try:
            with os.fdopen(fd, "wb") as f:
                for batch in _batches(chunks, WRITE_BATCH):
                    f.write(batch)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            os.unlink(tmp)
            raise
        return tmp

    def put_stream(self, key: str, chunks: Iterable[bytes], metadata: dict[str, str]) -> None:
        path = self._path(key)
        tmp = self._write_temp(path, chunks)
        try:
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        _fsync_dir(path.parent)

    def put_bytes(self, key: str, data: bytes) -> None:
        self.put_stream(key, [data], {})

    def create_bytes(self, key: str, data: bytes) -> bool:
        """Write only if nothing is there; False if another writer got there first."""
        path = self._path(key)
        tmp = self._write_temp(path, [data])
        try:
            os.link(tmp, path)  # unlike rename, link never replaces an existing file
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        _fsync_dir(path.parent)
        return True

    def create_locked(self, key: str, data: bytes, retain_days: int) -> bool:
        """Write once, read-only from then on (a file has no stronger lock than its mode)."""
        created = self.create_bytes(key, data)
        if created:
            os.chmod(self._path(key), 0o444)
        return created

    def get_bytes(self, key: str) -> bytes:
        reader = self.open_reader(key, 0)
        try:
            return reader.read(0, reader.size)
        finally:
            reader.close()

    def open_reader(self, key: str, probe: int, known=None) -> FileReader:
        # `known` is ignored: a local probe costs less than a cache, and one open file
        # descriptor already pins one version.
        try:
            fd = os.open(self._path(key), os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(f"no object {key}") from None
        try:
            return FileReader(self, fd, probe)
        except BaseException:
            os.close(fd)
            raise

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix.rstrip("/"))
        keys = []
        for dirpath, _, filenames in os.walk(base):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            keys.extend(f"{rel}/{name}" for name in filenames if not name.startswith(TEMP_PREFIX))
        return sorted(keys)

    def abort_incomplete(self, key: str, older_than: float = 0.0) -> int:
        """Remove temp files a killed writer of `key` left behind."""
        path = self._path(key)
        removed = 0
        cutoff = time.time() - older_than
        for tmp in path.parent.glob(glob.escape(self._temp_prefix(path)) + "*"):
            try:
                if tmp.stat().st_mtime <= cutoff:
                    tmp.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
        return removed

    def delete_all_versions(self, key: str) -> tuple[int, int]:
        path = self._path(key)
        try:
            size = path.stat().st_size
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return 0, 0
        self._prune_empty_dirs(path.parent)
        return 1, size

    def prune_old_versions(self, key: str) -> int:
        return 0  # a file has one version

    def _prune_empty_dirs(self, directory: Path) -> None:
        # Empty folders named after clients and sessions would outlive the erasure.
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                    return
                raise
            directory = directory.parent


# --- S3 ----------------------------------------------------------------------------------------

def transfer_config():
    """Bounded multipart settings: memory stays near (in-flight parts + queued parts) x 8 MiB."""
    from boto3.s3.transfer import TransferConfig
    config = TransferConfig(multipart_threshold=PART_SIZE, multipart_chunksize=PART_SIZE,
                            max_concurrency=UPLOAD_CONCURRENCY, use_threads=True,
                            preferred_transfer_client="classic")
    # Parts read ahead of the uploaders wait here; boto3's constructor does not expose it.
    config.max_in_memory_upload_chunks = 2
    return config


def _error_code(exc) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class ChunkReader:
    """A non-seekable file-like over an iterator of chunks, for boto3's upload_fileobj."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, n: int | None = -1) -> bytes:
        # Exactly n bytes unless the stream ends: s3transfer takes a short read for the end.
        parts = [self._pending] if self._pending else []
        have = len(self._pending)
        self._pending = b""
        while n is None or n < 0 or have < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            parts.append(chunk)
            have += len(chunk)
        if n is not None and 0 <= n < have:
            # Split only the last (segment-sized) chunk, so the part is copied once, by join.
            cut = len(parts[-1]) - (have - n)
            parts[-1], self._pending = parts[-1][:cut], parts[-1][cut:]
        return b"".join(parts)


class S3Reader:
    """An object pinned by the ETag of its first read, so later ranges come from one version.

    Given `known` (etag, size, head) from an earlier read, it makes no probe request at all;
    if the object has changed since, the first ranged read raises ObjectChanged."""

    def __init__(self, backend: S3Backend, key: str, probe: int, known=None):
        self._backend = backend
        self._key = key
        self._etag = None
        self.cached = known is not None
        if known is not None:
            self._etag, self.size, self.head = known
            return
        try:
            response = backend._get(key, Range=f"bytes=0-{probe - 1}")
        except _EmptyObject:
            self.size, self.head = 0, b""
            return
        self.head = response["Body"].read()
        self._etag = response.get("ETag")
        content_range = response.get("ContentRange")
        self.size = int(content_range.rsplit("/", 1)[1]) if content_range else len(self.head)

    @property
    def version_tag(self) -> str | None:
        return self._etag

    def _ranged(self, start: int, end: int):
        extra = {"IfMatch": self._etag} if self._etag else {}
        return self._backend._get(self._key, Range=f"bytes={start}-{end - 1}", **extra)

    def read(self, start: int, end: int) -> bytes:
        if start >= end:
            return b""
        body = self._ranged(start, end)["Body"]
        try:
            return body.read()
        finally:
            body.close()

    def stream(self, start: int, end: int) -> Iterator[bytes]:
        # The request is made now, so a missing or replaced object is reported to the caller
        # before it starts consuming; the body is streamed lazily.
        if start >= end:
            return iter(())
        body = self._ranged(start, end)["Body"]

        def chunks() -> Iterator[bytes]:
            try:
                yield from body.iter_chunks(STREAM_CHUNK)
            finally:
                body.close()
        return chunks()

    def close(self) -> None:
        pass


class _EmptyObject(Exception):
    pass


class S3Backend:
    """Objects under `prefix` in one bucket; uploads are multipart with SSE-S3 on top."""

    def __init__(self, client, bucket: str, prefix: str = "", transfer=None):
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.transfer = transfer or transfer_config()

    def __repr__(self) -> str:
        return f"S3Backend(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def _full(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _fail(self, operation: str, key: str, exc) -> VaultError:
        code = _error_code(exc)
        if code in ("NoSuchKey", "404", "NotFound"):
            return ObjectNotFound(f"no object {key}")
        if code in ("PreconditionFailed", "412"):
            return ObjectChanged(f"object {key} was replaced while being read")
        return VaultError(f"S3 {operation} of {key} in bucket {self.bucket} failed: {code}")

    def _get(self, key: str, **kwargs):
        from botocore.exceptions import ClientError
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._full(key), **kwargs)
        except ClientError as exc:
            if _error_code(exc) == "InvalidRange":
                raise _EmptyObject() from None
            raise self._fail("GetObject", key, exc) from exc

    def put_stream(self, key: str, chunks: Iterable[bytes], metadata: dict[str, str]) -> None:
        # s3transfer aborts the multipart upload when reading the source or any part fails,
        # and re-raises the original exception (tests/vault check both).
        self.client.upload_fileobj(
            ChunkReader(chunks), self.bucket, self._full(key),
            ExtraArgs={"ServerSideEncryption": "AES256",
                       "ContentType": "application/octet-stream",
                       "Metadata": metadata},
            Config=self.transfer)

    def _put(self, key: str, data: bytes, **extra) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._full(key), Body=data,
                               ContentType="application/json", ServerSideEncryption="AES256",
                               **extra)

    def put_bytes(self, key: str, data: bytes) -> None:
        from botocore.exceptions import ClientError
        try:
            self._put(key, data)
        except ClientError as exc:
            raise self._fail("PutObject", key, exc) from exc

    def create_bytes(self, key: str, data: bytes) -> bool:
        from botocore.exceptions import ClientError
        try:
            self._put(key, data, IfNoneMatch="*")
        except ClientError as exc:
            if _error_code(exc) in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise self._fail("PutObject", key, exc) from exc
        return True

    def _object_lock(self) -> bool:
        from botocore.exceptions import ClientError
        if getattr(self, "_locking", None) is None:
            try:
                conf = self.client.get_object_lock_configuration(Bucket=self.bucket)
                self._locking = conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
            except ClientError:
                self._locking = False
        return self._locking

    def create_locked(self, key: str, data: bytes, retain_days: int) -> bool:
        """Write once; where the bucket has S3 Object Lock, in compliance mode for
        `retain_days`, so that no one, the bucket's owner included, can delete or replace it."""
        from botocore.exceptions import ClientError
        if not self._object_lock():
            return self.create_bytes(key, data)
        until = datetime.now(timezone.utc) + timedelta(days=retain_days)
        try:
            self._put(key, data, IfNoneMatch="*", ObjectLockMode="COMPLIANCE",
                      ObjectLockRetainUntilDate=until,
                      ChecksumAlgorithm="SHA256")
        except ClientError as exc:
            if _error_code(exc) in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise self._fail("PutObject", key, exc) from exc
        return True

    def get_bytes(self, key: str) -> bytes:
        try:
            body = self._get(key)["Body"]
        except _EmptyObject:
            return b""
        try:
            return body.read()
        finally:
            body.close()

    def open_reader(self, key: str, probe: int, known=None) -> S3Reader:
        return S3Reader(self, key, probe, known)

    def list(self, prefix: str) -> list[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        keys = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._full(prefix.rstrip("/"))
                                       + "/"):
            keys.extend(obj["Key"][len(self.prefix):] for obj in page.get("Contents", []))
        return sorted(keys)

    def abort_incomplete(self, key: str, older_than: float = 0.0) -> int:
        """Abort multipart uploads of `key` that a killed writer left open."""
        from botocore.exceptions import ClientError
        full = self._full(key)
        cutoff = time.time() - older_than
        aborted = 0
        paginator = self.client.get_paginator("list_multipart_uploads")
        try:
            uploads = [u for page in paginator.paginate(Bucket=self.bucket, Prefix=full)
                       for u in page.get("Uploads", [])]
        except ClientError as exc:
            raise self._fail("ListMultipartUploads", key, exc) from exc
        for upload in uploads:
            if upload["Key"] != full or upload["Initiated"].timestamp() > cutoff:
                continue
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=full,
                                                   UploadId=upload["UploadId"])
                aborted += 1
            except ClientError as exc:
                if _error_code(exc) != "NoSuchUpload":
                    raise self._fail("AbortMultipartUpload", key, exc) from exc
        return aborted

    def _versions(self, key: str) -> list[dict]:
        """Every version and delete marker stored under exactly this key."""
        full = self._full(key)
        found = []
        paginator = self.client.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            for entry in page.get("Versions", []):
                if entry["Key"] == full:
                    found.append(entry)
            for entry in page.get("DeleteMarkers", []):
                if entry["Key"] == full:
                    found.append({**entry, "Size": None})
        return found

    def _delete_versions(self, key: str, versions: list[dict]) -> None:
        for i in range(0, len(versions), 1000):
            batch = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in versions[i:i + 1000]]
            response = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            if response.get("Errors"):
                codes = sorted({e.get("Code", "?") for e in response["Errors"]})
                raise VaultError(f"S3 could not delete {len(response['Errors'])} versions of "
                                 f"{key}: {', '.join(codes)}")

    def delete_all_versions(self, key: str) -> tuple[int, int]:
        """Remove every version and delete marker; returns (data versions, their bytes)."""
        versions = self._versions(key)
        self._delete_versions(key, versions)
        data = [v for v in versions if v["Size"] is not None]
        return len(data), sum(v["Size"] for v in data)

    def prune_old_versions(self, key: str) -> int:
        """Drop the non-current versions (e.g. a key record still wrapped by a retired key)."""
        old = [v for v in self._versions(key) if not v.get("IsLatest")]
        self._delete_versions(key, old)
        return len(old)


# --- storage URLs ------------------------------------------------------------------------------

def parse_storage_url(storage_url: str) -> tuple[str, str, str]:
    """("s3", bucket, prefix) or ("file", "", absolute path) for a STORAGE_URL; VaultError for
    anything else."""
    url = urlparse(storage_url)
    path = unquote(url.path)
    if url.scheme == "s3" and url.netloc:
        return "s3", url.netloc, path
    if url.scheme == "file" and url.netloc in ("", "localhost") and os.path.isabs(path):
        return "file", "", path
    raise VaultError(f"storage URL {storage_url!r} must be s3://bucket/prefix or "
                     "file:///absolute/path")


def backend_from_url(storage_url: str, *, s3_endpoint_url: str | None = None, s3_client=None):
    """`s3://bucket/prefix` or `file:///absolute/path` to a backend."""
    scheme, bucket, path = parse_storage_url(storage_url)
    if scheme == "s3":
        if s3_client is None:
            import boto3
            s3_client = boto3.client("s3", endpoint_url=s3_endpoint_url)
        return S3Backend(s3_client, bucket, path)
    return FileBackend(path)
