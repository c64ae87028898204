"""Anchors of the audit chain outside the database: the head's id and hash, written once into
the vault's storage (S3 Object Lock where the bucket has it) daily and at every erasure.

The chain's HMAC stops anyone without its key from rewriting rows; an anchor stops anyone from
quietly deleting the newest ones, since `audit verify` wants every anchored row back with its
hash. Each anchor carries an HMAC under the chain's key, so one forged into storage is refused."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

from models import audit, utcnow
from models.db import session_scope

log = logging.getLogger(__name__)

FOLDER = "audit-anchors"


def _mac(key: bytes, event_id: int, event_hash: str) -> str:
    return hmac.new(key, f"anchor/{event_id}/{event_hash}".encode(), hashlib.sha256).hexdigest()


def anchor_head(rt, reason: str) -> tuple[int, str] | None:
    """Anchor the chain's current head (nothing when it is anchored already)."""
    with session_scope(rt.engine) as db:
        head = audit.head(db)
    if head is None:
        return None
    event_id, event_hash = head
    key = audit.chain_key(rt.engine)
    record = {"event_id": event_id, "hash": event_hash, "at": utcnow().isoformat(),
              "reason": reason, "mac": _mac(key, event_id, event_hash)}
    name = f"{FOLDER}/{event_id:012d}-{event_hash[:16]}.json"
    rt.vault.write_once(name, json.dumps(record, sort_keys=True).encode())
    return head


def anchored(rt) -> list[tuple[int, str]]:
    """Every anchored (id, hash) whose HMAC holds; a forged record is logged and left out."""
    key = audit.chain_key(rt.engine)
    found = []
    for raw in rt.vault.read_notes(FOLDER):
        try:
            doc = json.loads(raw)
            event_id, event_hash = int(doc["event_id"]), str(doc["hash"])
            if hmac.compare_digest(str(doc["mac"]), _mac(key, event_id, event_hash)):
                found.append((event_id, event_hash))
                continue
        except (ValueError, KeyError, TypeError):
            pass
        log.warning("an audit anchor in storage does not verify; it is ignored")
    return found


def daily_anchor() -> str:
    """The scheduler's daily anchor."""
    from workers.runtime import current
    head = anchor_head(current(), "daily")
    return f"anchored event {head[0]}" if head else "nothing to anchor"
