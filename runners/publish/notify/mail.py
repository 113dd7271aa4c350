"""Mail for notifications: SMTP settings from the ``BENCH_SMTP_*`` environment variables
and one attempt at sending a mail (:func:`send_mail`), its failures sorted into those another
attempt may cure (:class:`MailDeferred`) and those it would not (:class:`MailRefused`)."""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from runners.errors import InputError

ADDRESS = re.compile(r"[^@\s,;<>]+@[^@\s,;<>]+")
YES, NO = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


class MailDeferred(OSError):
    """The server answered 4xx (try again later): another attempt may get through."""


class MailRefused(Exception):
    """The server refused for good (5xx, a wrong password, no STARTTLS, every recipient)."""


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how mail is sent, from the environment.

    ``BENCH_SMTP_HOST`` (required for ``mailto:``), ``BENCH_SMTP_PORT`` (default 25),
    ``BENCH_SMTP_USER`` and ``BENCH_SMTP_PASSWORD`` (log in only when given, both then),
    ``BENCH_SMTP_FROM`` (default ``bench@<hostname>``), ``BENCH_SMTP_STARTTLS=1`` (upgrade
    to TLS with the system's CAs before logging in; the mail is not sent in clear if the
    server does not offer it).
    """

    host: str
    port: int = 25
    user: str | None = None
    password: str | None = field(default=None, repr=False)   # never printed
    sender: str = ""
    starttls: bool = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> SmtpSettings:
        """The settings; InputError (one line naming the variable) when one is wrong."""
        host = environ.get("BENCH_SMTP_HOST", "").strip()
        if not host:
            raise InputError("mailto: targets need an SMTP server: set BENCH_SMTP_HOST "
                             "(and BENCH_SMTP_PORT if not 25)")
        port_text = environ.get("BENCH_SMTP_PORT", "25").strip() or "25"
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise InputError(f"BENCH_SMTP_PORT={port_text!r} is not a port; give a number "
                             "from 1 to 65535 (default 25)")
        user = environ.get("BENCH_SMTP_USER") or None
        password = environ.get("BENCH_SMTP_PASSWORD") or None
        if (user is None) != (password is None):
            given, missing = ("USER", "PASSWORD") if user else ("PASSWORD", "USER")
            raise InputError(f"BENCH_SMTP_{given} is set but BENCH_SMTP_{missing} is not; "
                             "set both to log in, or neither")
        tls = environ.get("BENCH_SMTP_STARTTLS", "").strip().lower()
        if tls not in YES + NO:
            raise InputError(f"BENCH_SMTP_STARTTLS={tls!r} is not a yes/no value; give 1 or 0")
        sender = environ.get("BENCH_SMTP_FROM", "").strip() or f"bench@{socket.gethostname()}"
        if not ADDRESS.fullmatch(sender):
            raise InputError(f"BENCH_SMTP_FROM={sender!r} is not a mail address; give one "
                             "such as bench@example.org")
        return cls(host, int(port_text), user, password, sender, tls in YES)


def mail_recipients(target: str) -> list[str]:
    """The addresses of a ``mailto:a@x[,b@y]`` target (InputError if one is not one)."""
    addresses = [a.strip() for a in target[len("mailto:"):].split(",")]
    bad = [a for a in addresses if not ADDRESS.fullmatch(a)]
    if bad:
        raise InputError(f"notification target {target!r}: {bad[0]!r} is not a mail address; "
                         "give mailto:ADDRESS[,ADDRESS...]")
    return addresses


def send_mail(settings: SmtpSettings, recipients: list[str], subject: str, text: str,
              attachment: tuple[str, str, bytes] | None, timeout: float) -> str | None:
    """Send one mail (one attempt).

    Parameters
    ----------
    settings : SmtpSettings
        Server, login and sender.
    recipients : list of str
        The addresses (the ``To`` header and the envelope).
    subject, text : str
        Subject and plain-text body.
    attachment : (filename, MIME type, bytes), optional
        A file attached to the mail, e.g. ``("regressions.json", "application/json", b"...")``.
    timeout : float
        Seconds per network operation.

    Returns
    -------
    str or None
        None when every recipient was accepted, else which were refused and why.

    Raises
    ------
    MailDeferred, MailRefused, OSError
        A 4xx answer; a refusal for good; the connection failed or was lost.
    """
    mail = EmailMessage()
    mail["From"], mail["To"] = settings.sender, ", ".join(recipients)
    mail["Subject"], mail["Date"] = subject, formatdate(localtime=True)
    mail["Message-ID"] = make_msgid(domain=settings.sender.rsplit("@", 1)[1])
    mail.set_content(text + "\n", cte="quoted-printable")   # 7-bit safe for any server
    if attachment is not None:
        name, mime, data = attachment
        maintype, subtype = mime.split("/", 1)
        mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=timeout) as smtp:
            if settings.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.user and settings.password:
                smtp.login(settings.user, settings.password)
            refused = smtp.send_message(mail, settings.sender, recipients)
    except smtplib.SMTPRecipientsRefused as exc:
        raise MailRefused(f"every recipient refused: {refusals(exc.recipients)}") from None
    except smtplib.SMTPNotSupportedError as exc:   # e.g. STARTTLS asked, not offered
        raise MailRefused(str(exc)) from None
    except smtplib.SMTPResponseException as exc:
        error = exc.smtp_error
        said = error.decode(errors="replace") if isinstance(error, bytes) else str(error)
        reason = f"SMTP {exc.smtp_code} {' '.join(said.split())}"
        if 400 <= exc.smtp_code < 500:
            raise MailDeferred(reason) from None
        raise MailRefused(reason) from None
    return f"some recipients refused: {refusals(refused)}" if refused else None


def refusals(refused: Mapping[str, tuple[int, bytes]]) -> str:
    """``who (code message); ...`` of smtplib's refused recipients."""
    return "; ".join(f"{who} ({code} {msg.decode(errors='replace').strip()})"
                     for who, (code, msg) in refused.items())
