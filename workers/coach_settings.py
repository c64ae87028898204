"""A coach's own settings, changed from the dashboard: how long things are kept, what of a
recording is kept, whether Zoom's copy is trashed, review before send, time zone, where
notes go, and whether clients see the mood line. One place checks every value, so the
dashboard and any later front end refuse the same things in the same words; each change is
audited with its old and new value (settings hold no client's words)."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo, available_timezones

from models import DELIVERY_MODES, MEDIA_POLICIES, NOTIFY_CHANNELS, Coach, audit
from models.db import session_scope
from workers.coaching import CoachError

RETENTION_YEARS = range(1, 101)
DROP_MEDIA_DAYS = range(1, 36501)


@dataclass(frozen=True)
class Choice:
    value: str
    label: str


MEDIA_POLICY_LABELS = (
    Choice("keep_video", "Keep the video (or audio) as recorded"),
    Choice("audio_only", "Keep the audio only"),
    Choice("drop_media_after_transcription", "Keep no recording once the transcript is made"),
)
DELIVERY_LABELS = (
    Choice("auto", "Send the summary to the client as soon as it is ready"),
    Choice("review", "Let me read and edit it first; I send it"),
)
NOTIFY_LABELS = (
    Choice("slack", "Slack, when my Slack is linked (otherwise email)"),
    Choice("email", "Email only"),
)
assert {c.value for c in MEDIA_POLICY_LABELS} == set(MEDIA_POLICIES)
assert {c.value for c in DELIVERY_LABELS} == set(DELIVERY_MODES)
assert {c.value for c in NOTIFY_LABELS} == set(NOTIFY_CHANNELS)


def time_zones() -> list[str]:
    return sorted(z for z in available_timezones() if "/" in z or z == "UTC")


def _int_in(raw: str, allowed: range, what: str) -> int:
    try:
        value = int((raw or "").strip())
    except ValueError:
        raise CoachError(f"{what}: a whole number, please.") from None
    if value not in allowed:
        raise CoachError(f"{what}: between {allowed.start} and {allowed.stop - 1}.")
    return value


def _one_of(raw: str, allowed, what: str) -> str:
    if raw not in allowed:
        raise CoachError(f"{what}: choose one of the options.")
    return raw


def parse(form) -> dict:
    """The settings a submitted form asks for, every value checked (CoachError if one is not)."""
    zone = (form.get("time_zone") or "").strip()
    try:
        ZoneInfo(zone)
    except Exception:  # noqa: BLE001 - any unknown or malformed name
        raise CoachError("Time zone: choose one from the list.") from None
    drop = (form.get("drop_media_after_days") or "").strip()
    return {
        "retention_years": _int_in(form.get("retention_years"), RETENTION_YEARS, "Keep for (years)"),
        "drop_media_after_days": _int_in(drop, DROP_MEDIA_DAYS, "Delete recordings after (days)") if drop else None,
        "media_policy": _one_of(form.get("media_policy"), MEDIA_POLICIES, "What to keep"),
        "trash_zoom_copies": form.get("trash_zoom_copies") == "on",
        "delivery_mode": _one_of(form.get("delivery_mode"), DELIVERY_MODES, "Sending summaries"),
        "time_zone": zone,
        "notify_by": _one_of(form.get("notify_by"), NOTIFY_CHANNELS, "Tell me by"),
        "show_mood_to_client": form.get("show_mood_to_client") == "on",
    }


def update(rt, coach_id: str, form, *, actor: str) -> list[str]:
    """Apply the form to the coach; returns the names of the settings that changed."""
    wanted = parse(form)
    with session_scope(rt.engine) as db:
        coach = db.get(Coach, coach_id)
        changed = {name: (getattr(coach, name), value) for name, value in wanted.items()
                   if getattr(coach, name) != value}
        for name, (_old, value) in changed.items():
            setattr(coach, name, value)
        if changed:
            audit.record(db, actor, "coach.settings_changed", f"coach:{coach_id}", coach_id=coach_id,
                         **{name: {"from": old, "to": new} for name, (old, new) in changed.items()})
    return sorted(changed)
