"""The contract's commands: exit 0 and a useful line on success, one clear line on stderr and
a non-zero status on bad input; and `audit verify` finding the first broken link."""

import pytest
from sqlalchemy import text
from sqlmodel import select

from models import AuditEvent, Client, Coach, Consent


@pytest.fixture
def hs(hs_factory, both_databases):
    return hs_factory(both_databases)


def invoke(hs, *args):
    return hs.cli.invoke(args=list(args))


def test_init_db_is_repeatable(hs):
    assert invoke(hs, "init-db").exit_code == 0
    assert invoke(hs, "init-db").exit_code == 0


def test_coach_client_consent_lifecycle(hs):
    coach_id = hs.run("coach", "add", "--email", "Coach@Example.com", "--name", "Casey",
                      "--slack-user-id", "U123", "--zoom-user-id", "Z123", "--google-user-id", "G1")
    client_id = hs.run("client", "add", "--coach-email", "coach@example.com", "--email",
                       "robin@example.com", "--name", "Robin")
    assert len(coach_id) == 32 and len(client_id) == 32
    out = hs.run("consent", "grant", "--client-email", "robin@example.com", "--method", "written")
    assert "record,transcribe,summarise,share_with_client" in out
    hs.run("consent", "grant", "--client-email", "robin@example.com", "--method", "verbal_attested",
           "--scopes", "record")
    with hs.db() as db:
        coach = db.exec(select(Coach)).one()
        assert coach.email == "coach@example.com" and coach.slack_user_id == "U123"
        consents = db.exec(select(Consent).order_by(Consent.granted_at)).all()
        assert [c.scopes for c in consents] == ["record,transcribe,summarise,share_with_client", "record"]
        assert consents[0].withdrawn_at is not None and consents[1].withdrawn_at is None
        assert consents[1].method == "verbal_attested" and len(consents[1].text_sha256) == 64
    out = hs.run("consent", "withdraw", "--client-email", "robin@example.com")
    assert "data deleted, receipt" in out
    with hs.db() as db:
        assert all(c.withdrawn_at for c in db.exec(select(Consent)))
        assert db.exec(select(Client)).one().withdrawn_at is not None
        actions = [e.action for e in db.exec(select(AuditEvent).order_by(AuditEvent.id))]
    assert [a for a in actions if a.split(".")[0] in ("coach", "client", "consent", "erasure")] == [
        "coach.added", "client.added", "consent.granted", "consent.granted", "consent.withdrawn",
        "erasure.requested", "erasure.completed"]
    assert "link.issued" in actions  # the verbal consent's confirmation to the client


@pytest.mark.parametrize("args, message", [
    (("coach", "add", "--email", "not-an-email", "--name", "X"), "not an email address"),
    (("client", "add", "--coach-email", "nobody@example.com", "--email", "a@b.c", "--name", "A"), "no coach"),
    (("consent", "grant", "--client-email", "ghost@example.com", "--method", "written"), "no client"),
    (("consent", "grant", "--client-email", "robin@example.com", "--method", "written",
      "--scopes", "record,telepathy"), "unknown scope"),
    (("consent", "grant", "--client-email", "robin@example.com", "--method", "written",
      "--scopes", "transcribe"), "need the record scope"),
    (("consent", "grant", "--client-email", "robin@example.com", "--method", "shouted"), "Invalid value"),
    (("consent", "withdraw", "--client-email", "ghost@example.com"), "no client"),
])
def test_bad_input_is_one_clear_line_and_nonzero(hs, args, message):
    hs.run("coach", "add", "--email", "coach@example.com", "--name", "Casey")
    hs.run("client", "add", "--coach-email", "coach@example.com", "--email", "robin@example.com", "--name", "R")
    result = invoke(hs, *args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_duplicates_are_refused(hs):
    hs.run("coach", "add", "--email", "coach@example.com", "--name", "Casey", "--zoom-user-id", "Z1")
    again = invoke(hs, "coach", "add", "--email", "other@example.com", "--name", "O", "--zoom-user-id", "Z1")
    assert again.exit_code != 0 and "already exists" in again.output
    hs.run("client", "add", "--coach-email", "coach@example.com", "--email", "r@example.com", "--name", "R")
    again = invoke(hs, "client", "add", "--coach-email", "coach@example.com", "--email", "R@example.com", "--name", "R")
    assert again.exit_code != 0 and "already a client" in again.output


def test_client_shared_by_two_coaches_needs_coach_email(hs):
    for coach in ("a@example.com", "b@example.com"):
        hs.run("coach", "add", "--email", coach, "--name", coach)
        hs.run("client", "add", "--coach-email", coach, "--email", "shared@example.com", "--name", "S")
    result = invoke(hs, "consent", "grant", "--client-email", "shared@example.com", "--method", "written")
    assert result.exit_code != 0 and "--coach-email" in result.output
    hs.run("consent", "grant", "--client-email", "shared@example.com", "--method", "written",
           "--coach-email", "b@example.com")
    with hs.db() as db:
        (consent,) = db.exec(select(Consent)).all()
        coach_b = db.exec(select(Coach).where(Coach.email == "b@example.com")).one()
        assert consent.coach_id == coach_b.id


def test_audit_verify_finds_the_first_broken_link(hs):
    hs.run("coach", "add", "--email", "coach@example.com", "--name", "Casey")
    for i in range(3):
        hs.run("client", "add", "--coach-email", "coach@example.com", "--email", f"c{i}@example.com", "--name", f"C{i}")
    assert "intact: 4 events" in hs.run("audit", "verify")
    with hs.db() as db:
        third = db.exec(select(AuditEvent).order_by(AuditEvent.id).offset(2)).first()
        db.execute(text("UPDATE auditevent SET subject = 'client:forged' WHERE id = :i"), {"i": third.id})
        db.commit()
    result = invoke(hs, "audit", "verify")
    assert result.exit_code == 1
    assert f"broken at event {third.id}" in result.output and "2 events before it" in result.output


def test_audit_verify_notices_a_deleted_row(hs):
    hs.run("coach", "add", "--email", "coach@example.com", "--name", "Casey")
    hs.run("client", "add", "--coach-email", "coach@example.com", "--email", "c@example.com", "--name", "C")
    hs.run("client", "add", "--coach-email", "coach@example.com", "--email", "d@example.com", "--name", "D")
    with hs.db() as db:
        second = db.exec(select(AuditEvent).order_by(AuditEvent.id).offset(1)).first()
        db.execute(text("DELETE FROM auditevent WHERE id = :i"), {"i": second.id})
        db.commit()
    result = invoke(hs, "audit", "verify")
    assert result.exit_code == 1 and "previous-hash link" in result.output


def _events(hs, n: int = 3) -> None:
    hs.run("coach", "add", "--email", "coach@example.com", "--name", "Casey")
    for i in range(n):
        hs.run("client", "add", "--coach-email", "coach@example.com", "--email", f"c{i}@example.com",
               "--name", f"C{i}")


def test_audit_verify_refuses_a_row_rewritten_and_rechained_without_the_key(hs):
    # Whoever can write the database recomputes every hash after the row they edit, as the
    # old SHA-256 chain allowed; without the key outside the database it does not verify.
    import hashlib
    from models.audit import canonical
    _events(hs)
    with hs.db() as db:
        rows = db.exec(select(AuditEvent).order_by(AuditEvent.id)).all()
        prev = rows[0].hash
        for row in rows[1:]:
            subject = "client:forged" if row is rows[1] else row.subject
            new = hashlib.sha256(canonical(prev, at=row.at, actor=row.actor, action=row.action,
                                           subject=subject, coach_id=row.coach_id, ip=row.ip,
                                           detail=row.detail or {})).hexdigest()
            db.execute(text("UPDATE auditevent SET subject = :s, prev_hash = :p, hash = :h WHERE id = :i"),
                       {"s": subject, "p": prev, "h": new, "i": row.id})
            prev = new
        db.commit()
    result = invoke(hs, "audit", "verify")
    assert result.exit_code == 1 and f"broken at event {rows[1].id}" in result.output


def test_audit_verify_notices_the_newest_rows_deleted_after_an_anchor(hs):
    from workers.anchors import anchor_head
    _events(hs)
    head = anchor_head(hs.rt, "test")
    assert anchor_head(hs.rt, "test") == head  # anchoring the same head again is harmless
    assert "intact: 4 events, 1 anchors" in hs.run("audit", "verify")
    hs.run("client", "add", "--coach-email", "coach@example.com", "--email", "late@example.com", "--name", "L")
    assert "intact: 5 events" in hs.run("audit", "verify")  # rows after the anchor are fine
    with hs.db() as db:
        db.execute(text("DELETE FROM auditevent WHERE id >= :i"), {"i": head[0]})
        db.commit()
    result = invoke(hs, "audit", "verify")
    assert result.exit_code == 1 and "anchored event is missing" in result.output


def test_a_forged_anchor_is_ignored_and_an_erasure_anchors_the_chain(hs):
    import json
    from workers.anchors import anchored
    _events(hs, 1)
    hs.rt.vault.write_once("audit-anchors/000000000999-forged.json",
                           json.dumps({"event_id": 999, "hash": "0" * 64, "mac": "0" * 64}).encode())
    assert anchored(hs.rt) == []
    assert "intact: 2 events, 0 anchors" in hs.run("audit", "verify")
    hs.run("consent", "grant", "--client-email", "c0@example.com", "--method", "written")
    hs.run("consent", "withdraw", "--client-email", "c0@example.com")
    hs.drain()
    with hs.db() as db:
        done = db.exec(select(AuditEvent).where(AuditEvent.action == "erasure.completed")).one()
    assert (done.id, done.hash) in anchored(hs.rt)
