"""A client's words and facts are ciphertext in the database, under that client's own key: what
a full pipeline run writes, what a query may compare, what a copied value opens as, what a
withdrawal leaves readable, and the migration that seals an existing deployment's rows."""

import json
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import select as sa_select, text, update
from sqlmodel import Session, select

from models import (Client, CoachingSession, InboxEvent, OutboundMessage, PrivateNote, Summary, Transcript,
                    sealing)
from models.db import MIGRATIONS, make_engine, migrate
from tests.portalhelpers import delivered_session
from tests.zoomhelpers import CLIENT_EMAIL
from vault import LocalMasterKey, open_vault
from vault.errors import IntegrityError, ObjectErased
from vault.fields import FieldKeys

ENGINES = dict(TRANSCRIBE_ENGINE="platform", SUMMARY_ENGINE="offline",
               PLATFORM_TRANSCRIPT_WAIT_SECONDS=0)
# table: its sealed columns
SEALED = {"client": ["name", "email"], "consent": ["evidence_ip", "evidence_user_agent"],
          "coachingsession": ["topic"], "transcript": ["segments", "text"],
          "summary": ["client_tier"], "coachinsight": ["coach_tier"], "clientmemory": ["data"],
          "privatenote": ["body"], "transcriptpassage": ["text"], "inboxevent": ["payload"],
          "outboundmessage": ["recipient", "subject", "body", "html"]}


@pytest.fixture
def hs(hs_factory, both_databases, zoom_stub, smtp_sink):
    smtp_sink.clear()
    return hs_factory(both_databases, zoom_stub=zoom_stub, smtp_url=smtp_sink.url, **ENGINES)


def raw_values(engine, table: str, column: str) -> list:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(text(f"SELECT {column} FROM {table}"))
                if r[0] is not None]


def test_a_delivered_session_leaves_only_ciphertext_in_every_sealed_column(hs, zoom_stub, smtp_sink):
    delivered_session(hs, zoom_stub, smtp_sink, scopes=None, fixture="recording_completed")
    with hs.db() as db:
        (transcript,) = db.exec(select(Transcript)).all()
        (summary,) = db.exec(select(Summary)).all()
        (client,) = db.exec(select(Client)).all()
        note = PrivateNote(coach_id=client.coach_id, client_id=client.id, body="Ask about the move.")
        db.add(note)
        db.commit()
    phrase = transcript.text.split(". ")[0][:40]
    assert len(phrase) > 20 and summary.client_tier and client.email == CLIENT_EMAIL
    for table, columns in SEALED.items():
        for column in columns:
            values = raw_values(hs.rt.engine, table, column)
            assert all(str(v).startswith("hsf1:") for v in values), (table, column, values[:1])
    # Each of these has a row, so each of them was sealed (not merely empty).
    for table, column in (("transcript", "text"), ("summary", "client_tier"), ("client", "email"),
                          ("clientmemory", "data"), ("privatenote", "body"),
                          ("outboundmessage", "body"), ("coachinsight", "coach_tier"),
                          ("transcriptpassage", "text"), ("inboxevent", "payload")):
        assert raw_values(hs.rt.engine, table, column), (table, column)
    with hs.rt.engine.connect() as conn:
        dump = " ".join(str(v) for t in SEALED for row in conn.execute(text(f"SELECT * FROM {t}"))
                        for v in row)
    for secret in (CLIENT_EMAIL, "Robin", phrase, "Ask about the move"):
        assert secret not in dump
    # The webhook's payload was sealed again under the client's key once the session was theirs.
    with hs.db() as db:
        (event,) = db.exec(select(InboxEvent).where(InboxEvent.status == "done")).all()
        assert event.client_id == client.id and event.payload["payload"]["object"]["uuid"]
    (raw,) = [v for v in raw_values(hs.rt.engine, "inboxevent", "payload")]
    assert FieldKeys(hs.rt.vault).open(client.id, raw, sealing.associated_data(
        "inboxevent", "payload", event.dedupe_key, client.id, client.id))
    # The code reads plaintext: found by email (its keyed HMAC), transcripts and notes open.
    from models import queries as q
    with hs.db() as db:
        found = q.client_by_email(db, client.coach_id, "  " + CLIENT_EMAIL.upper())
        assert found.id == client.id and found.name == client.name
        assert db.get(Transcript, transcript.id).segments == transcript.segments
        assert db.get(PrivateNote, note.id).body == "Ask about the move."


def test_a_query_cannot_write_or_compare_plaintext(hs, zoom_stub, smtp_sink):
    delivered_session(hs, zoom_stub, smtp_sink, scopes=None, fixture="recording_completed")
    with hs.db() as db:
        with pytest.raises(Exception, match="ciphertext only"):
            db.exec(select(Transcript).where(Transcript.text == "anything")).all()
    with hs.rt.engine.begin() as conn:
        with pytest.raises(Exception, match="ciphertext only"):
            conn.execute(update(Client.__table__).values(name="Robin Plain"))


def test_a_sealed_value_moved_to_another_row_or_column_does_not_open(hs, zoom_stub, smtp_sink):
    delivered_session(hs, zoom_stub, smtp_sink, scopes=None, fixture="recording_completed")
    with hs.db() as db:
        client = db.exec(select(Client)).one()
        other = Client(coach_id=client.coach_id, email="other@example.com", name="Other")
        other.data_key_id = hs.rt.vault.ensure_client_key(other.id)
        db.add(other)
        db.commit()
    with hs.rt.engine.begin() as conn:
        name = conn.execute(sa_select(Client.__table__.c.name).where(
            Client.__table__.c.id == client.id)).scalar_one()
        # The client's name, pasted into the other client's row; then into its own email column.
        conn.execute(update(Client.__table__).where(Client.__table__.c.id == other.id).values(name=name))
    with hs.db() as db, pytest.raises(IntegrityError):
        db.get(Client, other.id)
    with hs.rt.engine.begin() as conn:
        conn.execute(update(Client.__table__).where(Client.__table__.c.id == client.id).values(email=name))
    with hs.db() as db, pytest.raises(IntegrityError):
        db.get(Client, client.id)


def test_after_withdrawal_only_the_coachs_note_still_opens(hs, zoom_stub, smtp_sink):
    delivered_session(hs, zoom_stub, smtp_sink, scopes=None, fixture="recording_completed")
    with hs.db() as db:
        client = db.exec(select(Client)).one()
        db.add(PrivateNote(coach_id=client.coach_id, client_id=client.id, body="Follow up on the offer."))
        db.commit()
    sealed_before = {c: raw_values(hs.rt.engine, t, c) for t, cols in SEALED.items() for c in cols
                     if t in ("transcript", "summary", "clientmemory", "transcriptpassage", "inboxevent")}
    hs.run("consent", "withdraw", "--client-email", CLIENT_EMAIL)
    hs.drain()
    with hs.db() as db:
        tomb = db.get(Client, client.id)
        assert tomb.name is None and tomb.email is None and tomb.email_hmac and tomb.withdrawn_at
    from workers import coaching
    (row,) = coaching.clients(hs.rt, client.coach_id)
    assert (row.name, row.email) == ("(erased client)", "")
    with hs.db() as db:
        (note,) = db.exec(select(PrivateNote)).all()
        assert note.body == "Follow up on the offer." and note.client_withdrawn
        assert not db.exec(select(OutboundMessage).where(OutboundMessage.client_id == client.id)).all()
        # The receipt went out and its words and address are gone from the outbox.
        receipts = [m for m in db.exec(select(OutboundMessage)) if m.attachment_receipt_id]
        assert receipts and all(m.status == "sent" and not m.recipient and not m.body for m in receipts)
    assert any(m["To"] == CLIENT_EMAIL for m in smtp_sink.messages)
    # What a copy taken before the withdrawal holds opens with no key that remains.
    keys = FieldKeys(hs.rt.vault)
    with pytest.raises(ObjectErased):
        keys.key(client.id)
    for column, values in sealed_before.items():
        assert values, column
        for value in values:
            assert keys.open(client.id, value, b"") is None
            with pytest.raises(IntegrityError):
                keys.open(f"coach.{client.coach_id}", value, b"")


# --- the migration -------------------------------------------------------------------------------

def _at_revision(engine, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def test_the_migration_seals_an_existing_deployments_rows_in_place(both_databases, tmp_path):
    engine = make_engine(both_databases)
    _at_revision(engine, "0005")
    now = "2026-01-01 00:00:00"
    segments = [{"start": 0.0, "end": 4.0, "speaker": "Robin", "text": "I will call my sister on Sunday."}]
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO coach (id, email, name, time_zone, retention_years, media_policy, "
                          "trash_zoom_copies, allow_platform_transcript, created_at) VALUES "
                          "('co', 'coach@example.com', 'Casey', 'UTC', 7, 'keep_video', false, true, :now)"),
                     {"now": now})
        for cid, email, name, withdrawn in (("live", "Robin@Example.com", "Robin Client", None),
                                            ("gone", "gone@example.com", "Gone Client", now)):
            conn.execute(text("INSERT INTO client (id, coach_id, email, name, withdrawn_at, created_at) "
                              "VALUES (:id, 'co', :email, :name, :w, :now)"),
                         {"id": cid, "email": email.lower(), "name": name, "w": withdrawn, "now": now})
        conn.execute(text("INSERT INTO coachingsession (id, coach_id, client_id, platform, platform_uuid, "
                          "topic, state, reconcile_attempts, created_at, updated_at) VALUES "
                          "('se', 'co', 'live', 'zoom', 'u1', 'Robin / Casey', 'delivered', 0, :now, :now)"),
                     {"now": now})
        conn.execute(text("INSERT INTO transcript (id, coach_id, session_id, engine, segments, text, created_at) "
                          "VALUES ('tr', 'co', 'se', 'local', :seg, :text, :now)"),
                     {"seg": json.dumps(segments), "text": segments[0]["text"], "now": now})
        conn.execute(text("INSERT INTO summary (id, coach_id, session_id, engine, basic, client_tier, created_at) "
                          "VALUES ('su', 'co', 'se', 'offline', true, :tier, :now)"),
                     {"tier": json.dumps({"overview": "Robin chose a date."}), "now": now})
        conn.execute(text("INSERT INTO privatenote (id, coach_id, client_id, body, client_withdrawn, created_at) "
                          "VALUES ('pn', 'co', 'live', 'Seems tired.', false, :now)"), {"now": now})
        conn.execute(text("INSERT INTO outboundmessage (id, idempotency_key, coach_id, channel, recipient, "
                          "subject, body, status, attempts, created_at) VALUES ('om', 'k', 'co', 'email', "
                          "'robin@example.com', 'Your session', 'Dear Robin', 'sent', 1, :now)"), {"now": now})
        conn.execute(text("INSERT INTO inboxevent (platform, event, dedupe_key, source, payload, status, "
                          "attempts, coach_id, session_id, received_at, updated_at) VALUES ('zoom', "
                          "'recording.completed', 'dk', 'webhook', :p, 'done', 1, 'co', 'se', :now, :now)"),
                     {"p": json.dumps({"download_token": "dl-token-at-rest",
                                       "payload": {"object": {"topic": "Robin / Casey"}}}), "now": now})

    # Without the vault the sealing cannot be done, and says so.
    with pytest.raises(RuntimeError, match="needs the vault"):
        migrate(engine)
    vault = open_vault(f"file://{tmp_path / 'vault'}", master_key=LocalMasterKey(b"m" * 32))
    keys = FieldKeys(vault)
    sealing.bind(engine, keys)
    migrate(engine)

    for table, columns in SEALED.items():
        for column in columns:
            assert all(str(v).startswith("hsf1:") for v in raw_values(engine, table, column)), (table, column)
    with engine.connect() as conn:
        dump = " ".join(str(v) for t in SEALED for row in conn.execute(text(f"SELECT * FROM {t}")) for v in row)
    for plain in ("robin@example.com", "Robin Client", "Gone Client", "gone@example.com", "my sister",
                  "chose a date", "Seems tired", "Dear Robin", "dl-token-at-rest"):
        assert plain not in dump
    from models import queries as q
    with Session(engine) as db:
        live = q.client_by_email(db, "co", "robin@example.com")
        assert (live.id, live.name, live.data_key_id is not None) == ("live", "Robin Client", True)
        gone = db.get(Client, "gone")
        assert gone.name is None and gone.email is None and gone.email_hmac
        assert db.get(Transcript, "tr").segments == segments and db.get(Transcript, "tr").client_id == "live"
        assert db.get(Summary, "su").client_tier == {"overview": "Robin chose a date."}
        assert db.get(CoachingSession, "se").topic == "Robin / Casey"
        assert db.get(PrivateNote, "pn").body == "Seems tired."
        message = db.get(OutboundMessage, "om")
        assert (message.client_id, message.body) == ("live", "Dear Robin")
        (event,) = db.exec(select(InboxEvent)).all()
        assert event.client_id == "live" and event.payload["download_token"] == "dl-token-at-rest"
    migrate(engine)  # a second run changes nothing
    with Session(engine) as db:
        assert db.get(Transcript, "tr").text == segments[0]["text"]
    engine.dispose()


def test_the_database_file_and_var_are_private(hs_factory, tmp_path):
    import os
    os.umask(0o022)
    hs = hs_factory(f"sqlite:///{tmp_path / 'var' / 'holdspace.db'}")
    hs.run("coach", "add", "--email", "coach@example.com", "--name", "Casey")
    var = tmp_path / "var"
    assert var.stat().st_mode & 0o777 == 0o700
    files = [p for p in var.iterdir() if p.name.startswith("holdspace.db")]
    assert {p.name for p in files} >= {"holdspace.db", "holdspace.db-wal"}
    assert all(p.stat().st_mode & 0o077 == 0 for p in files), [(p.name, oct(p.stat().st_mode)) for p in files]


def test_no_link_token_is_at_rest_after_a_full_run(hs_factory, tmp_path, zoom_stub, smtp_sink):
    # The tokens the client was emailed (session, journey, consent) and the coach's sign-in
    # token: none of them in the database files (the -wal included), only in what was sent.
    from tests.portalhelpers import body_of, links_in
    smtp_sink.clear()
    hs = hs_factory(f"sqlite:///{tmp_path / 'holdspace.db'}", zoom_stub=zoom_stub,
                    smtp_url=smtp_sink.url, **ENGINES)
    delivered_session(hs, zoom_stub, smtp_sink, scopes=None, fixture="recording_completed")
    from tests.test_dashboard import CSRF
    form = hs.http.get("/coach/login").get_data(as_text=True)
    hs.http.post("/coach/login", data={"email": "coach@example.com",
                                       "csrf_token": CSRF.search(form).group(1)})
    hs.drain()
    tokens = {url.rsplit("/", 1)[1] for m in smtp_sink.messages for url in links_in(m)}
    tokens |= {part.split()[0] for m in smtp_sink.messages for part in body_of(m).split("/coach/auth/")[1:]}
    assert len(tokens) >= 2, tokens  # the session page's and the sign-in's
    at_rest = b"".join(p.read_bytes() for p in tmp_path.glob("holdspace.db*"))
    found = [t for t in tokens if t.encode() in at_rest]
    assert not found
    with hs.db() as db:
        bodies = " ".join((m.body or "") + (m.html or "") for m in db.exec(select(OutboundMessage)))
    assert "[[hs-link:" in bodies and not any(t in bodies for t in tokens)


def _database_copy(url: str, tmp_path, server) -> tuple[bytes, str]:
    """What a backup of the database holds, as bytes, and a database restored from it: the
    SQLite file and its -wal copied as they lie, or a pg_dump restored with psql."""
    import shutil
    import subprocess
    from urllib.parse import urlparse
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        copies = tmp_path / "backup"
        copies.mkdir()
        data = b""
        for each in (path, path.with_name(path.name + "-wal")):
            if each.exists():
                shutil.copy(each, copies / each.name)
                data += each.read_bytes()
        return data, f"sqlite:///{copies / path.name}"
    where = urlparse(url.replace("+psycopg", ""))
    dump = subprocess.run([server._bin("pg_dump"), "-h", where.hostname, "-p", str(where.port),
                           "-U", "postgres", where.path.lstrip("/")], check=True, capture_output=True).stdout
    restored = server.create_database(f"restored_{where.path.lstrip('/')}"[:60])
    target = urlparse(restored.replace("+psycopg", ""))
    subprocess.run([server._bin("psql"), "-q", "-v", "ON_ERROR_STOP=1", "-h", target.hostname, "-p",
                    str(target.port), "-U", "postgres", "-d", target.path.lstrip("/")],
                   input=dump, check=True, capture_output=True)
    return dump, restored


def _windows(texts, size: int = 32) -> set[bytes]:
    """Every 32-byte window of each text (a text shorter than that, whole)."""
    found = set()
    for text_ in texts:
        data = text_.encode()
        found |= {data[i:i + size] for i in range(max(1, len(data) - size + 1))}
    return found


def test_a_backup_taken_before_withdrawal_holds_nothing_of_the_client(hs_factory, both_databases, tmp_path,
                                                                      zoom_stub, smtp_sink, request):
    from models import ClientMemory, Consent, SearchVocabulary, TranscriptPassage
    server = request.getfixturevalue("postgres_server") if not both_databases.startswith("sqlite") else None
    smtp_sink.clear()
    hs = hs_factory(both_databases, zoom_stub=zoom_stub, smtp_url=smtp_sink.url, **ENGINES)
    delivered_session(hs, zoom_stub, smtp_sink, scopes=None, fixture="recording_completed")
    with hs.db() as db:
        client = db.exec(select(Client)).one()
        transcript = db.exec(select(Transcript)).one()
        summary = db.exec(select(Summary)).one()
        memory = db.exec(select(ClientMemory)).one()
        passages = db.exec(select(TranscriptPassage)).all()

    def strings(value):
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        # The client's words: sentences, not the ids and dates stored beside them.
        return [value] if isinstance(value, str) and len(value) >= 12 and " " in value else []

    words = ([transcript.text, client.name, client.email] + [p.text for p in passages]
             + strings(summary.client_tier) + strings(memory.data))
    assert len(words) > 10 and all(words)
    windows = _windows(words)
    backup, restored = _database_copy(both_databases, tmp_path, server)
    vault_root = Path(hs.rt.settings.storage_url.removeprefix("file://"))
    # The vault's files, its key store aside (README: a key record and the master key together
    # open the data again, so keys/ is kept out of long-lived backups).
    vault_files = {p: p.read_bytes() for p in vault_root.rglob("*")
                   if p.is_file() and "keys" not in p.relative_to(vault_root).parts}
    vault_copy = b"".join(vault_files.values())
    objects = [p for p in vault_files if client.id in p.parts]
    assert objects
    assert windows and _windows([transcript.text])  # something to look for

    hs.run("consent", "withdraw", "--client-email", CLIENT_EMAIL)
    hs.drain()
    for name, copy in (("database", backup), ("vault", vault_copy)):
        assert [w for w in windows if w in copy] == [], name
    for path in objects:  # each object of theirs, put back from the copy, opens no more
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(vault_files[path])
        with pytest.raises(ObjectErased):
            list(hs.rt.vault.open(path.relative_to(vault_root).as_posix()))
    # The restored copy, read with the keys that remain: nothing of the client opens.
    engine = make_engine(restored)
    sealing.bind(engine, FieldKeys(hs.rt.vault))
    models = (Client, Consent, CoachingSession, Transcript, TranscriptPassage, Summary, ClientMemory,
              OutboundMessage, InboxEvent, SearchVocabulary)
    with Session(engine) as db:
        theirs = [(m.__name__, attr, getattr(row, attr)) for m in models for row in db.exec(select(m))
                  if row.__sealed_owner__() == client.id for attr, *_ in sealing._sealed_columns(m)]
        assert theirs and all(value is None for _, _, value in theirs), [t for t in theirs if t[2] is not None][:3]
        opened = " ".join(str(getattr(row, attr)) for m in models + (PrivateNote,) for row in db.exec(select(m))
                          for attr, *_ in sealing._sealed_columns(m))
    engine.dispose()
    assert [w for w in windows if w.decode(errors="ignore") in opened] == []


class MaildirSink:
    """The embedded Maildir read as the tests read the SMTP sink: through the mailer, which
    opens what it kept sealed."""

    def __init__(self, hs):
        self.hs = hs

    @property
    def messages(self):
        return self.hs.rt.mailer.kept()

    def to(self, address):
        return [m for m in self.messages if m["To"] == address]


def test_the_maildir_keeps_mail_sealed_and_forgets_an_erased_clients(hs_factory, tmp_path, zoom_stub,
                                                                      caplog):
    # The embedded outbox (no SMTP_URL): every token and download credential of a full run,
    # and the client's words and address, are in no file under var/ (database, Maildir, vault)
    # nor in the logs; what the Maildir holds opens through the mailer only.
    import logging
    from tests.portalhelpers import body_of, links_in
    from tests.test_dashboard import CSRF
    caplog.set_level(logging.DEBUG)
    hs = hs_factory(f"sqlite:///{tmp_path / 'var' / 'holdspace.db'}", zoom_stub=zoom_stub, **ENGINES)
    sink = MaildirSink(hs)
    payload, _ = delivered_session(hs, zoom_stub, sink, scopes=None, fixture="recording_completed")
    form = hs.http.get("/coach/login").get_data(as_text=True)
    hs.http.post("/coach/login", data={"email": "coach@example.com", "csrf_token": CSRF.search(form).group(1)})
    hs.drain()
    mails = sink.messages
    tokens = {url.rsplit("/", 1)[1] for m in mails for url in links_in(m)}
    tokens |= {part.split()[0] for m in mails for part in body_of(m).split("/coach/auth/")[1:]}
    assert len(tokens) >= 2, tokens  # the session page's and the sign-in's
    with hs.db() as db:
        phrase = db.exec(select(Transcript)).one().text.split(". ")[0][:40]
        client = db.exec(select(Client)).one()
    secrets_ = tokens | {payload["download_token"], CLIENT_EMAIL, phrase}
    on_disk = b"".join(p.read_bytes() for p in (tmp_path / "var").rglob("*")
                       if p.is_file() and not p.name.endswith((".sock", ".pid")))
    logged = caplog.text
    assert [s for s in secrets_ if s.encode() in on_disk] == []
    assert [s for s in secrets_ if s in logged] == []
    box = tmp_path / "var" / "outbox"
    assert sum(1 for _ in box.glob("new/*")) == len(mails) >= 3
    # Withdrawal takes the client's mail out of the Maildir; the receipt still goes out.
    hs.run("consent", "withdraw", "--client-email", CLIENT_EMAIL)
    hs.drain()
    left = sink.messages
    assert [m["Subject"] for m in left if m["To"] == CLIENT_EMAIL and "receipt" not in m["Subject"].lower()] == []
    assert any(m["To"] == CLIENT_EMAIL for m in left)  # the receipt
    assert not any(client.id in m.get("X-Holdspace-Client", "") and "receipt" not in m["Subject"].lower()
                   for m in left)
    assert sum(1 for _ in box.glob("new/*")) == len(left)


def test_a_deleted_session_leaves_the_memory_and_the_briefing(hs, zoom_stub, smtp_sink):
    from models import ClientMemory
    from models.db import session_scope
    from workers.briefing import build
    from workers.erasure import run_erasure, start_session_erasure
    delivered_session(hs, zoom_stub, smtp_sink, scopes=None, fixture="recording_completed")
    with hs.db() as db:
        session = db.exec(select(CoachingSession)).one()
        memory = db.exec(select(ClientMemory)).one()
    made_here = [c for c in memory.data["commitments"] if c["made_in"]["session_id"] == session.id]
    assert made_here and memory.sessions_seen == [session.id]
    with session_scope(hs.rt.engine) as db:
        assert any(c["what"] in build(db, session.coach_id, session.client_id).text()
                   for c in made_here)
        receipt = start_session_erasure(db, session.coach_id, session.id, reason="coach_request",
                                        actor="coach")
    run_erasure(receipt.id)
    with hs.db() as db:
        memory = db.exec(select(ClientMemory)).one()
        assert memory.data["commitments"] == [] and memory.sessions_seen == []
        assert memory.data["session_ids"] == [] and not memory.data["themes"]
        brief = build(db, session.coach_id, session.client_id)
    assert not any(c["what"] in brief.text() for c in made_here)
