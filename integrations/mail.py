"""Outgoing mail: SMTP when `SMTP_URL` is set (smtp://, STARTTLS with ?starttls=1, or
smtps://), else a Maildir under var/outbox that a developer can read."""

from __future__ import annotations

import mailbox
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse


class MailError(Exception):
    """A send that did not go through; the message says why, never the credentials."""


class Mailer:
    def __init__(self, smtp_url: str | None, *, maildir: Path, sender: str, timeout: float = 20):
        self.smtp_url = smtp_url
        self.maildir = Path(maildir)
        self.sender = sender
        self.timeout = timeout

    def build(self, to: str, subject: str, text: str, html: str | None = None,
              headers: dict[str, str] | None = None,
              attachments: list[tuple[str, bytes, str]] = ()) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = to
        msg["Subject"] = subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain=self.sender.rsplit("@", 1)[-1] or "localhost")
        for name, value in (headers or {}).items():
            msg[name] = value
        msg.set_content(text)
        if html:
            msg.add_alternative(html, subtype="html")
        for filename, data, content_type in attachments:
            maintype, subtype = content_type.split("/", 1)
            msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
        return msg

    def send(self, to: str, subject: str, text: str, html: str | None = None,
             headers: dict[str, str] | None = None,
             attachments: list[tuple[str, bytes, str]] = ()) -> str:
        """Send one message (files attached as (name, bytes, content type)); its Message-ID."""
        msg = self.build(to, subject, text, html, headers, attachments)
        if not self.smtp_url:
            for sub in ("tmp", "new", "cur"):
                (self.maildir / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
            mailbox.Maildir(self.maildir, create=False).add(msg)
            return msg["Message-ID"]
        url = urlparse(self.smtp_url)
        query = parse_qs(url.query)
        port = url.port or (465 if url.scheme == "smtps" else 25)
        try:
            if url.scheme == "smtps":
                smtp = smtplib.SMTP_SSL(url.hostname, port, timeout=self.timeout,
                                        context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(url.hostname, port, timeout=self.timeout)
            with smtp:
                if url.scheme == "smtp" and query.get("starttls", ["0"])[0] in ("1", "true"):
                    smtp.starttls(context=ssl.create_default_context())
                if url.username:
                    smtp.login(unquote(url.username), unquote(url.password or ""))
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"mail to {to} not sent: {type(exc).__name__}: {exc}") from None
        return msg["Message-ID"]
