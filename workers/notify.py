"""Telling people things, exactly once: each message is a row keyed by what it is about, and a
job delivers it (a coach's Slack DM, through the bot of their own workspace, when there is one;
else email)."""

from __future__ import annotations

import logging
from datetime import timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rq import get_current_job
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from integrations.slack import TokenDead
from models import Coach, DeletionReceipt, OutboundMessage, as_utc, utcnow
from models.db import session_scope
from workers import links, retries, slack_installs
from workers.runtime import current

log = logging.getLogger(__name__)


def local_time(moment, zone: str | None, form: str = "%-d %b %Y, %H:%M", *, named: bool = True) -> str:
    """A moment (naive means UTC) as a coach reads it: in their time zone, the zone named
    (unless `named` is false: a bare day needs no zone). A zone this machine does not know
    gives UTC, named as such."""
    aware = as_utc(moment)
    try:
        local = aware.astimezone(ZoneInfo(zone or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        local = aware.astimezone(timezone.utc)
    return f"{local.strftime(form)} {local.tzname()}" if named else local.strftime(form)


def when(session, coach) -> str:
    """A session's start as its coach reads it in messages."""
    return local_time(session.started_at, coach.time_zone) if session.started_at else "date unknown"


def message_exists(db: Session, key: str) -> bool:
    return db.exec(select(OutboundMessage.id).where(OutboundMessage.idempotency_key == key)).first() is not None


def queue_message(db: Session, rt, *, key: str, channel: str, recipient: str, subject: str,
                  body: str, html: str | None = None, coach_id: str | None = None,
                  client_id: str | None = None, attach_receipt: str | None = None,
                  forget_after_send: bool = False) -> OutboundMessage | None:
    """Add a message in the caller's transaction; None when one with this key already exists.

    A message about a client (`client_id`) is sealed under that client's key and deleted with
    the client; `forget_after_send` drops its address and words once it has gone out (what is
    sent about a client already erased). It is handed to a worker when that transaction
    commits, and never if it rolls back."""
    if message_exists(db, key):
        return None
    msg = OutboundMessage(idempotency_key=key, channel=channel, recipient=recipient,
                          subject=subject, body=body, html=html, coach_id=coach_id,
                          client_id=client_id, attachment_receipt_id=attach_receipt,
                          forget_after_send=forget_after_send)
    try:
        with db.begin_nested():
            db.add(msg)
    except IntegrityError:
        return None
    message_id = msg.id
    event.listen(db, "after_commit", lambda _session: dispatch(rt, [message_id]), once=True)
    return msg


def tell_coach(db: Session, rt, coach: Coach, *, key: str, subject: str, body: str,
               client_id: str | None = None, forget_after_send: bool = False) -> OutboundMessage | None:
    """Queue a note to the coach: their Slack DM when a bot can reach them (and they have not
    chosen email in their settings), else email.
    A note that names a client passes `client_id`, so it is sealed and deleted with them."""
    about = {"coach_id": coach.id, "client_id": client_id, "forget_after_send": forget_after_send}
    if coach.notify_by != "email" and slack_installs.reachable(db, rt, coach):
        return queue_message(db, rt, key=key, channel="slack", recipient=coach.slack_user_id,
                             subject=subject, body=f"*{subject}*\n{body}", **about)
    return queue_message(db, rt, key=key, channel="email", recipient=coach.email,
                         subject=f"holdspace: {subject}", body=body, **about)


def session_page(rt, session_id: str) -> str:
    """The dashboard page of a session, for a note that asks the coach to do something there."""
    return f"{rt.settings.public_base_url}/coach/sessions/{session_id}"


def dispatch(rt, message_ids: list[str]) -> None:
    """Hand messages to a worker (queue_message does this on commit; the sweeper for any
    whose job was lost)."""
    for mid in message_ids:
        try:
            if rt.job_alive(f"message-{mid}"):
                continue
            # A message is a moment's work: it goes ahead of any long transcription.
            rt.queue("default").enqueue(deliver, mid, job_id=f"message-{mid}", at_front=True,
                                        retry=retries.MESSAGE.rq())
        except Exception as exc:  # noqa: BLE001 - the sweeper sends what stays pending
            log.warning("message %s not queued (%s); the sweeper will send it", mid, type(exc).__name__)


def deliver(message_id: str) -> str:
    """Send one queued message unless it already went out (job retries are harmless)."""
    rt = current()
    with session_scope(rt.engine) as db:
        msg = db.get(OutboundMessage, message_id)
        if msg is None or msg.status == "sent":
            return "already sent"
        msg.attempts += 1
        channel, recipient, subject, about = msg.channel, msg.recipient, msg.subject, msg.client_id
        # Links become live URLs only now, on their way out (workers/links.py).
        body, html = (links.render_urls(text, rt.settings.secret_key, rt.settings.public_base_url)
                      for text in (msg.body, msg.html))
        attachments = _receipt_attachment(db, msg.attachment_receipt_id)
        coach = db.get(Coach, msg.coach_id) if msg.coach_id else None
        bot = None
        if channel == "slack":
            bot = slack_installs.bot_for(db, rt, coach) if coach else (rt.slack, None)
            if bot is None:
                # The coach's workspace no longer has holdspace installed: email instead.
                channel, recipient, subject, body = _as_email(coach, subject, body)
            elif coach is not None:
                recipient = coach.slack_user_id
    try:
        if channel == "slack" and not _direct_message(rt, bot, recipient, body):
            # Slack refused the workspace's token as dead: this note goes by email after all.
            channel, recipient, subject, body = _as_email(coach, subject, body)
        if channel != "slack":
            # Mail to anyone but the coach is the coach's: their name on it, replies to them.
            for_coach = coach is not None and recipient != coach.email
            rt.mailer.send(recipient, subject, body, html, headers={"X-Holdspace-Message": message_id},
                           attachments=attachments, about=about,
                           on_behalf_of=coach.name if for_coach else None,
                           reply_to=coach.email if for_coach else None)
    except Exception as exc:
        job = get_current_job()
        final = job is None or not job.retries_left
        with session_scope(rt.engine) as db:
            msg = db.get(OutboundMessage, message_id)
            msg.error = str(exc)[:500]
            if final:
                msg.status = "failed"
                coach = db.get(Coach, msg.coach_id) if msg.coach_id else None
                # A coach learns when a client's email could not be sent; a failed note to the
                # coach is not reported to the same coach through the same failing channel.
                if coach and recipient not in (coach.email, coach.slack_user_id):
                    tell_coach(db, rt, coach, key=f"send-failed:{message_id}",
                               subject=f"An email to {recipient} could not be sent",
                               body=f"\"{subject}\" to {recipient} failed after {msg.attempts} "
                                    f"attempts: {msg.error}", client_id=msg.client_id)
        raise
    with session_scope(rt.engine) as db:
        msg = db.get(OutboundMessage, message_id)
        msg.status, msg.sent_at, msg.error = "sent", utcnow(), None
        msg.channel, msg.recipient = channel, recipient  # how it went out, Slack or email
        if msg.forget_after_send:
            # The outbox is a transport: what was sent about an erased client is not kept.
            msg.recipient, msg.subject, msg.body, msg.html = "", "", "", None
    return "sent"


def _as_email(coach: Coach, subject: str, body: str) -> tuple[str, str, str, str]:
    return "email", coach.email, f"holdspace: {subject}", _unslack(body, subject)


def _unslack(body: str, subject: str) -> str:
    # A Slack note starts with its subject in bold; an email has it as its subject.
    head = f"*{subject}*\n"
    return body[len(head):] if body.startswith(head) else body


def _direct_message(rt, bot, recipient: str, body: str) -> bool:
    """Post the DM; False when Slack refused an installation's token as dead (that
    installation is then ended, as if its app_uninstalled had come)."""
    notifier, key = bot
    try:
        notifier.direct_message(recipient, body)
    except TokenDead:
        if key is None:
            raise  # SLACK_BOT_TOKEN's own: the operator's to fix, retried and reported as ever
        end_slack_installation(rt, key=key, status="revoked")
        return False
    return True


def end_slack_installation(rt, *, status: str, key: str | None = None, enterprise_id: str | None = None,
                           team_id: str | None = None, bot_user_ids=None, actor: str = "slack") -> bool:
    """A workspace's installation ends (its app removed, its token revoked or refused as dead):
    its token is deleted at once and each coach it served is told, by email, once. False when
    there was nothing to end."""
    with session_scope(rt.engine) as db:
        ended = slack_installs.end_installation(db, status=status, key=key, enterprise_id=enterprise_id,
                                                team_id=team_id, bot_user_ids=bot_user_ids, actor=actor)
        if ended is None:
            return False
        row, coaches = ended
        since = int(row.installed_at.timestamp())
        for coach in coaches:
            queue_message(
                db, rt, key=f"slack-ended:{row.team_id}:{since}:{coach.id}", channel="email",
                recipient=coach.email, coach_id=coach.id, subject="holdspace: Slack is disconnected",
                body=f"holdspace can no longer message you in the Slack workspace {row.team_name or row.team_id}: "
                     f"the app was removed there or its access was revoked, and holdspace has deleted its "
                     f"token. Until it is added again ({rt.settings.public_base_url}"
                     f"{slack_installs.INSTALL_PATH}), holdspace's notes to you come by email.")
    return True


def _receipt_attachment(db: Session, receipt_id: str | None) -> list[tuple[str, bytes, str]]:
    """The signed deletion receipt, as a JSON file, made when the message is sent."""
    if not receipt_id:
        return []
    import json
    from workers import receipts
    receipt = db.get(DeletionReceipt, receipt_id)
    if receipt is None or not receipt.signature:
        return []
    document = json.dumps(receipts.document(receipt), indent=2, sort_keys=True).encode()
    return [(receipts.attachment_name(receipt), document, "application/json")]


def pending_messages(rt, older_than) -> list[str]:
    with session_scope(rt.engine) as db:
        return list(db.exec(select(OutboundMessage.id).where(OutboundMessage.status == "pending",
                                                             OutboundMessage.created_at < older_than)))
