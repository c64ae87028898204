"""The process's wiring: settings plus the database, queue, vault, mail and platform clients
built from them, lazily. `create_app()` installs one; jobs and CLI commands use `current()`."""

from __future__ import annotations

import base64
import threading
from functools import cached_property

import redis
from rq import Queue

from config import Settings
from models.db import make_engine

# Long downloads go on their own queue so a burst of them cannot starve quick jobs.
QUEUE_NAMES = ("ingest", "default")

_current: "Runtime | None" = None
_lock = threading.Lock()


class Runtime:
    def __init__(self, settings: Settings):
        self.settings = settings

    @cached_property
    def engine(self):
        from models import sealing
        from vault.fields import FieldKeys
        engine = make_engine(self.settings.database_url)
        # Rows about a client are sealed under the client's vault key (the vault is built
        # the first time a sealed column is touched).
        audit_key = self.settings.audit_key
        sealing.bind(engine, FieldKeys(lambda: self.vault, audit_key=base64.b64decode(audit_key)
                                       if audit_key else None))
        return engine

    @cached_property
    def redis_url(self) -> str:
        if self.settings.redis_url:
            return self.settings.redis_url
        from workers.embedded_redis import ensure_running
        return ensure_running(self.settings.var_dir)

    @cached_property
    def redis(self) -> redis.Redis:
        # Short timeouts: a webhook must answer 2xx quickly even when Redis is down.
        return redis.Redis.from_url(self.redis_url, socket_connect_timeout=1, socket_timeout=5,
                                    health_check_interval=10)

    def queue(self, name: str = "default") -> Queue:
        return Queue(name, connection=self.redis)

    @property
    def queues(self) -> list[Queue]:
        return [self.queue(n) for n in QUEUE_NAMES]

    def job_alive(self, job_id: str) -> bool:
        """Whether a job is still queued, scheduled or running (so it must not be queued again)."""
        from rq.exceptions import NoSuchJobError
        from rq.job import Job, JobStatus
        try:
            status = Job.fetch(job_id, connection=self.redis).get_status()
        except NoSuchJobError:
            return False
        return status in (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED,
                          JobStatus.DEFERRED)

    @cached_property
    def vault(self):
        from vault import load_master_key, open_vault
        s = self.settings
        kms_client = None
        if s.kms_key_id:
            import boto3
            kms_client = boto3.client("kms", endpoint_url=s.s3_endpoint_url)
        master = load_master_key(s.vault_master_key, s.kms_key_id, s.var_dir, kms_client=kms_client)
        return open_vault(s.storage_url, master_key=master, s3_endpoint_url=s.s3_endpoint_url)

    @cached_property
    def zoom(self):
        from integrations.zoom import ZoomClient
        s = self.settings
        return ZoomClient(s.zoom_account_id, s.zoom_client_id, s.zoom_client_secret,
                          api_base_url=s.zoom_api_base_url, oauth_url=s.zoom_oauth_url,
                          download_hosts=s.zoom_download_hosts)

    @cached_property
    def mailer(self):
        from integrations.mail import Mailer
        from models import sealing
        from vault.errors import ObjectErased
        keys = sealing.provider_for(self.engine)

        # The embedded Maildir keeps mail only sealed: a mail about a client under that
        # client's key (gone with them), any other (or one sent after the client's key was
        # shredded, as the deletion receipt is) under the outbox's.
        def seal(data: bytes, about: str | None) -> tuple[str, str]:
            if about:
                try:
                    return about, keys.seal(about, data, b"holdspace/maildir/" + about.encode())
                except ObjectErased:
                    pass
            return "service.outbox", keys.seal("service.outbox", data, b"holdspace/maildir/service.outbox")

        def unseal(owner: str, token: str) -> bytes | None:
            try:
                return keys.open(owner, token, b"holdspace/maildir/" + owner.encode())
            except Exception:  # noqa: BLE001 - an altered or foreign file is just not shown
                return None

        s = self.settings
        return Mailer(s.smtp_url, maildir=s.var_dir / "outbox", sender=s.mail_from,
                      seal=seal, unseal=unseal)

    @cached_property
    def slack(self):
        from integrations.slack import SlackNotifier
        s = self.settings
        return SlackNotifier(s.slack_bot_token, base_url=s.slack_api_base_url)

    def __repr__(self) -> str:
        return f"Runtime({self.settings!r})"


def install(runtime: Runtime) -> Runtime:
    global _current
    with _lock:
        _current = runtime
    return runtime


def current() -> Runtime:
    """The installed runtime, or one built from the environment (a bare `rq worker`)."""
    global _current
    with _lock:
        if _current is None:
            _current = Runtime(Settings.from_env())
        return _current
