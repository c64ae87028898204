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
