"""holdspace installed in many Slack workspaces, against the local Slack stand-in: "Add to Slack"
through OAuth v2 (a state that is signed, spent once and tied to the browser), commands from two
workspaces answered for their own coaches and each coach's DM sent with their own workspace's
token, an unknown Slack user linked by a one-time link, the Events API (signature,
url_verification, app_uninstalled, tokens_revoked, retries), and no bot token in the database
file or the logs."""

import json
import logging
import re
import secrets
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from slack_sdk.signature import SignatureVerifier
from sqlmodel import select

from models import AuditEvent, Coach, SlackInstallation
from models.db import session_scope
from tests.portalhelpers import links_in, path_of
from tests.slackstub import APP_ID, SlackStub

SECRET = "slack-signing-secret-for-install-tests"
BASE = "http://holdspace.test"
STATE_COOKIE = "slack-app-oauth-state"
REDIRECT = "/slack/oauth_redirect"


@pytest.fixture
def slack():
    with SlackStub() as stub:
        yield stub


@pytest.fixture
def hs(hs_factory, database_url, smtp_sink, slack):
    smtp_sink.clear()
    return hs_factory(database_url, smtp_url=smtp_sink.url, SLACK_SIGNING_SECRET=SECRET,
                      PUBLIC_BASE_URL=BASE, **slack.env())


# --- driving it as Slack, a coach's browser and a client do --------------------------------------

def add_coach(hs, name: str) -> str:
    return hs.run("coach", "add", "--email", f"{name.lower()}@example.com", "--name", name)


def signed_in(hs, coach_id: str):
    """A browser signed in to the dashboard as this coach."""
    from portal.coach import login_link
    browser = hs.app.test_client()
    assert browser.get(path_of(login_link(hs.rt, coach_id))).status_code == 303
    return browser


def csrf(browser) -> str:
    page = browser.get("/coach/slack").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def begin_install(hs, slack, team: str, user: str, browser=None, team_name: str | None = None):
    """"Add to Slack" in `browser`, approved on Slack's page by `user` of `team`: (browser,
    the authorize URL, the path Slack redirects back to)."""
    browser = browser or hs.app.test_client()
    start = browser.get("/slack/install")
    assert start.status_code == 302 and start.location.startswith(slack.authorize_url)
    slack.will_install(team, user, team_name)
    approved = requests.get(start.location, allow_redirects=False, timeout=10)
    assert approved.status_code == 302
    return browser, start.location, path_of(approved.headers["Location"])


def install(hs, slack, team: str, user: str, browser=None, team_name: str | None = None):
    browser, _, back = begin_install(hs, slack, team, user, browser, team_name)
    page = browser.get(back)
    assert page.status_code == 200, page.data
    return page


def slash(hs, text: str, *, team: str, user: str) -> str:
    # Slack gives every invocation its own trigger_id, so no two requests are the same bytes.
    body = urlencode({"command": "/holdspace", "text": text, "team_id": team, "user_id": user,
                      "trigger_id": secrets.token_hex(8), "response_url": "https://hooks.slack.com/x"}).encode()
    ts = str(int(time.time()))
    resp = hs.http.post("/slack/commands", data=body, content_type="application/x-www-form-urlencoded",
                        headers={"X-Slack-Request-Timestamp": ts,
                                 "X-Slack-Signature": SignatureVerifier(SECRET).generate_signature(
                                     timestamp=ts, body=body)})
    assert resp.status_code == 200, resp.data
    assert resp.get_json()["response_type"] == "ephemeral"
    return resp.get_json()["text"]


def post_event(hs, payload=None, *, raw: bytes | None = None, secret: str = SECRET, retry: int | None = None):
    body = raw if raw is not None else json.dumps(payload).encode()
    ts = str(int(time.time()))
    headers = {"X-Slack-Request-Timestamp": ts,
               "X-Slack-Signature": SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)}
    if retry is not None:
        headers.update({"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"})
    return hs.http.post("/slack/events", data=body, content_type="application/json", headers=headers)


def callback(team: str, event: dict, event_id: str | None = None) -> dict:
    return {"type": "event_callback", "token": "legacy-verification-token", "team_id": team,
            "api_app_id": APP_ID, "event": event, "event_id": event_id or f"Ev{secrets.token_hex(5).upper()}",
            "event_time": int(time.time()),
            "authorizations": [{"enterprise_id": None, "team_id": team, "user_id": f"U0BOT{team}",
                                "is_bot": True, "is_enterprise_install": False}]}


def tell(hs, coach_id: str, subject: str) -> None:
    """A note to the coach, as every part of holdspace sends one, delivered by a worker."""
    from workers import notify
    with session_scope(hs.rt.engine) as db:
        notify.tell_coach(db, hs.rt, db.get(Coach, coach_id), key=f"test:{subject}", subject=subject,
                          body="Something to know.")
    hs.drain()


def installation(hs, team: str) -> SlackInstallation:
    with hs.db() as db:
        return db.exec(select(SlackInstallation).where(SlackInstallation.team_id == team)).one()


def sealed_token(hs, row: SlackInstallation) -> str:
    from workers.slack_installs import TOKEN_PURPOSE
    purpose = TOKEN_PURPOSE.format(enterprise_id=row.enterprise_id, team_id=row.team_id)
    return hs.rt.vault.unseal(row.bot_token_sealed, purpose).decode()


def audited(hs, action: str) -> list[AuditEvent]:
    with hs.db() as db:
        return list(db.exec(select(AuditEvent).where(AuditEvent.action == action)))


def subjects_to(smtp_sink, address: str) -> list[str]:
    return [m["Subject"] for m in smtp_sink.to(address)]


# --- installing ---------------------------------------------------------------------------------

def test_the_whole_install_flow(hs, slack):
    alex = add_coach(hs, "Alex")
    hs.run("client", "add", "--coach-email", "alex@example.com", "--email", "robin@example.com",
           "--name", "Robin Client")
    browser, authorize, back = begin_install(hs, slack, "T0ALPHA", "U0ALEX", signed_in(hs, alex), "Alpha Coaching")
    asked = parse_qs(urlsplit(authorize).query)
    assert asked["client_id"] == [slack.client_id]
    assert {"commands", "chat:write", "im:write"} <= set(asked["scope"][0].split(","))
    assert asked["redirect_uri"] == [BASE + REDIRECT] and asked["state"][0]
    page = browser.get(back)
    assert page.status_code == 200 and "Thank you" in page.get_data(as_text=True)

    (exchange,) = slack.requests_to("/api/oauth.v2.access")
    assert exchange.form()["redirect_uri"] == BASE + REDIRECT and exchange.form()["code"]
    token = slack.live_token("T0ALPHA")
    row = installation(hs, "T0ALPHA")
    assert (row.team_name, row.status, row.app_id, row.bot_user_id, row.installer_user_id) == (
        "Alpha Coaching", "active", APP_ID, slack.bot_user_of("T0ALPHA"), "U0ALEX")
    assert token not in row.bot_token_sealed and sealed_token(hs, row) == token
    with hs.db() as db:
        coach = db.get(Coach, alex)
        assert (coach.slack_user_id, coach.slack_team_id) == ("U0ALEX", "T0ALPHA")  # the installer is Alex
    (record,) = audited(hs, "slack.installed")
    assert record.coach_id == alex and record.detail["team"] == "T0ALPHA"

    # The installer's /holdspace answers from Alex's own data at once.
    assert "Robin Client" in slash(hs, "clients", team="T0ALPHA", user="U0ALEX")
    # Installing again (another browser, no one signed in) updates the workspace's one row.
    install(hs, slack, "T0ALPHA", "U0ALEX")
    with hs.db() as db:
        (row,) = db.exec(select(SlackInstallation)).all()
    assert sealed_token(hs, row) == slack.live_token("T0ALPHA") != token


def test_forged_stale_and_reused_states_store_nothing(hs, slack):
    import time_machine
    from itsdangerous import URLSafeTimedSerializer
    from workers.slack_installs import STATE_SALT
    browser, _, back = begin_install(hs, slack, "T0ALPHA", "U0ALEX")
    sent = parse_qs(urlsplit(back).query)
    code, state = sent["code"][0], sent["state"][0]

    def redirect(state_value, cookie=None, client=browser):
        if cookie is not None:
            client.set_cookie(STATE_COOKIE, cookie, path=REDIRECT)
        return client.get(REDIRECT, query_string={"code": code, "state": state_value})

    def nothing_stored():
        with hs.db() as db:
            assert db.exec(select(SlackInstallation)).all() == []
        assert slack.requests_to("/api/oauth.v2.access") == []

    forged = URLSafeTimedSerializer("not-this-deployments-key", salt=STATE_SALT).dumps({"n": "x", "c": None})
    assert redirect(forged, cookie=forged).status_code == 403       # not signed by us
    assert redirect(state[:-3] + "abc", cookie=state[:-3] + "abc").status_code == 403
    with time_machine.travel(datetime.now(timezone.utc) + timedelta(minutes=11)):
        assert redirect(state, cookie=state).status_code == 403    # stale
    nothing_stored()

    assert redirect(state, cookie=state).status_code == 200
    assert redirect(state, cookie=state).status_code == 403        # spent
    with hs.db() as db:
        assert len(db.exec(select(SlackInstallation)).all()) == 1
    assert len(slack.requests_to("/api/oauth.v2.access")) == 1


def test_an_install_finished_in_another_browser_links_no_coach(hs, slack):
    """A coach signed in starts "Add to Slack" and hands the authorize link to someone else: the
    workspace is installed, but that person's Slack user is not tied to the coach."""
    coach_id = add_coach(hs, "Alex")
    _, _, back = begin_install(hs, slack, "T0ALPHA", "U0OTHER", signed_in(hs, coach_id))
    assert hs.app.test_client().get(back).status_code == 200
    with hs.db() as db:
        assert db.exec(select(SlackInstallation)).one().team_id == "T0ALPHA"
        assert db.get(Coach, coach_id).slack_user_id is None


def test_two_workspaces_each_answer_and_notify_their_own_coach(hs, slack, smtp_sink):
    alex, blair = add_coach(hs, "Alex"), add_coach(hs, "Blair")
    install(hs, slack, "T0ALPHA", "U0ALEX", signed_in(hs, alex))
    install(hs, slack, "T0BETA", "U0BLAIR", signed_in(hs, blair))
    added_sam = slash(hs, 'consent request sam@example.com "Sam Client"', team="T0ALPHA", user="U0ALEX")
    added_kim = slash(hs, 'consent request kim@example.com "Kim Client"', team="T0BETA", user="U0BLAIR")
    assert "Added Sam Client" in added_sam and "Added Kim Client" in added_kim
    alexs, blairs = (slash(hs, "clients", team="T0ALPHA", user="U0ALEX"),
                     slash(hs, "clients", team="T0BETA", user="U0BLAIR"))
    assert "Sam Client" in alexs and "Kim" not in alexs
    assert "Kim Client" in blairs and "Sam" not in blairs

    # Each client consents on their page; each coach hears of it in their own workspace.
    hs.drain()
    for client in ("sam@example.com", "kim@example.com"):
        (url,) = [u for m in smtp_sink.to(client) for u in links_in(m) if "/c/" in u]
        page = hs.app.test_client().post(path_of(url), data={"scope": ["record", "transcribe", "summarise"]})
        assert page.status_code == 303
    hs.drain()
    assert any("Sam Client gave written consent" in dm for dm in slack.dms_to("U0ALEX"))
    assert any("Kim Client gave written consent" in dm for dm in slack.dms_to("U0BLAIR"))
    assert set(slack.tokens_used_for("U0ALEX")) == {slack.live_token("T0ALPHA")}
    assert set(slack.tokens_used_for("U0BLAIR")) == {slack.live_token("T0BETA")}
    assert smtp_sink.to("alex@example.com") == smtp_sink.to("blair@example.com") == []

    # A workspace without holdspace, or a coach's Slack user speaking from another workspace,
    # reaches no one's data.
    nowhere = slash(hs, "clients", team="T0NOWHERE", user="U0ALEX")
    elsewhere = slash(hs, "clients", team="T0BETA", user="U0ALEX")
    assert "isn't installed" in nowhere and "another Slack workspace" in elsewhere
    for answer in (nowhere, elsewhere):
        assert "Sam" not in answer and "Kim" not in answer


def test_an_operator_linked_coach_is_tied_to_the_workspace_it_first_speaks_from(hs, slack):
    casey = hs.run("coach", "add", "--email", "casey@example.com", "--name", "Casey", "--slack-user-id", "U0CASEY")
    install(hs, slack, "T0ALPHA", "U0SOMEONE")
    assert "No clients yet" in slash(hs, "clients", team="T0ALPHA", user="U0CASEY")
    with hs.db() as db:
        assert db.get(Coach, casey).slack_team_id == "T0ALPHA"
    install(hs, slack, "T0BETA", "U0OTHER")
    assert "another Slack workspace" in slash(hs, "clients", team="T0BETA", user="U0CASEY")


# --- linking a Slack user -----------------------------------------------------------------------

def test_an_unknown_slack_user_links_through_a_one_time_link(hs, slack):
    from workers.slack_installs import link_url
    alex, casey, dana = add_coach(hs, "Alex"), add_coach(hs, "Casey"), add_coach(hs, "Dana")
    hs.run("client", "add", "--coach-email", "casey@example.com", "--email", "robin@example.com",
           "--name", "Robin Client")
    install(hs, slack, "T0ALPHA", "U0ALEX", signed_in(hs, alex), "Alpha Coaching")

    answer = slash(hs, "clients", team="T0ALPHA", user="U0CASEY")
    assert "isn't connected" in answer and "Robin" not in answer
    (link,) = re.findall(r"https?://\S+/coach/slack/link/[A-Za-z0-9_-]+", answer)
    assert link.startswith(BASE + "/coach/slack/link/")
    path = path_of(link)

    # Signed out, the dashboard asks for a sign-in and comes back to the link after it.
    away = hs.app.test_client().get(path)
    assert away.status_code == 303 and parse_qs(urlsplit(away.location).query)["next"] == [path]

    browser = signed_in(hs, casey)
    done = browser.get(path)
    assert done.status_code == 303 and urlsplit(done.location).path == "/coach/slack"
    page = browser.get(done.location).get_data(as_text=True)
    assert "U0CASEY" in page and "Alpha Coaching" in page and 'id="slack-unlink"' in page
    with hs.db() as db:
        coach = db.get(Coach, casey)
        assert (coach.slack_user_id, coach.slack_team_id) == ("U0CASEY", "T0ALPHA")
    (linked,) = audited(hs, "slack.linked")
    assert linked.coach_id == casey and linked.detail["slack_user"] == "U0CASEY"
    assert "Robin Client" in slash(hs, "clients", team="T0ALPHA", user="U0CASEY")

    # Once only, for the coach who used it and for any other.
    assert browser.get(path).status_code == 410
    other = signed_in(hs, dana)
    assert other.get(path).status_code == 410
    # A new link naming a Slack user that is already Casey's does not move it to Dana.
    assert other.get(path_of(link_url(hs.rt, "T0ALPHA", "U0CASEY"))).status_code == 409
    # Nor does a forged one.
    assert other.get(path[:-6] + "AAAAAA").status_code == 401
    with hs.db() as db:
        assert db.get(Coach, casey).slack_user_id == "U0CASEY"
        assert db.get(Coach, dana).slack_user_id is None

    # Casey unlinks it (a form, with the CSRF token): the Slack user reaches nothing of hers.
    assert browser.post("/coach/slack/unlink", data={}).status_code == 403
    assert browser.post("/coach/slack/unlink", data={"csrf_token": csrf(browser)}).status_code == 303
    with hs.db() as db:
        assert db.get(Coach, casey).slack_user_id is None
    assert len(audited(hs, "slack.unlinked")) == 1
    assert "Robin" not in slash(hs, "clients", team="T0ALPHA", user="U0CASEY")


# --- the Events API -----------------------------------------------------------------------------

def test_app_uninstalled_ends_all_use_of_the_token(hs, slack, smtp_sink):
    alex = add_coach(hs, "Alex")
    install(hs, slack, "T0ALPHA", "U0ALEX", signed_in(hs, alex), "Alpha Coaching")
    token = slack.live_token("T0ALPHA")
    tell(hs, alex, "Before")
    assert slack.tokens_used_for("U0ALEX") == [token]

    assert post_event(hs, callback("T0ALPHA", {"type": "app_uninstalled"})).status_code == 200
    slack.uninstall("T0ALPHA")
    row = installation(hs, "T0ALPHA")
    assert row.bot_token_sealed is None and row.status == "uninstalled"
    assert {e.subject for e in audited(hs, "slack.uninstalled")} == {"slack:T0ALPHA", f"coach:{alex}"}
    hs.drain()
    assert subjects_to(smtp_sink, "alex@example.com") == ["holdspace: Slack is disconnected"]

    tell(hs, alex, "After")
    assert "holdspace: After" in subjects_to(smtp_sink, "alex@example.com")
    assert slack.calls_with(token) == 1  # only the note before: nothing tried the dead token
    assert "isn't installed" in slash(hs, "clients", team="T0ALPHA", user="U0ALEX")


def test_a_revoked_or_dead_token_sends_the_coach_email_instead(hs, slack, smtp_sink):
    alex, blair = add_coach(hs, "Alex"), add_coach(hs, "Blair")
    install(hs, slack, "T0ALPHA", "U0ALEX", signed_in(hs, alex))
    install(hs, slack, "T0BETA", "U0BLAIR", signed_in(hs, blair))

    # tokens_revoked naming only users' tokens leaves the bot alone; naming the bot ends it.
    assert post_event(hs, callback("T0ALPHA", {"type": "tokens_revoked",
                                               "tokens": {"oauth": ["U0ALEX"]}})).status_code == 200
    assert installation(hs, "T0ALPHA").status == "active"
    assert post_event(hs, callback("T0ALPHA", {"type": "tokens_revoked", "tokens": {
        "oauth": [], "bot": [slack.bot_user_of("T0ALPHA")]}})).status_code == 200
    row = installation(hs, "T0ALPHA")
    assert (row.status, row.bot_token_sealed) == ("revoked", None)

    # Slack kills Beta's token with no event reaching holdspace: the first refused DM ends the
    # installation, and the note goes by email.
    slack.uninstall("T0BETA")
    (dead,) = slack.tokens_of("T0BETA")
    tell(hs, blair, "Note one")
    assert installation(hs, "T0BETA").status == "revoked"
    assert set(subjects_to(smtp_sink, "blair@example.com")) == {"holdspace: Note one",
                                                                 "holdspace: Slack is disconnected"}
    tell(hs, blair, "Note two")
    assert "holdspace: Note two" in subjects_to(smtp_sink, "blair@example.com")
    assert slack.calls_with(dead) == 1 and slack.dms_to("U0BLAIR") == []
    assert "holdspace: Slack is disconnected" in subjects_to(smtp_sink, "alex@example.com")


def test_events_are_signed_answered_and_handled_once(hs, slack):
    challenge = {"type": "url_verification", "token": "legacy",
                 "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    unsigned = hs.http.post("/slack/events", data=json.dumps(challenge), content_type="application/json")
    assert unsigned.status_code == 401
    assert post_event(hs, challenge, secret="not-the-signing-secret").status_code == 401
    answer = post_event(hs, challenge)
    assert answer.status_code == 200 and answer.get_json() == {"challenge": challenge["challenge"]}
    assert post_event(hs, raw=b'{"type": "event_callback", ').status_code == 400
    assert post_event(hs, raw=b"[1, 2]").status_code == 400
    assert post_event(hs, callback("T0ALPHA", {"type": "reaction_added"})).status_code == 200

    install(hs, slack, "T0ALPHA", "U0ALEX")
    removed = callback("T0ALPHA", {"type": "app_uninstalled"}, event_id="Ev0DUPLICATE")
    assert post_event(hs, removed).status_code == 200
    assert installation(hs, "T0ALPHA").status == "uninstalled"
    install(hs, slack, "T0ALPHA", "U0ALEX")  # added back
    # Slack's retry of the same event (same event_id) is acknowledged, and not acted on again.
    assert post_event(hs, removed, retry=1).status_code == 200
    row = installation(hs, "T0ALPHA")
    assert row.status == "active" and sealed_token(hs, row) == slack.live_token("T0ALPHA")
    assert len(audited(hs, "slack.uninstalled")) == 1


# --- no token at rest or in a log ---------------------------------------------------------------

def test_no_bot_token_in_the_database_file_or_the_logs(hs, slack, database_url, caplog):
    with caplog.at_level(logging.DEBUG):
        alex = add_coach(hs, "Alex")
        install(hs, slack, "T0ALPHA", "U0ALEX", signed_in(hs, alex))
        install(hs, slack, "T0ALPHA", "U0ALEX")
        tell(hs, alex, "Hello")
        assert post_event(hs, callback("T0ALPHA", {"type": "app_uninstalled"})).status_code == 200
    tokens = slack.tokens_of("T0ALPHA")
    assert len(tokens) == 2 and slack.calls_with(tokens[1]) == 1
    db_file = Path(database_url.split("///", 1)[1])
    for path in (db_file, db_file.with_name(db_file.name + "-wal")):
        if path.exists():
            data = path.read_bytes()
            assert not [t for t in tokens if t.encode() in data], path
    assert caplog.records
    for secret in (*tokens, slack.client_secret):
        assert secret not in caplog.text


# --- slack_sdk's interfaces, and one workspace as before -------------------------------------------

def test_the_stores_speak_slack_sdks_interfaces(hs):
    from slack_sdk.oauth.installation_store import Installation
    from workers.slack_installs import state_store, store
    installations = store(hs.rt)
    installations.save(Installation(app_id=APP_ID, team_id="T0GAMMA", team_name="Gamma", bot_token="xoxb-gamma-1",
                                    bot_id="B0GAMMA", bot_user_id="U0BOTGAMMA", bot_scopes="commands,chat:write",
                                    user_id="U0INSTALLER"))
    bot = installations.find_bot(enterprise_id=None, team_id="T0GAMMA")
    assert (bot.bot_token, bot.bot_user_id) == ("xoxb-gamma-1", "U0BOTGAMMA")
    assert bot.bot_scopes == ["commands", "chat:write"]
    found = installations.find_installation(enterprise_id=None, team_id="T0GAMMA")
    assert (found.user_id, found.bot_token, found.team_name) == ("U0INSTALLER", "xoxb-gamma-1", "Gamma")
    assert installations.find_bot(enterprise_id=None, team_id="T0OTHER") is None
    installations.delete_all(enterprise_id=None, team_id="T0GAMMA")
    assert installations.find_bot(enterprise_id=None, team_id="T0GAMMA") is None
    assert installation(hs, "T0GAMMA").status == "uninstalled"

    states = state_store(hs.rt)
    state = states.issue()
    assert states.consume(state) is True and states.consume(state) is False
    assert states.consume("not-a-state") is False


def test_without_a_client_id_nothing_installs(hs_factory, database_url):
    hs = hs_factory(database_url, SLACK_SIGNING_SECRET=SECRET, SLACK_BOT_TOKEN="xoxb-single")
    assert hs.http.get("/slack/install").status_code == 404
    assert hs.http.get(REDIRECT, query_string={"code": "c", "state": "s"}).status_code == 404
