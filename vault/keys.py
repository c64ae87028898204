"""Master keys (a local key or AWS KMS) that wrap each client's data key, and the key record.

Nothing here ever puts key bytes into a repr, an exception or a log line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.errors import IntegrityError, VaultError

logger = logging.getLogger(__name__)

KEY_SIZE = 32
_LOCAL_BLOB_VERSION = b"\x01"
_LOCAL_AAD = b"holdspace/client-key/v1\x00"


class _NoPickle:
    """Keys must not travel by accident (an RQ job argument is pickled into Redis)."""

    __slots__ = ()

    def __reduce__(self):
        raise TypeError(f"{type(self).__name__} holds key material and cannot be pickled")


def _context_bytes(context: Mapping[str, str] | None) -> bytes:
    return json.dumps(dict(context or {}), sort_keys=True, separators=(",", ":")).encode()


class LocalMasterKey(_NoPickle):
    """A 32-byte master key held in process memory; wraps with AES-256-GCM.

    Blob layout: 0x01 || nonce (12) || ciphertext+tag; the optional context is bound as AAD.
    """

    __slots__ = ("_aead", "key_id")

    def __init__(self, key: bytes):
        if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_SIZE:
            raise VaultError(f"a local master key must be exactly {KEY_SIZE} bytes")
        self._aead = AESGCM(bytes(key))
        self.key_id = "local:" + hashlib.sha256(bytes(key)).hexdigest()[:16]

    @classmethod
    def generate(cls) -> LocalMasterKey:
        return cls(secrets.token_bytes(KEY_SIZE))

    def __repr__(self) -> str:
        return f"LocalMasterKey(key_id={self.key_id!r})"

    __str__ = __repr__

    def new_data_key(self, context: Mapping[str, str] | None = None) -> tuple[bytes, bytes]:
        key = secrets.token_bytes(KEY_SIZE)
        return key, self.wrap(key, context)

    def wrap(self, plaintext_key: bytes, context: Mapping[str, str] | None = None) -> bytes:
        nonce = secrets.token_bytes(12)
        return _LOCAL_BLOB_VERSION + nonce + self._aead.encrypt(
            nonce, bytes(plaintext_key), _LOCAL_AAD + _context_bytes(context))

    def unwrap(self, blob: bytes, context: Mapping[str, str] | None = None) -> bytes:
        if len(blob) != 1 + 12 + KEY_SIZE + 16 or blob[:1] != _LOCAL_BLOB_VERSION:
            raise IntegrityError(f"malformed wrapped key for master key {self.key_id}")
        try:
            return self._aead.decrypt(blob[1:13], blob[13:], _LOCAL_AAD + _context_bytes(context))
        except InvalidTag:
            raise IntegrityError(
                f"wrapped key does not open with master key {self.key_id} (another master key, "
                "another client, or an altered record)") from None


class KmsMasterKey(_NoPickle):
    """A KMS key: KMS makes, wraps and unwraps data keys; the master key never leaves KMS."""

    __slots__ = ("_kms", "key_id")

    def __init__(self, kms_client, key_id: str):
        if not key_id:
            raise VaultError("a KMS key id is required")
        self._kms = kms_client
        self.key_id = key_id

    def __repr__(self) -> str:
        return f"KmsMasterKey(key_id={self.key_id!r})"

    __str__ = __repr__

    def _context(self, context: Mapping[str, str] | None) -> dict:
        return {"EncryptionContext": dict(context)} if context else {}

    def new_data_key(self, context: Mapping[str, str] | None = None) -> tuple[bytes, bytes]:
        response = self._call("generate_data_key", KeyId=self.key_id, KeySpec="AES_256",
                              **self._context(context))
        return response["Plaintext"], response["CiphertextBlob"]

    def wrap(self, plaintext_key: bytes, context: Mapping[str, str] | None = None) -> bytes:
        response = self._call("encrypt", KeyId=self.key_id, Plaintext=bytes(plaintext_key),
                              **self._context(context))
        return response["CiphertextBlob"]

    def unwrap(self, blob: bytes, context: Mapping[str, str] | None = None) -> bytes:
        response = self._call("decrypt", KeyId=self.key_id, CiphertextBlob=bytes(blob),
                              **self._context(context))
        return response["Plaintext"]

    def _call(self, operation: str, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError
        try:
            return getattr(self._kms, operation)(**kwargs)
        except ClientError as exc:
            # KMS error bodies carry codes and key ids, never plaintext, but keep only the code.
            code = exc.response.get("Error", {}).get("Code", "Unknown")
            cls = IntegrityError if code in ("InvalidCiphertextException",
                                             "IncorrectKeyException") else VaultError
            raise cls(f"KMS {operation} with key {self.key_id} failed: {code}") from None
        except BotoCoreError as exc:
            raise VaultError(f"KMS {operation} with key {self.key_id} failed: "
                             f"{type(exc).__name__}") from None


MasterKey = LocalMasterKey | KmsMasterKey


def load_master_key(master_key_b64: str | None, kms_key_id: str | None, var_dir: str | Path,
                    kms_client=None) -> MasterKey:
    """The configured master key: KMS if a key id is set, else the given local key, else a
    local key generated once into `<var_dir>/master_key` (for the embedded defaults)."""
    if kms_key_id:
        if kms_client is None:
            import boto3
            kms_client = boto3.client("kms")
        return KmsMasterKey(kms_client, kms_key_id)
    if master_key_b64:
        return LocalMasterKey(_decode_key(master_key_b64, "the configured master key"))
    return LocalMasterKey(_default_key_file(Path(var_dir)))


def check_master_key(text: str) -> None:
    """ValueError (naming no part of the key) unless `text` is base64 of a 32-byte key."""
    try:
        _decode_key(text, "the key")
    except VaultError as exc:
        raise ValueError(str(exc).replace("the key ", "", 1)) from None


def _decode_key(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise VaultError(f"{where} is not valid base64") from None
    if len(key) != KEY_SIZE:
        raise VaultError(f"{where} must be base64 of exactly {KEY_SIZE} bytes, "
                         f"it decodes to {len(key)} bytes")
    return key


def _default_key_file(var_dir: Path) -> bytes:
    path = var_dir / "master_key"
    if not path.exists():
        var_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=var_dir, prefix=".master_key.")  # mkstemp makes it 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(base64.b64encode(secrets.token_bytes(KEY_SIZE)) + b"\n")
                f.flush()
                os.fsync(f.fileno())
            try:
                # link() refuses to replace, so two processes starting together agree on one key.
                os.link(tmp, path)
                logger.info("generated a new local master key at %s", path)
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        logger.warning("master key file %s is readable by others (mode %o); chmod 600 it",
                       path, mode)
    return _decode_key(path.read_text(), f"master key file {path}")


# --- the client key record ---------------------------------------------------------------------

RECORD_FORMAT = "holdspace-client-key/1"


@dataclass(frozen=True)
class ClientKeyRecord:
    """What `keys/<client_id>` holds: the client key wrapped by a master key, and who wrapped it."""

    client_id: str
    key_id: str
    master_key_id: str
    wrapped_key: bytes
    created_at: str

    def __repr__(self) -> str:
        return (f"ClientKeyRecord(client_id={self.client_id!r}, key_id={self.key_id!r}, "
                f"master_key_id={self.master_key_id!r})")

    def encode(self) -> bytes:
        return json.dumps({
            "format": RECORD_FORMAT,
            "client_id": self.client_id,
            "key_id": self.key_id,
            "master_key_id": self.master_key_id,
            "wrapped_key": base64.b64encode(self.wrapped_key).decode(),
            "created_at": self.created_at,
        }, sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes) -> ClientKeyRecord:
        try:
            doc = json.loads(data)
            if doc["format"] != RECORD_FORMAT:
                raise ValueError
            return cls(doc["client_id"], doc["key_id"], doc["master_key_id"],
                       base64.b64decode(doc["wrapped_key"], validate=True), doc["created_at"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise IntegrityError("client key record is malformed") from None

    def with_wrapping(self, master_key_id: str, wrapped_key: bytes) -> ClientKeyRecord:
        return ClientKeyRecord(self.client_id, self.key_id, master_key_id, wrapped_key,
                               self.created_at)


def key_context(client_id: str) -> dict[str, str]:
    """Binds a wrapped client key to its client, so a record copied to another client fails."""
    return {"holdspace:client_id": client_id}


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
