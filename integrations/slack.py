"""Slack Web API calls holdspace makes (through slack_sdk): direct messages to coaches."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError


class SlackError(Exception):
    pass


class SlackNotifier:
    def __init__(self, bot_token: str | None, *, base_url: str = "https://slack.com/api/"):
        self._client = WebClient(token=bot_token, base_url=base_url) if bot_token else None

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
            raise SlackError(f"Slack refused the message: {exc.response.get('error')}") from None
        return resp.get("ts", "")

    def __repr__(self) -> str:
        return f"SlackNotifier(configured={self.configured})"
