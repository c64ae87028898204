"""Round trips, sources, ranges and listing, on S3 (moto over HTTP) and the file backend."""

from __future__ import annotations

import hashlib
import io
import random
import tracemalloc

import pytest

from vault import ObjectInfo, ObjectNotFound, StoredObject
from vault.format import DEFAULT_SEGMENT_SIZE, PROBE_SIZE, TAG_SIZE, header_length

SEG = DEFAULT_SEGMENT_SIZE
CLIENT = "3b7c1d52-5a7e-4d4a-9f0e-6a1f2b3c4d5e"


def read_all(vault, key) -> bytes:
    return b"".join(vault.open(key))


def pattern_chunks(total: int, chunk: int = 1 << 20, seed: int = 7):
    """`total` bytes of varied data, generated chunk by chunk (never all in memory)."""
    block = random.Random(seed).randbytes(chunk)
    sent, index = 0, 0
    while sent < total:
        n = min(chunk, total - sent)
        yield (index.to_bytes(8, "big") + block[8:n]) if n > 8 else block[:n]
        sent += n
        index += 1


@pytest.mark.parametrize("size", [0, 1, SEG, SEG + 1, 3 * SEG + 5])
def test_round_trip(storage, size):
    data = random.Random(size).randbytes(size)
    stored = storage.vault.put_stream(CLIENT, f"sessions/s1/{size}.mp4", io.BytesIO(data),
                                      "video/mp4")
    assert stored == StoredObject(
        key=f"clients/{CLIENT}/objects/sessions/s1/{size}.mp4", client_id=CLIENT,
        content_type="video/mp4", size=size, sha256=hashlib.sha256(data).hexdigest(),
        ciphertext_size=len(storage.raw.get(stored.key)))
    assert read_all(storage.vault, stored.key) == data
    # A vault with a cold key cache reads it too.
    assert read_all(storage.new_vault(), stored.key) == data
    assert storage.vault.stat(stored.key) == ObjectInfo(stored.key, CLIENT, "video/mp4", size)
    segments = max(1, -(-size // SEG))
    assert stored.ciphertext_size - size == segments * TAG_SIZE + header_length(
        storage.raw.get(stored.key)[:7])


@pytest.mark.slow
def test_300_mb_round_trip_streams(storage):
    size = 300 * 1000 * 1000
    expected = hashlib.sha256()

    def source():
        for chunk in pattern_chunks(size):
            expected.update(chunk)
            yield chunk

    stored = storage.vault.put_stream(CLIENT, "sessions/big/recording.mp4", source(),
                                      "video/mp4")
    assert stored.size == size
    assert stored.sha256 == expected.hexdigest()
    got, n = hashlib.sha256(), 0
    for chunk in storage.vault.open(stored.key):
        got.update(chunk)
        n += len(chunk)
        assert len(chunk) <= SEG  # handed out segment by segment
    assert n == size
    assert got.hexdigest() == expected.hexdigest()
    storage.vault.delete(stored.key)


def test_memory_stays_flat_while_streaming(tmp_path):
    """Writing and reading 32 MiB allocates a few segments' worth, not the object."""
    from vault import LocalMasterKey, open_vault
    vault = open_vault(f"file://{tmp_path}/v", master_key=LocalMasterKey.generate())
    vault.ensure_client_key(CLIENT)
    size = 32 * 1024 * 1024
    tracemalloc.start()
    try:
        stored = vault.put_stream(CLIENT, "a.bin", pattern_chunks(size, chunk=256 * 1024),
                                  "application/octet-stream")
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        total = sum(len(c) for c in vault.open(stored.key))
        _, open_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == size
    assert put_peak < 4 * 1024 * 1024, put_peak
    assert open_peak < 4 * 1024 * 1024, open_peak


class ShortReads(io.RawIOBase):
    """A file-like that hands out at most 1000 bytes per read, like a slow socket."""

    def __init__(self, data: bytes):
        self._data, self._pos = data, 0

    def readable(self):
        return True

    def read(self, n=-1):
        n = 1000 if n is None or n < 0 else min(n, 1000)
        out = self._data[self._pos:self._pos + n]
        self._pos += len(out)
        return out


def reused_buffer(data: bytes, size: int):
    """Yields views of one buffer that it overwrites for the next chunk (readinto style)."""
    buf = bytearray(size)
    for i in range(0, len(data), size):
        piece = data[i:i + size]
        buf[:len(piece)] = piece
        yield memoryview(buf)[:len(piece)]


def test_every_kind_of_source_gives_the_same_object(storage):
    data = random.Random(1).randbytes(2 * SEG + 333)
    sources = {
        "bytesio": io.BytesIO(data),
        "short-reads": ShortReads(data),
        "odd-chunks": (data[i:i + 7777] for i in range(0, len(data), 7777)),
        "with-empty-chunks": iter([b"", data[:10], b"", bytearray(data[10:SEG]),
                                   memoryview(data)[SEG:], b""]),
        "reused-buffer": reused_buffer(data, 5000),
        "reused-segment-sized-buffer": reused_buffer(data, SEG),
        "list": [data],
        "bytes": data,
    }
    for name, source in sources.items():
        stored = storage.vault.put_stream(CLIENT, f"src/{name}", source, "audio/mp4")
        assert stored.sha256 == hashlib.sha256(data).hexdigest(), name
        assert read_all(storage.vault, stored.key) == data, name


def test_str_source_is_refused(storage):
    with pytest.raises(TypeError):
        storage.vault.put_stream(CLIENT, "x.txt", "not bytes", "text/plain")
    with pytest.raises(TypeError):
        storage.vault.put_stream(CLIENT, "x.txt", ["not bytes"], "text/plain")


def test_writing_a_name_again_replaces_the_object(storage):
    first = storage.vault.put_stream(CLIENT, "sessions/s1/transcript.json", [b"first"],
                                     "application/json")
    second = storage.vault.put_stream(CLIENT, "sessions/s1/transcript.json",
                                      [b"second, longer"], "application/json")
    assert first.key == second.key
    assert read_all(storage.vault, second.key) == b"second, longer"
    assert storage.vault.list_client_objects(CLIENT) == [second.key]


def test_list_client_objects_only_lists_that_client(storage):
    vault = storage.vault
    keys = [vault.put_stream(CLIENT, name, [b"x"], "text/plain").key
            for name in ("b.txt", "sessions/1/a.mp4", "sessions/2/a.mp4")]
    vault.put_stream("other-client", "b.txt", [b"y"], "text/plain")
    assert vault.list_client_objects(CLIENT) == sorted(keys)
    assert vault.list_client_objects("nobody") == []


def test_missing_objects(storage):
    key = f"clients/{CLIENT}/objects/none.mp4"
    for call in (lambda: storage.vault.open(key), lambda: storage.vault.stat(key),
                 lambda: storage.vault.open_range(key, 0, 1)):
        with pytest.raises(ObjectNotFound):
            call()
    assert storage.vault.delete(key).versions_deleted == 0


@pytest.mark.parametrize("name", ["../x", "/abs", "a//b", "a/../b", ".hidden", "a/./b", "",
                                  "a\\b", "a\nb"])
def test_bad_names_are_refused(storage, name):
    with pytest.raises(ValueError):
        storage.vault.put_stream(CLIENT, name, [b"x"], "text/plain")


@pytest.mark.parametrize("client_id", ["", "a/b", "..", ".x", "a b", "x" * 200])
def test_bad_client_ids_are_refused(storage, client_id):
    with pytest.raises(ValueError):
        storage.vault.put_stream(client_id, "a.txt", [b"x"], "text/plain")


@pytest.mark.parametrize("key", ["keys/abc", "clients/abc/objects/../../keys/abc",
                                 "clients/abc/other/x", "/clients/abc/objects/x"])
def test_reads_take_object_keys_only(storage, key):
    with pytest.raises(ValueError):
        storage.vault.open(key)
    with pytest.raises(ValueError):
        storage.vault.delete(key)


def covering(start: int, end: int, size: int, header: int) -> tuple[int, int]:
    """The stored byte span of the segments that hold plaintext [start, end)."""
    first, last = start // SEG, (end - 1) // SEG
    last_len = min(SEG, size - last * SEG) + TAG_SIZE
    return header + first * (SEG + TAG_SIZE), header + last * (SEG + TAG_SIZE) + last_len


def test_random_ranges_read_only_the_covering_segments(storage):
    rng = random.Random(2024)
    size = 17 * SEG + 4321
    data = rng.randbytes(size)
    stored = storage.vault.put_stream(CLIENT, "sessions/s/video.mp4", [data], "video/mp4")
    header = header_length(storage.raw.get(stored.key)[:7])
    storage.vault.ensure_client_key(CLIENT)  # key record reads are not part of the count

    ranges = [(0, 1), (size - 1, size), (0, size), (SEG - 1, SEG + 1), (SEG, 2 * SEG),
              (5 * SEG - 3, 9 * SEG + 2), (size - SEG - 10, size)]
    while len(ranges) < 200:
        if rng.random() < 0.3:  # straddle a segment border
            border = rng.randrange(1, size // SEG + 1) * SEG
            start = max(0, border - rng.randrange(1, 300))
            end = min(size, border + rng.randrange(1, 300))
        else:
            start = rng.randrange(size)
            end = rng.randrange(start + 1, min(size, start + rng.choice([10, SEG, 4 * SEG])) + 1)
        ranges.append((start, end))

    for start, end in ranges:
        storage.reset_fetched()
        assert b"".join(storage.vault.open_range(stored.key, start, end)) == data[start:end]
        lo, hi = covering(start, end, size, header)
        fetched = [(a, b) for key, a, b in storage.fetched]
        assert {key for key, _, _ in storage.fetched} == {stored.key}
        for a, b in fetched:
            assert b is not None, "whole-object read during a range read"
            assert (0 <= a and b <= max(PROBE_SIZE, header)) or (lo <= a and b <= hi), (
                start, end, fetched)
        assert sum(b - a for a, b in fetched) <= PROBE_SIZE + (hi - lo)
        assert sum(b - a for a, b in fetched if a >= lo) == hi - lo


def test_range_edges(storage):
    data = bytes(range(256)) * 1000
    key = storage.vault.put_stream(CLIENT, "r.bin", [data], "application/octet-stream").key
    assert list(storage.vault.open_range(key, 10, 10)) == []
    assert list(storage.vault.open_range(key, len(data), len(data))) == []
    assert b"".join(storage.vault.open_range(key, 0, len(data))) == data
    for start, end in [(-1, 5), (0, len(data) + 1), (10, 9)]:
        with pytest.raises(ValueError):
            storage.vault.open_range(key, start, end)
    empty = storage.vault.put_stream(CLIENT, "empty.bin", [], "application/octet-stream").key
    assert list(storage.vault.open_range(empty, 0, 0)) == []
    assert list(storage.vault.open(empty)) == []


def test_repeated_range_reads_and_replaced_objects(storage):
    """Seeking twice in one object costs one request on S3 the second time; an object
    replaced in between (a re-run job) is still read correctly, never mixed."""
    vault = storage.vault
    first = random.Random(1).randbytes(3 * SEG)
    key = vault.put_stream(CLIENT, "seek.mp4", [first], "video/mp4").key
    assert b"".join(vault.open_range(key, SEG, SEG + 10)) == first[SEG:SEG + 10]
    storage.reset_fetched()
    assert b"".join(vault.open_range(key, 2 * SEG, 2 * SEG + 10)) == first[2 * SEG:2 * SEG + 10]
    if storage.kind == "s3":
        assert len(storage.fetched) == 1
    second = random.Random(2).randbytes(5 * SEG)  # longer: a stale size would refuse the range
    vault.put_stream(CLIENT, "seek.mp4", [second], "video/mp4")
    assert b"".join(vault.open_range(key, 4 * SEG, 4 * SEG + 10)) == second[4 * SEG:4 * SEG + 10]
    assert b"".join(vault.open_range(key, 0, 10)) == second[:10]
    vault.put_stream(CLIENT, "seek.mp4", [b"short now"], "video/mp4")
    assert read_all(vault, key) == b"short now"
    vault.delete(key)
    with pytest.raises(ObjectNotFound):
        vault.open_range(key, 0, 1)
