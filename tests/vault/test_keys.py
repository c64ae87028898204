"""Master keys: loading, the generated default file, and keeping key bytes out of sight."""

from __future__ import annotations

import base64
import logging
import os
import pickle
import stat

import pytest

from vault import (
    IntegrityError, KmsMasterKey, LocalMasterKey, Vault, VaultError, load_master_key,
)
from vault.backends import FileBackend
from vault.keys import ClientKeyRecord


def test_local_key_from_base64(tmp_path):
    raw = os.urandom(32)
    key = load_master_key(base64.b64encode(raw).decode(), None, tmp_path)
    assert isinstance(key, LocalMasterKey)
    assert key.key_id == LocalMasterKey(raw).key_id
    assert not (tmp_path / "master_key").exists()
    plain, blob = key.new_data_key()
    assert len(plain) == 32 and key.unwrap(blob) == plain
    assert key.unwrap(key.wrap(plain, {"c": "1"}), {"c": "1"}) == plain
    with pytest.raises(IntegrityError):
        key.unwrap(key.wrap(plain, {"c": "1"}), {"c": "2"})
    with pytest.raises(IntegrityError):
        LocalMasterKey.generate().unwrap(blob)


@pytest.mark.parametrize("value, message", [
    (base64.b64encode(b"x" * 31).decode(), "exactly 32 bytes"),
    (base64.b64encode(b"x" * 33).decode(), "exactly 32 bytes"),
    ("not base64 at all!", "not valid base64"),
])
def test_bad_local_keys_are_refused_clearly(tmp_path, value, message):
    with pytest.raises(VaultError, match=message) as info:
        load_master_key(value, None, tmp_path)
    assert value not in str(info.value)


def test_default_key_file_is_private_and_reused(tmp_path):
    var = tmp_path / "var"
    first = load_master_key(None, None, var)
    path = var / "master_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(base64.b64decode(path.read_text())) == 32
    assert load_master_key(None, None, var).key_id == first.key_id
    assert load_master_key("", "", str(var)).key_id == first.key_id
    assert [p.name for p in var.iterdir()] == ["master_key"]  # no temp files left


def test_kms_is_chosen_when_a_key_id_is_set(tmp_path, kms_client):
    key_id = kms_client.create_key()["KeyMetadata"]["KeyId"]
    key = load_master_key(base64.b64encode(os.urandom(32)).decode(), key_id, tmp_path,
                          kms_client=kms_client)
    assert isinstance(key, KmsMasterKey) and key.key_id == key_id
    plain, blob = key.new_data_key()
    assert key.unwrap(blob) == plain and key.unwrap(key.wrap(plain)) == plain
    with pytest.raises(VaultError, match="KMS decrypt"):  # moto answers AccessDenied here
        key.unwrap(b"garbage" * 20)


def test_key_material_never_shows(tmp_path, caplog):
    """reprs, strs, exception messages and log lines never carry key bytes in any encoding."""
    caplog.set_level(logging.DEBUG)
    raw = os.urandom(32)
    master = LocalMasterKey(raw)
    vault = Vault(FileBackend(tmp_path / "v"), master)
    vault.ensure_client_key("c1")
    key = vault.put_stream("c1", "a.txt", [b"hello"], "text/plain").key
    client_key = vault._client_key("c1", create=False)[1]
    record = ClientKeyRecord.decode((tmp_path / "v" / "keys" / "c1").read_bytes())

    texts = [repr(master), str(master), repr(vault), str(vault), repr(record)]
    for bad in (lambda: Vault(FileBackend(tmp_path / "v"), LocalMasterKey.generate()).open(key),
                lambda: LocalMasterKey(raw[:31]),
                lambda: load_master_key(base64.b64encode(raw[:30]).decode(), None, tmp_path)):
        with pytest.raises(VaultError) as info:
            bad()
        texts += [str(info.value), repr(info.value)]
    vault.shred_client_key("c1")
    texts += [r.getMessage() for r in caplog.records]

    for secret in (raw, client_key):
        forms = [secret.hex(), base64.b64encode(secret).decode(), repr(secret), str(list(secret))]
        for text in texts:
            for form in forms:
                assert form not in text, text


def test_keys_and_vaults_refuse_to_be_pickled(tmp_path):
    vault = Vault(FileBackend(tmp_path), LocalMasterKey.generate())
    for thing in (LocalMasterKey.generate(), KmsMasterKey(object(), "k"), vault):
        with pytest.raises(TypeError):
            pickle.dumps(thing)
