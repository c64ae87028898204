"""The HSV1 format against its specification: FORMAT.md's test vectors, recomputed twice (with
vault.format, and with a from-the-document implementation), and the layout arithmetic."""

from __future__ import annotations

import hashlib
import random
import re
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_wrap

from vault import IntegrityError
from vault.format import (
    Header, SegmentCipher, ciphertext_size, decrypt_object, encrypt_object, header_length,
    parse_header, plaintext_segments, plaintext_size, segment_nonce, unwrap_content_key,
    wrap_content_key,
)

FORMAT_MD = Path(__file__).resolve().parents[2] / "vault" / "FORMAT.md"
TEXT_FIELDS = {"segment_size", "client_id", "client_key_id", "content_type", "vector"}


def vectors() -> list[dict]:
    """Every ```text block of FORMAT.md that starts with `vector:`; hex values decoded."""
    found = []
    for block in re.findall(r"```text\n(vector:.*?)```", FORMAT_MD.read_text(), re.S):
        fields: dict = {}
        name = None
        for line in block.splitlines():
            if line.startswith("  "):  # continuation of the previous value
                fields[name] += line.strip()
                continue
            name, _, value = line.partition(":")
            fields[name] = value.strip()
        for name, value in fields.items():
            if name not in TEXT_FIELDS:
                fields[name] = bytes.fromhex(value)
        fields["segment_size"] = int(fields["segment_size"])
        found.append(fields)
    return found


VECTORS = vectors()


def test_format_md_has_the_vectors():
    assert [v["vector"] for v in VECTORS] == ["empty", "two-full-segments", "three-segments"]
    assert [len(v["plaintext"]) for v in VECTORS] == [0, 32, 40]


def header_from(v) -> Header:
    return Header(v["segment_size"], v["nonce_prefix"], v["wrapped_content_key"],
                  v["client_id"], v["client_key_id"], v["content_type"])


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["vector"])
def test_vectors_with_vault_format(v):
    assert wrap_content_key(v["client_key"], v["content_key"]) == v["wrapped_content_key"]
    assert unwrap_content_key(v["client_key"], v["wrapped_content_key"]) == v["content_key"]
    header = header_from(v).encode()
    assert header == v["header"]
    assert parse_header(header) == header_from(v)
    assert hashlib.sha256(header).digest() == v["header_sha256"]
    obj = b"".join(encrypt_object(header, v["content_key"], [v["plaintext"]]))
    assert obj == v["object"]
    assert decrypt_object(v["object"], v["content_key"]) == v["plaintext"]
    nonces = [segment_nonce(v["nonce_prefix"], i, i == len(v["nonces"]) // 12 - 1)
              for i in range(len(v["nonces"]) // 12)]
    assert b"".join(nonces) == v["nonces"]


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["vector"])
def test_vectors_from_the_document_alone(v):
    """Rebuild each object from FORMAT.md's prose with raw primitives, not vault.format."""
    def field(b: bytes) -> bytes:
        return bytes([len(b)]) + b

    wrapped = aes_key_wrap(v["client_key"], v["content_key"])
    variable = (field(wrapped) + field(v["client_id"].encode()) +
                field(v["client_key_id"].encode()) + field(v["content_type"].encode()))
    length = 4 + 1 + 2 + 4 + 7 + len(variable)
    header = (b"HSV1" + b"\x01" + struct.pack(">H", length) +
              struct.pack(">I", v["segment_size"]) + v["nonce_prefix"] + variable)
    assert header == v["header"]
    aad = hashlib.sha256(header).digest()
    plaintext, size = v["plaintext"], v["segment_size"]
    pieces = [plaintext[i:i + size] for i in range(0, len(plaintext), size)] or [b""]
    segments = []
    for i, piece in enumerate(pieces):
        nonce = v["nonce_prefix"] + struct.pack(">I", i) + bytes([i == len(pieces) - 1])
        segments.append(AESGCM(v["content_key"]).encrypt(nonce, piece, aad))
    assert header + b"".join(segments) == v["object"]


def test_layout_round_trips_and_refuses_impossible_sizes():
    for segment_size in (1, 3, 16, 1000):
        produced = {}
        for size in range(0, 200):
            total = ciphertext_size(size, 100, segment_size)
            assert plaintext_size(total, 100, segment_size) == size
            produced[total] = size
        for total in range(100, min(produced) + 150):
            if total not in produced:
                with pytest.raises(IntegrityError):
                    plaintext_size(total, 100, segment_size)


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 32, 33, 100])
def test_chunking_does_not_change_the_segments(size):
    def segments(chunks):  # segments are only valid until the next one: copy them
        return [(bytes(s), final) for s, final in plaintext_segments(chunks, 16)]

    data = random.Random(size).randbytes(size)
    expected = segments([data])
    assert [len(s) for s, _ in expected[:-1]] == [16] * (len(expected) - 1)
    assert [final for _, final in expected] == [False] * (len(expected) - 1) + [True]
    assert 0 < len(expected[-1][0]) <= 16 or size == 0
    rng = random.Random(size + 1)
    for _ in range(20):
        chunks, pos = [], 0
        while pos < size:
            step = rng.randrange(0, 40)
            chunks.append(data[pos:pos + step])
            pos += step
        assert segments(chunks) == expected
        assert segments([bytearray(c) for c in chunks]) == expected


def test_header_parsing_refuses_malformed_headers():
    v = VECTORS[0]
    header = v["header"]
    assert header_length(header[:7]) == len(header)
    for bad in (b"", b"HSV", b"XSV1" + header[4:], header[:4] + b"\x02" + header[5:],
                header[:5] + b"\x00\x05" + header[7:], header[:-1], header + b"\x00",
                header[:7] + b"\x00\x00\x00\x00" + header[11:]):
        with pytest.raises(IntegrityError):
            parse_header(bad)


def test_segment_cipher_binds_index_finality_and_header():
    v = VECTORS[2]
    cipher = SegmentCipher(v["content_key"], v["header"])
    sealed = cipher.seal(1, b"x" * 16, False)
    assert cipher.open(1, sealed, False) == b"x" * 16
    for index, final in ((0, False), (2, False), (1, True)):
        with pytest.raises(IntegrityError):
            cipher.open(index, sealed, final)
    other_header = header_from(v).__class__(**{**header_from(v).__dict__,
                                               "content_type": "text/html"}).encode()
    with pytest.raises(IntegrityError):
        SegmentCipher(v["content_key"], other_header).open(1, sealed, False)
    assert "hidden" in repr(cipher)
