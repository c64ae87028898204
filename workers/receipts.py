"""A deletion receipt as the client receives it: the signed JSON document and its file name.
The erasure job signs (workers/erasure.py); the message sender attaches (workers/notify.py)."""

from __future__ import annotations

from models import DeletionReceipt
from vault import receipts


def document(receipt: DeletionReceipt) -> dict:
    """The signed receipt as it is attached to the email and checked by `receipt verify`."""
    return {"format": receipts.FORMAT, "receipt": receipt.body,
            "key_id": (receipt.body or {}).get("signing_key"), "signature": receipt.signature}


def attachment_name(receipt: DeletionReceipt) -> str:
    return f"holdspace-deletion-receipt-{receipt.id}.json"


def verify(rt, receipt: DeletionReceipt) -> bool:
    """Whether the stored receipt verifies under this deployment's published key."""
    return bool(receipt.signature) and receipts.verify(document(receipt),
                                                       rt.vault.receipt_signer().public_pem())
