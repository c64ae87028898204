"""Settings are checked when holdspace starts: a value that cannot work stops the web app, the
CLI and the worker with one line naming the variable, never a traceback, never the secret."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[1]
GOOD_KEY = base64.b64encode(b"k" * 32).decode()


@pytest.mark.parametrize("name, value, says", [
    ("TRANSCRIBE_ENGINE", "whisperx", "must be one of auto, platform, local, openai"),
    ("SUMMARY_ENGINE", "gpt", "must be one of auto, openai, offline"),
    ("STORAGE_URL", "s3:/no-bucket", "must be s3://bucket/prefix or file:///absolute/path"),
    ("STORAGE_URL", "file://relative/path", "must be s3://bucket/prefix"),
    ("STORAGE_URL", "ftp://host/x", "must be s3://bucket/prefix"),
    ("VAULT_MASTER_KEY", "not base64!", "is not valid base64"),
    ("VAULT_MASTER_KEY", base64.b64encode(b"short-secret").decode(), "exactly 32 bytes"),
    ("LINK_TTL_SECONDS", "a week", "valid integer"),
    ("DOWNLOAD_ATTEMPTS", "0", "greater than or equal to 1"),
    ("PUBLIC_BASE_URL", "holdspace.example", "should match pattern"),
])
def test_a_setting_that_cannot_work_is_refused_naming_it(tmp_path, name, value, says):
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"HOLDSPACE_VAR_DIR": str(tmp_path), name: value})
    message = str(refused.value)
    assert name in message and says in message and "\n" not in message
    if name == "VAULT_MASTER_KEY":
        assert value not in message  # a secret is never repeated back


def test_good_and_empty_values_are_taken(tmp_path):
    s = Settings.from_env({"HOLDSPACE_VAR_DIR": str(tmp_path), "TRANSCRIBE_ENGINE": " Local ",
                           "STORAGE_URL": "s3://bucket/prefix", "VAULT_MASTER_KEY": GOOD_KEY,
                           "ZOOM_DOWNLOAD_HOSTS": "127.0.0.1, zoom.us", "REDIS_URL": ""})
    assert s.transcribe_engine == "local" and s.storage_url == "s3://bucket/prefix"
    assert s.zoom_download_hosts == ("127.0.0.1", "zoom.us") and s.redis_url is None
    assert s.database_url == f"sqlite:///{tmp_path / 'holdspace.db'}"
    assert GOOD_KEY not in repr(s) and GOOD_KEY not in str(s) and s.secret_key not in str(s)


@pytest.mark.parametrize("command", [["routes"], ["worker", "--burst"]])
def test_the_cli_and_the_worker_stop_at_start_with_one_line(tmp_path, command):
    env = {**os.environ, "HOLDSPACE_VAR_DIR": str(tmp_path), "TRANSCRIBE_ENGINE": "whisperx",
           "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "flask", "--app", "app", *command], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert lines == ["holdspace: bad settings: TRANSCRIBE_ENGINE: must be one of auto, platform, "
                     "local, openai (got 'whisperx')"], run.stderr


def test_the_process_environment_is_read_the_same_way(tmp_path):
    # What a worker or gunicorn sees: pydantic-settings reading os.environ itself.
    env = {**os.environ, "HOLDSPACE_VAR_DIR": str(tmp_path), "ZOOM_DOWNLOAD_HOSTS": "127.0.0.1, zoom.us",
           "LINK_TTL_SECONDS": "3600", "TRANSCRIBE_ENGINE": "LOCAL", "PYTHONPATH": str(ROOT)}
    code = ("from config import Settings; s = Settings.from_env(); "
            "print(s.zoom_download_hosts, s.link_ttl_seconds, s.transcribe_engine, s.var_dir)")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=60)
    assert run.stdout.strip() == f"('127.0.0.1', 'zoom.us') 3600 local {tmp_path.resolve()}", run.stderr
