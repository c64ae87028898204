"""A coach's Slack on the dashboard (so sign-in and CSRF apply): which Slack account speaks for
them, "Add to Slack", and the one-time link that `/holdspace` gives a Slack user holdspace does
not know yet. Opening that link signed in binds that Slack user to the coach, once; the page
then says which account it was, and the coach can unlink it there."""

from __future__ import annotations

from flask import current_app, g, redirect, render_template, request, url_for

from portal.coach import bp
from workers import slack_installs
from workers.slack_installs import LinkRefused


def _rt():
    return current_app.extensions["holdspace"]


def _refused(exc: LinkRefused):
    title = {409: "Already linked", 410: "Link expired", 503: "Try again in a moment"}.get(exc.status, "Not a link")
    return render_template("coach/message.html", title=title, message=exc.message), exc.status


@bp.get("/slack")
def slack_status():
    rt = _rt()
    return render_template("coach/slack.html", notice=request.args.get("notice"),
                           workspace=slack_installs.workspace_of(rt, g.coach.id),
                           can_install=rt.settings.slack_oauth_configured,
                           install_path=slack_installs.INSTALL_PATH)


@bp.get("/slack/link/<token>")
def slack_link(token):
    try:
        claim = slack_installs.redeem_link(_rt(), token, g.coach.id, request.remote_addr)
    except LinkRefused as exc:
        return _refused(exc)
    where = claim.team_name or claim.team_id
    return redirect(url_for("coach.slack_status",
                            notice=f"The Slack account {claim.slack_user_id} in {where} is linked: /holdspace "
                                   "answers you there now. Not you? Unlink it below."), 303)


@bp.post("/slack/unlink")
def slack_unlink():
    slack_installs.unlink(_rt(), g.coach.id, request.remote_addr)
    return redirect(url_for("coach.slack_status", notice="No Slack account is linked now."), 303)
