"""Outgoing mail over SMTP (aiosmtplib): one message per call, no retries.

    mailer = Mailer("smtp.example.jp", 587, from_address="info@example-library.jp",
                    username="u", password="p", starttls=True)
    await mailer.send("patron@example.jp", "予約資料のご用意ができました", body,
                      message_id="<notice-42@example-library.jp>", date=now)

The message is an :class:`email.message.EmailMessage`: UTF-8 subject (RFC 2047
encoded-word) and UTF-8 body (``text/plain``), ``Date`` (an aware datetime, shown
with its offset; a naive one only with the Mailer's ``timezone``) and the ``Message-ID`` the
caller gives (the outbox derives it from the notice id, so a message that is sent
again carries the same id).

Failures raise :class:`MailError` with ``transient`` set when trying again later may
work: 4xx replies, refused or dropped connections, timeouts, and authentication or
TLS set-up failures (a configuration problem of ours, not of the message). 5xx
replies to the sender, recipient or data are permanent. Retrying is the caller's
job (the notice outbox backs off and counts attempts); ``send`` tries once.
"""
from __future__ import annotations

import email.policy
import email.utils
import socket
import ssl
from datetime import datetime, tzinfo
from email.message import EmailMessage

import aiosmtplib


class MailError(Exception):
    """A message was not accepted. ``transient``: trying later may succeed.
    ``code``: the SMTP reply code when the server answered (else None)."""

    def __init__(self, message: str, *, transient: bool, code: int | None = None):
        super().__init__(message)
        self.transient = transient
        self.code = code

    @property
    def permanent(self) -> bool:
        return not self.transient


class Mailer:
    """SMTP submission settings. ``starttls``: True = required, False = never,
    None = when the server offers it. ``use_tls``: implicit TLS (port 465).
    ``timezone`` interprets naive ``date`` values; without it a naive ``date`` is refused
    (ValueError): the caller says which zone its times are in."""

    def __init__(self, host: str = "localhost", port: int = 25, *, from_address: str,
                 username: str | None = None, password: str | None = None,
                 starttls: bool | None = None, use_tls: bool = False, timeout: float = 30.0,
                 message_id_domain: str | None = None, validate_certs: bool = True,
                 tls_context: ssl.SSLContext | None = None, timezone: tzinfo | None = None):
        if "@" not in from_address:
            raise ValueError(f"from_address is not an e-mail address: {from_address!r}")
        if use_tls and starttls:
            raise ValueError("use_tls (implicit TLS) and starttls exclude each other")
        self.host, self.port = host, port
        self.from_address = from_address
        self.username, self.password = username, password
        self.starttls, self.use_tls = starttls, use_tls
        self.timeout = timeout
        self.validate_certs, self.tls_context = validate_certs, tls_context
        self.timezone = timezone
        self.message_id_domain = (message_id_domain or from_address.rsplit("@", 1)[1]
                                  or socket.getfqdn())

    def __repr__(self) -> str:   # never shows the password
        return (f"Mailer({self.host!r}, {self.port}, from_address={self.from_address!r}, "
                f"username={self.username!r}, starttls={self.starttls}, use_tls={self.use_tls})")

    def build_message(self, to: str, subject: str, body: str, *, message_id: str,
                      date: datetime, from_address: str | None = None,
                      reply_to: str | None = None) -> EmailMessage:
        if not (message_id.startswith("<") and message_id.endswith(">") and "@" in message_id):
            raise ValueError(f"Message-ID must look like <local@domain>: {message_id!r}")
        if "\n" in subject or "\r" in subject:
            raise ValueError("the subject must be one line")
        if date.tzinfo is None:
            if self.timezone is None:
                raise ValueError("a naive Date needs the Mailer's timezone; pass an aware datetime")
            date = date.replace(tzinfo=self.timezone)
        msg = EmailMessage(policy=email.policy.SMTP)
        msg["From"] = from_address or self.from_address
        msg["To"] = to
        if reply_to:
            msg["Reply-To"] = reply_to
        msg["Subject"] = subject
        msg["Date"] = email.utils.format_datetime(date)
        msg["Message-ID"] = message_id
        msg["Auto-Submitted"] = "auto-generated"       # RFC 3834: no auto-replies, please
        msg.set_content(body, charset="utf-8")
        return msg

    async def send(self, to: str, subject: str, body: str, *, message_id: str, date: datetime,
                   from_address: str | None = None, reply_to: str | None = None) -> str:
        """Send one message once; return its Message-ID. Raises :class:`MailError`."""
        msg = self.build_message(to, subject, body, message_id=message_id, date=date,
                                 from_address=from_address, reply_to=reply_to)
        await self.send_message(msg)
        return message_id

    async def send_message(self, msg: EmailMessage) -> None:
        try:
            await self._send(msg)
        except aiosmtplib.SMTPRecipientsRefused as e:
            codes = [r.code for r in e.recipients]
            text = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in e.recipients)
            # one recipient per message: its code decides
            raise MailError(f"recipient refused: {text}", transient=all(_is_4xx(c) for c in codes),
                            code=codes[0] if codes else None) from e
        except aiosmtplib.SMTPAuthenticationError as e:
            raise MailError(f"SMTP authentication failed: {e.code} {e.message}", transient=True,
                            code=e.code) from e
        except aiosmtplib.SMTPResponseException as e:
            # sender refused, data refused, HELO refused, or a 4xx/5xx greeting
            raise MailError(f"{type(e).__name__}: {e.code} {e.message}", transient=_is_4xx(e.code),
                            code=e.code) from e
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as e:
            # timeouts, refused/dropped connections, TLS not offered, TLS handshake errors
            raise MailError(f"{type(e).__name__}: {e}", transient=True) from e


    async def _send(self, msg: EmailMessage) -> None:
        """One SMTP session for ``msg``. Cancelled, it drops the connection at once
        (aiosmtplib.send would first wait for the server to answer QUIT, up to the
        timeout, keeping a cancelled sender, and a service shutting down, waiting)."""
        client = aiosmtplib.SMTP(
            hostname=self.host, port=self.port, username=self.username, password=self.password,
            use_tls=self.use_tls, start_tls=False if self.use_tls else self.starttls,
            timeout=self.timeout, validate_certs=self.validate_certs, tls_context=self.tls_context)
        try:
            await client.connect()
            await client.send_message(msg)
        except BaseException:
            client.close()
            raise
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            pass                                   # the message was accepted: that is what counts
        finally:
            client.close()


def _is_4xx(code: int | None) -> bool:
    return code is not None and 400 <= code < 500
