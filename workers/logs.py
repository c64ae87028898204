"""No credential or client address in any log line: every record this process makes is
redacted as it is created, whoever logs it (our code, werkzeug's request log, Flask's error
log with its traceback, RQ, gunicorn, slack_sdk's debug log). A link token in a path, a token in
a query string or a JSON body, a bearer token, a Slack token and an email address each become a
placeholder."""

from __future__ import annotations

import logging
import re
import traceback

_RULES = (
    # /s/<token>, /c/<token>, /j/<token>, /auth/<token>: the client's and coach's link routes.
    (re.compile(r"(/(?:s|c|j|auth)/)[^/\s?#\"']+"), r"\1[token]"),
    (re.compile(r"(?i)\b((?:download_|access_|refresh_|id_)?token|code|signature)=[^&\s\"']+"),
     r"\1=[redacted]"),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1[redacted]"),
    # A token in a JSON body (an OAuth answer a client library logs at debug level).
    (re.compile(r"(?i)([\"'](?:access_|refresh_|bot_)?token[\"']\s*:\s*[\"'])[^\"']+"), r"\1[redacted]"),
    # Slack's tokens, wherever they appear (xoxb- bot, xoxp- user, xoxe- rotating...).
    (re.compile(r"\bxox[a-z]-[A-Za-z0-9-]+"), "[slack-token]"),
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"), "[email]"),
)


def redact(text: str) -> str:
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


_installed = False


def install_redaction() -> None:
    """Make every log record of this process redacted at creation (idempotent)."""
    global _installed
    if _installed:
        return
    make = logging.getLogRecordFactory()

    def redacted_record(*args, **kwargs) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed call still logs, as its raw text
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info and record.exc_info[0] is not None:
            # Formatted here, so the traceback's text (exception messages hold URLs) is redacted too.
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return record

    logging.setLogRecordFactory(redacted_record)
    _installed = True
