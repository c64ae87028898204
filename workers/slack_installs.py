"""holdspace's bot in many Slack workspaces: slack_sdk's installation store over the
SlackInstallation table (bot tokens only sealed by the vault) and its OAuth state store (signed,
expiring, spent once); the install itself; who a slash command is from; and how a Slack user
becomes a coach's, at install or through a one-time link opened on the dashboard.

A row is keyed by its workspace's team id, an Enterprise Grid org-wide install (which serves
every workspace of the org) by the enterprise id in place of a team id. `Coach.slack_team_id`
holds that key: it names the installation whose bot speaks to the coach."""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from slack_sdk.oauth.installation_store import Bot, Installation, InstallationStore
from slack_sdk.oauth.state_store import OAuthStateStore
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from integrations import slack
from models import Coach, SlackInstallation, audit, utcnow
from models.db import session_scope

log = logging.getLogger(__name__)

TOKEN_PURPOSE = "slack-bot-token:{enterprise_id}:{team_id}"
STATE_SALT = "holdspace.slack-install"
STATE_TTL_SECONDS = 10 * 60
LINK_SALT = "holdspace.slack-link"
# Long enough to ask for a dashboard sign-in link by email and open it first.
LINK_TTL_SECONDS = 60 * 60
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
LINK_PATH = "/coach/slack/link/"


def many_workspaces(settings) -> bool:
    """SLACK_CLIENT_ID set: each workspace speaks only through its own installation. Without
    SLACK_CLIENT_SECRET nothing can install, so nothing answers: closed rather than open."""
    return bool(settings.slack_client_id)


def redirect_uri(settings) -> str:
    return f"{settings.public_base_url}{REDIRECT_PATH}"


def _key(enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False) -> str | None:
    return (enterprise_id or None) if (is_enterprise_install or not team_id) else team_id


def _purpose(row: SlackInstallation) -> str:
    # Bound to the workspace: a sealed token copied into another row does not open.
    return TOKEN_PURPOSE.format(enterprise_id=row.enterprise_id, team_id=row.team_id)


def row_by_key(db: Session, key: str | None) -> SlackInstallation | None:
    if not key:
        return None
    return db.exec(select(SlackInstallation).where(SlackInstallation.team_id == key)).first()


def serving(db: Session, *, enterprise_id: str | None, team_id: str | None) -> SlackInstallation | None:
    """The installation that serves a workspace: its own, else its org's org-wide one."""
    row = row_by_key(db, team_id)
    if row is None and enterprise_id:
        org = row_by_key(db, enterprise_id)
        row = org if org is not None and org.is_enterprise_install else None
    return row


def active(row: SlackInstallation | None) -> bool:
    return row is not None and row.status == "active" and bool(row.bot_token_sealed)


def _coach_by_slack_user(db: Session, slack_user_id: str | None) -> Coach | None:
    if not slack_user_id:
        return None
    return db.exec(select(Coach).where(Coach.slack_user_id == slack_user_id)).first()


def _bind(db: Session, coach: Coach, slack_user_id: str, key: str) -> bool:
    """Make this Slack user (of the workspace `key`) the coach's; False if another coach took
    it meanwhile (the column is unique)."""
    try:
        with db.begin_nested():
            coach.slack_user_id, coach.slack_team_id = slack_user_id, key
            db.add(coach)
            db.flush()
    except IntegrityError:
        db.refresh(coach)
        return False
    return True


# --- slack_sdk's stores ---------------------------------------------------------------------

class InstallationTable(InstallationStore):
    """slack_sdk's InstallationStore over our table: bot installs only (holdspace asks for no
    user token), one row per workspace, a re-install updating it."""

    def __init__(self, engine, vault):
        self._engine, self._vault = engine, vault

    @property
    def logger(self) -> logging.Logger:
        return log

    def save(self, installation: Installation) -> None:
        with session_scope(self._engine) as db:
            self.put(db, installation)

    def save_bot(self, bot: Bot) -> None:
        with session_scope(self._engine) as db:
            self.put(db, bot)

    def put(self, db: Session, inst: Installation | Bot) -> SlackInstallation:
        """Store (or refresh) the workspace's row in the caller's transaction."""
        key = _key(inst.enterprise_id, inst.team_id, inst.is_enterprise_install)
        if not key or not inst.bot_token:
            raise ValueError("an installation needs a workspace and a bot token")
        row = row_by_key(db, key)
        if row is None:
            row = SlackInstallation(team_id=key, enterprise_id=inst.enterprise_id or "")
            try:
                with db.begin_nested():
                    db.add(row)
                    db.flush()
            except IntegrityError:  # the same workspace installed twice at once: update theirs
                row = row_by_key(db, key)
        now = utcnow()
        row.enterprise_id, row.is_enterprise_install = inst.enterprise_id or "", bool(inst.is_enterprise_install)
        row.team_name, row.app_id = inst.team_name, inst.app_id
        row.bot_id, row.bot_user_id = inst.bot_id, inst.bot_user_id
        row.bot_scopes = ",".join(inst.bot_scopes or ())
        row.bot_token_sealed = self._vault.seal(inst.bot_token.encode(), _purpose(row))
        row.installer_user_id = getattr(inst, "user_id", None) or row.installer_user_id
        row.status, row.installed_at, row.updated_at = "active", now, now
        db.add(row)
        db.flush()
        return row

    def token_of(self, row: SlackInstallation) -> str:
        return self._vault.unseal(row.bot_token_sealed, _purpose(row)).decode()

    def _bot(self, row: SlackInstallation | None) -> Bot | None:
        if not active(row):
            return None
        return Bot(app_id=row.app_id, enterprise_id=row.enterprise_id or None,
                   team_id=None if row.is_enterprise_install else row.team_id, team_name=row.team_name,
                   bot_token=self.token_of(row), bot_id=row.bot_id or "", bot_user_id=row.bot_user_id or "",
                   bot_scopes=row.bot_scopes, is_enterprise_install=row.is_enterprise_install,
                   installed_at=row.installed_at)

    def find_bot(self, *, enterprise_id, team_id, is_enterprise_install=False) -> Bot | None:
        with session_scope(self._engine) as db:
            if is_enterprise_install:
                return self._bot(row_by_key(db, _key(enterprise_id, team_id, True)))
            return self._bot(serving(db, enterprise_id=enterprise_id, team_id=team_id))

    def find_installation(self, *, enterprise_id, team_id, user_id=None,
                          is_enterprise_install=False) -> Installation | None:
        bot = self.find_bot(enterprise_id=enterprise_id, team_id=team_id,
                            is_enterprise_install=is_enterprise_install)
        if bot is None:
            return None
        with session_scope(self._engine) as db:
            row = row_by_key(db, _key(bot.enterprise_id, bot.team_id, bot.is_enterprise_install))
            installer = row.installer_user_id if row else None
        return Installation(app_id=bot.app_id, enterprise_id=bot.enterprise_id, team_id=bot.team_id,
                            team_name=bot.team_name, bot_token=bot.bot_token, bot_id=bot.bot_id,
                            bot_user_id=bot.bot_user_id, bot_scopes=bot.bot_scopes, user_id=installer or "",
                            is_enterprise_install=bot.is_enterprise_install, installed_at=bot.installed_at)

    def delete_bot(self, *, enterprise_id, team_id) -> None:
        with session_scope(self._engine) as db:
            row = row_by_key(db, _key(enterprise_id, team_id))
            if row is not None:
                clear(db, row, "uninstalled")

    def delete_installation(self, *, enterprise_id, team_id, user_id=None) -> None:
        # Only the bot's token is ever kept; a user's installation holds nothing to delete.
        if user_id is None:
            self.delete_bot(enterprise_id=enterprise_id, team_id=team_id)


def clear(db: Session, row: SlackInstallation, status: str) -> None:
    row.bot_token_sealed, row.status, row.updated_at = None, status, utcnow()
    db.add(row)


class InstallState(OAuthStateStore):
    """slack_sdk's OAuthStateStore: a state signed under SECRET_KEY, good for ten minutes,
    naming the coach signed in to the dashboard when the install began (if any), and spent on
    its first use (Redis SET NX), so a replayed redirect stores nothing."""

    def __init__(self, secret_key: str, redis, expiration_seconds: int = STATE_TTL_SECONDS):
        self._signer = URLSafeTimedSerializer(secret_key, salt=STATE_SALT)
        self._redis, self.expiration_seconds = redis, expiration_seconds

    @property
    def logger(self) -> logging.Logger:
        return log

    def issue(self, *args, coach_id: str | None = None, **kwargs) -> str:
        return self._signer.dumps({"n": secrets.token_urlsafe(16), "c": coach_id})

    def consume(self, state: str) -> bool:
        return self.redeem(state) is not None

    def redeem(self, state: str) -> dict | None:
        """What the state carries, the first time it comes back; None when it is forged, stale
        or spent. A Redis failure raises: whether the state was spent cannot be known."""
        try:
            data = self._signer.loads(state, max_age=self.expiration_seconds)
        except BadSignature:
            return None
        if not (isinstance(data, dict) and isinstance(data.get("n"), str)
                and (data.get("c") is None or isinstance(data.get("c"), str))):
            return None
        first = self._redis.set(f"holdspace:slack-install-state:{data['n']}", b"1", nx=True,
                                ex=self.expiration_seconds + 60)
        return data if first else None


def store(rt) -> InstallationTable:
    return InstallationTable(rt.engine, rt.vault)


def state_store(rt) -> InstallState:
    return InstallState(rt.settings.secret_key, rt.redis)


# --- installing -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Installed:
    app_id: str | None
    team_id: str | None
    is_enterprise_install: bool
    enterprise_url: str | None
    coach_id: str | None    # the coach now linked to the installing Slack user, if any


def install_url(rt, state: str) -> str:
    """Slack's authorize page for holdspace's bot, carrying a state from `state_store`."""
    s = rt.settings
    return slack.authorize_url(client_id=s.slack_client_id, redirect_uri=redirect_uri(s), state=state,
                               authorization_url=s.slack_authorize_url)


def finish_install(rt, code: str, coach_id: str | None, ip: str | None = None) -> Installed:
    """Exchange Slack's code, store the workspace's installation and link the installer:
    to the coach already known by that Slack user, else to the coach who began the install
    signed in to the dashboard. Raises integrations.slack.SlackError if Slack refuses."""
    s = rt.settings
    inst = slack.install_from_code(client_id=s.slack_client_id, client_secret=s.slack_client_secret,
                                   code=code, redirect_uri=redirect_uri(s), base_url=s.slack_api_base_url)
    with session_scope(rt.engine) as db:
        row = store(rt).put(db, inst)
        linked = _link_installer(db, row, inst.user_id, coach_id)
        audit.record(db, f"coach:{coach_id}" if coach_id else f"slack:{inst.user_id}", "slack.installed",
                     f"slack:{row.team_id}", coach_id=linked or coach_id, ip=ip, team=row.team_id,
                     enterprise=row.enterprise_id or None, scopes=row.bot_scopes, installer=inst.user_id,
                     linked=linked)
    return Installed(inst.app_id, inst.team_id, bool(inst.is_enterprise_install), inst.enterprise_url, linked)


def _link_installer(db: Session, row: SlackInstallation, slack_user_id: str, coach_id: str | None) -> str | None:
    known = _coach_by_slack_user(db, slack_user_id)
    # A Slack user already linked stays with its coach, whoever began the install; that coach's
    # workspace is now this one, since their own Slack user installed holdspace here.
    coach = known or (db.get(Coach, coach_id) if coach_id else None)
    if coach is None or not _bind(db, coach, slack_user_id, row.team_id):
        return None
    return coach.id


# --- who a slash command is from --------------------------------------------------------------

@dataclass(frozen=True)
class Caller:
    coach_id: str | None
    # Why no coach: "unknown" (one workspace: an operator adds them), "not_installed",
    # "other_workspace", or "unlinked" (then `link` is their one-time link).
    refusal: str | None = None
    link: str | None = None


def caller(rt, *, team_id: str | None, enterprise_id: str | None, user_id: str) -> Caller:
    """With one workspace (SLACK_BOT_TOKEN) the Slack user alone says who it is; with many,
    only a workspace holdspace is installed in is heard, and only for a coach linked there."""
    with session_scope(rt.engine) as db:
        coach = _coach_by_slack_user(db, user_id)
        if not many_workspaces(rt.settings):
            return Caller(coach.id) if coach else Caller(None, "unknown")
        row = serving(db, enterprise_id=enterprise_id, team_id=team_id)
        if not active(row):
            return Caller(None, "not_installed")
        if coach is None:
            return Caller(None, "unlinked", link_url(rt, row.team_id, user_id))
        if coach.slack_team_id is None:
            # Linked by an operator (--slack-user-id) before this workspace installed holdspace:
            # Slack signed this request, so this is that user's workspace.
            coach.slack_team_id = row.team_id
            db.add(coach)
            audit.record(db, f"slack:{user_id}", "slack.workspace_linked", f"coach:{coach.id}",
                         coach_id=coach.id, team=row.team_id)
        elif coach.slack_team_id != row.team_id:
            return Caller(None, "other_workspace")
        return Caller(coach.id)


# --- the one-time link ----------------------------------------------------------------------

class LinkRefused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class LinkClaim:
    team_id: str
    slack_user_id: str
    nonce: str
    team_name: str | None


def _link_signer(rt) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(rt.settings.secret_key, salt=LINK_SALT)


def link_url(rt, key: str, slack_user_id: str) -> str:
    token = _link_signer(rt).dumps({"t": key, "u": slack_user_id, "n": secrets.token_urlsafe(12)})
    # The dashboard's sign-in returns only to paths of letters, digits, '-', '_' and '/', and
    # itsdangerous joins its parts with '.': the token travels base64url-wrapped.
    wrapped = base64.urlsafe_b64encode(token.encode()).rstrip(b"=").decode()
    return f"{rt.settings.public_base_url}{LINK_PATH}{wrapped}"


_NOT_A_LINK = "That is not a valid Slack link. Run /holdspace in Slack for a new one."
_USED = "That link was already used. Run /holdspace in Slack for a new one."


def _spent_key(nonce: str) -> str:
    return f"holdspace:slack-link-used:{nonce}"


def read_link(rt, wrapped: str) -> LinkClaim:
    """What a link claims, if it is ours, fresh and its workspace still installed (not yet
    spent: opening the page spends nothing)."""
    try:
        token = base64.urlsafe_b64decode(wrapped + "=" * (-len(wrapped) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise LinkRefused(401, _NOT_A_LINK) from None
    try:
        data = _link_signer(rt).loads(token, max_age=LINK_TTL_SECONDS)
    except SignatureExpired:
        raise LinkRefused(410, "That link has expired. Run /holdspace in Slack for a new one.") from None
    except BadSignature:
        raise LinkRefused(401, _NOT_A_LINK) from None
    if not (isinstance(data, dict) and all(isinstance(data.get(k), str) and data.get(k) for k in "tun")):
        raise LinkRefused(401, _NOT_A_LINK)
    try:
        spent = bool(rt.redis.exists(_spent_key(data["n"])))
    except Exception:  # noqa: BLE001 - confirming it decides, and says so if Redis is still down
        spent = False
    if spent:
        raise LinkRefused(410, _USED)
    with session_scope(rt.engine) as db:
        row = row_by_key(db, data["t"])
        if not active(row):
            raise LinkRefused(410, "holdspace is no longer installed in that Slack workspace.")
        return LinkClaim(data["t"], data["u"], data["n"], row.team_name)


def redeem_link(rt, wrapped: str, coach_id: str, ip: str | None = None) -> LinkClaim:
    """Bind the link's Slack user to this coach, once. The link names no coach (the Slack user
    who asked for it is not yet anyone's): the first signed-in coach to open it takes it, and
    never a Slack user that is already another coach's."""
    claim = read_link(rt, wrapped)
    try:
        first = rt.redis.set(_spent_key(claim.nonce), b"1", nx=True, ex=LINK_TTL_SECONDS + 60)
    except Exception:  # noqa: BLE001 - without Redis a link cannot be kept to one use
        raise LinkRefused(503, "Linking is unavailable for a moment. The link still works: "
                               "try again shortly.") from None
    if not first:
        raise LinkRefused(410, _USED)
    taken = LinkRefused(409, "That Slack account is already linked to another holdspace account.")
    with session_scope(rt.engine) as db:
        holder = _coach_by_slack_user(db, claim.slack_user_id)
        coach = db.get(Coach, coach_id)
        if coach is None:
            raise LinkRefused(404, "There is nothing here.")
        if holder is not None and holder.id != coach.id:
            raise taken
        if not _bind(db, coach, claim.slack_user_id, claim.team_id):
            raise taken
        audit.record(db, f"coach:{coach.id}", "slack.linked", f"coach:{coach.id}", coach_id=coach.id, ip=ip,
                     team=claim.team_id, slack_user=claim.slack_user_id)
    return claim


def unlink(rt, coach_id: str, ip: str | None = None) -> bool:
    """The coach takes their Slack account off holdspace: commands from it reach nothing of
    theirs and notes go by email, until a new link binds one again."""
    with session_scope(rt.engine) as db:
        coach = db.get(Coach, coach_id)
        if coach is None or not coach.slack_user_id:
            return False
        team, user = coach.slack_team_id, coach.slack_user_id
        coach.slack_user_id = coach.slack_team_id = None
        db.add(coach)
        audit.record(db, f"coach:{coach.id}", "slack.unlinked", f"coach:{coach.id}", coach_id=coach.id, ip=ip,
                     team=team, slack_user=user)
    return True


# --- speaking to a coach, and an installation's end --------------------------------------------

def _route(db: Session, rt, coach: Coach):
    """"single" (SLACK_BOT_TOKEN's bot), the coach's workspace's live installation, or None."""
    if not coach.slack_user_id:
        return None
    if not many_workspaces(rt.settings) or coach.slack_team_id is None:
        # One workspace, or a coach an operator linked before any install: SLACK_BOT_TOKEN's bot.
        return "single" if rt.slack.configured else None
    row = row_by_key(db, coach.slack_team_id)
    return row if active(row) else None


def reachable(db: Session, rt, coach: Coach) -> bool:
    """Whether a note to this coach can go to their Slack DM (else it goes by email)."""
    return _route(db, rt, coach) is not None


def bot_for(db: Session, rt, coach: Coach) -> tuple[slack.SlackNotifier, str | None] | None:
    """The bot that speaks to this coach and the key of its installation (None for
    SLACK_BOT_TOKEN's), or None when none can."""
    route = _route(db, rt, coach)
    if route is None:
        return None
    if route == "single":
        return rt.slack, None
    return slack.SlackNotifier(store(rt).token_of(route), base_url=rt.settings.slack_api_base_url), route.team_id


def end_installation(db: Session, *, status: str, key: str | None = None, enterprise_id: str | None = None,
                     team_id: str | None = None, bot_user_ids=None,
                     actor: str = "slack") -> tuple[SlackInstallation, list[Coach]] | None:
    """Delete a workspace's bot token at once (`status` uninstalled or revoked), in the caller's
    transaction: the installation and the coaches it served, or None when there was nothing to
    end. With `bot_user_ids` (tokens_revoked) only an installation whose bot is among them ends."""
    row = row_by_key(db, key) if key else serving(db, enterprise_id=enterprise_id, team_id=team_id)
    if row is None or row.bot_token_sealed is None:
        return None
    if bot_user_ids is not None and row.bot_user_id not in bot_user_ids:
        return None
    clear(db, row, status)
    coaches = list(db.exec(select(Coach).where(Coach.slack_team_id == row.team_id)))
    audit.record(db, actor, f"slack.{status}", f"slack:{row.team_id}", team=row.team_id,
                 enterprise=row.enterprise_id or None, coaches=len(coaches))
    for coach in coaches:
        audit.record(db, actor, f"slack.{status}", f"coach:{coach.id}", coach_id=coach.id, team=row.team_id)
    return row, coaches


def workspace_of(rt, coach_id: str) -> tuple[str, str] | None:
    """(name, status) of the workspace whose bot speaks to this coach, for the dashboard."""
    with session_scope(rt.engine) as db:
        coach = db.get(Coach, coach_id)
        row = row_by_key(db, coach.slack_team_id) if coach else None
        return (row.team_name or row.team_id, row.status) if row else None
