"""Small secrets (an OAuth refresh token, say) sealed under the master key: a fresh data key
from the master key per secret, AES-GCM over the secret, the purpose bound in as context.

The result is a text token safe to keep in a database column; only a holder of the master
key can open it, and a token sealed for one purpose does not open for another."""

from __future__ import annotations

import base64
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault.errors import IntegrityError

_VERSION = "hsseal1"


def seal(master_key, secret: bytes, purpose: str) -> str:
    context = {"holdspace:sealed": purpose}
    key, wrapped = master_key.new_data_key(context)
    nonce = os.urandom(12)
    box = AESGCM(key).encrypt(nonce, secret, purpose.encode())
    parts = {"v": _VERSION, "k": master_key.key_id,
             "w": base64.b64encode(wrapped).decode(), "n": base64.b64encode(nonce).decode(),
             "c": base64.b64encode(box).decode()}
    return base64.urlsafe_b64encode(json.dumps(parts, separators=(",", ":")).encode()).decode()


def unseal(master_key, token: str, purpose: str) -> bytes:
    try:
        parts = json.loads(base64.urlsafe_b64decode(token.encode()))
        if parts.get("v") != _VERSION:
            raise ValueError("unknown version")
        key = master_key.unwrap(base64.b64decode(parts["w"]), {"holdspace:sealed": purpose})
        return AESGCM(key).decrypt(base64.b64decode(parts["n"]), base64.b64decode(parts["c"]),
                                   purpose.encode())
    except (ValueError, KeyError, TypeError, InvalidTag, IntegrityError) as exc:
        raise IntegrityError(f"sealed secret for {purpose!r} does not open: {type(exc).__name__}") from None


def load_or_create(backend, master_key, object_key: str, purpose: str, make) -> bytes:
    """A deployment-wide secret kept sealed in the vault's storage at `object_key`, made by
    `make()` on first use. Two processes starting together agree on one: the create is
    conditional, and the loser reads the winner's."""
    from vault.errors import ObjectNotFound, VaultError
    for _ in range(2):
        try:
            return unseal(master_key, backend.get_bytes(object_key).decode(), purpose)
        except ObjectNotFound:
            raw = make()
            if backend.create_bytes(object_key, seal(master_key, raw, purpose).encode()):
                return raw
        except (UnicodeDecodeError, ValueError):
            raise IntegrityError(f"the sealed record {object_key} is malformed") from None
    raise VaultError(f"could not create or read {object_key}")


def reseal_stored(backend, old_master, new_master, object_key: str, purpose: str) -> bool:
    """Re-seal a stored secret under a new master key (master key rotation)."""
    from vault.errors import ObjectNotFound
    try:
        raw = unseal(old_master, backend.get_bytes(object_key).decode(), purpose)
    except ObjectNotFound:
        return False
    backend.put_bytes(object_key, seal(new_master, raw, purpose).encode())
    backend.prune_old_versions(object_key)
    return True
