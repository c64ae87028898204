"""Sealed small secrets: round trip, bound to their purpose and to the master key, and no
plaintext in the sealed text."""

import base64

import pytest

from vault import IntegrityError, LocalMasterKey
from vault.sealed import seal, unseal


def test_round_trip_and_binding():
    master = LocalMasterKey(b"m" * 32)
    secret = b"1//refresh-token-value-0123456789"
    token = seal(master, secret, "google-refresh-token:coach-1")
    assert unseal(master, token, "google-refresh-token:coach-1") == secret
    assert secret not in base64.urlsafe_b64decode(token) and b"refresh-token-value" not in token.encode()
    assert seal(master, secret, "p") != seal(master, secret, "p")  # a fresh key and nonce each time
    with pytest.raises(IntegrityError):
        unseal(master, token, "google-refresh-token:coach-2")
    with pytest.raises(IntegrityError):
        unseal(LocalMasterKey(b"o" * 32), token, "google-refresh-token:coach-1")
    with pytest.raises(IntegrityError):
        unseal(master, token[:-8] + "AAAAAAA=", "google-refresh-token:coach-1")
    with pytest.raises(IntegrityError):
        unseal(master, "not a token", "p")
