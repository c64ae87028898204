"""holdspace's Flask application factory and its command line (`flask --app app ...`)."""

from __future__ import annotations

import logging
import sys

import click
from flask import Flask, jsonify
from sqlalchemy import text
from werkzeug.exceptions import HTTPException

from config import Settings, SettingsError
from workers.logs import install_redaction
from workers.runtime import Runtime, install

# Routes that platforms and monitors call: their errors stay JSON.
MACHINE_PATHS = ("/webhooks/", "/slack/commands", "/slack/events", "/healthz", "/.well-known/")


def create_app(test_config: dict | Settings | None = None) -> Flask:
    if isinstance(test_config, Settings):
        settings = test_config
    else:
        try:
            settings = Settings.from_env(**(test_config or {}))
        except SettingsError as exc:
            # One line at start (web, CLI and worker alike), not a job failing hours later.
            raise SystemExit(f"holdspace: {exc}") from None
    runtime = install(Runtime(settings))

    app = Flask(__name__)
    app.config.update(SECRET_KEY=settings.secret_key,
                      MAX_CONTENT_LENGTH=settings.max_webhook_bytes)
    app.extensions["holdspace"] = runtime
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_redaction()

    from webhooks.google import bp as google_webhook
    from webhooks.zoom import bp as zoom_webhook
    app.register_blueprint(zoom_webhook)
    app.register_blueprint(google_webhook)
    from bot.slack import bp as slack_bot
    app.register_blueprint(slack_bot)
    import portal
    portal.register(app)

    @app.get("/.well-known/holdspace-receipt-key")
    def receipt_key():
        """The public key that verifies this deployment's deletion receipts."""
        return (runtime.vault.receipt_signer().public_pem(), 200,
                {"Content-Type": "application/x-pem-file", "Cache-Control": "public, max-age=3600"})

    @app.get("/healthz")
    def healthz():
        checks = {}
        try:
            with runtime.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            checks["database"] = True
        except Exception:  # noqa: BLE001 - any failure means "not healthy"
            checks["database"] = False
        try:
            checks["queue"] = bool(runtime.redis.ping())
        except Exception:  # noqa: BLE001
            checks["queue"] = False
        ok = all(checks.values())
        return jsonify({"ok": ok, **checks}), 200 if ok else 503

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        # Machines (Zoom, Google, Slack, a health check) get a short JSON answer; a person
        # gets a page in the client's style. Never a stack trace.
        from flask import request
        if request.path.startswith(MACHINE_PATHS):
            return jsonify({"error": exc.description or exc.name}), exc.code
        from portal.client import error_page
        return error_page(exc)

    register_cli(app)
    return app


# --- command line ---------------------------------------------------------------------------

def fail(message: str):
    """A clear one-line error on stderr and a non-zero exit, as the contract asks."""
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _rt() -> Runtime:
    from flask import current_app
    return current_app.extensions["holdspace"]


def _find_client(db, client_email: str, coach_email: str | None):
    """The client with this email; `--coach-email` decides when two coaches share one."""
    from models import queries as q
    coaches = [q.coach_by_email(db, coach_email)] if coach_email else q.all_coaches(db)
    if coach_email and coaches[0] is None:
        fail(f"no coach with email {coach_email}")
    found = [c for c in (q.client_by_email(db, coach.id, client_email) for coach in coaches) if c]
    if not found:
        fail(f"no client with email {client_email}")
    if len(found) > 1:
        fail(f"{client_email} is a client of several coaches; add --coach-email")
    return found[0]


def _email(value: str) -> str:
    value = (value or "").strip().lower()
    if "@" not in value or value.startswith("@") or value.endswith("@") or " " in value:
        fail(f"not an email address: {value!r}")
    return value


def register_cli(app: Flask) -> None:
    from flask.cli import AppGroup
    from sqlmodel import select

    from models import Coach, MEDIA_POLICIES, audit
    from models import queries as q
    from models.db import migrate, session_scope
    from workers import fence

    @app.cli.command("init-db")
    def init_db():
        """Create or migrate the schema."""
        migrate(_rt().engine)
        click.echo("database ready")

    coach_group = AppGroup("coach", help="Coaches.")
    app.cli.add_command(coach_group)

    @coach_group.command("add")
    @click.option("--email", required=True)
    @click.option("--name", required=True)
    @click.option("--slack-user-id")
    @click.option("--zoom-user-id")
    @click.option("--google-user-id")
    @click.option("--media-policy", type=click.Choice(MEDIA_POLICIES), default="keep_video")
    @click.option("--trash-zoom-copies/--keep-zoom-copies", default=False,
                  help="Move Zoom's cloud copy to Zoom's trash when holdspace refuses or deletes a recording.")
    @click.option("--retention-years", type=click.IntRange(1, 100), default=7)
    @click.option("--drop-media-after-days", type=click.IntRange(1, 36500),
                  help="Delete video and audio this many days after a session (transcript and summary stay).")
    def coach_add(email, name, slack_user_id, zoom_user_id, google_user_id, media_policy,
                  trash_zoom_copies, retention_years, drop_media_after_days):
        """Add a coach; prints its id."""
        email = _email(email)
        from sqlalchemy.exc import IntegrityError
        try:
            with session_scope(_rt().engine) as db:
                coach = Coach(email=email, name=name.strip(), slack_user_id=slack_user_id or None,
                              zoom_user_id=zoom_user_id or None, google_user_id=google_user_id or None,
                              media_policy=media_policy, trash_zoom_copies=trash_zoom_copies,
                              retention_years=retention_years,
                              drop_media_after_days=drop_media_after_days)
                db.add(coach)
                db.flush()
                audit.record(db, "operator", "coach.added", f"coach:{coach.id}", coach_id=coach.id)
        except IntegrityError:
            fail("a coach with that email, Slack, Zoom or Google id already exists")
        click.echo(coach.id)

    client_group = AppGroup("client", help="Clients.")
    app.cli.add_command(client_group)

    @client_group.command("add")
    @click.option("--coach-email", required=True)
    @click.option("--email", required=True)
    @click.option("--name", required=True)
    def client_add(coach_email, email, name):
        """Add a client of a coach; prints its id."""
        email = _email(email)
        with session_scope(_rt().engine) as db:
            coach = q.coach_by_email(db, _email(coach_email))
            if coach is None:
                fail(f"no coach with email {coach_email}")
            if q.client_by_email(db, coach.id, email):
                fail(f"{email} is already a client of {coach.email}")
            client = fence.new_client(db, _rt(), coach.id, email=email, name=name.strip())
            audit.record(db, "operator", "client.added", f"client:{client.id}", coach_id=coach.id)
        click.echo(client.id)

    consent_group = AppGroup("consent", help="Client consent.")
    app.cli.add_command(consent_group)

    @consent_group.command("grant")
    @click.option("--client-email", required=True)
    @click.option("--method", required=True, type=click.Choice(["written", "verbal_attested"]))
    @click.option("--scopes", help="Comma list of record,transcribe,summarise,share_with_client (all when left out).")
    @click.option("--coach-email", help="Needed only when the client email belongs to several coaches.")
    def consent_grant(client_email, method, scopes, coach_email):
        """Record a client's consent (a verbal one is confirmed to the client by email)."""
        from workers import consent
        from workers.delivery import request_consent
        try:
            scope_list = consent.parse_scopes(scopes)
        except consent.ConsentError as exc:
            fail(str(exc))
        rt = _rt()
        with session_scope(rt.engine) as db:
            client = _find_client(db, _email(client_email), coach_email and _email(coach_email))
            record = consent.grant(db, client, scopes=scope_list, method=method, actor="operator")
            coach = q.coach_by_id(db, client.coach_id)
            confirmation = method == "verbal_attested"
            if confirmation:
                request_consent(db, rt, client, coach, verbal=True, actor="operator")
        click.echo(f"consent {record.id} granted: {','.join(scope_list)} ({method})"
                   + ("; confirmation emailed to the client" if confirmation else ""))

    @consent_group.command("request")
    @click.option("--client-email", required=True)
    @click.option("--coach-email", help="Needed only when the client email belongs to several coaches.")
    def consent_request(client_email, coach_email):
        """Email the client a link to the consent page."""
        from workers.delivery import request_consent
        rt = _rt()
        with session_scope(rt.engine) as db:
            client = _find_client(db, _email(client_email), coach_email and _email(coach_email))
            coach = q.coach_by_id(db, client.coach_id)
            request_consent(db, rt, client, coach, actor="operator")
        click.echo(f"consent request emailed to {client.email}")

    @consent_group.command("withdraw")
    @click.option("--client-email", required=True)
    @click.option("--coach-email", help="Needed only when the client email belongs to several coaches.")
    def consent_withdraw(client_email, coach_email):
        """Withdraw a client's consent and delete their data (prints the signed receipt's id)."""
        from workers.erasure import run_erasure, start_client_erasure
        rt = _rt()
        with session_scope(rt.engine) as db:
            client = _find_client(db, _email(client_email), coach_email and _email(coach_email))
            receipt = start_client_erasure(db, client.coach_id, client.id, reason="withdrawal",
                                           actor="operator")
        run_erasure(receipt.id)
        click.echo(f"consent withdrawn for {client.email}; data deleted, receipt {receipt.id}")

    google_group = AppGroup("google", help="Google Meet connections.")
    app.cli.add_command(google_group)

    @google_group.command("connect-delegated")
    @click.option("--coach-email", required=True)
    @click.option("--google-user-id", required=True, help="The coach's Google user id (users/<id> in Meet).")
    def google_connect_delegated(coach_email, google_user_id):
        """Act for a coach through the Workspace admin's domain-wide delegation."""
        from models import GoogleConnection
        from workers.platforms.meet import keep_subscription
        rt = _rt()
        if not rt.settings.google_service_account_file:
            fail("GOOGLE_SERVICE_ACCOUNT_FILE is not set")
        with session_scope(rt.engine) as db:
            coach = q.coach_by_email(db, _email(coach_email))
            if coach is None:
                fail(f"no coach with email {coach_email}")
            conn = db.exec(select(GoogleConnection).where(GoogleConnection.coach_id == coach.id)).first() \
                or GoogleConnection(coach_id=coach.id, mode="delegation")
            conn.mode, conn.google_user_id, conn.refresh_token_sealed, conn.status = \
                "delegation", google_user_id.removeprefix("users/"), None, "active"
            coach.google_user_id = coach.google_user_id or conn.google_user_id
            db.add(conn)
            audit.record(db, "operator", "google.connected", f"coach:{coach.id}", coach_id=coach.id,
                         mode="delegation")
            coach_id = coach.id
        result = keep_subscription(rt, coach_id) if rt.settings.google_pubsub_topic else "no topic set"
        click.echo(f"connected through delegation; subscription: {result}")

    @app.cli.command("worker")
    @click.option("--burst", is_flag=True, help="Stop once the queues are empty.")
    def worker(burst):
        """Run an RQ worker on every queue holdspace uses."""
        from rq import Worker
        rt = _rt()
        Worker(rt.queues, connection=rt.redis).work(burst=burst, with_scheduler=True,
                                                   logging_level="INFO")

    @app.cli.command("scheduler")
    def scheduler():
        """Run RQ's cron scheduler with holdspace's periodic jobs."""
        from rq.cron import CronScheduler
        from workers.cron import register
        sched = CronScheduler(connection=_rt().redis)
        register(sched)
        sched.start()

    receipt_group = AppGroup("receipt", help="Deletion receipts.")
    app.cli.add_command(receipt_group)

    @receipt_group.command("verify")
    @click.argument("path", type=click.Path(exists=True, dir_okay=False))
    def receipt_verify(path):
        """Check a deletion receipt (the JSON attached to the email); exit 1 if it does not verify."""
        import json as _json
        from vault import receipts
        try:
            document = _json.loads(open(path, "rb").read())
        except ValueError:
            click.echo("the file is not a receipt (not JSON); it does not verify", err=True)
            sys.exit(1)
        if not receipts.verify(document, _rt().vault.receipt_signer().public_pem()):
            click.echo("the receipt does not verify: it was altered, or not signed by this holdspace", err=True)
            sys.exit(1)
        body = document["receipt"]
        click.echo(f"receipt verifies: {body.get('scope')} deletion {body.get('status')} at "
                   f"{body.get('completed_at')}, signed by {document.get('key_id')}")

    audit_group = AppGroup("audit", help="The audit trail.")
    app.cli.add_command(audit_group)

    @audit_group.command("verify")
    def audit_verify():
        """Check the HMAC chain and its anchors; exit 1 at the first broken link."""
        from models.audit import verify
        from workers.anchors import anchored
        anchors = anchored(_rt())
        with session_scope(_rt().engine) as db:
            report = verify(db, anchors=anchors)
        if report.ok:
            click.echo(f"audit chain intact: {report.checked} events, {len(anchors)} anchors")
        else:
            click.echo(f"audit chain broken at event {report.broken_at}: {report.reason} "
                       f"({report.checked} events before it are intact)", err=True)
            sys.exit(1)

    @app.cli.command("outbox")
    @click.option("--to", "to", default=None, help="Only the mails to this address.")
    @click.option("--mbox", is_flag=True, help="Print them whole, as an mbox file, not listed.")
    def outbox(to, mbox):
        """The mails in the embedded Maildir (kept sealed there), opened; oldest first."""
        from email.generator import BytesGenerator
        mails = [m for m in _rt().mailer.kept()
                 if to is None or to.strip().lower() in str(m.get("To", "")).lower()]
        for mail in mails:
            if mbox:
                sys.stdout.buffer.write(b"From holdspace\n")
                BytesGenerator(sys.stdout.buffer, mangle_from_=True).flatten(mail)
                sys.stdout.buffer.write(b"\n")
            else:
                click.echo(f"{mail['Date']}  to {mail['To']}  {mail['Subject']}")
        sys.stdout.flush()

    @app.cli.command("demo")
    @click.option("--serve", is_flag=True, help="Keep serving the app afterwards, so the client link opens.")
    def demo(serve):
        """The end-to-end demo that `make demo` runs."""
        from demo.run import run_demo
        sys.exit(run_demo(_rt(), create_app, serve=serve))
