"""The one check of Slack's request signature, for slash commands and Events API calls alike."""

from __future__ import annotations

from flask import jsonify, request
from slack_sdk.signature import SignatureVerifier

from integrations.payloads import is_timestamp


def signed_by_slack(verifier: SignatureVerifier, body: bytes, headers) -> bool:
    """slack_sdk's check (it rejects timestamps more than 5 minutes off), less the inputs on
    which it raises instead of answering, so that they get a 401 and not a 500: it calls int()
    on the timestamp ('²' or 5,000 digits raise), decodes the body as UTF-8 before checking
    anything else, and compares signatures with hmac.compare_digest on str, which raises on
    non-ASCII text. Slack itself sends ASCII signatures and UTF-8 bodies."""
    if not is_timestamp(headers.get("X-Slack-Request-Timestamp")):
        return False
    if not headers.get("X-Slack-Signature", "").isascii():
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return verifier.is_valid_request(body, dict(headers))


def signed_request(rt):
    """The raw body of a request Slack signed, or the answer to give instead: 503 while Slack is
    not configured, 401 for a signature that does not check."""
    secret = rt.settings.slack_signing_secret
    if not secret:
        return None, (jsonify({"error": "Slack is not configured"}), 503)
    body = request.get_data(cache=True)
    if not signed_by_slack(SignatureVerifier(secret), body, request.headers):
        return None, (jsonify({"error": "signature check failed"}), 401)
    return body, None
