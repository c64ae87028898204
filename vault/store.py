"""The vault: per-client envelope encryption over a storage backend, ranged reads, deletion
and crypto-shredding. The one place that streams bytes into (and out of) storage."""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from vault.backends import ObjectChanged, backend_from_url
from vault.errors import IntegrityError, ObjectErased, ObjectNotFound, VaultError
from vault.fields import SERVICE_SECRETS
from vault.format import (
    DEFAULT_SEGMENT_SIZE, KEY_SIZE, NONCE_PREFIX_SIZE, PROBE_SIZE, Header, SegmentCipher,
    encrypt_object, header_length, parse_header, plaintext_size, segment_ciphertext_length,
    segment_count, segment_offset, unwrap_content_key, wrap_content_key,
)
from vault.keys import ClientKeyRecord, MasterKey, key_context, now_iso
from vault.reader import DEFAULT_CACHE_SEGMENTS, VaultFile, open_segments

logger = logging.getLogger(__name__)

READ_SIZE = 1024 * 1024
HEADER_CACHE_SIZE = 1024
_CLIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_CONTENT_TYPE = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,254}\Z")
_OBJECT_KEY = re.compile(r"clients/([^/]+)/objects/(.+)\Z", re.S)


@dataclass(frozen=True)
class StoredObject:
    key: str
    client_id: str
    content_type: str
    size: int            # plaintext bytes
    sha256: str          # hex digest of the plaintext
    ciphertext_size: int


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    client_id: str
    content_type: str
    size: int


@dataclass(frozen=True)
class DeletionRecord:
    key: str
    versions_deleted: int    # stored copies removed (delete markers are removed too, uncounted)
    ciphertext_bytes: int


@dataclass(frozen=True)
class ShredRecord:
    client_id: str
    key_id: str | None       # None when there was no key left to shred
    versions_deleted: int


# --- names -------------------------------------------------------------------------------------

def _check_client_id(client_id: str) -> str:
    if not isinstance(client_id, str) or not _CLIENT_ID.match(client_id):
        raise ValueError(f"invalid client id {client_id!r}: letters, digits, '.', '_', '-' only")
    return client_id


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name or len(name.encode("utf-8")) > 512:
        raise ValueError(f"invalid object name {name!r}")
    if name.startswith("/") or "\\" in name or any(ord(c) < 0x20 or c == "\x7f" for c in name):
        raise ValueError(f"invalid object name {name!r}: must be a relative path")
    for part in name.split("/"):
        # Leading dots also keep names clear of the file backend's temp files.
        if not part or part in (".", "..") or part.startswith("."):
            raise ValueError(f"invalid object name {name!r}: bad path component {part!r}")
    return name


def object_key(client_id: str, name: str) -> str:
    return f"clients/{_check_client_id(client_id)}/objects/{_check_name(name)}"


def client_of(key: str) -> str:
    """The client id in an object key, refusing anything that is not an object key."""
    match = _OBJECT_KEY.match(key) if isinstance(key, str) else None
    if not match:
        raise ValueError(f"not a vault object key: {key!r}")
    _check_name(match.group(2))
    return _check_client_id(match.group(1))


def _record_key(client_id: str) -> str:
    return f"keys/{_check_client_id(client_id)}"


# --- streaming helpers -------------------------------------------------------------------------

def _plaintext_chunks(source) -> Iterator[bytes]:
    """Chunks from a file-like (`.read(n)`), an iterable of bytes, or one bytes value."""
    bytes_like = (bytes, bytearray, memoryview)
    if isinstance(source, bytes_like):
        yield source
        return
    if isinstance(source, str):
        raise TypeError("put_stream needs bytes, not str")
    if hasattr(source, "read"):
        while chunk := source.read(READ_SIZE):
            if not isinstance(chunk, bytes_like):
                raise TypeError(f"source.read() returned {type(chunk).__name__}, not bytes")
            yield chunk
        return
    for chunk in source:
        if not isinstance(chunk, bytes_like):
            raise TypeError(f"source yielded {type(chunk).__name__}, not bytes")
        yield chunk


class _Tally:
    """Counts and hashes the plaintext segments, and notices whether the ciphertext ended."""

    def __init__(self):
        self.size = 0
        self.sha256 = hashlib.sha256()
        self.ciphertext_size = 0
        self.finished = False

    def segment(self, plaintext: bytes) -> None:
        self.size += len(plaintext)
        self.sha256.update(plaintext)

    def ciphertext(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.ciphertext_size += len(chunk)
            yield chunk
        self.finished = True


def _decrypt_segments(reader, chunks: Iterator[bytes], cipher: SegmentCipher, *, first: int,
                      last: int, size: int, segment_size: int, start: int, end: int
                      ) -> Iterator[bytes]:
    """Plaintext bytes [start, end) out of the stored run of segments `first`..`last`."""
    try:
        for index, plain in open_segments(chunks, cipher, first=first, last=last, size=size,
                                          segment_size=segment_size):
            lo = start - index * segment_size if index == first else 0
            hi = end - index * segment_size if index == last else len(plain)
            if (lo, hi) != (0, len(plain)):
                plain = plain[lo:hi]
            if plain:
                yield plain
    finally:
        reader.close()


# --- the vault ---------------------------------------------------------------------------------

class Vault:
    """Encrypted, per-client object storage. Thread-safe; holds unwrapped client keys in memory
    for at most `key_cache_seconds`, so a key shredded by another process stops working here
    within that time."""

    def __init__(self, backend, master_key: MasterKey, *,
                 segment_size: int = DEFAULT_SEGMENT_SIZE, key_cache_seconds: float = 60.0):
        self._backend = backend
        self._master = master_key
        self._segment_size = segment_size
        self._cache_seconds = key_cache_seconds
        self._cache: dict[str, tuple[str, bytes, float]] = {}
        self._headers: OrderedDict[str, tuple[str, int, bytes]] = OrderedDict()
        self._lock = threading.Lock()
        self._signer = None
        self._service: dict[str, bytes] = {}

    def __repr__(self) -> str:
        return f"Vault({self._backend!r}, master_key_id={self._master.key_id!r})"

    def __reduce__(self):
        raise TypeError("a Vault holds key material and cannot be pickled; pass ids to jobs")

    @property
    def backend(self):
        return self._backend

    @property
    def master_key_id(self) -> str:
        return self._master.key_id

    # --- client keys ---------------------------------------------------------------------------

    def _remember(self, client_id: str, key_id: str, key: bytes) -> tuple[str, bytes]:
        # The service's own keys are never shredded: held for the process's life, so that
        # accepting a webhook (sealed under the inbox key) does not wait on storage each minute.
        ttl = float("inf") if client_id.startswith("service.") else self._cache_seconds
        with self._lock:
            self._cache[client_id] = (key_id, key, time.monotonic() + ttl)
        return key_id, key

    def _forget(self, client_id: str) -> None:
        with self._lock:
            self._cache.pop(client_id, None)

    def _load_record(self, client_id: str) -> ClientKeyRecord | None:
        try:
            record = ClientKeyRecord.decode(self._backend.get_bytes(_record_key(client_id)))
        except ObjectNotFound:
            return None
        if record.client_id != client_id:
            raise IntegrityError(f"key record of client {client_id} names another client")
        return record

    def _unwrap(self, record: ClientKeyRecord) -> bytes:
        master = self._master
        try:
            key = master.unwrap(record.wrapped_key, key_context(record.client_id))
        except IntegrityError:
            if record.master_key_id != master.key_id:
                raise IntegrityError(
                    f"client key {record.key_id} of client {record.client_id} is wrapped by master "
                    f"key {record.master_key_id}, but this vault holds {master.key_id}") from None
            raise
        if len(key) != KEY_SIZE:
            raise IntegrityError(f"client key {record.key_id} has the wrong length")
        return key

    def _client_key(self, client_id: str, *, create: bool) -> tuple[str, bytes]:
        with self._lock:
            cached = self._cache.get(client_id)
        if cached and cached[2] > time.monotonic():
            return cached[0], cached[1]
        for _ in range(2):
            record = self._load_record(client_id)
            if record is not None:
                return self._remember(client_id, record.key_id, self._unwrap(record))
            if not create:
                raise ObjectErased(f"the key of client {client_id} has been erased (or never "
                                   "existed); the client's objects can no longer be read")
            key, wrapped = self._master.new_data_key(key_context(client_id))
            record = ClientKeyRecord(client_id, secrets.token_hex(8), self._master.key_id,
                                     wrapped, now_iso())
            # Conditional create: two jobs for a new client must not each mint a key, or the
            # loser's objects would be sealed under a key nobody keeps.
            if self._backend.create_bytes(_record_key(client_id), record.encode()):
                logger.info("created client key %s for client %s", record.key_id, client_id)
                return self._remember(client_id, record.key_id, key)
        raise VaultError(f"could not create or read the key of client {client_id}")

    def ensure_client_key(self, client_id: str) -> str:
        """The client's key id, creating the key on first use. The caller decides whether the
        client may have a key at all (holdspace: only inside the erasure fence)."""
        return self._client_key(_check_client_id(client_id), create=True)[0]

    def owner_key(self, owner_id: str, *, create: bool = False) -> bytes:
        """The raw key of a client (or of another key owner, such as `coach.<id>`), for
        deriving field and search keys (vault/fields.py). ObjectErased once shredded."""
        return self._client_key(_check_client_id(owner_id), create=create)[1]

    def write_once(self, name: str, data: bytes, retain_days: int = 3650) -> bool:
        """Keep a small record that can never be replaced (`notes/<name>`; S3 Object Lock where
        the bucket has it). False when one of that name exists already."""
        return self._backend.create_locked(f"notes/{_check_name(name)}", data, retain_days)

    def read_notes(self, prefix: str) -> list[bytes]:
        """Every record `write_once` kept under `notes/<prefix>`, in name order."""
        found = []
        for key in self._backend.list(f"notes/{_check_name(prefix)}"):
            try:
                found.append(self._backend.get_bytes(key))
            except ObjectNotFound:
                continue
        return found

    def service_secret(self, object_name: str, purpose: str) -> bytes:
        """A deployment-wide 32-byte secret kept sealed at `object_name`, made on first use."""
        from vault.sealed import load_or_create
        with self._lock:
            cached = self._service.get(object_name)
        if cached is None:
            cached = load_or_create(self._backend, self._master, object_name, purpose,
                                    lambda: secrets.token_bytes(KEY_SIZE))
            with self._lock:
                self._service[object_name] = cached
        return cached

    # --- writing -------------------------------------------------------------------------------

    def put_stream(self, client_id: str, name: str, readable, content_type: str) -> StoredObject:
        """Encrypt `readable` (file-like or iterable of bytes) into `clients/<id>/objects/<name>`,
        replacing any object of that name atomically. Nothing is stored if the source fails.

        The client's key must exist (`ensure_client_key`): a put never creates one, so a write
        that outlives the shredding of a client's key fails with ObjectErased instead of
        sealing the object under a fresh key that no deletion would know of."""
        key = object_key(client_id, name)
        if not isinstance(content_type, str) or not _CONTENT_TYPE.match(content_type):
            raise ValueError(f"invalid content type {content_type!r}")
        key_id, client_key = self._client_key(client_id, create=False)
        content_key = secrets.token_bytes(KEY_SIZE)  # fresh per object: nonces never repeat
        header = Header(self._segment_size, secrets.token_bytes(NONCE_PREFIX_SIZE),
                        wrap_content_key(client_key, content_key), client_id, key_id,
                        content_type).encode()
        tally = _Tally()
        chunks = tally.ciphertext(encrypt_object(header, content_key,
                                                 _plaintext_chunks(readable), tally.segment))
        self._backend.put_stream(key, chunks, {"plaintext-content-type": content_type,
                                               "vault-format": "HSV1"})
        if not tally.finished:
            raise VaultError(f"storage stopped reading {key} before the end of the source")
        return StoredObject(key, client_id, content_type, tally.size, tally.sha256.hexdigest(),
                            tally.ciphertext_size)

    def abort_incomplete_uploads(self, client_id: str, name: str,
                                 older_than_seconds: float = 0.0) -> int:
        """Discard partial writes of this object left by a process killed mid-upload (S3
        multipart uploads, temp files), returning how many. They hold only ciphertext, but
        cost storage. A writer calls this before writing the name again; it would also cut
        off another writer of the same name that is still running."""
        return self._backend.abort_incomplete(object_key(client_id, name), older_than_seconds)

    # --- reading -------------------------------------------------------------------------------

    def _read_header(self, reader, key: str) -> tuple[Header, bytes]:
        length = header_length(reader.head[:7])
        if reader.size < length:
            raise IntegrityError(f"object {key} is shorter than its header")
        if len(reader.head) >= length:
            header_bytes = reader.head[:length]
        else:
            header_bytes = reader.head + reader.read(len(reader.head), length)
        return parse_header(header_bytes), header_bytes

    def _with_reader(self, key: str, use, *, cached: bool):
        # An object replaced between our first and later requests (a re-run job), or since
        # we cached its header, is read again from the start.
        for attempt in (1, 2):
            with self._lock:
                known = self._headers.get(key) if cached and attempt == 1 else None
            reader = self._backend.open_reader(key, PROBE_SIZE, known)
            try:
                return use(reader)
            except ObjectChanged:
                reader.close()
                self._forget_header(key)
                if attempt == 2:
                    raise
            except BaseException:
                reader.close()
                self._forget_header(key)
                raise

    def _remember_header(self, key: str, reader, header_bytes: bytes) -> None:
        """Keep (version tag, size, header) of S3 objects, so that the next range read of the
        same object (a video player seeking) is one request instead of two."""
        if reader.version_tag is None:
            return
        with self._lock:
            self._headers[key] = (reader.version_tag, reader.size, header_bytes)
            self._headers.move_to_end(key)
            while len(self._headers) > HEADER_CACHE_SIZE:
                self._headers.popitem(last=False)

    def _forget_header(self, key: str) -> None:
        with self._lock:
            self._headers.pop(key, None)

    def _checked_header(self, reader, key: str, client_id: str) -> tuple[Header, bytes, int]:
        """The object's header, its bytes and the plaintext size, refusing a header that names
        another client or a stored size no writer could have produced."""
        header, header_bytes = self._read_header(reader, key)
        if header.client_id != client_id:
            raise IntegrityError(f"the header of {key} names another client")
        self._remember_header(key, reader, header_bytes)
        size = plaintext_size(reader.size, len(header_bytes), header.segment_size)
        return header, header_bytes, size

    def _segment_cipher(self, key: str, client_id: str, header: Header,
                        header_bytes: bytes) -> SegmentCipher:
        """The object's segment cipher, if the header names the client's current key."""
        key_id, client_key = self._client_key(client_id, create=False)
        if header.client_key_id != key_id:
            raise IntegrityError(
                f"{key} names client key {header.client_key_id} but client {client_id} has "
                f"key {key_id}: the header was altered, or the key it was sealed under has "
                "been erased and replaced")
        return SegmentCipher(unwrap_content_key(client_key, header.wrapped_content_key),
                             header_bytes)

    def _open(self, key: str, start: int, end: int | None) -> Iterator[bytes]:
        client_id = client_of(key)

        def use(reader) -> Iterator[bytes]:
            header, header_bytes, size = self._checked_header(reader, key, client_id)
            seg = header.segment_size
            whole = end is None
            stop = size if whole else end
            if not 0 <= start <= stop <= size:
                if reader.cached:
                    raise ObjectChanged(f"{key} may have changed size")  # ask storage again
                raise ValueError(f"range [{start}, {stop}) is outside {key} ({size} bytes)")
            cipher = self._segment_cipher(key, client_id, header, header_bytes)
            if whole:
                # Every segment, the final one included, so truncation cannot go unnoticed.
                first, last = 0, segment_count(size, seg) - 1
            elif start == stop:
                reader.close()
                return iter(())
            else:
                first, last = start // seg, (stop - 1) // seg
            chunks = reader.stream(
                segment_offset(first, len(header_bytes), seg),
                segment_offset(last, len(header_bytes), seg)
                + segment_ciphertext_length(last, size, seg))
            return _decrypt_segments(reader, iter(chunks), cipher, first=first, last=last,
                                     size=size, segment_size=seg, start=start, end=stop)

        return self._with_reader(key, use, cached=True)

    def open_file(self, key: str, *, cache_segments: int = DEFAULT_CACHE_SEGMENTS) -> VaultFile:
        """The plaintext as a read-only, seekable binary file (see `VaultFile`); close it.

        Like age's NewDecryptReaderAt, it authenticates the final segment here, so a missing
        object (ObjectNotFound), an erased key (ObjectErased) and a truncated, extended or
        foreign object (IntegrityError) are refused before any byte is served."""
        client_id = client_of(key)

        def use(reader) -> VaultFile:
            header, header_bytes, size = self._checked_header(reader, key, client_id)
            cipher = self._segment_cipher(key, client_id, header, header_bytes)
            media = VaultFile(reader, object_key=key, client_id=client_id,
                              content_type=header.content_type,
                              header_length=len(header_bytes), segment_size=header.segment_size,
                              size=size, cipher=cipher, cache_limit=cache_segments)
            try:
                # With a cached header this is the first request, so a replaced object
                # raises ObjectChanged here and _with_reader starts again from storage.
                media.authenticate_final_segment()
            except BaseException:
                media.close()
                raise
            return media

        return self._with_reader(key, use, cached=True)

    def open_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        """Plaintext bytes [start, end), fetching only the header and the covering segments.

        Missing objects, erased keys and bad ranges raise here; a segment that fails
        authentication raises IntegrityError while iterating."""
        return self._open(key, start, end)

    def open(self, key: str) -> Iterator[bytes]:
        """The whole plaintext, segment by segment, every segment verified."""
        return self._open(key, 0, None)

    def stat(self, key: str) -> ObjectInfo:
        client_id = client_of(key)

        def use(reader) -> ObjectInfo:
            try:
                header, _, size = self._checked_header(reader, key, client_id)
            finally:
                reader.close()
            return ObjectInfo(key, header.client_id, header.content_type, size)

        # Always asks storage: a size from a cache could be stale.
        return self._with_reader(key, use, cached=False)

    def list_client_objects(self, client_id: str) -> list[str]:
        return self._backend.list(f"clients/{_check_client_id(client_id)}/objects/")

    # --- deleting ------------------------------------------------------------------------------

    def delete(self, key: str) -> DeletionRecord:
        """Remove the object, every stored version of it included. Deleting nothing is fine."""
        client_of(key)
        self._forget_header(key)
        versions, nbytes = self._backend.delete_all_versions(key)
        logger.info("deleted %s (%d versions, %d bytes)", key, versions, nbytes)
        return DeletionRecord(key, versions, nbytes)

    def shred_client_key(self, client_id: str) -> ShredRecord:
        """Destroy the client's key (all stored versions), making every copy of every object of
        that client unreadable, wherever it sits."""
        record_key = _record_key(client_id)
        try:
            key_id = ClientKeyRecord.decode(self._backend.get_bytes(record_key)).key_id
        except (ObjectNotFound, IntegrityError):
            key_id = None
        self._forget(client_id)
        versions, _ = self._backend.delete_all_versions(record_key)
        self._forget(client_id)  # a read racing the delete may have cached it again
        logger.info("shredded client key %s of client %s (%d versions)", key_id, client_id,
                    versions)
        return ShredRecord(client_id, key_id, versions)

    # --- master key rotation -------------------------------------------------------------------

    def seal(self, secret: bytes, purpose: str) -> str:
        """A small secret sealed under the master key, as text for a database column."""
        from vault.sealed import seal
        return seal(self._master, secret, purpose)

    def unseal(self, token: str, purpose: str) -> bytes:
        from vault.sealed import unseal
        return unseal(self._master, token, purpose)

    def receipt_signer(self):
        """This deployment's deletion-receipt signer (vault/receipts.py), made on first use."""
        if self._signer is None:
            from vault.receipts import load_signer
            self._signer = load_signer(self._backend, self._master)
        return self._signer

    def rotate_master_key(self, new_master_key: MasterKey) -> int:
        """Re-wrap every client key under `new_master_key` (objects are untouched) and switch
        this vault to it. Resumable: records already under the new key are skipped. Older
        versions of each record, still wrapped by the old key, are removed."""
        rotated = 0
        for record_key in self._backend.list("keys/"):
            client_id = record_key[len("keys/"):]
            record = self._load_record(client_id)
            if record is None or record.master_key_id == new_master_key.key_id:
                continue
            key = self._unwrap(record)
            context = key_context(client_id)
            rewrapped = record.with_wrapping(new_master_key.key_id,
                                             new_master_key.wrap(key, context))
            # Prove the new wrapping opens before the old one is overwritten.
            if new_master_key.unwrap(rewrapped.wrapped_key, context) != key:
                raise VaultError(f"re-wrapped key of client {client_id} does not unwrap")
            self._backend.put_bytes(record_key, rewrapped.encode())
            self._backend.prune_old_versions(record_key)
            rotated += 1
        from vault.receipts import reseal
        from vault.sealed import reseal_stored
        reseal(self._backend, self._master, new_master_key)
        for object_name, purpose in SERVICE_SECRETS:
            reseal_stored(self._backend, self._master, new_master_key, object_name, purpose)
        self._master = new_master_key
        logger.info("re-wrapped %d client keys under master key %s", rotated,
                    new_master_key.key_id)
        return rotated


def open_vault(storage_url: str, *, master_key: MasterKey, s3_endpoint_url: str | None = None,
               s3_client=None) -> Vault:
    """A vault on `s3://bucket/prefix` or `file:///absolute/path`."""
    return Vault(backend_from_url(storage_url, s3_endpoint_url=s3_endpoint_url,
                                  s3_client=s3_client), master_key)
