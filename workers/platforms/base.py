"""What a platform module hands the registry: its event table and its scheduled jobs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

# A handler takes the runtime and the inbox event, and answers (outcome, session id): the
# outcome becomes the inbox row's status (done, ignored, unmatched, refused, failed).
Handler = Callable[..., tuple[str, "str | None"]]


@dataclass(frozen=True)
class Schedule:
    """A job the RQ scheduler runs for a platform: every `interval` seconds, or on `cron`."""
    func: Callable
    name: str
    interval: int | None = None
    cron: str | None = None


@dataclass(frozen=True)
class Platform:
    name: str                        # the inbox's `platform` column
    handlers: Mapping[str, Handler]  # event type → handler
    schedules: tuple[Schedule, ...] = field(default=())

    def handles(self, event: str) -> bool:
        return event in self.handlers
