"""Envelope encryption for client recordings: per-client keys, a segmented AES-GCM object
format, S3 or local storage, ranged reads and crypto-shredding. Knows nothing of the web app."""

from vault.errors import IntegrityError, ObjectErased, ObjectNotFound, VaultError
from vault.keys import KmsMasterKey, LocalMasterKey, load_master_key
from vault.store import DeletionRecord, ObjectInfo, ShredRecord, StoredObject, Vault, open_vault

__all__ = [
    "Vault", "open_vault", "StoredObject", "ObjectInfo", "DeletionRecord", "ShredRecord",
    "VaultError", "ObjectNotFound", "ObjectErased", "IntegrityError", "LocalMasterKey",
    "KmsMasterKey", "load_master_key",
]
