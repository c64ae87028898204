"""The subcommands of `/holdspace`, each a function of (runtime, coach id, arguments) that
returns the text of an ephemeral reply. Slow ones are marked and run by a worker, which posts
the answer to Slack's `response_url`."""

from __future__ import annotations

import hashlib
import hmac
import shlex
from dataclasses import dataclass
from typing import Callable

from workers import coaching
from workers.coaching import CoachError
from workers.coach_sign_in import login_link


@dataclass(frozen=True)
class Command:
    run: Callable[..., str]
    usage: str
    help: str
    slow: bool = False  # answered through response_url by a worker


def _args(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:  # an unbalanced quote: take the words as they are
        return text.split()


def _need(args: list[str], n: int, usage: str) -> None:
    if len(args) < n:
        raise CoachError(f"Usage: /holdspace {usage}")


def confirm_code(secret: str, coach_id: str, target: str) -> str:
    """A short code that must be typed back to delete something: no accidental deletions."""
    return hmac.new(secret.encode(), f"{coach_id}:{target}".encode(), hashlib.sha256).hexdigest()[:6]


# --- handlers ---------------------------------------------------------------------------------

def clients(rt, coach_id, args, actor) -> str:
    rows = coaching.clients(rt, coach_id)
    if not rows:
        return "No clients yet. Add one with `/holdspace consent request <email> [name]`."
    return "Your clients:\n" + "\n".join(
        f"• {r.name} <{r.email}> — consent: {r.consent}"
        + (f", last session {r.last_session_at:%-d %b %Y}" if r.last_session_at else "") for r in rows)


def sessions(rt, coach_id, args, actor) -> str:
    found = coaching.sessions(rt, coach_id, args[0] if args else None)
    if not found:
        return "No sessions yet."
    names = coaching.client_names(rt, coach_id)
    lines = []
    for s in found:
        when = s.started_at.strftime("%-d %b %H:%M") if s.started_at else "?"
        who = names.get(s.client_id, "no client yet")
        line = f"• `{s.id}` {when} {s.topic or '(no topic)'} — {who} — *{s.state.replace('_', ' ')}*"
        if s.error:
            line += f": {s.error}"
        lines.append(line)
    return "Sessions:\n" + "\n".join(lines)


def consent(rt, coach_id, args, actor) -> str:
    usage = "consent request <email> [name] | consent verbal <email> | consent status <email>"
    _need(args, 2, usage)
    action, email = args[0].lower(), args[1]
    if action == "request":
        return coaching.ask_for_consent(rt, coach_id, email, " ".join(args[2:]) or None, actor=actor)
    if action == "verbal":
        return coaching.record_verbal_consent(rt, coach_id, email, actor=actor)
    if action == "status":
        return coaching.consent_status(rt, coach_id, email)
    raise CoachError(f"Usage: /holdspace {usage}")


def assign(rt, coach_id, args, actor) -> str:
    _need(args, 2, "assign <session> <client email>")
    return coaching.assign(rt, coach_id, args[0], args[1], actor=actor)


def brief(rt, coach_id, args, actor) -> str:
    from workers.briefing import briefing_for
    _need(args, 1, "brief <client email>")
    return briefing_for(rt, coach_id, args[0]).text()


def search(rt, coach_id, args, actor) -> str:
    _need(args, 1, "search <words>")
    hits = coaching.search(rt, coach_id, " ".join(args))
    if not hits:
        return f"Nothing found for “{' '.join(args)}”."
    lines = []
    for hit, name, session in hits:
        minutes, seconds = divmod(int(hit.start), 60)
        when = session.started_at.strftime("%-d %b") if session and session.started_at else ""
        lines.append(f"• {name}, {when} `{hit.session_id}` at {minutes}:{seconds:02d} — {hit.snippet}")
    return f"Found {len(hits)}:\n" + "\n".join(lines)


def note(rt, coach_id, args, actor) -> str:
    _need(args, 2, "note <session> <text>")
    coaching.add_note(rt, coach_id, args[0], " ".join(args[1:]), actor=actor)
    return "Private note saved. Only you will ever see it."


def resend(rt, coach_id, args, actor) -> str:
    _need(args, 1, "resend <session>")
    return coaching.resend(rt, coach_id, args[0], actor=actor)


def revoke(rt, coach_id, args, actor) -> str:
    _need(args, 1, "revoke <session>")
    return coaching.revoke(rt, coach_id, args[0], actor=actor)


def delete(rt, coach_id, args, actor) -> str:
    usage = "delete session <id> | delete client <email>"
    _need(args, 2, usage)
    what, target = args[0].lower(), args[1]
    if what not in ("session", "client"):
        raise CoachError(f"Usage: /holdspace {usage}")
    code = confirm_code(rt.settings.secret_key, coach_id, f"{what}:{target.lower()}")
    if args[2:4] != ["confirm", code]:
        # Validate the target before asking, so a typo is caught now.
        if what == "session":
            _check_session(rt, coach_id, target)
        else:
            coaching.consent_status(rt, coach_id, target)
        thing = "this session's recording, transcript and summary" if what == "session" else \
            "everything holdspace keeps about this client (your private notes stay)"
        return (f"This deletes {thing}, for good. To go ahead, send:\n"
                f"`/holdspace delete {what} {target} confirm {code}`")
    if what == "session":
        return coaching.delete_session(rt, coach_id, target, actor=actor)
    return coaching.delete_client(rt, coach_id, target, actor=actor)


def _check_session(rt, coach_id, session_id) -> None:
    from models import queries as q
    from models.db import session_scope
    with session_scope(rt.engine) as db:
        if q.session_of(db, coach_id, session_id) is None:
            raise CoachError(f"No session {session_id}.")


# What the coach does next about a session that needs them, as the status line says it.
NEXT_STEP = {
    "retry": "`/holdspace retry {id}`",
    "assign": "`/holdspace assign {id} client@example.com`",
    "fetch": "once they consent, fetch it from the dashboard",
    "review": "review and send it on the dashboard",
    "wait": "under way",
}


def status(rt, coach_id, args, actor) -> str:
    info = coaching.status(rt, coach_id)
    counts = ", ".join(f"{state.replace('_', ' ')}: {n}" for state, n in sorted(info["counts"].items())) or "no sessions yet"
    lines = [f"Sessions — {counts}",
             f"Queue: {info['queue_depth']} job(s) waiting" if info["queue_depth"] is not None else "Queue: not answering"]
    for a in coaching.needs_attention(rt, coach_id, limit=5):
        lines.append(f"• {a.session.state.replace('_', ' ')} `{a.session.id}` {a.session.topic or ''}: "
                     f"{a.reason} ({NEXT_STEP[a.action].format(id=a.session.id)})")
    return "\n".join(lines)


def retry(rt, coach_id, args, actor) -> str:
    _need(args, 1, "retry <session>")
    return coaching.retry(rt, coach_id, args[0], actor=actor)


def dashboard(rt, coach_id, args, actor) -> str:
    return f"Your dashboard (this sign-in link works once, for 15 minutes): {login_link(rt, coach_id)}"


# What `connect` links to, by platform: the dashboard page that holds the connection.
_CONNECT_PAGES = {"google": ("/coach/google", "Connect Google Meet"),
                  "zoom": ("/coach/zoom", "Connect your Zoom")}


def connect(rt, coach_id, args, actor) -> str:
    page = _CONNECT_PAGES.get((args[:1] or [""])[0].lower())
    if page is None:
        raise CoachError("Usage: /holdspace connect zoom | connect google")
    path, label = page
    return f"{label} from your dashboard (this sign-in link works once, for 15 minutes): " + login_link(
        rt, coach_id, next_path=path)


COMMANDS: dict[str, Command] = {
    "clients": Command(clients, "clients", "your clients and their consent"),
    "sessions": Command(sessions, "sessions [client email]", "recent sessions, their state and what failed"),
    "consent": Command(consent, "consent request <email> [name] | verbal <email> | status <email>",
                       "ask for consent, record a verbal one, or see where it stands"),
    "assign": Command(assign, "assign <session> <client email>", "give an unmatched recording its client"),
    "brief": Command(brief, "brief <client email>", "the pre-session briefing", slow=True),
    "search": Command(search, "search <words>", "search your clients' transcripts", slow=True),
    "note": Command(note, "note <session> <text>", "a private note (never shown to the client)"),
    "resend": Command(resend, "resend <session>", "email the client a fresh link"),
    "revoke": Command(revoke, "revoke <session>", "turn off the client's links to a session"),
    "delete": Command(delete, "delete session <id> | delete client <email>", "delete, with a confirmation step"),
    "status": Command(status, "status", "the pipeline: states, failures, queue"),
    "retry": Command(retry, "retry <session>", "run a failed or stalled session's work again"),
    "dashboard": Command(dashboard, "dashboard", "a one-tap sign-in link to your dashboard"),
    "connect": Command(connect, "connect zoom | connect google", "connect your own Zoom, or Google for Meet"),
}


def help_text(name: str | None = None) -> str:
    if name and name in COMMANDS:
        c = COMMANDS[name]
        return f"`/holdspace {c.usage}` — {c.help}"
    return "holdspace commands:\n" + "\n".join(f"• `/holdspace {c.usage}` — {c.help}" for c in COMMANDS.values())


def answer_later(coach_id: str, text: str, response_url: str, actor: str) -> str:
    """The RQ job for slow commands: run it, then post the answer to Slack's response_url."""
    from slack_sdk.webhook import WebhookClient
    from workers.runtime import current
    rt = current()
    reply = run(rt, coach_id, text, actor)
    response = WebhookClient(response_url, timeout=10).send(text=reply, response_type="ephemeral")
    if response.status_code >= 400:
        raise RuntimeError(f"Slack refused the reply ({response.status_code})")
    return "answered"


def run(rt, coach_id: str, text: str, actor: str) -> str:
    """Run one command line; any mistake the coach can fix comes back as a friendly message."""
    words = _args(text.strip())
    if not words or words[0].lower() == "help":
        return help_text(words[1].lower() if len(words) > 1 else None)
    name, args = words[0].lower(), words[1:]
    command = COMMANDS.get(name)
    if command is None:
        return f"I don't know `{name}`.\n" + help_text()
    if args[:1] == ["help"]:
        return help_text(name)
    try:
        return command.run(rt, coach_id, args, actor)
    except CoachError as exc:
        return str(exc)
