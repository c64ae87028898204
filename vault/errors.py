"""The vault's exceptions. Messages name objects, clients and key ids, never key bytes."""

from __future__ import annotations


class VaultError(Exception):
    """Anything the vault refuses or cannot do."""


class ObjectNotFound(VaultError):
    """No object is stored under that key."""


class ObjectErased(VaultError):
    """The client key the object was written under has been shredded; the bytes are noise now."""


class IntegrityError(VaultError):
    """Stored bytes failed authentication: altered, truncated, reordered, or not ours."""
