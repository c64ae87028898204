"""Failed uploads, deletion (versioned buckets included), master-key rotation, KMS, races."""

from __future__ import annotations

import io
import os
import threading
import time

import pytest

from vault import IntegrityError, KmsMasterKey, LocalMasterKey, Vault, load_master_key
from vault.backends import FileBackend

CLIENT = "c-0001"
MiB = 1024 * 1024


class Boom(Exception):
    pass


def failing_source(good_bytes: int):
    """Yields `good_bytes` of data, then fails like a dropped platform download."""
    sent = 0
    while sent < good_bytes:
        n = min(MiB, good_bytes - sent)
        yield os.urandom(n)
        sent += n
    raise Boom("download dropped")


class FailingReader(io.RawIOBase):
    def __init__(self, good_bytes: int):
        self._left = good_bytes

    def readable(self):
        return True

    def read(self, n=-1):
        if self._left <= 0:
            raise Boom("read failed")
        n = min(self._left, MiB if n is None or n < 0 else n)
        self._left -= n
        return b"\x01" * n


@pytest.mark.parametrize("good_bytes", [0, 100_000, 20 * MiB])
def test_a_source_failing_halfway_leaves_nothing(storage, good_bytes):
    vault = storage.vault
    vault.ensure_client_key(CLIENT)
    for source in (failing_source(good_bytes), FailingReader(good_bytes)):
        with pytest.raises(Boom):
            vault.put_stream(CLIENT, "sessions/1/video.mp4", source, "video/mp4")
        assert vault.list_client_objects(CLIENT) == []
        assert storage.raw.stray_uploads() == []
        assert list(storage.raw.everything()) == [
            f"keys/{CLIENT}" + ("@null" if storage.kind == "s3" else "")]


def test_a_failed_rewrite_keeps_the_previous_object(storage):
    vault = storage.vault
    key = vault.put_stream(CLIENT, "t.json", [b"version one"], "application/json").key
    with pytest.raises(Boom):
        vault.put_stream(CLIENT, "t.json", failing_source(10 * MiB), "application/json")
    assert b"".join(vault.open(key)) == b"version one"
    assert storage.raw.stray_uploads() == []


def test_delete(storage):
    vault = storage.vault
    stored = vault.put_stream(CLIENT, "sessions/9/a.mp4", [b"abc" * 1000], "video/mp4")
    record = vault.delete(stored.key)
    assert (record.key, record.versions_deleted, record.ciphertext_bytes) == (
        stored.key, 1, stored.ciphertext_size)
    assert vault.list_client_objects(CLIENT) == []
    assert vault.delete(stored.key).versions_deleted == 0  # jobs re-run
    if storage.kind == "file":  # no empty folders named after the client or session linger
        assert not (storage.backend.root / "clients").exists()


def versions_of(storage, key):
    raw = storage.raw
    listing = raw.s3.list_object_versions(Bucket=raw.bucket, Prefix=raw.prefix + key)
    return listing.get("Versions", []) + listing.get("DeleteMarkers", [])


def test_versioned_bucket_delete_removes_every_version(versioned_storage):
    storage = versioned_storage
    vault = storage.vault
    sizes = []
    for text in (b"one", b"two, longer", b"three!"):
        sizes.append(vault.put_stream(CLIENT, "v.txt", [text], "text/plain").ciphertext_size)
    key = f"clients/{CLIENT}/objects/v.txt"
    raw = storage.raw
    raw.s3.delete_object(Bucket=raw.bucket, Key=raw.prefix + key)  # a delete marker
    sizes.append(vault.put_stream(CLIENT, "v.txt", [b"four"], "text/plain").ciphertext_size)
    assert len(versions_of(storage, key)) == 5

    record = vault.delete(key)
    assert (record.versions_deleted, record.ciphertext_bytes) == (4, sum(sizes))
    assert versions_of(storage, key) == []
    # A sibling whose name starts the same is not touched.
    vault.put_stream(CLIENT, "v.txt.bak", [b"keep"], "text/plain")
    vault.delete(key)
    assert vault.list_client_objects(CLIENT) == [key + ".bak"]


def test_versioned_bucket_shred_removes_every_version_of_the_key_record(versioned_storage):
    storage = versioned_storage
    vault = storage.vault
    key = vault.put_stream(CLIENT, "x.txt", [b"x"], "text/plain").key
    raw = storage.raw
    record_key = f"keys/{CLIENT}"
    # Older copies of the record (as a backup restore or an earlier rotation would leave).
    for _ in range(2):
        raw.put(record_key, raw.get(record_key))
    assert len(versions_of(storage, record_key)) == 3
    shred = vault.shred_client_key(CLIENT)
    assert shred.versions_deleted == 3
    assert versions_of(storage, record_key) == []
    with pytest.raises(Exception, match="erased"):
        b"".join(storage.new_vault().open(key))


def test_master_key_rotation(storage):
    old = storage.master_key
    vault = storage.vault
    keys = {c: vault.put_stream(c, "a.txt", [c.encode() * 100], "text/plain").key
            for c in ("c-1", "c-2", "c-3")}
    before = {path: blob for path, blob in storage.raw.everything().items()
              if "/objects/" in path}

    new = LocalMasterKey.generate()
    assert vault.rotate_master_key(new) == 3
    assert vault.master_key_id == new.key_id
    assert vault.rotate_master_key(new) == 0  # resumable / idempotent

    only_new = storage.new_vault(new)
    for client, key in keys.items():
        assert b"".join(only_new.open(key)) == client.encode() * 100
    with pytest.raises(IntegrityError) as info:
        b"".join(storage.new_vault(old).open(keys["c-1"]))
    assert old.key_id in str(info.value)
    # Objects were not rewritten.
    after = {path: blob for path, blob in storage.raw.everything().items()
             if "/objects/" in path}
    assert after == before


def test_rotation_leaves_no_old_wrapping_in_a_versioned_bucket(versioned_storage):
    storage = versioned_storage
    vault = storage.vault
    vault.put_stream(CLIENT, "a.txt", [b"a"], "text/plain")
    vault.rotate_master_key(LocalMasterKey.generate())
    assert len(versions_of(storage, f"keys/{CLIENT}")) == 1


def test_kms_master_key(storage, kms_client, tmp_path):
    key_id = kms_client.create_key(Description="holdspace test")["KeyMetadata"]["KeyId"]
    master = load_master_key(None, key_id, tmp_path, kms_client=kms_client)
    assert isinstance(master, KmsMasterKey)
    assert master.key_id == key_id and repr(master) == f"KmsMasterKey(key_id={key_id!r})"

    vault = storage.new_vault(master)
    stored = vault.put_stream(CLIENT, "k.txt", [b"sealed by kms"], "text/plain")
    assert b"".join(storage.new_vault(master).open(stored.key)) == b"sealed by kms"
    import json
    record = json.loads(storage.raw.get(f"keys/{CLIENT}"))
    assert record["master_key_id"] == key_id

    # The KMS wrapping is bound to the client by the encryption context.
    plain, blob = master.new_data_key({"holdspace:client_id": "one"})
    assert master.unwrap(blob, {"holdspace:client_id": "one"}) == plain
    with pytest.raises(IntegrityError):
        master.unwrap(blob, {"holdspace:client_id": "two"})

    # Rotating from a local key to KMS, and back.
    local_vault = storage.vault
    local_key = local_vault.put_stream("c-local", "l.txt", [b"local"], "text/plain").key
    assert local_vault.rotate_master_key(master) == 1  # c-local; CLIENT is already on KMS
    assert b"".join(storage.new_vault(master).open(local_key)) == b"local"
    back = LocalMasterKey.generate()
    assert local_vault.rotate_master_key(back) == 2
    assert b"".join(storage.new_vault(back).open(stored.key)) == b"sealed by kms"


def test_concurrent_first_writes_agree_on_one_client_key(storage):
    vaults = [storage.new_vault() for _ in range(8)]
    results, barrier = [], threading.Barrier(8)

    def first_write(vault, i):
        barrier.wait()
        results.append((vault.ensure_client_key("new-client"),
                        vault.put_stream("new-client", f"{i}.txt", [b"%d" % i], "text/plain")))

    threads = [threading.Thread(target=first_write, args=(v, i)) for i, v in enumerate(vaults)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({key_id for key_id, _ in results}) == 1
    reader = storage.new_vault()
    for _, stored in results:
        assert b"".join(reader.open(stored.key)) == stored.key.split("/")[-1][:-4].encode()


def test_open_vault_urls(tmp_path, s3_server, s3_client):
    from vault import VaultError, open_vault
    from vault.backends import S3Backend
    master = LocalMasterKey.generate()
    target = tmp_path / "new" / "vault"
    vault = open_vault(f"file://{target}", master_key=master)
    assert isinstance(vault.backend, FileBackend) and (target.stat().st_mode & 0o777) == 0o700
    s3 = open_vault("s3://some-bucket/a/b/", master_key=master, s3_endpoint_url=s3_server.url)
    assert isinstance(s3.backend, S3Backend)
    assert (s3.backend.bucket, s3.backend.prefix) == ("some-bucket", "a/b/")
    assert open_vault("s3://b", master_key=master, s3_client=s3_client).backend.prefix == ""
    for bad in ("file://relative/path", "file:relative", "http://x/y", "s3:///nobucket",
                "/just/a/path"):
        with pytest.raises(VaultError):
            open_vault(bad, master_key=master)


def test_file_backend_permissions(tmp_path):
    vault = Vault(FileBackend(tmp_path / "v"), LocalMasterKey.generate())
    vault.ensure_client_key(CLIENT)
    key = vault.put_stream(CLIENT, "sessions/1/a.mp4", [b"a"], "video/mp4").key
    for path in [tmp_path / "v" / key, tmp_path / "v" / "keys" / CLIENT]:
        assert path.stat().st_mode & 0o777 == 0o600, path
        for parent in path.relative_to(tmp_path / "v").parents:
            mode = (tmp_path / "v" / parent).stat().st_mode & 0o777
            assert mode == 0o700, parent


def test_abort_incomplete_uploads_clears_a_writer_that_died(storage, on_machine_clock):
    """A writer stuck mid-upload stands in for one that was killed: its partial upload (S3
    multipart, or temp file) is found and discarded, and only for that object name."""
    vault = storage.vault
    vault.ensure_client_key(CLIENT)
    midway, release = threading.Event(), threading.Event()
    outcome = []

    def stuck_source():
        for _ in range(20):
            yield b"\x02" * MiB
        midway.set()
        release.wait(30)
        yield b"\x03" * MiB

    def writer():
        try:
            outcome.append(vault.put_stream(CLIENT, "s/1/video.mp4", stuck_source(), "video/mp4"))
        except Exception as exc:  # noqa: BLE001 (the test inspects it)
            outcome.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    assert midway.wait(30)
    deadline = time.monotonic() + 10
    while not storage.raw.stray_uploads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(storage.raw.stray_uploads()) == 1
    if storage.kind == "file":  # moto reports every upload as initiated in 2010
        assert vault.abort_incomplete_uploads(CLIENT, "s/1/video.mp4",
                                              older_than_seconds=3600) == 0
    assert vault.abort_incomplete_uploads(CLIENT, "s/1/other.mp4") == 0
    assert vault.abort_incomplete_uploads(CLIENT, "s/1/video.mp4") == 1
    assert storage.raw.stray_uploads() == []
    release.set()
    thread.join(30)
    assert isinstance(outcome[0], Exception)  # the cut-off writer fails; nothing half-made
    assert vault.list_client_objects(CLIENT) == []
    assert storage.raw.stray_uploads() == []
