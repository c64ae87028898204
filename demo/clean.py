"""Starting the demo clean: what an earlier demo run left in the store, and removing exactly that.

The demo's data is everything that belongs to its coach: rows scoped to that coach, the vault
objects and keys of its clients, and the Maildir messages addressed to its made-up domain. A
store that also holds anything else is left alone, and the demo says so instead of running:
the audit trail is one hash chain, so demo events could not be taken out of someone else's
trail without breaking it."""

from __future__ import annotations

import dataclasses
from email.utils import getaddresses

from sqlalchemy import func, or_, select, true
from sqlmodel import SQLModel

from models import queries as q
from models.db import session_scope
from workers.anchors import FOLDER

DEMO_DOMAIN = "demo.holdspace.test"


@dataclasses.dataclass
class Survey:
    coach_id: str | None  # the demo coach of an earlier run, if any
    foreign: dict[str, int]  # table -> rows that are not the demo's
    demo_rows: dict[str, int]  # table -> rows an earlier demo run left

    @property
    def only_demo(self) -> bool:
        return not self.foreign


def _tables():
    # Children before parents, so foreign keys hold while rows go.
    import models  # noqa: F401 - every table registered on the metadata
    return list(reversed(SQLModel.metadata.sorted_tables))


def _demo_row(table, coach_email: str, coach_id: str | None):
    if table.name == "coach":
        return table.c.email == coach_email
    if "coach_id" in table.c:
        return table.c.coach_id == coach_id if coach_id else None
    return None  # a table not scoped to a coach holds nothing of the demo's


def survey(rt, coach_email: str) -> Survey:
    foreign, demo_rows = {}, {}
    with session_scope(rt.engine) as db:
        coach = q.coach_by_email(db, coach_email)
        coach_id = coach.id if coach else None
        for table in _tables():
            mine = _demo_row(table, coach_email, coach_id)
            others = _count(db, table, true() if mine is None else _not_demo(table, mine))
            if others:
                foreign[table.name] = others
            ours = _count(db, table, mine) if mine is not None else 0
            if ours:
                demo_rows[table.name] = ours
    return Survey(coach_id, foreign, demo_rows)


def _count(db, table, where) -> int:
    return db.execute(select(func.count()).select_from(table).where(where)).scalar_one()


def _not_demo(table, mine):
    # A row without a coach (an unmatched webhook, say) is not the demo's either.
    if "coach_id" in table.c and table.name != "coach":
        return or_(table.c.coach_id.is_(None), ~mine)
    return ~mine


def remove_earlier_run(rt, coach_email: str, coach_id: str) -> dict[str, int]:
    """Delete what the demo coach left: vault objects and client keys first (the rows name
    them), then the rows, then the demo's Maildir messages and queued jobs. Returns counts."""
    removed = {"vault objects": 0, "emails": 0}
    with session_scope(rt.engine) as db:
        client_ids = [c.id for c in q.clients_of(db, coach_id)]
    for client_id in client_ids:
        if not rt.settings.smtp_url:
            removed["emails"] += rt.mailer.forget_about(client_id)
        for key in rt.vault.list_client_objects(client_id):
            rt.vault.delete(key)
            removed["vault objects"] += 1
        rt.vault.shred_client_key(client_id)
    rt.vault.shred_client_key(f"coach.{coach_id}")
    # The audit trail goes with the run (the store held nothing else), so do the anchors of
    # its head: a new trail starting at event 1 is no truncation of the old one. The demo's
    # store is a local directory, where a write-once record is a read-only file.
    backend = rt.vault.backend
    for key in backend.list(f"notes/{FOLDER}"):
        backend.delete_all_versions(key)
    with session_scope(rt.engine) as db:
        for table in _tables():
            mine = _demo_row(table, coach_email, coach_id)
            if mine is not None:
                db.execute(table.delete().where(mine))
    if not rt.settings.smtp_url:
        removed["emails"] += rt.mailer.forget_where(_to_demo_domain)
    if not rt.settings.redis_url:
        # The embedded Redis serves this store alone: jobs left queued by an interrupted run
        # name rows that are gone now.
        for queue in rt.queues:
            queue.empty()
            registry = queue.scheduled_job_registry
            for job_id in registry.get_job_ids():
                registry.remove(job_id, delete_job=True)
    return removed


def _to_demo_domain(msg) -> bool:
    recipients = [addr for _, addr in getaddresses(msg.get_all("To", []))]
    return bool(recipients) and all(addr.lower().endswith("@" + DEMO_DOMAIN) for addr in recipients)
