"""The client's consent page: what is recorded, where, for whom and how long; one checkbox per
scope; and withdrawal, which starts the deletion of everything."""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, url_for

from models import CONSENT_SCOPES, audit, consent_text
from models import queries as q
from models.db import session_scope
from portal.client import open_link
from portal.security import token_page
from workers import notify
from workers.sessions import may

bp = Blueprint("consent_pages", __name__, template_folder="templates")

# Each scope in plain words: what it is called on the page, and what agreeing to it allows.
SCOPES_IN_WORDS = {
    "record": ("Recording", "Your sessions' audio and video are kept, encrypted, so you and your "
                            "coach can replay them. Everything else needs this."),
    "transcribe": ("A transcript", "A written record of what was said, made from the recording, "
                                   "that you can read and search."),
    "summarise": ("A summary", "A short summary of each session and of what you agreed to do, "
                               "carried from one session to the next."),
    "share_with_client": ("Downloads", "You can download your recordings and transcripts to keep "
                                       "your own copy. Without this you can still watch and read them here."),
}


def _rt():
    return current_app.extensions["holdspace"]


def _storage_phrase(storage_url: str) -> str:
    if storage_url.startswith("s3://"):
        return "Encrypted, in your coach's practice's cloud storage, under a key that is yours alone."
    return "Encrypted, on your coach's practice's own server, under a key that is yours alone."


def _page(db, link, token, notice=None):
    client = q.client_of(db, link.coach_id, link.client_id)
    coach = q.coach_by_id(db, link.coach_id)
    active = q.active_consent(db, coach.id, client.id)
    current = sorted(active.scope_set, key=CONSENT_SCOPES.index) if active else []
    return render_template(
        "consent.html", token=token, client=client, coach=coach,
        paragraphs=consent_text.paragraphs(), version=consent_text.VERSION, sha256=consent_text.SHA256,
        scopes=[(s, *SCOPES_IN_WORDS[s]) for s in CONSENT_SCOPES],
        current=current, current_words=[SCOPES_IN_WORDS[s][0] for s in current],

        current_method=active.method if active else None,
        storage=_storage_phrase(_rt().settings.storage_url), notice=notice)


@bp.route("/c/<token>", methods=["GET", "POST"])
@token_page
def consent_page(token):
    from workers import consent
    with session_scope(_rt().engine) as db:
        link = open_link(db, token, "consent")
        if request.method == "GET":
            saved = request.args.get("saved") == "1"
            return _page(db, link, token, notice="Thank you. Your choice is saved." if saved else None)
        chosen = [s for s in request.form.getlist("scope") if s in CONSENT_SCOPES]
        try:
            scopes = consent.parse_scopes(",".join(chosen)) if chosen else None
        except consent.ConsentError as exc:
            return _page(db, link, token, notice=str(exc)), 400
        if not scopes or not may(frozenset(scopes), "keep"):
            return _page(db, link, token, notice="Recording is what this consent is about: tick it to "
                                                 "agree, or withdraw below to stop and delete everything."), 400
        client = q.client_of(db, link.coach_id, link.client_id)
        coach = q.coach_by_id(db, link.coach_id)
        consent.grant(db, client, scopes=scopes, method="written", actor="client",
                      ip=request.remote_addr, user_agent=request.headers.get("User-Agent", "")[:300])
        notify.tell_coach(db, _rt(), coach, key=f"consent-granted:{client.id}:{link.id}:{','.join(scopes)}",
                          subject=f"{client.name} gave written consent", client_id=client.id,
                          body=f"{client.name} <{client.email}> agreed to: {', '.join(scopes)}.")
    # Post/redirect/get: reloading the thank-you page must not record the consent again.
    return redirect(url_for("consent_pages.consent_page", token=token, saved=1), 303)


@bp.post("/c/<token>/withdraw")
@token_page
def withdraw(token):
    from workers.erasure import enqueue_erasure, start_client_erasure
    with session_scope(_rt().engine) as db:
        link = open_link(db, token, "consent")
        if request.form.get("confirm") != "yes":
            return _page(db, link, token, notice="Please tick the box to confirm."), 400
        client = q.client_of(db, link.coach_id, link.client_id)
        receipt = start_client_erasure(db, link.coach_id, client.id, reason="withdrawal",
                                       actor="client", ip=request.remote_addr)
        coach = q.coach_by_id(db, link.coach_id)
        notify.tell_coach(db, _rt(), coach, key=f"consent-withdrawn:{receipt.id}",
                          subject=f"{client.name} withdrew consent", client_id=client.id,
                          body=f"{client.name} <{client.email}> withdrew consent. holdspace is "
                               "deleting their recordings, transcripts and summaries; you will "
                               "get the deletion receipt. Your private notes stay with you.")
        receipt_id, coach_name, coach_email = receipt.id, coach.name, coach.email
        audit.record(db, "client", "consent.withdraw_requested", f"client:{client.id}",
                     coach_id=coach.id, ip=request.remote_addr)
    try:
        enqueue_erasure(_rt(), receipt_id)
    except Exception:  # noqa: BLE001 - Redis down: the sweeper finishes the deletion
        current_app.logger.warning("erasure %s recorded but not queued", receipt_id)
    return render_template("withdrawn.html", coach_name=coach_name, coach_email=coach_email)
