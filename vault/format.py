"""The HSV1 object format: header layout, segment nonces and segmented AES-256-GCM.

Pure functions over bytes, no storage and no key management; FORMAT.md is the specification.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from vault.errors import IntegrityError

MAGIC = b"HSV1"
VERSION = 1
KEY_SIZE = 32
TAG_SIZE = 16
NONCE_PREFIX_SIZE = 7
WRAPPED_KEY_SIZE = KEY_SIZE + 8  # RFC 3394 adds one 64-bit block
DEFAULT_SEGMENT_SIZE = 64 * 1024
# A hostile header must not make a reader allocate without bound.
MAX_SEGMENT_SIZE = 16 * 1024 * 1024
# The nonce carries the segment index as a uint32.
MAX_SEGMENTS = 2**32
# magic, version, header length, segment size, nonce prefix
_FIXED = struct.Struct(">4sBHI7s")
# Bytes a reader fetches first: enough for magic, version and header length, and in practice
# the whole header (about 150 bytes for a UUID client id), so one request usually suffices.
PROBE_SIZE = 256
_LENGTH_PREFIX = struct.Struct(">4sBH")


@dataclass(frozen=True)
class Header:
    """The cleartext (but authenticated) fields at the start of every object."""

    segment_size: int
    nonce_prefix: bytes
    wrapped_content_key: bytes
    client_id: str
    client_key_id: str
    content_type: str

    def encode(self) -> bytes:
        if not 1 <= self.segment_size <= MAX_SEGMENT_SIZE:
            raise ValueError(f"segment size must be 1..{MAX_SEGMENT_SIZE} bytes")
        if len(self.nonce_prefix) != NONCE_PREFIX_SIZE:
            raise ValueError(f"nonce prefix must be {NONCE_PREFIX_SIZE} bytes")
        variable = b"".join(
            _short_field(name, value)
            for name, value in (
                ("wrapped content key", self.wrapped_content_key),
                ("client id", self.client_id.encode("utf-8")),
                ("client key id", self.client_key_id.encode("ascii")),
                ("content type", self.content_type.encode("ascii")),
            )
        )
        length = _FIXED.size + len(variable)
        return _FIXED.pack(MAGIC, VERSION, length, self.segment_size, self.nonce_prefix) + variable


def _short_field(name: str, value: bytes) -> bytes:
    if len(value) > 255:
        raise ValueError(f"{name} is longer than 255 bytes")
    return bytes([len(value)]) + value


def header_length(prefix: bytes) -> int:
    """The header's total length, read from the first 7 bytes of an object."""
    if len(prefix) < _LENGTH_PREFIX.size:
        raise IntegrityError("object is too short to hold a vault header")
    magic, version, length = _LENGTH_PREFIX.unpack_from(prefix)
    if magic != MAGIC:
        raise IntegrityError("not a vault object (bad magic)")
    if version != VERSION:
        raise IntegrityError(f"unsupported vault format version {version}")
    if length < _FIXED.size + 4:
        raise IntegrityError("vault header length is impossible")
    return length


def parse_header(data: bytes) -> Header:
    """Parse exactly one encoded header (`data` must be `header_length(data)` bytes long).

    Parsing only checks the layout; the fields are authenticated later, when segments decrypt
    with the header's hash as associated data.
    """
    length = header_length(data)
    if len(data) != length:
        raise IntegrityError("vault header is truncated")
    _, _, _, segment_size, nonce_prefix = _FIXED.unpack_from(data)
    if not 1 <= segment_size <= MAX_SEGMENT_SIZE:
        raise IntegrityError(f"vault header has an impossible segment size {segment_size}")
    fields = []
    pos = _FIXED.size
    for _ in range(4):
        if pos >= length:
            raise IntegrityError("vault header is truncated")
        n = data[pos]
        pos += 1
        if pos + n > length:
            raise IntegrityError("vault header is truncated")
        fields.append(bytes(data[pos:pos + n]))
        pos += n
    if pos != length:
        raise IntegrityError("vault header has trailing bytes")
    wrapped, client_id, client_key_id, content_type = fields
    if len(wrapped) != WRAPPED_KEY_SIZE:
        raise IntegrityError("vault header has a malformed wrapped content key")
    try:
        return Header(segment_size, nonce_prefix, wrapped, client_id.decode("utf-8"),
                      client_key_id.decode("ascii"), content_type.decode("ascii"))
    except UnicodeDecodeError:
        raise IntegrityError("vault header has a malformed text field") from None


# --- layout arithmetic -------------------------------------------------------------------------

def segment_count(plaintext_size: int, segment_size: int) -> int:
    """Segments in an object: the last holds 1..segment_size bytes; an empty object has one."""
    return max(1, -(-plaintext_size // segment_size))


def ciphertext_size(plaintext_size: int, header_len: int, segment_size: int) -> int:
    return header_len + plaintext_size + TAG_SIZE * segment_count(plaintext_size, segment_size)


def plaintext_size(total_size: int, header_len: int, segment_size: int) -> int:
    """Invert `ciphertext_size`, refusing stored sizes no writer could have produced."""
    body = total_size - header_len
    if body < TAG_SIZE:
        raise IntegrityError("object is truncated: no final segment")
    stride = segment_size + TAG_SIZE
    count = -(-body // stride)
    size = body - TAG_SIZE * count
    # A last segment of 0 bytes only exists when it is the only one; anything else means bytes
    # were cut off or appended.
    if count > 1 and size <= (count - 1) * segment_size:
        raise IntegrityError("object has been truncated or extended")
    if count > MAX_SEGMENTS:
        raise IntegrityError("object has more segments than the format allows")
    return size


def segment_offset(index: int, header_len: int, segment_size: int) -> int:
    """Where segment `index` starts in the stored object."""
    return header_len + index * (segment_size + TAG_SIZE)


def segment_ciphertext_length(index: int, plaintext_size: int, segment_size: int) -> int:
    last = segment_count(plaintext_size, segment_size) - 1
    if index < last:
        return segment_size + TAG_SIZE
    return plaintext_size - last * segment_size + TAG_SIZE


# --- keys and segments -------------------------------------------------------------------------

def wrap_content_key(client_key: bytes, content_key: bytes) -> bytes:
    """RFC 3394 AES key wrap: deterministic, so test vectors need no extra nonce."""
    return aes_key_wrap(client_key, content_key)


def unwrap_content_key(client_key: bytes, wrapped: bytes) -> bytes:
    try:
        return aes_key_unwrap(client_key, wrapped)
    except InvalidUnwrap:
        raise IntegrityError(
            "content key does not unwrap with this client's key (wrong client key, or the "
            "header was altered)") from None


def segment_nonce(nonce_prefix: bytes, index: int, final: bool) -> bytes:
    """prefix (7) || index (uint32 big-endian) || final flag (1): 12 bytes, unique per key."""
    if not 0 <= index < MAX_SEGMENTS:
        raise ValueError("segment index out of range")
    return nonce_prefix + struct.pack(">IB", index, 1 if final else 0)


class SegmentCipher:
    """Seals and opens the segments of one object; the header hash is every segment's AAD."""

    __slots__ = ("_aead", "_aad", "_prefix")

    def __init__(self, content_key: bytes, header_bytes: bytes):
        self._aead = AESGCM(content_key)
        self._aad = hashlib.sha256(header_bytes).digest()
        self._prefix = parse_header(header_bytes).nonce_prefix

    def __repr__(self) -> str:
        return "SegmentCipher(<content key hidden>)"

    def seal(self, index: int, plaintext: bytes, final: bool) -> bytes:
        return self._aead.encrypt(segment_nonce(self._prefix, index, final), plaintext, self._aad)

    def open(self, index: int, ciphertext: bytes, final: bool) -> bytes:
        try:
            return self._aead.decrypt(segment_nonce(self._prefix, index, final), ciphertext,
                                      self._aad)
        except InvalidTag:
            raise IntegrityError(
                f"segment {index} failed authentication: the object was altered, truncated, "
                "reordered or mixed with another object") from None


def plaintext_segments(chunks: Iterable[bytes], segment_size: int
                       ) -> Iterator[tuple[memoryview | bytearray, bool]]:
    """Cut a chunk stream into (segment, is_final) pairs.

    A full segment is only released once a further byte arrives, because only then do we know
    it is not the last one. Segments lying inside one chunk are handed out as views of it (no
    copy); only a segment that must wait for the next chunk is copied, since the source may
    reuse its buffer. Each segment is valid until the next one is asked for.
    """
    buf = bytearray()
    for chunk in chunks:
        view = memoryview(chunk).cast("B")
        if not view:
            continue
        if buf:
            if len(buf) == segment_size:  # more data came: the held segment is not the last
                yield buf, False
                buf = bytearray()
            take = min(segment_size - len(buf), len(view))
            buf += view[:take]
            view = view[take:]
            if not view:
                continue
            yield buf, False
            buf = bytearray()
        while len(view) > segment_size:
            yield view[:segment_size], False
            view = view[segment_size:]
        buf += view
    yield buf, True


def encrypt_object(header_bytes: bytes, content_key: bytes, chunks: Iterable[bytes],
                   on_segment: Callable[[bytes], None] | None = None) -> Iterator[bytes]:
    """The stored object, piece by piece: the header, then one sealed segment at a time.
    `on_segment` sees each plaintext segment (valid only during the call) before it is
    sealed."""
    header = parse_header(header_bytes)
    cipher = SegmentCipher(content_key, header_bytes)
    yield header_bytes
    for index, (segment, final) in enumerate(plaintext_segments(chunks, header.segment_size)):
        if on_segment is not None:
            on_segment(segment)
        yield cipher.seal(index, segment, final)


def decrypt_object(data: bytes, content_key: bytes) -> bytes:
    """Decrypt a whole object held in memory; for tests, test vectors and small records."""
    header_bytes = data[:header_length(data[:_LENGTH_PREFIX.size])]
    header = parse_header(header_bytes)
    size = plaintext_size(len(data), len(header_bytes), header.segment_size)
    cipher = SegmentCipher(content_key, header_bytes)
    count = segment_count(size, header.segment_size)
    out = []
    for index in range(count):
        start = segment_offset(index, len(header_bytes), header.segment_size)
        length = segment_ciphertext_length(index, size, header.segment_size)
        out.append(cipher.open(index, data[start:start + length], index == count - 1))
    return b"".join(out)
