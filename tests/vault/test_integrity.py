"""Tampering, wrong keys, crypto-shredding and the no-plaintext-at-rest scan, on both backends."""

from __future__ import annotations

import base64
import dataclasses
import json
import random
import re

import pytest

from vault import IntegrityError, ObjectErased, VaultError
from vault.format import TAG_SIZE, header_length, parse_header, unwrap_content_key

SEG = 1024  # small segments: many of them in a small object
A = "client-a"
B = "client-b"


def read_all(vault, key) -> bytes:
    return b"".join(vault.open(key))


def fails_integrity(vault, key, start=None, end=None) -> str:
    """Reading (the whole object, or a range) raises IntegrityError; returns its message."""
    with pytest.raises(IntegrityError) as info:
        if start is None:
            read_all(vault, key)
        else:
            b"".join(vault.open_range(key, start, end))
    return str(info.value)


@pytest.fixture
def sample(storage):
    """A 3.5-segment object of client A, its stored bytes and its layout."""
    vault = storage.new_vault(segment_size=SEG)
    data = random.Random(5).randbytes(3 * SEG + SEG // 2)
    key = vault.put_stream(A, "sessions/1/audio.m4a", [data], "audio/mp4").key
    raw = storage.raw.get(key)
    header = header_length(raw[:7])
    segments = [raw[header + i * (SEG + TAG_SIZE): header + (i + 1) * (SEG + TAG_SIZE)]
                for i in range(4)]
    assert b"".join(segments) == raw[header:]
    return vault, key, data, raw, header, segments


def tamper(storage, key, data: bytes):
    storage.raw.put(key, data)


def flip(data: bytes, pos: int, bit: int = 0) -> bytes:
    return data[:pos] + bytes([data[pos] ^ (1 << bit)]) + data[pos + 1:]


def test_untampered_sample_reads(storage, sample):
    vault, key, data, *_ = sample
    assert read_all(vault, key) == data


def test_every_header_byte_is_protected(storage, sample):
    vault, key, data, raw, header, _ = sample
    for pos in range(header):
        tamper(storage, key, flip(raw, pos, bit=pos % 8))
        with pytest.raises(IntegrityError):
            read_all(vault, key)


def test_flipped_bits_in_segments(storage, sample):
    vault, key, data, raw, header, segments = sample
    for index in range(4):
        base = header + index * (SEG + TAG_SIZE)
        length = len(segments[index])
        for offset in (0, length // 2, length - TAG_SIZE - 1, length - TAG_SIZE, length - 1):
            tampered = flip(raw, base + offset, bit=3)
            tamper(storage, key, tampered)
            message = fails_integrity(vault, key)
            assert f"segment {index}" in message
            # A range over the damaged segment fails too.
            fails_integrity(vault, key, index * SEG, index * SEG + 1)
    # The original still reads once restored (the checks above were not flukes).
    tamper(storage, key, raw)
    assert read_all(vault, key) == data


def test_truncation_is_detected(storage, sample):
    vault, key, data, raw, header, segments = sample
    whole_segments = raw[:header] + b"".join(segments[:3])  # cut at a segment border
    for cut in (whole_segments, raw[:-1], raw[:-TAG_SIZE], raw[:header + 10], raw[:header],
                raw[:20], raw[:header + SEG + TAG_SIZE]):
        tamper(storage, key, cut)
        with pytest.raises(IntegrityError):
            read_all(vault, key)


def test_appended_bytes_are_detected(storage, sample):
    vault, key, data, raw, header, segments = sample
    for extra in (b"\x00", b"x" * TAG_SIZE, segments[3], segments[0], b"y" * (SEG + TAG_SIZE)):
        tamper(storage, key, raw + extra)
        with pytest.raises(IntegrityError):
            read_all(vault, key)


def test_reordered_segments_are_detected(storage, sample):
    vault, key, data, raw, header, segments = sample
    swapped = raw[:header] + segments[1] + segments[0] + segments[2] + segments[3]
    tamper(storage, key, swapped)
    assert "segment 0" in fails_integrity(vault, key)
    fails_integrity(vault, key, SEG + 5, SEG + 6)  # a range inside the moved segment


def test_segment_from_another_object_of_the_same_client(storage, sample):
    vault, key, data, raw, header, segments = sample
    other_data = data  # same plaintext, same client: only the content key differs
    other = vault.put_stream(A, "sessions/2/audio.m4a", [other_data], "audio/mp4").key
    other_raw = storage.raw.get(other)
    other_header = header_length(other_raw[:7])
    assert other_header == header
    borrowed = other_raw[header + SEG + TAG_SIZE: header + 2 * (SEG + TAG_SIZE)]
    tamper(storage, key, raw[:header] + segments[0] + borrowed + segments[2] + segments[3])
    assert "segment 1" in fails_integrity(vault, key)
    # The other object's header in front of our segments fails as well.
    tamper(storage, key, other_raw[:header] + raw[header:])
    fails_integrity(vault, key)


def test_another_clients_key_does_not_decrypt(storage, sample):
    vault, key, data, raw, header, segments = sample
    vault.put_stream(B, "b.txt", [b"client b exists"], "text/plain")
    # 1. At the format level: B's key does not unwrap A's content key.
    _, key_a = vault._client_key(A, create=False)
    _, key_b = vault._client_key(B, create=False)
    wrapped = parse_header(raw[:header]).wrapped_content_key
    assert len(unwrap_content_key(key_a, wrapped)) == 32
    with pytest.raises(IntegrityError):
        unwrap_content_key(key_b, wrapped)
    # 2. A's object copied into B's space, as is: the header names client A.
    b_key = f"clients/{B}/objects/stolen.m4a"
    tamper(storage, b_key, raw)
    assert "another client" in fails_integrity(vault, b_key)
    # 3. Relabelled as B's (client id and key id rewritten): B's key cannot open it.
    h = parse_header(raw[:header])
    relabelled = dataclasses.replace(h, client_id=B, client_key_id=vault.ensure_client_key(B))
    tamper(storage, b_key, relabelled.encode() + raw[header:])
    fails_integrity(vault, b_key)


def test_key_record_tampering(storage, sample):
    vault, key, data, raw, header, segments = sample
    record_raw = storage.raw.get(f"keys/{A}")
    record = json.loads(record_raw)
    # A flipped bit in the wrapped key.
    blob = bytearray(base64.b64decode(record["wrapped_key"]))
    blob[20] ^= 1
    bad = dict(record, wrapped_key=base64.b64encode(bytes(blob)).decode())
    tamper(storage, f"keys/{A}", json.dumps(bad).encode())
    with pytest.raises(IntegrityError):
        read_all(storage.new_vault(), key)  # a fresh vault: no cached key
    # A's record copied over B's (with the client id edited): the wrap is bound to client A.
    vault.put_stream(B, "b.txt", [b"b"], "text/plain")
    tamper(storage, f"keys/{B}", json.dumps(dict(record, client_id=B)).encode())
    with pytest.raises(IntegrityError):
        storage.new_vault().ensure_client_key(B)
    tamper(storage, f"keys/{A}", b"{not json")
    with pytest.raises(IntegrityError):
        read_all(storage.new_vault(), key)


def test_wrong_master_key(storage, sample):
    from vault import LocalMasterKey
    vault, key, *_ = sample
    other = LocalMasterKey.generate()
    with pytest.raises(IntegrityError) as info:
        read_all(storage.new_vault(other), key)
    assert storage.master_key.key_id in str(info.value) and other.key_id in str(info.value)


def test_shredding_erases_every_object_of_the_client(storage, sample):
    vault, key, data, raw, header, segments = sample
    second = vault.put_stream(A, "sessions/1/video.mp4", [b"v" * 5000], "video/mp4").key
    b_obj = vault.put_stream(B, "b.txt", [b"client b stays"], "text/plain").key
    other_vault = storage.new_vault(segment_size=SEG)
    assert read_all(other_vault, key) == data
    key_id = vault.ensure_client_key(A)

    record = vault.shred_client_key(A)
    assert (record.client_id, record.key_id, record.versions_deleted) == (A, key_id, 1)
    for reader in (vault, storage.new_vault()):
        for k in (key, second):
            for read in (lambda: read_all(reader, k), lambda: reader.open_range(k, 0, 1)):
                with pytest.raises(ObjectErased, match="erased"):
                    read()
    # The ciphertext is still there (deletion is separate), but nothing opens it.
    assert storage.raw.get(key) == raw
    assert vault.list_client_objects(A) == sorted([key, second])
    # Idempotent.
    again = vault.shred_client_key(A)
    assert (again.key_id, again.versions_deleted) == (None, 0)
    # Client B is untouched.
    assert read_all(vault, b_obj) == b"client b stays"
    # A new object for A mints a new key; the old objects stay unreadable.
    fresh = vault.put_stream(A, "after.txt", [b"new"], "text/plain")
    assert vault.ensure_client_key(A) != key_id
    assert read_all(vault, fresh.key) == b"new"
    with pytest.raises(VaultError, match="erased"):
        read_all(vault, key)


def test_a_shred_elsewhere_reaches_this_vault_when_its_cache_expires(storage):
    reader = storage.new_vault(key_cache_seconds=0)
    key = reader.put_stream(A, "x.txt", [b"x"], "text/plain").key
    assert read_all(reader, key) == b"x"
    storage.new_vault().shred_client_key(A)
    with pytest.raises(ObjectErased):
        read_all(reader, key)


def test_no_plaintext_or_key_is_ever_stored(storage):
    """Every 32-byte window of every plaintext is absent from every stored byte.

    Any 32-byte window of a plaintext contains a whole 16-byte block aligned to a multiple of
    16, so it is enough (and exhaustive) to look for those blocks at every stored offset.
    The plaintexts are also recognisable: 16-byte records `HSPT` + 12 digits."""
    vault = storage.vault
    plaintexts = [b"".join(b"HSPT%012d" % i for i in range(n)) for n in (1, 2, 5000, 70000)]
    plaintexts.append(b"A" * 100000)  # repetitive: would show ECB-like leaks
    keys = []
    for i, text in enumerate(plaintexts):
        client = f"scan-{i % 2}"
        keys.append(vault.put_stream(client, f"s/{i}.bin", [text], "text/plain").key)
    blocks = {text[j:j + 16] for text in plaintexts for j in range(0, len(text) - 15, 16)}
    secrets_ = [storage.master_bytes, vault._client_key("scan-0", create=False)[1],
                vault._client_key("scan-1", create=False)[1]]
    for key in keys:
        head = storage.raw.get(key)
        header = parse_header(head[:header_length(head[:7])])
        client_key = vault._client_key(header.client_id, create=False)[1]
        secrets_.append(unwrap_content_key(client_key, header.wrapped_content_key))

    stored = storage.raw.everything()
    assert len(stored) == len(keys) + 2  # the objects and two key records, nothing else
    record = re.compile(rb"HSPT\d{12}")
    for name, blob in stored.items():
        assert not record.search(blob), name
        assert b"A" * 32 not in blob, name
        for secret in secrets_:
            assert secret not in blob, name
        for offset in range(len(blob) - 15):
            assert blob[offset:offset + 16] not in blocks, (name, offset)
