"""Deleting a client's data, provably: on withdrawal, on request for one session, and when the
coach's retention period ends.

One job per request, safe to re-run until it has finished: the first run takes an inventory
of what exists into a draft `DeletionReceipt`; every step after it is idempotent; the receipt
is signed (Ed25519, vault/receipts.py) only when everything listed is gone. What stays: the consent history,
the audit trail, the receipt, and the coach's own private notes (marked as belonging to a
withdrawn client)."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete, update
from sqlmodel import Session, select

from models import (Asset, Client, ClientMemory, CoachInsight, CoachingSession, DeletionReceipt,
                    InboxEvent, Link, MeetingMapping, OutboundMessage, PrivateNote, Summary,
                    Transcript, TranscriptPassage, audit, utcnow)
from models import queries as q
from models import search
from models.db import session_scope
from workers import anchors, fence, links, notify, receipts, retries
from workers.platforms import zoom_tokens
from workers.runtime import current

log = logging.getLogger(__name__)

MEDIA_KINDS = ("video", "audio", "participant_audio")


def enqueue_erasure(rt, receipt_id: str) -> None:
    rt.queue("default").enqueue(run_erasure, receipt_id, job_id=f"erasure-{receipt_id}",
                                retry=retries.ERASURE.rq())


# --- starting a deletion (in the caller's transaction) ------------------------------------------

def start_client_erasure(db: Session, coach_id: str, client_id: str, *, reason: str, actor: str,
                         ip: str | None = None) -> DeletionReceipt:
    """Withdraw consent and revoke links at once (so nothing more is recorded or shown), and
    record the deletion to be done. Returns the draft receipt to hand to `run_erasure`."""
    from workers import consent
    # The fence goes up first: from this transaction's commit no writer commits for the client.
    client = fence.mark_client(db, coach_id, client_id)
    existing = db.exec(select(DeletionReceipt).where(DeletionReceipt.coach_id == coach_id,
                                                     DeletionReceipt.client_id == client_id,
                                                     DeletionReceipt.scope == "client",
                                                     DeletionReceipt.completed_at.is_(None))).first()
    if existing:
        return existing
    if reason == "withdrawal":
        consent.withdraw(db, client, actor=actor, ip=ip)
    links.revoke_for_client(db, coach_id, client_id, actor=actor)
    receipt = DeletionReceipt(coach_id=coach_id, client_id=client_id, scope="client",
                              body={"status": "in_progress", "reason": reason, "requested_by": actor,
                                    "requested_at": utcnow().isoformat()})
    db.add(receipt)
    db.flush()
    audit.record(db, actor, "erasure.requested", f"client:{client_id}", coach_id=coach_id, ip=ip,
                 receipt=receipt.id, reason=reason)
    return receipt


def start_session_erasure(db: Session, coach_id: str, session_id: str, *, reason: str, actor: str,
                          kinds: tuple[str, ...] | None = None, ip: str | None = None) -> DeletionReceipt:
    """Delete one session (or only its media, with `kinds`)."""
    session = q.session_of(db, coach_id, session_id)
    if kinds is None:
        fence.mark_session(db, coach_id, session.client_id, session_id)
        links.revoke_for_client(db, coach_id, session.client_id, session_id=session_id, actor=actor)
    receipt = DeletionReceipt(coach_id=coach_id, client_id=session.client_id,
                              scope="session" if kinds is None else "media",
                              body={"status": "in_progress", "reason": reason, "requested_by": actor,
                                    "requested_at": utcnow().isoformat(), "session_id": session_id,
                                    "kinds": list(kinds) if kinds else None})
    db.add(receipt)
    db.flush()
    audit.record(db, actor, "erasure.requested", f"session:{session_id}", coach_id=coach_id, ip=ip,
                 receipt=receipt.id, reason=reason)
    return receipt


# --- the job ------------------------------------------------------------------------------------

def run_erasure(receipt_id: str) -> str:
    rt = current()
    with session_scope(rt.engine) as db:
        receipt = db.get(DeletionReceipt, receipt_id)
        if receipt is None or receipt.completed_at:
            return "done"
        if "inventory" not in receipt.body:
            receipt.body = {**receipt.body, "inventory": _inventory(db, rt, receipt)}
            if receipt.scope == "client":
                _tombstone(db, rt, receipt)
        body = dict(receipt.body)
    inv = body["inventory"]

    # Objects first: the rows that describe them are the inventory's source until then.
    deleted = {}
    for obj in inv["objects"]:
        record = rt.vault.delete(obj["key"])
        deleted[obj["key"]] = record.versions_deleted
    shred = rt.vault.shred_client_key(inv["client_id"]) if inv["scope"] == "client" else None
    # A writer that was streaming when the fence went up deletes its own object once it finds
    # the fence; one that finished in between is caught here (one killed for good, by the sweep).
    discarded = _discard_in_flight(rt, inv) if shred is not None else 0
    trashed = _trash_zoom_copies(rt, receipt_id, inv)
    # The embedded Maildir is a transport: mail about the client leaves it (it opened with the
    # key just shredded, and only with that).
    mails = rt.mailer.forget_about(inv["client_id"]) if shred is not None else 0

    with session_scope(rt.engine) as db:
        receipt = db.get(DeletionReceipt, receipt_id)
        counts = _delete_rows(db, receipt, inv)
        if shred is not None:
            db.execute(update(Client).where(Client.coach_id == receipt.coach_id,
                                            Client.id == receipt.client_id)
                       .values(data_key_id=None))  # name and email went with _tombstone
        final = {
            **{k: v for k, v in receipt.body.items() if k != "inventory"},
            "status": "completed", "completed_at": utcnow().isoformat(),
            "client_id": receipt.client_id, "coach_id": receipt.coach_id, "scope": receipt.scope,
            "objects": [{**o, "versions_deleted": deleted.get(o["key"], 0)} for o in inv["objects"]],
            "counts": {**inv["counts"], **counts},
            "key_shredded": ({"key_id": shred.key_id, "versions_deleted": shred.versions_deleted}
                             if shred else None),
            "zoom_trashed": trashed,
            "in_flight_discarded": discarded,
            "maildir_messages_deleted": mails,
        }
        signer = rt.vault.receipt_signer()
        document = signer.sign({**final, "signing_key": signer.key_id})
        receipt.body, receipt.completed_at = document["receipt"], utcnow()
        receipt.signature = document["signature"]
        audit.record(db, "system", "erasure.completed", f"receipt:{receipt.id}",
                     coach_id=receipt.coach_id, objects=len(final["objects"]), scope=receipt.scope)
        _send_receipt(db, rt, receipt)
    # The chain's head, erasure included, goes where rewriting the database cannot reach it.
    try:
        anchors.anchor_head(rt, f"erasure {receipt_id}")
    except Exception as exc:  # noqa: BLE001 - the daily anchor covers it; the erasure is done
        log.warning("audit anchor after erasure %s not written (%s)", receipt_id, type(exc).__name__)
    return "completed"


def _tombstone(db: Session, rt, receipt: DeletionReceipt) -> None:
    """Before the key goes: keep where the receipt must go, sealed under the master key until
    it is queued, and empty the client's row down to ids, dates and the email's HMAC."""
    import json
    client = q.client_of(db, receipt.coach_id, receipt.client_id)
    if client is None or client.email is None:
        return
    receipt.deliver_to_sealed = rt.vault.seal(
        json.dumps({"name": client.name, "email": client.email}).encode(), _deliver_to(receipt))
    client.name = client.email = None


def _deliver_to(receipt: DeletionReceipt) -> str:
    return f"receipt-recipient:{receipt.id}"


def _inventory(db: Session, rt, receipt: DeletionReceipt) -> dict:
    """What exists now and will be deleted: object keys with sizes and plaintext hashes, and
    row counts. Taken once, so a re-run reports what existed before the first run."""
    coach_id, client_id, body = receipt.coach_id, receipt.client_id, receipt.body
    session_ids = ([body["session_id"]] if body.get("session_id")
                   else [s.id for s in q.sessions_of(db, coach_id, client_id)])
    assets_q = select(Asset).where(Asset.coach_id == coach_id, Asset.client_id == client_id)
    if body.get("session_id"):
        assets_q = assets_q.where(Asset.session_id == body["session_id"])
    if body.get("kinds"):
        assets_q = assets_q.where(Asset.kind.in_(body["kinds"]))
    assets = list(db.exec(assets_q))
    objects = {a.object_key: {"key": a.object_key, "size": a.size, "sha256": a.sha256, "kind": a.kind}
               for a in assets}
    if receipt.scope == "client":
        # Anything in the vault under this client, described by a row or not.
        for key in rt.vault.list_client_objects(client_id):
            if key not in objects:
                info = rt.vault.stat(key)
                objects[key] = {"key": key, "size": info.size, "sha256": None, "kind": "unlisted"}
    in_sessions = lambda model: select(model).where(model.coach_id == coach_id,  # noqa: E731
                                                    model.session_id.in_(session_ids))
    counts = {"assets": len(assets)}
    if receipt.scope != "media":
        counts.update({
            "sessions": len(session_ids),
            "transcripts": len(db.exec(in_sessions(Transcript)).all()),
            "search_passages": len(db.exec(in_sessions(TranscriptPassage)).all()),
            "summaries": len(db.exec(in_sessions(Summary)).all()),
            "coach_ai_insights": len(db.exec(in_sessions(CoachInsight)).all()),
        })
    if receipt.scope == "client":
        counts["memories"] = len(db.exec(select(ClientMemory).where(
            ClientMemory.coach_id == coach_id, ClientMemory.client_id == client_id)).all())
    zoom_uuids = [s.platform_uuid for s in q.sessions_of(db, coach_id, client_id)
                  if s.id in session_ids and s.platform == "zoom"] if receipt.scope != "media" else []
    return {"scope": receipt.scope, "client_id": client_id, "session_ids": session_ids, "objects": sorted(objects.values(), key=lambda o: o["key"]),
            "counts": counts, "zoom_uuids": zoom_uuids}


def _delete_rows(db: Session, receipt: DeletionReceipt, inv: dict) -> dict:
    coach_id, client_id, sids = receipt.coach_id, receipt.client_id, inv["session_ids"]
    keys = [o["key"] for o in inv["objects"]]
    db.execute(delete(Asset).where(Asset.coach_id == coach_id, Asset.object_key.in_(keys)))
    if receipt.scope == "media":
        return {}
    if receipt.scope == "client":
        search.forget_client(db, coach_id, client_id)
    else:
        search.forget_passages(db, coach_id, client_id, db.exec(select(TranscriptPassage).where(
            TranscriptPassage.coach_id == coach_id, TranscriptPassage.session_id.in_(sids))).all())
    for model in (TranscriptPassage, Transcript, Summary, CoachInsight):
        db.execute(delete(model).where(model.coach_id == coach_id, model.session_id.in_(sids)))
    # Coach-written notes stay with the coach, detached from the deleted sessions.
    db.execute(update(PrivateNote).where(PrivateNote.coach_id == coach_id, PrivateNote.session_id.in_(sids))
               .values(session_id=None))
    db.execute(update(Link).where(Link.coach_id == coach_id, Link.session_id.in_(sids))
               .values(session_id=None, revoked_at=utcnow()))
    # Delivered payloads name the meeting and its files; what was received stays counted, not kept.
    db.execute(update(InboxEvent).where(InboxEvent.coach_id == coach_id, InboxEvent.session_id.in_(sids))
               .values(payload=None, session_id=None, status="refused", error="the session was deleted"))
    if receipt.scope == "client":  # and whatever else was matched to them
        db.execute(update(InboxEvent).where(InboxEvent.coach_id == coach_id, InboxEvent.client_id == client_id)
                   .values(payload=None))
    db.execute(delete(CoachingSession).where(CoachingSession.coach_id == coach_id,
                                             CoachingSession.id.in_(sids)))
    if receipt.scope == "session":
        _forget_in_memory(db, coach_id, client_id, sids)
    if receipt.scope == "client":
        db.execute(delete(ClientMemory).where(ClientMemory.coach_id == coach_id,
                                              ClientMemory.client_id == client_id))
        db.execute(delete(MeetingMapping).where(MeetingMapping.coach_id == coach_id,
                                                MeetingMapping.client_id == client_id))
        db.execute(update(PrivateNote).where(PrivateNote.coach_id == coach_id,
                                             PrivateNote.client_id == client_id)
                   .values(client_withdrawn=True))
        # Every message about the client (sealed under the key just shredded, so unreadable
        # anyway); the receipt goes out after this.
        db.execute(delete(OutboundMessage).where(OutboundMessage.client_id == client_id))
    return {}


def _forget_in_memory(db: Session, coach_id: str, client_id: str | None, session_ids) -> None:
    """A deleted session leaves the client's memory (and so the journey and the briefing)."""
    from workers.summaries.memory import ClientMemory as Memory, forget_session
    row = db.exec(select(ClientMemory).where(ClientMemory.coach_id == coach_id,
                                             ClientMemory.client_id == client_id)).first()
    if row is None or not row.data:
        return
    memory = Memory.model_validate(row.data)
    for session_id in session_ids:
        memory = forget_session(memory, session_id)
    row.data = memory.model_dump(mode="json")
    row.sessions_seen = [sid for sid in row.sessions_seen if sid not in session_ids]
    row.updated_at = utcnow()


def _discard_in_flight(rt, inv: dict) -> int:
    """Delete what a writer stored for the client after the inventory (never committed, so not
    on the receipt, and sealed under the key just shredded)."""
    listed = {o["key"] for o in inv["objects"]}
    late = [key for key in rt.vault.list_client_objects(inv["client_id"]) if key not in listed]
    for key in late:
        rt.vault.delete(key)
    return len(late)


def sweep_leftovers(rt, now=None, within: timedelta = timedelta(days=2)) -> int:
    """Objects of recently erased clients that a writer killed mid-write left behind (each
    unreadable: its key is shredded). A writer outlives an erasure by one download at most, so
    clients erased within `within` are enough. Run with the erasure sweep; returns how many."""
    since = (now or utcnow()) - within
    with session_scope(rt.engine) as db:
        erased = list(db.exec(select(DeletionReceipt.client_id).where(
            DeletionReceipt.scope == "client", DeletionReceipt.completed_at >= since)))
    removed = 0
    for client_id in {c for c in erased if c}:
        for key in rt.vault.list_client_objects(client_id):
            rt.vault.delete(key)
            removed += 1
        if rt.vault.shred_client_key(client_id).versions_deleted:
            log.warning("a key of erased client %s had been re-created; shredded again", client_id)
    if removed:
        log.warning("deleted %d objects of erased clients left by interrupted writers", removed)
    return removed


def _trash_zoom_copies(rt, receipt_id: str, inv: dict) -> list[str]:
    with session_scope(rt.engine) as db:
        receipt = db.get(DeletionReceipt, receipt_id)
        coach = q.coach_by_id(db, receipt.coach_id)
        wanted = coach.trash_zoom_copies
    # With the coach's own Zoom connection, or the practice's S2S app for a coach without one.
    zoom = zoom_tokens.zoom_for(rt, receipt.coach_id) if wanted else None
    trashed = []
    if zoom is not None and zoom.configured:
        for uuid in inv["zoom_uuids"]:
            zoom.trash_recordings(uuid)
            trashed.append(uuid)
    return trashed


def headline(body: dict) -> str:
    """The receipt in one plain sentence: "2 sessions: recordings, transcripts and summaries
    deleted; your key destroyed." """
    counts = body.get("counts", {})
    kinds = [name for name, present in (
        ("recordings", any(o.get("kind") in MEDIA_KINDS + ("unlisted",) for o in body.get("objects", []))),
        ("transcripts", counts.get("transcripts")), ("summaries", counts.get("summaries")),
        ("your coaching memory", counts.get("memories"))) if present]
    sessions_n = counts.get("sessions")
    lead = f"{sessions_n} session{'s' if sessions_n != 1 else ''}: " if sessions_n is not None else ""
    tail = "; your key destroyed." if body.get("key_shredded") else "."
    if not kinds:
        return f"{lead}nothing was stored{tail}"
    what = (", ".join(kinds[:-1]) + " and " + kinds[-1]) if len(kinds) > 1 else kinds[0]
    return f"{lead}{what} deleted{tail}"


def _send_receipt(db: Session, rt, receipt: DeletionReceipt) -> None:
    import json
    from workers.delivery import render
    coach = q.coach_by_id(db, receipt.coach_id)
    if receipt.scope == "client":
        # The client's own key is gone: who they were comes from the sealed delivery address,
        # and what is sent is forgotten once it has gone out.
        if receipt.deliver_to_sealed is None:
            return
        person = json.loads(rt.vault.unseal(receipt.deliver_to_sealed, _deliver_to(receipt)))
        about, forget = None, True
        receipt.deliver_to_sealed = None
    else:
        client = q.client_of(db, receipt.coach_id, receipt.client_id)
        person = {"name": client.name, "email": client.email}
        about, forget = client.id, False
    body = receipt.body
    what = {"client": "Everything holdspace kept about your coaching sessions has been deleted, as you asked.",
            "session": "The session you asked about has been deleted.",
            "media": "The recordings of a session were deleted under your coach's retention policy; "
                     "its transcript and summary remain."}[receipt.scope]
    if body.get("reason") == "retention" and receipt.scope == "client":
        what = "Your coach's retention period has ended, so everything holdspace kept about your sessions was deleted."
    counts = [(k.replace("_", " "), v) for k, v in sorted(body["counts"].items())]
    context = dict(client_name=person["name"], coach_name=coach.name, coach_email=coach.email, what=what,
                   headline=headline(body), key_url=f"{rt.settings.public_base_url}/.well-known/holdspace-receipt-key",
                   attachment=receipts.attachment_name(receipt),
                   completed=body["completed_at"][:19].replace("T", " ") + " UTC", counts=counts,
                   objects=body["objects"], key_shredded=bool(body.get("key_shredded")),
                   receipt_id=receipt.id, signature=receipt.signature, consent_link=None)
    text = render("deletion_receipt.txt", **context)
    if body.get("reason") in ("withdrawal", "client_request"):
        notify.queue_message(db, rt, key=f"receipt-client:{receipt.id}", channel="email",
                             recipient=person["email"], coach_id=coach.id, client_id=about,
                             subject="Your holdspace deletion receipt", body=text,
                             html=render("deletion_receipt.html", **context),
                             attach_receipt=receipt.id, forget_after_send=forget)
    notify.tell_coach(db, rt, coach, key=f"receipt-coach:{receipt.id}",
                      subject=f"Deletion receipt for {person['name']}",
                      body=f"Reason: {body.get('reason')}.\n\n" + text, client_id=about,
                      forget_after_send=forget)


# --- retention ----------------------------------------------------------------------------------

def apply_retention(now=None) -> dict:
    """Daily: delete clients whose last session is older than the coach's retention period,
    drop media past the coach's media horizon, and purge long-expired link rows."""
    rt = current()
    now = now or utcnow()
    resume_unfinished(rt, older_than_seconds=0, enqueue=False)
    started = []
    with session_scope(rt.engine) as db:
        for coach in q.all_coaches(db):
            horizon = now - timedelta(days=round(365.25 * coach.retention_years))
            for client in q.clients_of(db, coach.id):
                if client.last_session_at and client.last_session_at < horizon and not _erased(db, client):
                    started.append(start_client_erasure(db, coach.id, client.id, reason="retention",
                                                        actor="retention").id)
            if coach.drop_media_after_days:
                cutoff = now - timedelta(days=coach.drop_media_after_days)
                for session in q.sessions_of(db, coach.id):
                    if session.started_at and session.started_at < cutoff and q.media_assets_of_session(
                            db, coach.id, session.id, MEDIA_KINDS):
                        started.append(start_session_erasure(db, coach.id, session.id, reason="retention",
                                                             actor="retention", kinds=MEDIA_KINDS).id)
        purged = links.purge_expired(db, timedelta(days=30), now=now)
    for receipt_id in started:
        run_erasure(receipt_id)
    return {"erasures": len(started), "links_purged": purged}


def resume_unfinished(rt, older_than_seconds: float, enqueue: bool = True, now=None) -> list[str]:
    """Finish deletions whose job was lost (Redis emptied, worker gone for good)."""
    cutoff = (now or utcnow()) - timedelta(seconds=older_than_seconds)
    with session_scope(rt.engine) as db:
        ids = list(db.exec(select(DeletionReceipt.id).where(DeletionReceipt.completed_at.is_(None),
                                                            DeletionReceipt.created_at <= cutoff)))
    try:
        sweep_leftovers(rt, now=now)
    except Exception as exc:  # noqa: BLE001 - storage away: the next sweep tries again
        log.warning("leftover sweep failed (%s)", type(exc).__name__)
    resumed = []
    for receipt_id in ids:
        if enqueue:
            try:
                if rt.job_alive(f"erasure-{receipt_id}"):
                    continue
                enqueue_erasure(rt, receipt_id)
            except Exception as exc:  # noqa: BLE001 - Redis down: the next sweep tries again
                log.warning("erasure %s not re-queued (%s)", receipt_id, type(exc).__name__)
                continue
        else:
            run_erasure(receipt_id)
        resumed.append(receipt_id)
    return resumed


def _erased(db: Session, client) -> bool:
    return db.exec(select(DeletionReceipt.id).where(DeletionReceipt.coach_id == client.coach_id,
                                                    DeletionReceipt.client_id == client.id,
                                                    DeletionReceipt.scope == "client")).first() is not None
