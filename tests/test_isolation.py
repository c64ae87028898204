"""No coach reaches another coach's clients, sessions, notes, objects or search results.

Coaches A and B each have clients, sessions (delivered and failed), transcripts, both summary
tiers and private notes: A's come through Zoom and the real pipeline, B's are built by hand. Then,
signed in as B, every dashboard route in the app's url_map is requested with every method it
takes and every one of A's ids, emails and search words in every path parameter, query
parameter and form field. Each answer must be a refusal (401/403/404/410, or a redirect to
sign-in) or a page of B's own that carries nothing of A's; and A's data must be as it was.

The crawl is built from the url_map, so a new dashboard route is crawled without touching this
file; adding the Slack command means adding its prefix to CRAWLED_PREFIXES and a `bodies` entry
that turns each value into signed `/holdspace <command> <value>` requests."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import quote, urlsplit

import pytest
from sqlmodel import select

from models import (Client, ClientMemory, CoachInsight, CoachingSession, Consent, DeletionReceipt, Link,
                    PrivateNote, Summary, Transcript, TranscriptPassage)
from models import queries as q
from tests.portalhelpers import delivered_session
from tests.test_dashboard import CSRF, FAILING_SCOPES, coach_id_of, engines_env, failed_session, page, sign_in
from tests.zoomhelpers import CLIENT_EMAIL, COACH_EMAIL

CRAWLED_PREFIXES = ("/coach",)
# Crawled last: it ends the crawler's own sign-in.
SIGNS_OUT = frozenset({"coach.logout"})
ANSWERS = {200, 302, 303, 401, 403, 404, 405, 410}

A_NOTE = "Marmalade hypothesis: Robin stalls whenever money comes up."
# Words only A's transcripts hold (tests/zoomstub.py's dialogue); B's talk is of other things.
A_WORDS = ("workload", "standup", "brushed", "one-to-one", "priority")

B_EMAIL, B_NAME, B_ZOOM = "blair@bee.example", "Blair Bee", "zB33cOachXyZ0000"
B_CLIENT_EMAIL, B_CLIENT_NAME = "quinn@marsh.example", "Quinn Marsh"
B_LINES = ["I keep putting off the greenhouse repairs.", "What would the allotment give you this spring?",
           "Time outdoors, and a reason to switch off from email.", "Let's plan the seed order together."]
B_NOTE = "Quinn brightens when talking about the allotment."


@dataclass
class Coach:
    id: str
    secrets: set[str] = field(default_factory=set)      # strings that must never reach the other
    values: list[str] = field(default_factory=list)     # what the crawler substitutes


@pytest.fixture
def hs(hs_factory, both_databases, zoom_stub, smtp_sink):
    """On SQLite and on Postgres: search and every scoped query run different SQL on each."""
    smtp_sink.clear()
    return hs_factory(both_databases, zoom_stub=zoom_stub, smtp_url=smtp_sink.url,
                      **engines_env(PUBLIC_BASE_URL="http://holdspace.test"))


def coach_a(hs, zoom_stub, smtp_sink) -> Coach:
    """Casey Coach and Robin Client through Zoom: one session delivered with a transcript and both
    tiers, one that failed, a private note, live links."""
    from workers import coaching
    delivered_session(hs, zoom_stub, smtp_sink, fixture="recording_completed", scopes=None)
    coach_id = coach_id_of(hs)
    hs.run("consent", "grant", "--client-email", CLIENT_EMAIL, "--method", "written", "--scopes", FAILING_SCOPES)
    failed_session(hs, zoom_stub)
    with hs.db() as db:
        sessions = q.sessions_of(db, coach_id)
        assert sorted(s.state for s in sessions) == ["delivered", "failed"]
        delivered = next(s for s in sessions if s.state == "delivered")
    note = coaching.add_note(hs.rt, coach_id, delivered.id, A_NOTE, actor=f"coach:{coach_id}")
    with hs.db() as db:
        client = q.client_by_email(db, coach_id, CLIENT_EMAIL)
        link_ids = [lnk.id for lnk in db.exec(select(Link).where(Link.coach_id == coach_id))]
        passages = db.exec(select(TranscriptPassage).where(TranscriptPassage.coach_id == coach_id)).all()
    assert passages and link_ids
    ids = [coach_id, client.id, note.id, *[s.id for s in sessions], *link_ids]
    emails = [COACH_EMAIL, CLIENT_EMAIL]
    secrets = {*ids, *emails, "Casey Coach", "Robin Client", "Sam Rivera", A_NOTE[:30], *A_WORDS}
    return Coach(coach_id, secrets, [*ids, *emails, *A_WORDS, "workload manager", client.name])


def coach_b(hs) -> Coach:
    """Blair Bee (another Zoom user) and Quinn Marsh, from the command line, with a session, its
    transcript, both tiers, memory, a note and a link written straight into the database."""
    from workers import links
    coach_id = hs.run("coach", "add", "--email", B_EMAIL, "--name", B_NAME, "--zoom-user-id", B_ZOOM)
    client_id = hs.run("client", "add", "--coach-email", B_EMAIL, "--email", B_CLIENT_EMAIL, "--name", B_CLIENT_NAME)
    hs.run("consent", "grant", "--client-email", B_CLIENT_EMAIL, "--method", "written")
    started = datetime(2024, 6, 3, 9, 0, tzinfo=timezone.utc)
    segments = [{"start": 4.0 * i, "end": 4.0 * i + 3.5, "speaker": B_NAME if i % 2 else B_CLIENT_NAME,
                 "text": line} for i, line in enumerate(B_LINES)]
    with hs.db() as db:
        session = CoachingSession(coach_id=coach_id, client_id=client_id, platform="zoom",
                                  platform_uuid="bB0bUuid0000000000000==", topic="Spring planning",
                                  started_at=started, duration_minutes=50, state="delivered")
        failed = CoachingSession(coach_id=coach_id, client_id=client_id, platform="zoom",
                                 platform_uuid="bB0bUuid0000000000001==", topic="Summer check-in",
                                 started_at=started, state="failed", error="The download was not the recording.")
        db.add(session)
        db.add(failed)
        db.flush()
        db.add(Transcript(coach_id=coach_id, client_id=session.client_id, session_id=session.id, engine="platform:zoom", language="en",
                          segments=segments, text=" ".join(B_LINES)))
        db.add(TranscriptPassage(coach_id=coach_id, client_id=client_id, session_id=session.id,
                                 start=0.0, end=16.0, text=" ".join(B_LINES)))
        db.add(Summary(coach_id=coach_id, client_id=session.client_id, session_id=session.id, engine="offline", basic=True, client_tier={
            "overview": "Quinn talked about the greenhouse.", "themes": ["greenhouse"], "insights": [],
            "decisions": [], "commitments": [{"what": "order seeds", "who": B_CLIENT_NAME, "by_when": None,
                                              "source_timestamp": 12.0}],
            "homework": [], "open_threads": [], "key_moments": [], "goals_touched": []}))
        db.add(CoachInsight(coach_id=coach_id, client_id=session.client_id, session_id=session.id, engine="offline",
                            coach_tier={"observations": ["Energy rose around the allotment."]}))
        db.add(ClientMemory(coach_id=coach_id, client_id=client_id, data={
            "commitments": [{"what": "order seeds", "who": B_CLIENT_NAME, "status": "open",
                             "made_in": {"session_id": session.id, "timestamp": 12.0, "text": "seed order"}}],
            "themes": [{"name": "greenhouse", "session_ids": [session.id]}], "last_open_threads": []}))
        db.add(PrivateNote(coach_id=coach_id, client_id=client_id, session_id=session.id, body=B_NOTE))
        links.issue(db, hs.rt.settings.secret_key, coach_id=coach_id, client_id=client_id, purpose="session",
                    session_id=session.id, ttl_seconds=3600)
        db.commit()
        ids = [coach_id, client_id, session.id, failed.id]
    return Coach(coach_id, {*ids, B_EMAIL, B_CLIENT_EMAIL, B_CLIENT_NAME, "greenhouse", B_NOTE[:25]}, ids)


def snapshot(hs, coach_id: str) -> dict:
    """Everything of one coach that a dashboard action could change."""
    with hs.db() as db:
        def rows(model, *columns):
            return sorted(tuple(str(getattr(r, c)) for c in columns)
                          for r in db.exec(select(model).where(model.coach_id == coach_id)))
        return {
            "sessions": rows(CoachingSession, "id", "state", "error", "client_id"),
            "notes": rows(PrivateNote, "id", "body", "session_id"),
            "links": rows(Link, "id", "revoked_at", "expires_at"),
            "consents": rows(Consent, "id", "withdrawn_at"),
            "receipts": rows(DeletionReceipt, "id"),
            "transcripts": rows(Transcript, "id"),
            "summaries": rows(Summary, "id"),
            "insights": rows(CoachInsight, "id"),
            "memory": rows(ClientMemory, "id", "data"),
        }


# --- the crawl ---------------------------------------------------------------------------------

def crawl_targets(app) -> list[tuple[str, object]]:
    """(method, rule) for every crawled route in the url_map, sign-out last."""
    targets = [(method, rule) for rule in app.url_map.iter_rules()
               if rule.rule.startswith(CRAWLED_PREFIXES)
               for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return sorted(targets, key=lambda t: t[1].endpoint in SIGNS_OUT)


def path_for(rule, value: str) -> str:
    path = rule.rule
    for arg in rule.arguments:
        path = path.replace(f"<{arg}>", quote(value, safe="")).replace(f"<path:{arg}>", quote(value))
        path = path.replace(f"<int:{arg}>", "1")
    assert "<" not in path, path
    return path


def with_every_field(value: str) -> dict:
    """The value in every field a dashboard form or query could read."""
    names = ("q", "at", "page", "email", "session_id", "client_id", "note_id", "id", "body", "next", "back")
    return {**{n: value for n in names}, "confirm": "yes"}


class Crawler:
    def __init__(self, hs, http, victim: Coach, crawler_id: str):
        self.hs, self.http, self.victim, self.crawler_id = hs, http, victim, crawler_id
        self.seen: list[tuple[str, str, int]] = []

    def own_clients(self) -> set[str]:
        """The names and addresses of the crawling coach's own clients: B may add a client
        with any address (A's client's among them), and B's pages then rightly show it."""
        with self.hs.db() as db:
            return {v for c in db.exec(select(Client).where(Client.coach_id == self.crawler_id))
                    for v in (c.email, c.name) if v}

    def token(self) -> str:
        return CSRF.search(page(self.http, "/coach")).group(1)

    def check(self, method: str, path: str, value: str, resp) -> None:
        where = f"{method} {path} [{value}] → {resp.status_code}"
        assert resp.status_code in ANSWERS, where
        allowed = {s for s in self.victim.secrets if s in value or value in s}  # the crawler's own input
        allowed |= {s for s in self.victim.secrets if s in self.own_clients()}  # a client B added, B's own
        shown = resp.get_data(as_text=True) + resp.headers.get("Location", "")
        leaked = sorted(s for s in self.victim.secrets - allowed if s.lower() in shown.lower())
        assert not leaked, f"{where} shows {leaked}"
        if resp.status_code in (302, 303):
            s = self.hs.rt.settings
            if resp.headers["Location"].startswith((s.zoom_authorize_url, s.slack_authorize_url,
                                                    s.google_oauth_auth_url)):
                return  # off to a platform's consent page, with a state of the crawler's own
            target = urlsplit(resp.headers["Location"]).path
            assert target.startswith("/coach"), where
            landing = self.http.get(target)  # where a browser goes next (flashed messages land there)
            self.check("GET", target, value, landing)

    def request(self, method: str, rule, value: str) -> None:
        path = path_for(rule, value)
        fields = with_every_field(value)
        if method == "GET":
            resp = self.http.get(path, query_string=fields)
        else:
            resp = self.http.post(path, data={**fields, "csrf_token": self.token()})
        self.seen.append((method, rule.rule, resp.status_code))
        self.check(method, path, value, resp)

    def crawl(self) -> None:
        for method, rule in crawl_targets(self.hs.app):
            for value in self.victim.values:
                if rule.endpoint in SIGNS_OUT:
                    sign_in(self.hs, self.crawler_id, self.http)
                self.request(method, rule, value)


def test_coach_b_reaches_nothing_of_coach_a(hs, zoom_stub, smtp_sink):
    a = coach_a(hs, zoom_stub, smtp_sink)
    b = coach_b(hs)
    before = snapshot(hs, a.id)
    b_before = snapshot(hs, b.id)

    # The values are live: signed in as A they open A's pages, and A's search finds A's words.
    as_a = sign_in(hs, a.id)
    delivered = next(s for s in before["sessions"] if s[1] == "delivered")[0]
    opened = page(as_a, f"/coach/sessions/{delivered}")
    assert "workload" in opened and A_NOTE in opened
    assert delivered in page(as_a, "/coach/search?q=workload")
    # And B's own pages do show B's data, so "nothing of A's" is not an empty page.
    as_b = sign_in(hs, b.id)
    mine = page(as_b, "/coach")
    assert B_CLIENT_NAME in mine and "Summer check-in" in mine and 'id="retry-' in mine
    assert "greenhouse" in page(as_b, "/coach/search?q=greenhouse")

    crawler = Crawler(hs, as_b, a, b.id)
    crawler.crawl()
    crawled = {(m, r) for m, r, _ in crawler.seen}
    assert len(crawled) == len(crawl_targets(hs.app)) >= 15
    for route in ("/coach/sessions/<session_id>", "/coach/sessions/<session_id>/notes",
                  "/coach/sessions/<session_id>/retry", "/coach/sessions/<session_id>/delete",
                  "/coach/clients/<client_id>", "/coach/search", "/coach/audit"):
        assert any(r == route for _, r in crawled), route
    # A's own ids never opened anything of A's for B.
    assert all(status in (401, 404, 410) for m, r, status in crawler.seen
               if r.startswith(("/coach/sessions/", "/coach/clients/", "/coach/auth/")))

    # Afterwards B's own pages (dashboard, every page of the audit trail, searches) still show
    # nothing of A's.
    sign_in(hs, b.id, as_b)
    for path in ["/coach", *[f"/coach/search?q={quote(w)}" for w in A_WORDS]]:
        crawler.check("GET", path, path, as_b.get(path))
    trail, pages = "/coach/audit?page=1", 0
    while trail:
        resp = as_b.get(trail)
        crawler.check("GET", trail, trail, resp)
        older = re.search(r'href="([^"]+)" id="older"', resp.get_data(as_text=True))
        trail, pages = older and older.group(1).replace("&amp;", "&"), pages + 1
    assert pages > 1  # the crawl left a long trail, all of it B's own
    assert snapshot(hs, a.id) == before, "B's requests changed A's data"
    assert snapshot(hs, b.id) == b_before
    hs.drain()  # nothing queued by B's requests touches A either
    assert snapshot(hs, a.id) == before


# --- the Slack command ---------------------------------------------------------------------------

def slack_lines(value: str, confirm) -> list[str]:
    """Every /holdspace subcommand with one of A's values wherever it takes an argument."""
    from bot.commands import COMMANDS
    lines = [f"{name} {value}" for name in COMMANDS]
    lines += [f"consent status {value}", f"consent verbal {value}", f"assign {value} {value}",
              f"assign {value} {B_CLIENT_EMAIL}", f"note {value} {value}", f"sessions {value}",
              f"delete session {value}", f"delete client {value}",
              f"delete session {value} confirm {confirm('session', value)}",
              f"delete client {value} confirm {confirm('client', value)}", "clients", "status"]
    return lines


@pytest.mark.parametrize("workspaces", ["one workspace", "a workspace each"])
def test_slack_commands_as_b_reach_nothing_of_a(hs_factory, database_url, zoom_stub, smtp_sink, workspaces):
    """With one workspace (SLACK_BOT_TOKEN), and with holdspace installed in A's workspace and in
    B's: B's commands, and B's Slack user speaking from A's workspace, reach nothing of A's."""
    import time
    from urllib.parse import urlencode

    from slack_sdk.signature import SignatureVerifier

    from bot.commands import confirm_code
    from tests.slackstub import BOT_TOKEN, SlackStub
    slack = SlackStub().start()
    try:
        smtp_sink.clear()
        secret = "isolation-slack-secret"
        each = workspaces == "a workspace each"
        mode = slack.env() if each else {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_BASE_URL": slack.api_base_url}
        hs = hs_factory(database_url, zoom_stub=zoom_stub, smtp_url=smtp_sink.url, SLACK_SIGNING_SECRET=secret,
                        **mode, **engines_env(PUBLIC_BASE_URL="http://holdspace.test"))
        a = coach_a(hs, zoom_stub, smtp_sink)
        b = coach_b(hs)
        if each:
            from tests.test_slack_install import install, signed_in as slack_signed_in
            install(hs, slack, "T0AAAAAA", "U0CASEY", slack_signed_in(hs, a.id))
            install(hs, slack, "T0BBBBBB", "U0BLAIR", slack_signed_in(hs, b.id))
        else:
            from models import Coach as CoachRow
            with hs.db() as db:
                row = db.get(CoachRow, b.id)
                row.slack_user_id = "U0BLAIR"
                db.add(row)
                db.commit()
        before = snapshot(hs, a.id)
        # B's Slack user in B's workspace; with a workspace each, also B's user in A's workspace.
        speakers = [("T0BBBBBB", "U0BLAIR")] + ([("T0AAAAAA", "U0BLAIR")] if each else [])

        def confirm(what, target):
            return confirm_code(hs.rt.settings.secret_key, b.id, f"{what}:{target.lower()}")

        replies, asked = [], {}
        for (team, user), value in ((speaker, value) for speaker in speakers for value in a.values):
            for line in slack_lines(value, confirm):
                hook = f"r{len(asked)}"
                asked[hook] = (line, value)
                body = urlencode({"command": "/holdspace", "text": line, "user_id": user, "team_id": team,
                                  "response_url": slack.response_url(hook)}).encode()
                ts = str(int(time.time()))
                resp = hs.http.post("/slack/commands", data=body, content_type="application/x-www-form-urlencoded",
                                    headers={"X-Slack-Request-Timestamp": ts,
                                             "X-Slack-Signature": SignatureVerifier(secret).generate_signature(
                                                 timestamp=ts, body=body)})
                assert resp.status_code == 200, line
                replies.append((line, value, resp.get_json()["text"]))
        hs.drain()
        replies += [(*asked[r["hook"]], r.get("text", "")) for r in slack.responses]
        assert len(slack.responses) >= 2 * len(a.values)  # search and brief did answer, through response_url
        for line, value, text in replies:
            allowed = {s for s in a.secrets if value and (s in value or value in s)}
            leaked = sorted(s for s in a.secrets - allowed if s.lower() in text.lower())
            assert not leaked, f"/holdspace {line} shows {leaked}"
        assert snapshot(hs, a.id) == before, "B's commands changed A's data"
        # And nothing of A's reached B's Slack DMs either.
        for dm in slack.dms_to("U0BLAIR"):
            assert not [s for s in a.secrets if s.lower() in dm.lower()], dm
        if each:  # and B was only ever spoken to with B's own workspace's bot
            assert set(slack.tokens_used_for("U0BLAIR")) <= {slack.live_token("T0BBBBBB")}
    finally:
        slack.stop()


# --- coaches on their own Zoom accounts ----------------------------------------------------------

def test_a_coach_on_zoom_account_b_reaches_nothing_of_a_coach_on_account_a(hs_factory, database_url,
                                                                           zoom_stub, smtp_sink):
    """Both coaches connected their own Zoom, in two Zoom accounts. B's account's events naming A's
    host or meeting, and B's dashboard crawled with A's ids, Zoom user and account, reach nothing
    of A's; A's connection and data are as they were."""
    from models import ZoomConnection
    from tests.test_zoom_connect import connect
    from tests.zoomstub import load_fixture, register_fixture_files
    from tests.zoomhelpers import post_zoom
    a_user, a_account, b_user, b_account = "zIsoUserA0000001", "acctIsoA", "zIsoUserB0000002", "acctIsoB"
    a_client_email = "robin@alpha.example"  # the empty dashboard's own example address is client@example.com
    zoom_stub.add_user(a_user, a_account, COACH_EMAIL)
    zoom_stub.add_user(b_user, b_account, B_EMAIL)
    smtp_sink.clear()
    hs = hs_factory(database_url, smtp_url=smtp_sink.url, **zoom_stub.app_env(),
                    **engines_env(PUBLIC_BASE_URL="http://holdspace.test"))
    a_id = hs.run("coach", "add", "--email", COACH_EMAIL, "--name", "Casey Coach")
    hs.run("client", "add", "--coach-email", COACH_EMAIL, "--email", a_client_email, "--name", "Robin Client")
    hs.run("consent", "grant", "--client-email", a_client_email, "--method", "written")
    connect(hs, zoom_stub, a_id, a_user)
    payload, _ = load_fixture("recording_completed", zoom_stub.base_url)
    payload["payload"]["account_id"] = a_account
    payload["payload"]["object"]["host_id"] = a_user
    register_fixture_files(zoom_stub, payload, invitees=[a_client_email])
    assert post_zoom(hs.http, payload).status_code == 200
    hs.drain()
    b_id = hs.run("coach", "add", "--email", B_EMAIL, "--name", B_NAME)
    connect(hs, zoom_stub, b_id, b_user)
    with hs.db() as db:
        a_session, = q.sessions_of(db, a_id)
        a_client = q.client_by_email(db, a_id, a_client_email)
        a_conn = db.exec(select(ZoomConnection).where(ZoomConnection.coach_id == a_id)).one()
    assert a_session.state == "delivered"
    before, a_version = snapshot(hs, a_id), a_conn.token_version

    # Events of B's account that name A's host, and of A's account that name B's host, are no one's.
    uuid = payload["payload"]["object"]["uuid"]
    for account, host in ((b_account, a_user), (a_account, b_user)):
        crossed = json.loads(json.dumps(payload))
        crossed["payload"]["account_id"], crossed["payload"]["object"]["host_id"] = account, host
        crossed["payload"]["object"]["recording_files"] = crossed["payload"]["object"]["recording_files"][:1]
        assert post_zoom(hs.http, crossed).status_code == 200
    # A deauthorisation of B's account naming A's user ends nothing of A's.
    assert post_zoom(hs.http, {"event": "app_deauthorized", "payload": {
        "account_id": b_account, "user_id": a_user, "client_id": zoom_stub.app_client_id}}).status_code == 200
    hs.drain()
    with hs.db() as db:
        assert q.sessions_of(db, b_id) == []
        assert db.exec(select(ZoomConnection).where(ZoomConnection.coach_id == a_id)).one().status == "active"

    ids = [a_id, a_client.id, a_session.id, uuid]
    victim = Coach(a_id, {*ids, a_user, a_account, COACH_EMAIL, a_client_email, "Robin Client", *A_WORDS[:3]},
                   [*ids, a_user, a_account, a_client_email])
    as_b = sign_in(hs, b_id)
    assert "Connected to your Zoom account" in page(as_b, "/coach/zoom")
    crawler = Crawler(hs, as_b, victim, b_id)
    crawler.crawl()
    assert any(r == "/coach/zoom/callback" for _, r, _ in crawler.seen)
    assert snapshot(hs, a_id) == before, "B's requests changed A's data"
    with hs.db() as db:
        after = db.exec(select(ZoomConnection).where(ZoomConnection.coach_id == a_id)).one()
    assert (after.status, after.token_version) == ("active", a_version)
