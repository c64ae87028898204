"""Outgoing mail: SMTP when `SMTP_URL` is set (smtp://, STARTTLS with ?starttls=1, or
smtps://), else a Maildir under var/outbox that a developer can read.

The Maildir is a transport, not an archive, and a mail carries live links: given `seal` and
`unseal` (callables from the caller's keys), each mail is kept there only sealed, inside a
wrapper that names whose key sealed it (`X-Holdspace-Sealed`) and, for a mail about a client,
that client's id (`X-Holdspace-Client`), so `forget_about` can remove it when the client is
erased. `kept()` opens what still opens, for a developer (`flask --app app outbox`)."""

from __future__ import annotations

import mailbox
import smtplib
import ssl
from email import message_from_bytes
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import default
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse


SEALED_HEADER = "X-Holdspace-Sealed"
ABOUT_HEADER = "X-Holdspace-Client"


class MailError(Exception):
    """A send that did not go through; the message says why, never the credentials."""


class Mailer:
    def __init__(self, smtp_url: str | None, *, maildir: Path, sender: str, timeout: float = 20,
                 seal=None, unseal=None):
        self.smtp_url = smtp_url
        self.maildir = Path(maildir)
        self.sender = sender
        self.timeout = timeout
        # seal(data, about) -> (owner, token); unseal(owner, token) -> bytes or None
        self._seal, self._unseal = seal, unseal

    def from_header(self, on_behalf_of: str | None) -> str:
        """The sender as a reader sees it: "Name via holdspace" at our address when the mail is
        sent for someone; the display name is encoded (RFC 2047) however it is spelled."""
        name, address = parseaddr(self.sender)
        if on_behalf_of:
            name = f"{' '.join(on_behalf_of.split())} via holdspace"
        return str(Address(display_name=name or "holdspace", addr_spec=address or self.sender))

    def build(self, to: str, subject: str, text: str, html: str | None = None,
              headers: dict[str, str] | None = None,
              attachments: list[tuple[str, bytes, str]] = (), on_behalf_of: str | None = None,
              reply_to: str | None = None) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.from_header(on_behalf_of)
        if reply_to:
            msg["Reply-To"] = reply_to
        msg["To"] = to
        msg["Subject"] = subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain=parseaddr(self.sender)[1].rsplit("@", 1)[-1] or "localhost")
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
             attachments: list[tuple[str, bytes, str]] = (), about: str | None = None,
             on_behalf_of: str | None = None, reply_to: str | None = None) -> str:
        """Send one message (files attached as (name, bytes, content type)); its Message-ID.
        `about`: the id of the client the mail is about, if any; `on_behalf_of`: the name
        the mail is sent for, and `reply_to` where answers go (a coach writing to a client)."""
        msg = self.build(to, subject, text, html, headers, attachments, on_behalf_of, reply_to)
        if not self.smtp_url:
            self._keep(msg, about)
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

    # --- the Maildir ----------------------------------------------------------------------------

    def _box(self) -> mailbox.Maildir:
        for sub in ("tmp", "new", "cur"):
            (self.maildir / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        return mailbox.Maildir(self.maildir, create=False)

    def _keep(self, msg: EmailMessage, about: str | None) -> None:
        if self._seal is not None:
            owner, token = self._seal(msg.as_bytes(), about)
            wrapper = EmailMessage()
            wrapper["Subject"] = "sealed mail: read it with `flask --app app outbox`"
            wrapper["Date"] = msg["Date"]
            wrapper[SEALED_HEADER] = owner
            if about:
                wrapper[ABOUT_HEADER] = about
            wrapper.set_content(token)
            msg = wrapper
        self._box().add(msg)

    def kept(self) -> list[EmailMessage]:
        """The mails in the Maildir that still open, oldest first (a mail about an erased client
        opens no more)."""
        return [m for _, m in self._opened()]

    def forget_where(self, wanted) -> int:
        """Delete the mails (that still open) for which `wanted(mail)` holds; how many went."""
        gone = 0
        for key, msg in self._opened():
            if wanted(msg):
                self._box().discard(key)
                gone += 1
        return gone

    def _opened(self) -> list[tuple[str, EmailMessage]]:
        if not (self.maildir / "new").is_dir():
            return []
        found = []
        for key, raw in self._box().iteritems():
            stored = message_from_bytes(raw.as_bytes(), policy=default)
            owner = stored.get(SEALED_HEADER)
            if owner is None:
                found.append((key, stored))
                continue
            data = self._unseal(owner, stored.get_content().strip()) if self._unseal else None
            if data is not None:
                found.append((key, message_from_bytes(data, policy=default)))
        # Keys start with the delivery time (seconds, microseconds): sorting lists mails in order.
        found.sort(key=lambda kv: _written(kv[0]))
        return found

    def forget_about(self, client_id: str) -> int:
        """Delete every mail about a client from the Maildir; how many went."""
        if not (self.maildir / "new").is_dir():
            return 0
        box, gone = self._box(), 0
        for key, raw in list(box.iteritems()):
            if raw.get(ABOUT_HEADER) == client_id:
                box.discard(key)
                gone += 1
        return gone


def _written(key: str) -> tuple[int, int]:
    stamp, _, rest = key.partition(".")
    micro = rest[1:].split("P", 1)[0] if rest.startswith("M") else "0"
    return int(stamp) if stamp.isdigit() else 0, int(micro) if micro.isdigit() else 0
