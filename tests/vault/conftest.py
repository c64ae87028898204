"""Fixtures for the vault tests: the same checks run against moto's S3 server over HTTP and
against the local-directory backend, with every byte read from storage recorded."""

from __future__ import annotations

import os
import secrets
import uuid
from pathlib import Path

import boto3
import pytest

from vault import LocalMasterKey, Vault
from vault.backends import FileBackend, S3Backend


class KeyedVault(Vault):
    """A vault whose writer makes the client's key first, as holdspace's erasure fence does
    before a download: these tests are of the format and storage, not of who may have a key."""

    def put_stream(self, client_id, name, readable, content_type):
        self.ensure_client_key(client_id)
        return super().put_stream(client_id, name, readable, content_type)


class RecordingFileBackend(FileBackend):
    """Counts the bytes the vault reads from disk (every read goes through `pread`)."""

    def __init__(self, root):
        super().__init__(root)
        self.fetched: list[tuple[str, int, int]] = []

    def pread(self, fd, offset, length):
        data = super().pread(fd, offset, length)
        path = Path(os.readlink(f"/proc/self/fd/{fd}"))
        self.fetched.append((path.relative_to(self.root.resolve()).as_posix(), offset,
                             offset + len(data)))
        return data


class Storage:
    """One vault on one backend, plus raw access to what is stored, for the tests to poke at."""

    def __init__(self, kind: str, backend, raw, fetched: list):
        self.kind = kind
        self.master_bytes = secrets.token_bytes(32)
        master_key = LocalMasterKey(self.master_bytes)
        self.backend = backend
        self.raw = raw
        self.fetched = fetched
        self.master_key = master_key
        self.vault = KeyedVault(backend, master_key)

    def new_vault(self, master_key=None, **kwargs) -> Vault:
        """Another vault (own key cache) on the same storage."""
        return KeyedVault(self.backend, master_key or self.master_key, **kwargs)

    def reset_fetched(self) -> None:
        self.fetched.clear()


class RawS3:
    def __init__(self, s3, bucket: str, prefix: str):
        self.s3, self.bucket, self.prefix = s3, bucket, prefix

    def get(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()

    def put(self, key: str, data: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)

    def everything(self) -> dict[str, bytes]:
        """Every stored version of every object in the bucket."""
        out = {}
        for page in self.s3.get_paginator("list_object_versions").paginate(Bucket=self.bucket):
            for v in page.get("Versions", []):
                body = self.s3.get_object(Bucket=self.bucket, Key=v["Key"],
                                          VersionId=v["VersionId"])["Body"].read()
                out[f"{v['Key'].removeprefix(self.prefix)}@{v['VersionId']}"] = body
        return out

    def stray_uploads(self) -> list:
        return self.s3.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])


class RawFiles:
    def __init__(self, root: Path):
        self.root = root

    def get(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def put(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def everything(self) -> dict[str, bytes]:
        return {p.relative_to(self.root).as_posix(): p.read_bytes()
                for p in self.root.rglob("*") if p.is_file()}

    def stray_uploads(self) -> list:
        return [p for p in self.root.rglob(".hsv-tmp-*")]


def make_bucket(s3, versioned: bool = False) -> str:
    name = f"vault-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


@pytest.fixture
def s3_client(s3_server):
    return boto3.client("s3", endpoint_url=s3_server.url)


@pytest.fixture
def kms_client(s3_server):
    return boto3.client("kms", endpoint_url=s3_server.url)


def _s3_storage(s3_server, versioned: bool) -> Storage:
    # Its own client, so the event hook below only sees this vault's requests.
    s3 = boto3.client("s3", endpoint_url=s3_server.url)
    bucket = make_bucket(s3, versioned)
    prefix = "tenant-a/vault/"
    fetched: list[tuple[str, int, int | None]] = []

    def record(params, **_):
        key = params["Key"].removeprefix(prefix)
        if "Range" not in params:
            fetched.append((key, 0, None))  # a whole-object read
            return
        start, end = params["Range"].removeprefix("bytes=").split("-")
        fetched.append((key, int(start), int(end) + 1))

    s3.meta.events.register("provide-client-params.s3.GetObject", record)
    backend = S3Backend(s3, bucket, "tenant-a/vault")
    return Storage("s3", backend, RawS3(s3, bucket, prefix), fetched)


@pytest.fixture(params=["s3", "file"])
def storage(request, tmp_path) -> Storage:
    if request.param == "s3":
        return _s3_storage(request.getfixturevalue("s3_server"), versioned=False)
    backend = RecordingFileBackend(tmp_path / "vault")
    return Storage("file", backend, RawFiles(tmp_path / "vault"), backend.fetched)


@pytest.fixture
def versioned_storage(s3_server) -> Storage:
    return _s3_storage(s3_server, versioned=True)
