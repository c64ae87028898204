"""Deletion receipts anyone can verify: an Ed25519 signature over the receipt's canonical JSON.

The signing key is made once per deployment and kept in the vault's storage sealed under the
master key (so web and worker processes on different machines share it, and KMS deployments
need no extra secret); only its public key ever leaves. A receipt travels as one JSON
document: `{"format", "receipt", "key_id", "signature"}`. Verifying needs nothing but that
document and the public key:

    canonical = json.dumps(doc["receipt"], sort_keys=True, separators=(",", ":")).encode()
    public_key.verify(base64.b64decode(doc["signature"]), canonical)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vault.errors import IntegrityError
from vault.sealed import load_or_create, reseal_stored

FORMAT = "holdspace-deletion-receipt/1"
KEY_OBJECT = "service/receipt-signing-key"
_PURPOSE = "receipt-signing-key"


def canonical(body: dict) -> bytes:
    """The bytes a signature covers: sorted keys, no spaces, ASCII only."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


class ReceiptSigner:
    """Signs receipts; never pickled, never printed with its key."""

    __slots__ = ("_key", "key_id")

    def __init__(self, private_key: Ed25519PrivateKey):
        self._key = private_key
        self.key_id = key_id(private_key.public_key())

    def __repr__(self) -> str:
        return f"ReceiptSigner(key_id={self.key_id!r})"

    def __reduce__(self):
        raise TypeError("a ReceiptSigner holds a private key and cannot be pickled")

    def sign(self, body: dict) -> dict:
        """The signed document for `body` (which must be plain JSON: str, numbers, lists…)."""
        body = json.loads(json.dumps(body))  # refuse anything JSON would change in transit
        return {"format": FORMAT, "receipt": body, "key_id": self.key_id,
                "signature": base64.b64encode(self._key.sign(canonical(body))).decode()}

    def public_pem(self) -> str:
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def verify(document, public_key_pem: str | bytes) -> bool:
    """Whether `document` is a receipt signed by the key in `public_key_pem`."""
    try:
        public = serialization.load_pem_public_key(
            public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem)
        if not isinstance(public, Ed25519PublicKey) or not isinstance(document, dict):
            return False
        if document.get("format") != FORMAT or not isinstance(document.get("receipt"), dict):
            return False
        public.verify(base64.b64decode(str(document.get("signature", "")), validate=True),
                      canonical(document["receipt"]))
        return True
    except (InvalidSignature, ValueError, TypeError, binascii.Error):
        return False


def load_signer(backend, master_key) -> ReceiptSigner:
    """This deployment's signer, making its key on first use."""
    def make() -> bytes:
        return Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
            serialization.NoEncryption())
    raw = load_or_create(backend, master_key, KEY_OBJECT, _PURPOSE, make)
    try:
        return ReceiptSigner(Ed25519PrivateKey.from_private_bytes(raw))
    except ValueError:
        raise IntegrityError("the receipt signing key record is malformed") from None


def reseal(backend, old_master, new_master) -> bool:
    """Re-seal the signing key under a new master key (master key rotation)."""
    return reseal_stored(backend, old_master, new_master, KEY_OBJECT, _PURPOSE)
