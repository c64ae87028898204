"""One settings object, read from the environment once, with the embedded defaults that
let holdspace run on a fresh machine with nothing configured."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def _secret_file(path: Path, make) -> str:
    """Read a generated secret, creating it once (0600) on first use."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(make())
    return path.read_text().strip()


def _int(env, name, default):
    raw = env.get(name)
    return int(raw) if raw not in (None, "") else default


def _list(raw: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if not raw:
        return default
    return tuple(h.strip() for h in raw.split(",") if h.strip())


@dataclass(frozen=True)
class Settings:
    var_dir: Path
    secret_key: str
    public_base_url: str
    database_url: str
    redis_url: str | None            # None: the embedded Redis under var/
    storage_url: str
    s3_endpoint_url: str | None
    vault_master_key: str | None     # None with no KMS: generated into var/master_key by the vault
    kms_key_id: str | None
    zoom_webhook_secret: str | None
    zoom_account_id: str | None
    zoom_client_id: str | None
    zoom_client_secret: str | None
    zoom_api_base_url: str
    zoom_oauth_url: str
    zoom_download_hosts: tuple[str, ...]
    smtp_url: str | None             # None: a Maildir under var/outbox
    mail_from: str
    link_ttl_seconds: int
    slack_signing_secret: str | None
    slack_bot_token: str | None
    slack_api_base_url: str
    google_pubsub_audience: str | None
    google_pubsub_service_account: str | None
    google_certs_url: str | None
    google_api_base_url: str | None
    google_client_id: str | None
    google_client_secret: str | None
    google_oauth_auth_url: str
    google_oauth_token_url: str
    google_pubsub_topic: str | None
    google_service_account_file: str | None
    google_subscription_ttl_seconds: int
    transcribe_engine: str
    whisper_model: str | None
    summary_engine: str
    openai_api_key: str | None
    openai_base_url: str | None
    openai_transcribe_model: str
    openai_summary_model: str
    # Operational settings beyond the contract's list.
    zoom_signature_window_seconds: int = 300
    max_webhook_bytes: int = 1 << 20
    reconcile_min_delay_seconds: int = 900
    # Zoom needs about twice the meeting's length to process a recording.
    reconcile_duration_factor: float = 2.0
    reconcile_max_attempts: int = 6
    sweep_stale_seconds: int = 120
    download_attempts: int = 4
    briefing_lead_minutes: int = 60
    # After a Meet conference ends, how long to wait for its recording before telling the coach.
    meet_artifact_wait_seconds: int = 3600
    # How long transcription waits for Zoom's own transcript before making one itself.
    platform_transcript_wait_seconds: int = 7200
    download_backoff_seconds: float = 2.0
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: dict | None = None, **overrides) -> "Settings":
        env = dict(os.environ if env is None else env)
        var_dir = Path(env.get("HOLDSPACE_VAR_DIR") or ROOT / "var").resolve()
        var_dir.mkdir(parents=True, exist_ok=True)
        secret_key = env.get("SECRET_KEY") or _secret_file(
            var_dir / "secret_key", lambda: secrets.token_urlsafe(48))
        settings = cls(
            var_dir=var_dir,
            secret_key=secret_key,
            public_base_url=(env.get("PUBLIC_BASE_URL") or "http://127.0.0.1:5000").rstrip("/"),
            database_url=env.get("DATABASE_URL") or f"sqlite:///{var_dir / 'holdspace.db'}",
            redis_url=env.get("REDIS_URL") or None,
            storage_url=env.get("STORAGE_URL") or f"file://{var_dir / 'vault'}",
            s3_endpoint_url=env.get("S3_ENDPOINT_URL") or None,
            vault_master_key=env.get("VAULT_MASTER_KEY") or None,
            kms_key_id=env.get("KMS_KEY_ID") or None,
            zoom_webhook_secret=env.get("ZOOM_WEBHOOK_SECRET") or None,
            zoom_account_id=env.get("ZOOM_ACCOUNT_ID") or None,
            zoom_client_id=env.get("ZOOM_CLIENT_ID") or None,
            zoom_client_secret=env.get("ZOOM_CLIENT_SECRET") or None,
            zoom_api_base_url=(env.get("ZOOM_API_BASE_URL") or "https://api.zoom.us/v2").rstrip("/"),
            zoom_oauth_url=env.get("ZOOM_OAUTH_URL") or "https://zoom.us/oauth/token",
            zoom_download_hosts=_list(env.get("ZOOM_DOWNLOAD_HOSTS"), ("zoom.us", "*.zoom.us")),
            smtp_url=env.get("SMTP_URL") or None,
            mail_from=env.get("MAIL_FROM") or "holdspace@localhost",
            link_ttl_seconds=_int(env, "LINK_TTL_SECONDS", 604800),
            slack_signing_secret=env.get("SLACK_SIGNING_SECRET") or None,
            slack_bot_token=env.get("SLACK_BOT_TOKEN") or None,
            slack_api_base_url=(env.get("SLACK_API_BASE_URL") or "https://slack.com/api").rstrip("/") + "/",
            google_pubsub_audience=env.get("GOOGLE_PUBSUB_AUDIENCE") or None,
            google_pubsub_service_account=env.get("GOOGLE_PUBSUB_SERVICE_ACCOUNT") or None,
            google_certs_url=env.get("GOOGLE_CERTS_URL") or None,
            google_api_base_url=env.get("GOOGLE_API_BASE_URL") or None,
            google_client_id=env.get("GOOGLE_CLIENT_ID") or None,
            google_client_secret=env.get("GOOGLE_CLIENT_SECRET") or None,
            google_oauth_auth_url=env.get("GOOGLE_OAUTH_AUTH_URL") or "https://accounts.google.com/o/oauth2/auth",
            google_oauth_token_url=env.get("GOOGLE_OAUTH_TOKEN_URL") or "https://oauth2.googleapis.com/token",
            google_pubsub_topic=env.get("GOOGLE_PUBSUB_TOPIC") or None,
            google_service_account_file=env.get("GOOGLE_SERVICE_ACCOUNT_FILE") or None,
            google_subscription_ttl_seconds=_int(env, "GOOGLE_SUBSCRIPTION_TTL_SECONDS", 604800),
            transcribe_engine=env.get("TRANSCRIBE_ENGINE") or "auto",
            whisper_model=env.get("WHISPER_MODEL") or None,
            summary_engine=env.get("SUMMARY_ENGINE") or "auto",
            openai_api_key=env.get("OPENAI_API_KEY") or None,
            openai_base_url=env.get("OPENAI_BASE_URL") or None,
            openai_transcribe_model=env.get("OPENAI_TRANSCRIBE_MODEL") or "whisper-1",
            openai_summary_model=env.get("OPENAI_SUMMARY_MODEL") or "gpt-4o-mini",
            zoom_signature_window_seconds=_int(env, "ZOOM_SIGNATURE_WINDOW_SECONDS", 300),
            reconcile_min_delay_seconds=_int(env, "RECONCILE_MIN_DELAY_SECONDS", 900),
            reconcile_duration_factor=float(env.get("RECONCILE_DURATION_FACTOR") or 2.0),
            sweep_stale_seconds=_int(env, "SWEEP_STALE_SECONDS", 120),
            download_attempts=_int(env, "DOWNLOAD_ATTEMPTS", 4),
            briefing_lead_minutes=_int(env, "BRIEFING_LEAD_MINUTES", 60),
            meet_artifact_wait_seconds=_int(env, "MEET_ARTIFACT_WAIT_SECONDS", 3600),
            platform_transcript_wait_seconds=_int(env, "PLATFORM_TRANSCRIPT_WAIT_SECONDS", 7200),
            download_backoff_seconds=float(env.get("DOWNLOAD_BACKOFF_SECONDS") or 2.0),
        )
        return replace(settings, **overrides) if overrides else settings

    def with_overrides(self, **overrides) -> "Settings":
        return replace(self, **overrides)

    @property
    def google_oauth_configured(self) -> bool:
        return bool(self.google_client_id and self.google_client_secret)

    @property
    def openai_configured(self) -> bool:
        """A key or a base URL: a self-hosted OpenAI-compatible server may need no key."""
        return bool(self.openai_api_key or self.openai_base_url)

    def __repr__(self) -> str:
        # Secrets stay out of reprs, tracebacks and logs.
        hidden = {"secret_key", "vault_master_key", "zoom_webhook_secret", "zoom_client_secret",
                  "google_client_secret",
                  "slack_signing_secret", "slack_bot_token", "openai_api_key", "smtp_url",
                  "database_url", "redis_url"}
        parts = [f"{f.name}={'***' if f.name in hidden and getattr(self, f.name) else getattr(self, f.name)!r}"
                 for f in fields(self)]
        return f"Settings({', '.join(parts)})"

