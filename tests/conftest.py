"""Session-wide real services, started only when a test asks for them; and, on request, a
clock moved for the whole run (HOLDSPACE_TEST_CLOCK_SHIFT_DAYS)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest

from tests.services import PostgresServer, RedisServer, S3Server, SmtpSink

# Never reach a model hub or the internet from the suite.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


# --- a moved clock for the whole run ------------------------------------------------------------

# The suite must pass whatever today's date is: with this set (e.g. 365 or -365), every clock
# read in this process (datetime, date, time.time) runs that many days away from the real one,
# still ticking. Started when pytest is configured, so before collection and every fixture.
# Processes the suite starts (Postgres, redis-server, a worker) and the times the kernel writes
# on files keep the machine's clock; `machine_now` reads it.
CLOCK_SHIFT_ENV = "HOLDSPACE_TEST_CLOCK_SHIFT_DAYS"
_clock_key = pytest.StashKey()


def clock_shift_days() -> int:
    return int(os.environ.get(CLOCK_SHIFT_ENV) or 0)


def pytest_configure(config):
    days = clock_shift_days()
    if days:
        import time_machine
        traveller = time_machine.travel(datetime.now(timezone.utc) + timedelta(days=days), tick=True)
        traveller.start()
        config.stash[_clock_key] = traveller


def pytest_unconfigure(config):
    traveller = config.stash.get(_clock_key, None)
    if traveller is not None:
        traveller.stop()


def pytest_report_header(config):
    if _clock_key in config.stash:
        return f"clock moved {clock_shift_days():+d} days: now {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"


@pytest.fixture
def machine_now():
    """The time on the machine's own clock, which processes the suite starts (a worker,
    redis-server, Postgres) run on and a moved test clock leaves alone: a callable."""
    from time_machine import escape_hatch

    def now() -> datetime:
        if escape_hatch.is_travelling():
            return escape_hatch.datetime.datetime.now(timezone.utc)
        return datetime.now(timezone.utc)
    return now


@pytest.fixture
def on_machine_clock(machine_now):
    """Runs the test on the machine's own clock even in a moved run: for tests that compare
    the clock with times the kernel writes (file mtimes), which no test clock can move."""
    from time_machine import escape_hatch, travel
    if not escape_hatch.is_travelling():
        yield
        return
    with travel(machine_now(), tick=True):
        yield


@pytest.fixture(scope="session")
def s3_server():
    server = S3Server()
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def postgres_server():
    server = PostgresServer()
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def smtp_sink():
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.close()


# --- the application under test ---------------------------------------------------------------

import base64  # noqa: E402
import itertools  # noqa: E402
import secrets as _secrets  # noqa: E402

_db_counter = itertools.count()

from tests.zoomhelpers import ZOOM_SECRET  # noqa: E402


@pytest.fixture(params=["sqlite"])
def database_url(request, tmp_path):
    """SQLite by default; tests that must also hold on Postgres parametrize `both_databases`."""
    return f"sqlite:///{tmp_path / 'holdspace.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def both_databases(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'holdspace.db'}"
    pg = request.getfixturevalue("postgres_server")
    return pg.create_database(f"hs_{next(_db_counter)}_{_secrets.token_hex(3)}")


@pytest.fixture
def zoom_stub():
    from tests.zoomstub import ZoomStub
    stub = ZoomStub()
    stub.start()
    yield stub
    stub.stop()


@pytest.fixture
def s3_bucket(s3_server):
    import boto3
    name = f"vault-{_secrets.token_hex(4)}"
    boto3.client("s3", endpoint_url=s3_server.url).create_bucket(Bucket=name)
    return name


def make_env(tmp_path, database_url, redis_url, *, zoom_stub=None, storage_url=None,
             s3_endpoint_url=None, smtp_url=None, **extra) -> dict:
    """The environment a holdspace process under test runs with (app and worker alike)."""
    env = {
        "HOLDSPACE_VAR_DIR": str(tmp_path / "var"),
        "SECRET_KEY": "test-secret-key",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "STORAGE_URL": storage_url or f"file://{tmp_path / 'vault'}",
        "VAULT_MASTER_KEY": base64.b64encode(b"k" * 32).decode(),
        "ZOOM_WEBHOOK_SECRET": ZOOM_SECRET,
        "DOWNLOAD_BACKOFF_SECONDS": "0.05",
        "SWEEP_STALE_SECONDS": "0",
    }
    if s3_endpoint_url:
        env["S3_ENDPOINT_URL"] = s3_endpoint_url
    if smtp_url:
        env["SMTP_URL"] = smtp_url
    if zoom_stub is not None:
        env.update({
            "ZOOM_ACCOUNT_ID": zoom_stub.account_id, "ZOOM_CLIENT_ID": zoom_stub.client_id,
            "ZOOM_CLIENT_SECRET": zoom_stub.client_secret, "ZOOM_API_BASE_URL": zoom_stub.api_base_url,
            "ZOOM_OAUTH_URL": zoom_stub.oauth_url, "ZOOM_DOWNLOAD_HOSTS": f"127.0.0.1:{zoom_stub.port}",
        })
    env.update({k: str(v) for k, v in extra.items()})
    return env


def burst(queues, redis, **options) -> None:
    """A real RQ worker in this process until `queues` are empty. The worker installs its own
    SIGINT and SIGTERM handlers and leaves them behind; they are put back afterwards, or the
    SIGINT execnet sends a test process whose teardown outlasts five seconds would reach a
    worker long finished (its StopRequested raised in whatever code runs then)."""
    import signal
    from rq import SimpleWorker
    kept = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        SimpleWorker(queues, connection=redis).work(burst=True, logging_level="WARNING", **options)
    finally:
        for sig, handler in kept.items():
            signal.signal(sig, handler)


class Holdspace:
    """One app built from an environment, with handles the tests use."""

    def __init__(self, env: dict):
        from app import create_app
        from config import Settings
        from models.db import migrate
        self.env = env
        self.app = create_app(Settings.from_env(env))
        self.rt = self.app.extensions["holdspace"]
        migrate(self.rt.engine)
        try:
            self.rt.redis.flushdb()
        except Exception:  # noqa: BLE001 - some tests point at a Redis that is down on purpose
            pass
        self.http = self.app.test_client()
        self.cli = self.app.test_cli_runner()

    def run(self, *args) -> str:
        result = self.cli.invoke(args=list(args))
        assert result.exit_code == 0, (args, result.output, result.exception)
        return result.output.strip()

    def drain(self, advance: float = 0) -> None:
        """Run a real RQ worker (in this process) until the queues are empty, queueing
        scheduled jobs that are due within `advance` seconds (a clock moved forward), as the
        scheduler would. An ingest job that the run itself puts off by two seconds or less (a
        download's backoff or Retry-After in tests) is waited for and run too."""
        import time as _time
        from rq.registry import ScheduledJobRegistry
        from rq.exceptions import InvalidJobOperation
        from rq.job import Job
        for queue in self.rt.queues:
            registry = ScheduledJobRegistry(queue=queue)
            for job_id in registry.get_jobs_to_schedule(_time.time() + advance):
                try:
                    registry.requeue(job_id)
                except InvalidJobOperation:
                    pass  # moved on meanwhile: it is queued already
        for _ in range(50):
            burst(self.rt.queues, self.rt.redis)
            short = []
            registry = ScheduledJobRegistry(queue=self.rt.queue("ingest"))
            for job_id in registry.get_job_ids():
                at = registry.get_scheduled_time(job_id).timestamp()
                if at - Job.fetch(job_id, connection=self.rt.redis).created_at.timestamp() <= 2:
                    short.append((registry, job_id, at))
            if not short:
                return
            for registry, job_id, at in short:
                _time.sleep(max(0.0, at - _time.time()))
                try:
                    registry.requeue(job_id)
                except InvalidJobOperation:
                    pass  # the scheduler of a worker moved it on meanwhile: it is queued already

    def db(self):
        from sqlmodel import Session
        return Session(self.rt.engine, expire_on_commit=False)


@pytest.fixture
def hs_factory(tmp_path, redis_server):
    made = []

    def build(database_url, **kwargs) -> Holdspace:
        hs = Holdspace(make_env(tmp_path, database_url, redis_server.url, **kwargs))
        made.append(hs)
        return hs

    yield build
    for hs in made:
        hs.rt.engine.dispose()
