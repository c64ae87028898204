"""Deletion receipts anyone can verify: Ed25519-signed, attached to the client's email as JSON,
checked by `receipt verify` and by a few lines that know only the published public key."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.zoomhelpers import CLIENT_EMAIL, coach_and_client

# Everything a client needs to check a receipt: the public key and the JSON file.
CHECK = """\
import base64, json, sys
from cryptography.hazmat.primitives.serialization import load_pem_public_key
key = load_pem_public_key(open(sys.argv[1], "rb").read())
doc = json.load(open(sys.argv[2]))
body = json.dumps(doc["receipt"], sort_keys=True, separators=(",", ":")).encode()
try:
    key.verify(base64.b64decode(doc["signature"]), body)
except Exception:
    sys.exit("receipt does NOT verify")
print("receipt verifies:", doc["receipt"]["status"])
"""


@pytest.fixture
def withdrawn(hs_factory, database_url, tmp_path):
    """A client who withdrew; their receipt email, sent, and its attachment on disk."""
    hs = hs_factory(database_url)
    coach_and_client(hs)
    hs.run("consent", "withdraw", "--client-email", CLIENT_EMAIL)
    hs.drain()
    (message,) = [m for m in hs.rt.mailer.kept() if m["To"] == CLIENT_EMAIL and "receipt" in m["Subject"]]
    (part,) = [p for p in message.walk() if p.get_filename()]
    path = tmp_path / part.get_filename()
    path.write_bytes(part.get_payload(decode=True))
    return hs, message, path


def test_the_email_leads_with_a_plain_summary_and_attaches_the_signed_receipt(withdrawn):
    hs, message, path = withdrawn
    text = next(p for p in message.walk() if p.get_content_type() == "text/plain"
                and not p.get_filename()).get_content()
    assert text.splitlines()[2] == "0 sessions: nothing was stored; your key destroyed."
    assert "/.well-known/holdspace-receipt-key" in text
    document = json.loads(path.read_text())
    assert document["format"] == "holdspace-deletion-receipt/1"
    assert document["receipt"]["status"] == "completed" and document["receipt"]["key_shredded"]


def test_receipt_verify_accepts_the_receipt_and_refuses_a_tampered_one(withdrawn, tmp_path):
    hs, _, path = withdrawn
    ok = hs.cli.invoke(args=["receipt", "verify", str(path)])
    assert ok.exit_code == 0 and "verifies" in ok.output, ok.output
    document = json.loads(path.read_text())
    document["receipt"]["counts"]["sessions"] = 0 if document["receipt"]["counts"]["sessions"] else 3
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(document))
    bad = hs.cli.invoke(args=["receipt", "verify", str(tampered)])
    assert bad.exit_code == 1 and "does not verify" in bad.output
    assert hs.cli.invoke(args=["receipt", "verify", str(tmp_path / "missing.json")]).exit_code != 0
    (tmp_path / "junk.json").write_text("{not json")
    assert hs.cli.invoke(args=["receipt", "verify", str(tmp_path / "junk.json")]).exit_code == 1


def test_a_client_verifies_with_nothing_but_the_published_key(withdrawn, tmp_path):
    hs, _, path = withdrawn
    response = hs.http.get("/.well-known/holdspace-receipt-key")
    assert response.status_code == 200
    assert response.get_data(as_text=True).startswith("-----BEGIN PUBLIC KEY-----")
    key, script = tmp_path / "holdspace.pem", tmp_path / "check.py"
    key.write_bytes(response.get_data())
    script.write_text(CHECK)
    assert len(CHECK.splitlines()) <= 10
    run = subprocess.run([sys.executable, str(script), str(key), str(path)], capture_output=True, text=True)
    assert run.returncode == 0 and "receipt verifies: completed" in run.stdout, run.stderr
    document = json.loads(path.read_text())
    document["receipt"]["objects"].append({"key": "clients/x/objects/y", "size": 1})
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(document))
    run = subprocess.run([sys.executable, str(script), str(key), str(forged)], capture_output=True, text=True)
    assert run.returncode == 1 and "NOT verify" in run.stderr


def test_another_deployments_key_does_not_verify_our_receipts(withdrawn):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from vault import receipts
    _, _, path = withdrawn
    other = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert not receipts.verify(json.loads(path.read_text()), other)
