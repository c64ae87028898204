"""Slack Web API calls holdspace makes (through slack_sdk): direct messages to coaches, and the
OAuth v2 install of its bot in a workspace (the authorize URL, the code exchange)."""

from __future__ import annotations

import logging
from urllib.parse import quote

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.oauth import AuthorizeUrlGenerator
from slack_sdk.oauth.installation_store import Installation

# What the bot needs: the slash command, posting, and opening a DM with a coach.
BOT_SCOPES = ("commands", "chat:write", "im:write")

# Answers that mean the token itself no longer works: the app was removed or its token revoked.
DEAD_TOKEN_ERRORS = frozenset({"invalid_auth", "token_revoked", "account_inactive", "token_expired"})

# slack_sdk logs whole request and response bodies at DEBUG, oauth.v2.access's bot token among
# them; its clients get a logger that never goes below INFO, so those records are never made.
_sdk_log = logging.getLogger("integrations.slack.sdk")
_sdk_log.setLevel(logging.INFO)


class SlackError(Exception):
    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.code = code


class TokenDead(SlackError):
    """The bot token was refused as dead: the workspace's installation is gone."""


class SlackUnreachable(SlackError):
    """No answer from Slack at all (network, timeout): nothing was refused."""


def _client(token: str | None, base_url: str) -> WebClient:
    return WebClient(token=token, base_url=base_url, timeout=10, logger=_sdk_log)


def _refusal(what: str, exc: SlackApiError) -> SlackError:
    # Only Slack's error code is kept: the response body may hold a token.
    code = exc.response.get("error") if exc.response is not None else None
    kind = TokenDead if code in DEAD_TOKEN_ERRORS else SlackError
    return kind(f"Slack refused {what}: {code}", code)


class SlackNotifier:
    def __init__(self, bot_token: str | None, *, base_url: str = "https://slack.com/api/"):
        self._client = _client(bot_token, base_url) if bot_token else None

    @property
    def configured(self) -> bool:
        return self._client is not None

    def direct_message(self, slack_user_id: str, text: str) -> str:
        """Post to the user's DM with the bot (a user id as channel opens it); returns the ts."""
        if not self._client:
            raise SlackError("Slack is not configured")
        try:
            resp = self._client.chat_postMessage(channel=slack_user_id, text=text,
                                                 unfurl_links=False)
        except SlackApiError as exc:
            raise _refusal("the message", exc) from None
        return resp.get("ts", "")

    def __repr__(self) -> str:
        return f"SlackNotifier(configured={self.configured})"


def authorize_url(*, client_id: str, redirect_uri: str, state: str, authorization_url: str,
                  scopes=BOT_SCOPES) -> str:
    """The "Add to Slack" address. slack_sdk's generator pastes its values in as they are, so
    they go in already quoted (a redirect URI holds ':' and '/')."""
    return AuthorizeUrlGenerator(client_id=quote(client_id, safe=""), redirect_uri=quote(redirect_uri, safe=""),
                                 scopes=list(scopes), authorization_url=authorization_url
                                 ).generate(quote(state, safe=""))


def install_from_code(*, client_id: str, client_secret: str, code: str, redirect_uri: str,
                      base_url: str) -> Installation:
    """Exchange the redirect's code (oauth.v2.access), then ask Slack who the bot is
    (auth.test gives its bot id), as slack_sdk's own OAuth flow does."""
    try:
        grant = _client(None, base_url).oauth_v2_access(client_id=client_id, client_secret=client_secret,
                                                        code=code, redirect_uri=redirect_uri)
    except SlackApiError as exc:
        raise _refusal("the installation", exc) from None
    except (SlackClientError, OSError) as exc:
        raise SlackUnreachable(f"Slack could not be reached: {type(exc).__name__}") from None
    bot_token = grant.get("access_token")
    if not isinstance(bot_token, str) or grant.get("token_type", "bot") != "bot":
        raise SlackError("Slack's answer holds no bot token")
    team, enterprise = grant.get("team") or {}, grant.get("enterprise") or {}
    installer = (grant.get("authed_user") or {}).get("id")
    if not (team.get("id") or enterprise.get("id")) or not installer:
        raise SlackError("Slack's answer names no workspace or installer")
    try:
        who = _client(bot_token, base_url).auth_test()
    except SlackApiError as exc:
        raise _refusal("the new bot token", exc) from None
    except (SlackClientError, OSError) as exc:
        raise SlackUnreachable(f"Slack could not be reached: {type(exc).__name__}") from None
    is_org = bool(grant.get("is_enterprise_install"))
    return Installation(
        app_id=grant.get("app_id"), enterprise_id=enterprise.get("id"), enterprise_name=enterprise.get("name"),
        enterprise_url=who.get("url") if is_org else None, team_id=team.get("id"), team_name=team.get("name"),
        bot_token=bot_token, bot_id=who.get("bot_id"), bot_user_id=grant.get("bot_user_id") or who.get("user_id"),
        bot_scopes=grant.get("scope") or "", user_id=installer, is_enterprise_install=is_org, token_type="bot")
