"""One settings object, read from the environment once, with the embedded defaults that
let holdspace run on a fresh machine with nothing configured."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ROOT = Path(__file__).resolve().parent

# The values TRANSCRIBE_ENGINE and SUMMARY_ENGINE accept; the engines choose among them.
TRANSCRIBE_ENGINES = ("auto", "platform", "local", "openai")
SUMMARY_ENGINES = ("auto", "openai", "offline")


def _private(path: Path, mode: int) -> None:
    """Narrow a path of ours to its owner (var/ may predate this rule, at 0755)."""
    try:
        if path.stat().st_mode & 0o777 & ~mode:
            path.chmod(mode)
    except OSError:
        pass  # not ours to change: the operator's choice stands


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


class SettingsError(ValueError):
    """A setting that cannot work; the message is one line naming the variable."""


def _env(name: str, default=None, **constraints):
    return Field(default, validation_alias=name, **constraints)


def _check_storage_url(value: str) -> str:
    # The vault owns what a storage URL may be; asked here so a bad one stops the start.
    from vault.backends import parse_storage_url
    from vault.errors import VaultError
    try:
        parse_storage_url(value)
    except VaultError:
        raise ValueError("must be s3://bucket/prefix or file:///absolute/path") from None
    return value


# Values never repeated in an error message.
_SECRET_VARIABLES = {"SECRET_KEY", "VAULT_MASTER_KEY", "ZOOM_WEBHOOK_SECRET", "ZOOM_CLIENT_SECRET",
                     "ZOOM_APP_CLIENT_SECRET", "GOOGLE_CLIENT_SECRET", "SLACK_SIGNING_SECRET",
                     "SLACK_BOT_TOKEN", "SLACK_CLIENT_SECRET",
                     "OPENAI_API_KEY", "SMTP_URL", "DATABASE_URL", "REDIS_URL"}


class Settings(BaseSettings):
    """Every setting, read from the environment once (pydantic-settings) and checked then, so
    a value that cannot work stops the app, the CLI or the worker at start with one line."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=True,
                                      env_ignore_empty=True, populate_by_name=True)

    var_dir: Path = _env("HOLDSPACE_VAR_DIR")
    secret_key: str = _env("SECRET_KEY")
    public_base_url: str = _env("PUBLIC_BASE_URL", "http://127.0.0.1:5000", pattern=r"^https?://[^\s/]+")
    database_url: str = _env("DATABASE_URL")
    redis_url: str | None = _env("REDIS_URL")            # None: the embedded Redis under var/
    storage_url: str = _env("STORAGE_URL")
    s3_endpoint_url: str | None = _env("S3_ENDPOINT_URL")
    vault_master_key: str | None = _env("VAULT_MASTER_KEY")  # None with no KMS: generated into var/
    kms_key_id: str | None = _env("KMS_KEY_ID")
    # base64 of 32 bytes keying the audit chain's HMAC; None: a key kept sealed in the vault.
    audit_key: str | None = _env("AUDIT_KEY")
    zoom_webhook_secret: str | None = _env("ZOOM_WEBHOOK_SECRET")
    zoom_account_id: str | None = _env("ZOOM_ACCOUNT_ID")
    zoom_client_id: str | None = _env("ZOOM_CLIENT_ID")
    zoom_client_secret: str | None = _env("ZOOM_CLIENT_SECRET")
    zoom_api_base_url: str = _env("ZOOM_API_BASE_URL", "https://api.zoom.us/v2")
    zoom_oauth_url: str = _env("ZOOM_OAUTH_URL", "https://zoom.us/oauth/token")
    # A comma-separated list, not JSON (NoDecode: the validator below splits it).
    zoom_download_hosts: Annotated[tuple[str, ...], NoDecode] = _env("ZOOM_DOWNLOAD_HOSTS", ("zoom.us", "*.zoom.us"))
    # The user-authorised Zoom app each coach connects to their own Zoom (unset: connect is off).
    zoom_app_client_id: str | None = _env("ZOOM_APP_CLIENT_ID")
    zoom_app_client_secret: str | None = _env("ZOOM_APP_CLIENT_SECRET")
    zoom_authorize_url: str = _env("ZOOM_AUTHORIZE_URL", "https://zoom.us/oauth/authorize")
    smtp_url: str | None = _env("SMTP_URL")              # None: a Maildir under var/outbox
    mail_from: str = _env("MAIL_FROM", "holdspace@localhost")
    link_ttl_seconds: int = _env("LINK_TTL_SECONDS", 604800, ge=60)
    # Without the download scope a player is sent the recording this many bytes at a time.
    media_window_bytes: int = _env("MEDIA_WINDOW_BYTES", 1024 * 1024, ge=64 * 1024)
    slack_signing_secret: str | None = _env("SLACK_SIGNING_SECRET")
    slack_bot_token: str | None = _env("SLACK_BOT_TOKEN")
    slack_api_base_url: str = _env("SLACK_API_BASE_URL", "https://slack.com/api/")
    # A Slack app installed in many workspaces (unset: one workspace through SLACK_BOT_TOKEN).
    slack_client_id: str | None = _env("SLACK_CLIENT_ID")
    slack_client_secret: str | None = _env("SLACK_CLIENT_SECRET")
    slack_authorize_url: str = _env("SLACK_AUTHORIZE_URL", "https://slack.com/oauth/v2/authorize")
    google_pubsub_audience: str | None = _env("GOOGLE_PUBSUB_AUDIENCE")
    google_pubsub_service_account: str | None = _env("GOOGLE_PUBSUB_SERVICE_ACCOUNT")
    google_certs_url: str | None = _env("GOOGLE_CERTS_URL")
    google_api_base_url: str | None = _env("GOOGLE_API_BASE_URL")
    google_client_id: str | None = _env("GOOGLE_CLIENT_ID")
    google_client_secret: str | None = _env("GOOGLE_CLIENT_SECRET")
    google_oauth_auth_url: str = _env("GOOGLE_OAUTH_AUTH_URL", "https://accounts.google.com/o/oauth2/auth")
    google_oauth_token_url: str = _env("GOOGLE_OAUTH_TOKEN_URL", "https://oauth2.googleapis.com/token")
    google_pubsub_topic: str | None = _env("GOOGLE_PUBSUB_TOPIC")
    google_service_account_file: str | None = _env("GOOGLE_SERVICE_ACCOUNT_FILE")
    google_subscription_ttl_seconds: int = _env("GOOGLE_SUBSCRIPTION_TTL_SECONDS", 604800, ge=60)
    transcribe_engine: str = _env("TRANSCRIBE_ENGINE", "auto")
    whisper_model: str | None = _env("WHISPER_MODEL")
    summary_engine: str = _env("SUMMARY_ENGINE", "auto")
    openai_api_key: str | None = _env("OPENAI_API_KEY")
    openai_base_url: str | None = _env("OPENAI_BASE_URL")
    openai_transcribe_model: str = _env("OPENAI_TRANSCRIBE_MODEL", "whisper-1")
    openai_summary_model: str = _env("OPENAI_SUMMARY_MODEL", "gpt-4o-mini")
    # Operational settings beyond the contract's list.
    zoom_signature_window_seconds: int = _env("ZOOM_SIGNATURE_WINDOW_SECONDS", 300, ge=1)
    max_webhook_bytes: int = 1 << 20
    reconcile_min_delay_seconds: int = _env("RECONCILE_MIN_DELAY_SECONDS", 900, ge=0)
    # Zoom needs about twice the meeting's length to process a recording.
    reconcile_duration_factor: float = _env("RECONCILE_DURATION_FACTOR", 2.0, ge=0)
    reconcile_max_attempts: int = 6
    sweep_stale_seconds: int = _env("SWEEP_STALE_SECONDS", 120, ge=0)
    # A session in a working state this long with no job of its own alive has stalled; its step
    # is queued again, at most this many times before it fails and the coach is told.
    session_stall_seconds: int = _env("SESSION_STALL_SECONDS", 900, ge=0)
    session_stall_tries: int = _env("SESSION_STALL_TRIES", 3, ge=1)
    download_attempts: int = _env("DOWNLOAD_ATTEMPTS", 4, ge=1, le=20)
    briefing_lead_minutes: int = _env("BRIEFING_LEAD_MINUTES", 60, ge=0)
    # After a Meet conference ends, how long to wait for its recording before telling the coach.
    meet_artifact_wait_seconds: int = _env("MEET_ARTIFACT_WAIT_SECONDS", 3600, ge=0)
    # How long transcription waits for Zoom's own transcript before making one itself.
    platform_transcript_wait_seconds: int = _env("PLATFORM_TRANSCRIPT_WAIT_SECONDS", 7200, ge=0)
    download_backoff_seconds: float = _env("DOWNLOAD_BACKOFF_SECONDS", 2.0, ge=0)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        return (init_settings, env_settings)  # the environment only: no .env or secrets files

    @model_validator(mode="before")
    @classmethod
    def _embedded_defaults(cls, data):
        """What `make demo` runs on with nothing configured, all under HOLDSPACE_VAR_DIR."""
        data = {k: v for k, v in dict(data).items() if v not in (None, "")}
        var_dir = Path(data.get("HOLDSPACE_VAR_DIR") or data.get("var_dir") or ROOT / "var").resolve()
        var_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        _private(var_dir, 0o700)
        data["HOLDSPACE_VAR_DIR"] = var_dir
        data.pop("var_dir", None)
        if not (data.get("SECRET_KEY") or data.get("secret_key")):
            data["SECRET_KEY"] = _secret_file(var_dir / "secret_key", lambda: secrets.token_urlsafe(48))
        if not (data.get("DATABASE_URL") or data.get("database_url")):
            data["DATABASE_URL"] = f"sqlite:///{var_dir / 'holdspace.db'}"
        if not (data.get("STORAGE_URL") or data.get("storage_url")):
            data["STORAGE_URL"] = f"file://{var_dir / 'vault'}"
        return data

    @field_validator("zoom_download_hosts", mode="before")
    @classmethod
    def _host_list(cls, value):
        if isinstance(value, str):
            return tuple(h.strip() for h in value.split(",") if h.strip())
        return value

    @field_validator("public_base_url", "zoom_api_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("slack_api_base_url")
    @classmethod
    def _one_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/") + "/"

    @field_validator("transcribe_engine", "summary_engine")
    @classmethod
    def _known_engine(cls, value: str, info) -> str:
        SETTINGS = TRANSCRIBE_ENGINES if info.field_name == "transcribe_engine" else SUMMARY_ENGINES
        choice = value.strip().lower()
        if choice not in SETTINGS:
            raise ValueError(f"must be one of {', '.join(SETTINGS)}")
        return choice

    @field_validator("storage_url")
    @classmethod
    def _storage(cls, value: str) -> str:
        return _check_storage_url(value)

    @field_validator("vault_master_key", "audit_key")
    @classmethod
    def _master_key(cls, value: str | None) -> str | None:
        if value is not None:
            from vault.keys import check_master_key
            check_master_key(value)
        return value

    @classmethod
    def from_env(cls, env: dict | None = None, **overrides) -> "Settings":
        """The settings in `env` (default: the process environment); SettingsError, one line
        naming the variable, for a value that cannot work."""
        try:
            settings = cls() if env is None else cls.model_validate(dict(env))
        except ValidationError as exc:
            raise SettingsError(_one_line(exc)) from None
        return settings.model_copy(update=overrides) if overrides else settings

    def with_overrides(self, **overrides) -> "Settings":
        return self.model_copy(update=overrides)

    @property
    def google_oauth_configured(self) -> bool:
        return bool(self.google_client_id and self.google_client_secret)

    @property
    def zoom_connect_configured(self) -> bool:
        """Whether coaches may connect their own Zoom (the user-authorised app is set up)."""
        return bool(self.zoom_app_client_id and self.zoom_app_client_secret)

    @property
    def slack_oauth_configured(self) -> bool:
        """Whether holdspace may be installed in many Slack workspaces (OAuth v2)."""
        return bool(self.slack_client_id and self.slack_client_secret)

    @property
    def openai_configured(self) -> bool:
        """A key or a base URL: a self-hosted OpenAI-compatible server may need no key."""
        return bool(self.openai_api_key or self.openai_base_url)

    def __str__(self) -> str:
        return repr(self)  # pydantic's own str would print the secrets

    def __repr__(self) -> str:
        # Secrets stay out of reprs, tracebacks and logs.
        hidden = {"secret_key", "vault_master_key", "audit_key", "zoom_webhook_secret", "zoom_client_secret",
                  "zoom_app_client_secret", "google_client_secret", "slack_client_secret",
                  "slack_signing_secret", "slack_bot_token", "openai_api_key", "smtp_url",
                  "database_url", "redis_url"}
        parts = [f"{name}={'***' if name in hidden and getattr(self, name) else getattr(self, name)!r}"
                 for name in type(self).model_fields]
        return f"Settings({', '.join(parts)})"



def _one_line(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        name = str(error["loc"][0]) if error["loc"] else "settings"
        message = error["msg"].removeprefix("Value error, ")
        shown = "" if name in _SECRET_VARIABLES else f" (got {str(error.get('input'))[:60]!r})"
        problems.append(f"{name}: {message}{shown}")
    return "bad settings: " + "; ".join(problems)
