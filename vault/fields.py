"""Sealed database fields: a client's words and facts, encrypted under a key derived from that
client's vault key, so shredding the key makes every copy of them unreadable, backups included.

A field is AES-256-GCM under HKDF(owner key, "fields"), with the caller's associated data (the
column and the row id, so a value copied into another row or column does not open). It is
stored as text: `hsf1:` and base64url of nonce || ciphertext+tag.

The owner is whose key seals the field: a client id, or `coach.<id>` for a coach's own record
(private notes), or `service.<name>` for what belongs to neither. Keys of coaches and of the
service are made on first use; a client's key never is here, since whether a client may have
a key at all is decided by its caller (holdspace's erasure fence).

`blind()` names search terms for one owner: a keyed HMAC under HKDF(owner key, "search"), cut
to a signed 64-bit integer, so a blind index row can be found by a word without holding it and
turns unlinkable to any word once the key is shredded.

`lookup()` is a keyed HMAC of a value (an email address) under a deployment-wide secret kept
sealed in the vault's storage, so a row can be found by that value without storing it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault.errors import IntegrityError, ObjectErased

PREFIX = "hsf1:"
# Deployment-wide secrets kept sealed in the vault's storage: (object, purpose). The vault
# re-seals each of them when the master key rotates.
LOOKUP_SECRET = ("service/lookup-key", "lookup-key")
AUDIT_SECRET = ("service/audit-key", "audit-key")
SERVICE_SECRETS = (LOOKUP_SECRET, AUDIT_SECRET)
_NONCE = 12


def derive(key: bytes, purpose: str) -> bytes:
    """A 32-byte key for one purpose, derived from an owner's vault key."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"holdspace/" + purpose.encode()).derive(key)


def is_sealed(value) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def seal_field(key: bytes, value: bytes, aad: bytes) -> str:
    nonce = os.urandom(_NONCE)
    box = AESGCM(key).encrypt(nonce, value, aad)
    return PREFIX + base64.urlsafe_b64encode(nonce + box).decode()


def open_field(key: bytes, token: str, aad: bytes) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(token[len(PREFIX):].encode()) if is_sealed(token) else b""
        if len(raw) < _NONCE + 16:
            raise ValueError
        return AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], aad)
    except (InvalidTag, ValueError, binascii.Error):
        raise IntegrityError("a sealed field does not open (another owner, another row or "
                             "column, or an altered value)") from None


def _may_create(owner: str) -> bool:
    return owner.startswith(("coach.", "service."))


class FieldKeys:
    """What the database's sealed columns use, over one vault (or a callable that returns it,
    so a process builds its vault only when a sealed field is first touched)."""

    def __init__(self, vault, audit_key: bytes | None = None):
        self._vault = vault
        self._audit = audit_key

    def __repr__(self) -> str:
        return "FieldKeys()"

    def __reduce__(self):
        raise TypeError("FieldKeys reach key material and cannot be pickled")

    @property
    def vault(self):
        return self._vault() if callable(self._vault) else self._vault

    def key(self, owner: str, purpose: str = "fields", *, create: bool = False) -> bytes:
        """The owner's key for `purpose`. ObjectErased once the owner's key is shredded (or,
        for a client, before it was made)."""
        return derive(self.vault.owner_key(owner, create=create and _may_create(owner)), purpose)

    def new_client_key(self, client_id: str) -> str:
        """Make (or find) a client's key; the caller has decided the client may have one."""
        return self.vault.ensure_client_key(client_id)

    def seal(self, owner: str, value: bytes, aad: bytes) -> str:
        # Sealing may make a coach's key; opening never makes one (it could open nothing).
        return seal_field(self.key(owner, create=True), value, aad)

    def open(self, owner: str, token: str, aad: bytes) -> bytes | None:
        """The field's bytes; None when the owner's key has been shredded (the value is gone)."""
        try:
            key = self.key(owner)
        except ObjectErased:
            return None
        return open_field(key, token, aad)

    def audit_key(self) -> bytes:
        """The key of the audit chain's HMAC: the configured one, else one kept sealed in the
        vault's storage. Never in the database, so whoever can write rows cannot re-chain them."""
        return self._audit or self.vault.service_secret(*AUDIT_SECRET)

    def blind(self, owner: str, values) -> dict[str, int] | None:
        """Each value's blind name under the owner's search key; None once the key is shredded."""
        try:
            key = self.key(owner, "search")
        except ObjectErased:
            return None
        return {v: int.from_bytes(hmac.new(key, v.encode(), hashlib.sha256).digest()[:8], "big",
                                  signed=True) for v in values}

    def lookup(self, value: str) -> str:
        """The keyed HMAC (hex) of an already normalised value."""
        key = self.vault.service_secret(*LOOKUP_SECRET)  # cached by the vault
        return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()
