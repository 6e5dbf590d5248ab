"""Mail transports: hand a finished RFC 5322 message (bytes) to a folder or an SMTP server.

The renderer builds every header and body; nothing here parses, re-folds or re-encodes a
message. Two transports share one small interface (`Transport`):

- `Outbox` writes each message to its own `.eml` file under a folder. It is the default,
  so a run works with no mail server, and a file is written atomically: a process killed at
  any moment leaves either no file or the whole message, and sending the same name again
  replaces it (one file per reader per day however often the run is repeated).
- `SmtpTransport` sends through one reused SMTP connection with retries for temporary
  failures. A message the server refuses for good is reported in its `DeliveryResult` and
  the run goes on; a failure that would hit every message (authentication, TLS, an
  unreachable server) raises `DeliveryError`.
"""

from __future__ import annotations

import contextlib
import os
import re
import smtplib
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol, Self, get_args

from digest.deliver.files import write_atomically
from digest.errors import DeliveryError

Security = Literal["starttls", "ssl", "none"]
SECURITY_MODES: tuple[str, ...] = get_args(Security)
DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}

# smtplib sends bytes without touching line endings, but SMTP requires CRLF (a bare LF is
# refused by servers guarding against SMTP smuggling). Same rule as smtplib._fix_eols.
_EOL = re.compile(rb"\r\n|\n|\r(?!\n)")


@dataclass(frozen=True)
class DeliveryResult:
    """What became of one message.

    `detail` is the server's reply ("250 ...", "550 ..."), the reason of the last failure,
    or the path of the written file. A failed message with `permanent=False` may succeed
    in a later run; a permanent one will not until the address or message changes.
    """

    status: Literal["delivered", "failed"]
    permanent: bool = False
    detail: str = ""
    attempts: int = 1

    @property
    def delivered(self) -> bool:
        return self.status == "delivered"


class Transport(Protocol):
    """What the daily run calls: `send` each message, then `close` once."""

    def send(self, name: str, sender: str, recipient: str, message: bytes) -> DeliveryResult:
        """Deliver `message` from `sender` to `recipient`; `name` identifies it (outbox file)."""
        ...

    def close(self) -> None:
        """Release connections; safe to call twice."""
        ...


class _Closing:
    """Context-manager support shared by both transports."""

    def close(self) -> None:
        """Nothing to release by default."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


class Outbox(_Closing):
    """A folder of `.eml` files, one per message, each written atomically.

    Files are created readable by their owner only: a digest carries signed links that act
    on the reader's behalf. An interrupted write may leave a hidden `.<name>.<random>.tmp`
    beside the target; it never matches `*.eml` and is never mistaken for a message.
    """

    def __init__(self, folder: str | os.PathLike[str], *, sync: bool = True):
        self.folder = Path(folder)
        #: False when the caller syncs a whole batch at once before recording it.
        self.sync = sync
        self._inside_folder: dict[Path, tuple[tuple[int, int] | None, bool]] = {}

    def send(self, name: str, sender: str, recipient: str, message: bytes) -> DeliveryResult:
        """Write `message` to `folder/name` exactly as given; the envelope is not recorded.

        `name` is a relative POSIX path such as "2026-03-11/ada.eml"; a name that would
        land outside the folder raises `DeliveryError`, as does a folder that cannot be
        written (every later message would fail the same way).
        """
        target = self.path_for(name)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(target, message, sync=self.sync, mode=0o600)
        except OSError as error:
            raise DeliveryError(f"outbox: cannot write {target}: {error}") from error
        return DeliveryResult("delivered", detail=str(target))

    def path_for(self, name: str) -> Path:
        """The file `name` is written to, or `DeliveryError` if it escapes the folder."""
        parts = name.split("/")
        # An empty part catches "", "/abs" and "a//b"; a backslash is a separator on Windows.
        if any(part in ("", ".", "..") or "\\" in part or "\x00" in part for part in parts):
            raise DeliveryError(
                f"outbox: message name {name!r} must be a relative path like "
                "'2026-03-11/ada.eml' without '..'"
            )
        target = self.folder.joinpath(*parts)
        if not self._inside(target.parent):
            raise DeliveryError(f"outbox: message name {name!r} leads outside {self.folder}")
        return target

    def _inside(self, folder: Path) -> bool:
        """Whether `folder` really lies inside the outbox (a symlinked sub-folder may not).

        The file itself is replaced by a rename, which never follows a symlink, so its
        folder is what is resolved. Resolving walks every path component; 10,000
        messages share one day's folder, so the answer is kept with the folder's
        identity (device and inode, one `stat`), and a folder swapped since is
        resolved again.
        """
        try:
            found = os.stat(folder)
        except OSError:
            identity = None  # not made yet: resolved as a path
        else:
            identity = (found.st_dev, found.st_ino)
        known = self._inside_folder.get(folder)
        if known is None or identity is None or known[0] != identity:
            inside = folder.resolve().is_relative_to(self.folder.resolve())
            known = self._inside_folder[folder] = (identity, inside)
        return known[1]


class _Failed(Exception):
    """One attempt failed; `permanent` says whether trying again could help."""

    def __init__(self, detail: str, *, permanent: bool = False):
        super().__init__(detail)
        self.detail = detail
        self.permanent = permanent


class _Unreachable(_Failed):
    """A temporary failure before a session existed (connect, greeting, TLS, login)."""


class SmtpTransport(_Closing):
    """Send messages through one SMTP connection, opened on first use and reused.

    `security` is "starttls" (upgrade a plain connection, never falling back to plain
    text), "ssl" (TLS from the first byte) or "none"; `port` defaults to 587, 465 or 25 to
    match. `ssl_context` replaces the system's trusted certificates (a private relay, tests).
    `user` and `password` log in after TLS; the caller reads them from the environment.

    Retry policy, per message: a temporary failure (a 4xx reply to MAIL, RCPT or DATA, a
    dropped or refused connection, a timeout) is tried again, up to `attempts` tries in all,
    sleeping `backoff` seconds before the second, then twice as long before each next one
    (0.5 s, 1 s, 2 s, ...). A 5xx reply fails that message at once (`permanent=True`) and the
    connection stays open for the next one. A connection the server closed while idle is
    replaced on the spot, without using up an attempt.

    Failures that would hit every message raise `DeliveryError` instead: a refused login
    (535), no STARTTLS or AUTH offered, an untrusted certificate, a 5xx greeting, and a
    server that could not be reached in any of the attempts for one message.
    """

    def __init__(
        self,
        host: str,
        port: int | None = None,
        security: Security = "starttls",
        user: str | None = None,
        password: str | None = None,
        timeout: float = 30,
        attempts: int = 3,
        backoff: float = 0.5,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ):
        _check_settings(host, security, user, password, timeout, attempts, backoff)
        self.host = host
        self.port = DEFAULT_PORTS[security] if port is None else port
        self.security = security
        self.user = user
        self.password = password
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self.ssl_context = ssl_context
        self.local_hostname = local_hostname
        self._smtp: smtplib.SMTP | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def send(self, name: str, sender: str, recipient: str, message: bytes) -> DeliveryResult:
        """Send `message` to `recipient` with `sender` as the envelope sender.

        The bytes go out as given except that line endings become CRLF, as SMTP requires;
        `name` is not used. Raises `DeliveryError` only for failures of the whole run.
        """
        wire = _EOL.sub(b"\r\n", message)
        failure = _Failed("")
        for attempt in range(1, self.attempts + 1):
            if attempt > 1:
                time.sleep(self.backoff * 2 ** (attempt - 2))
            try:
                reply = self._attempt(sender, recipient, wire)
            except _Failed as error:
                if error.permanent:
                    return DeliveryResult(
                        "failed", permanent=True, detail=error.detail, attempts=attempt
                    )
                failure = error
            else:
                return DeliveryResult("delivered", detail=reply, attempts=attempt)
        if isinstance(failure, _Unreachable):
            raise DeliveryError(
                f"smtp: cannot reach {self.address} in {self.attempts} attempts: {failure}"
            ) from failure
        return DeliveryResult("failed", detail=failure.detail, attempts=self.attempts)

    def close(self) -> None:
        """Say QUIT and close the connection, if one is open."""
        smtp, self._smtp = self._smtp, None
        if smtp is None or smtp.sock is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()

    def _attempt(self, sender: str, recipient: str, wire: bytes) -> str:
        """One try. A reused connection found closed is replaced once, on the spot."""
        may_be_stale = self._smtp is not None and self._smtp.sock is not None
        while True:
            try:
                return _transaction(self._connection(), sender, recipient, wire)
            except smtplib.SMTPServerDisconnected as error:
                self._discard()
                if not may_be_stale:
                    raise _Failed(_describe(error)) from error
                may_be_stale = False

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None or self._smtp.sock is None:
            self._discard()
            self._smtp = self._open()
        return self._smtp

    def _discard(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()

    def _open(self) -> smtplib.SMTP:
        """Connect, greet, secure and log in; what retrying cannot fix raises `DeliveryError`."""
        smtp: smtplib.SMTP | None = None
        try:
            smtp = self._connect()
            smtp.ehlo()
            if self.security == "starttls":
                smtp.starttls(context=self._tls())
                smtp.ehlo()
            if self.user is not None and self.password is not None:
                smtp.login(self.user, self.password)
        except Exception as error:
            if smtp is not None:
                smtp.close()
            failure = self._session_failure(error)
            if failure is None:
                raise
            raise failure from error
        return smtp

    def _connect(self) -> smtplib.SMTP:
        if self.security == "ssl":
            return smtplib.SMTP_SSL(
                self.host,
                self.port,
                local_hostname=self.local_hostname,
                timeout=self.timeout,
                context=self._tls(),
            )
        return smtplib.SMTP(
            self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout
        )

    def _tls(self) -> ssl.SSLContext:
        return self.ssl_context or ssl.create_default_context()

    def _session_failure(self, error: Exception) -> Exception | None:
        """A failure to set up the session as a retryable `_Unreachable` or a `DeliveryError`."""
        where = f"smtp: {self.address}"
        if isinstance(error, smtplib.SMTPAuthenticationError) and error.smtp_code >= 500:
            return DeliveryError(
                f"{where} refused the login of {self.user!r} ({_describe(error)}); "
                "check the user name and password"
            )
        if isinstance(error, smtplib.SMTPNotSupportedError):
            return DeliveryError(f"{where}: {error} (security={self.security!r})")
        if isinstance(error, ssl.SSLCertVerificationError):
            return DeliveryError(f"{where}: TLS certificate not trusted: {error.verify_message}")
        if isinstance(error, smtplib.SMTPResponseException) and error.smtp_code >= 500:
            return DeliveryError(f"{where} refused the session: {_describe(error)}")
        if isinstance(error, smtplib.SMTPResponseException | smtplib.SMTPServerDisconnected):
            return _Unreachable(_describe(error))
        # SMTPException is an OSError too, so the order of these two matters.
        if isinstance(error, smtplib.SMTPException):
            return DeliveryError(f"{where}: {error}")
        if isinstance(error, OSError):
            return _Unreachable(_describe(error))
        return None


def _check_settings(
    host: str,
    security: str,
    user: str | None,
    password: str | None,
    timeout: float,
    attempts: int,
    backoff: float,
) -> None:
    """Refuse settings that could only fail later, once per message."""
    if not host:
        raise DeliveryError("smtp: no host given")
    if security not in SECURITY_MODES:
        raise DeliveryError(
            f"smtp: security must be one of {', '.join(SECURITY_MODES)}, not {security!r}"
        )
    if (user is None) != (password is None):
        raise DeliveryError("smtp: give both a user and a password, or neither")
    if attempts < 1:
        raise DeliveryError(f"smtp: attempts must be at least 1, not {attempts}")
    if backoff < 0 or timeout <= 0:
        raise DeliveryError("smtp: backoff must be >= 0 seconds and timeout > 0")


def _transaction(smtp: smtplib.SMTP, sender: str, recipient: str, wire: bytes) -> str:
    """MAIL, RCPT and DATA as `sendmail` sends them, but keeping the final reply.

    smtplib sends the bytes as they are, only dot-stuffing lines that start with ".". A
    refusal resets the transaction so the same connection can carry the next message.
    """
    code, text = smtp.mail(sender, _mail_options(smtp, sender, recipient, wire))
    if code == 250:
        code, text = smtp.rcpt(recipient)
        if code in (250, 251):
            code, text = _data(smtp, wire)
    reply = f"{code} {_text(text)}"
    if code == 250:
        return reply
    _reset(smtp, code)
    raise _Failed(reply, permanent=code >= 500)


def _mail_options(smtp: smtplib.SMTP, sender: str, recipient: str, wire: bytes) -> list[str]:
    """MAIL FROM parameters the message needs: an 8-bit body, non-ASCII addresses."""
    options = []
    if not wire.isascii() and smtp.has_extn("8bitmime"):
        options.append("BODY=8BITMIME")
    if not (sender + recipient).isascii():
        if not smtp.has_extn("smtputf8"):
            raise _Failed(
                "the server does not accept non-ASCII addresses (no SMTPUTF8)", permanent=True
            )
        options.append("SMTPUTF8")
    return options


def _data(smtp: smtplib.SMTP, wire: bytes) -> tuple[int, bytes]:
    """DATA's final reply; smtplib raises instead when the server refuses to start."""
    try:
        return smtp.data(wire)
    except smtplib.SMTPDataError as error:
        return error.smtp_code, error.smtp_error


def _reset(smtp: smtplib.SMTP, code: int) -> None:
    """Abandon a refused transaction; after 421 the server is closing, so close too."""
    if code == 421:
        smtp.close()
        return
    with contextlib.suppress(smtplib.SMTPServerDisconnected):
        smtp.rset()


def _describe(error: BaseException) -> str:
    """One line for a result or an error message: the SMTP reply, else the exception."""
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{error.smtp_code} {_text(error.smtp_error)}"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _text(reply: bytes | str) -> str:
    """A server reply as one line (smtplib joins multi-line replies with newlines)."""
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", "replace")
    return " ".join(reply.split())
