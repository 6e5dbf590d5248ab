"""Mail transports against real parts: a folder on disk and an SMTP server on loopback.

The server is aiosmtpd on 127.0.0.1. Its handler records every message it accepts (the
envelope and the exact DATA bytes, after SMTP's dot-stuffing is undone) and can be told to
answer the next MAIL, RCPT or DATA with a given reply, refuse a recipient for good, or drop
the connection after a message. TLS uses a throw-away self-signed certificate made with the
openssl command line.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from digest.deliver.mail import DeliveryError, DeliveryResult, Outbox, SmtpTransport, Transport
from digest.errors import DigestError

ROOT = Path(__file__).resolve().parent.parent
# The committed fixture has CRLF line endings; normalising guards against a checkout that
# rewrote them.
MESSAGE = (
    (Path(__file__).parent / "fixtures" / "deliver" / "digest.eml")
    .read_bytes()
    .replace(b"\r\n", b"\n")
    .replace(b"\n", b"\r\n")
)
SENDER = "digest@example.org"
ADA = "ada@example.org"
BOB = "bob@example.org"


def message_for(recipient: str, number: int = 1) -> bytes:
    """A small CRLF message, different for each recipient and number."""
    return (
        f"From: {SENDER}\r\nTo: {recipient}\r\nSubject: digest {number}\r\n\r\n"
        f"Paper {number} for {recipient}.\r\n"
    ).encode()


# --- outbox ------------------------------------------------------------------------------


def test_outbox_writes_the_bytes_as_given(tmp_path: Path) -> None:
    long_header = b"X-Digest-Picks: " + b",".join(b"2603.%05d" % n for n in range(200))
    assert len(long_header) > 998  # longer than SMTP allows a line: nothing may fold it
    message = long_header + b"\r\n" + MESSAGE

    with Outbox(tmp_path / "outbox") as outbox:
        result = outbox.send("2026-03-11/ada.eml", SENDER, ADA, message)

    written = tmp_path / "outbox" / "2026-03-11" / "ada.eml"
    assert result == DeliveryResult("delivered", detail=str(written))
    assert result.delivered
    assert written.read_bytes() == message
    assert written.read_bytes().splitlines()[0] == long_header
    if os.name == "posix":  # digests carry signed links: for the owner's eyes only
        assert written.stat().st_mode & 0o777 == 0o600


def test_outbox_redelivery_replaces_the_file(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    for number in range(3):
        outbox.send("2026-03-11/ada.eml", SENDER, ADA, message_for(ADA, number))
    outbox.send("2026-03-11/bob.eml", SENDER, BOB, message_for(BOB))

    day = tmp_path / "2026-03-11"
    # Nothing else: no temporary file is left behind.
    assert sorted(p.name for p in day.iterdir()) == ["ada.eml", "bob.eml"]
    assert (day / "ada.eml").read_bytes() == message_for(ADA, 2)


def test_outbox_keeps_any_line_ending(tmp_path: Path) -> None:
    message = b"Subject: lf only\n\nbody\n"
    Outbox(tmp_path).send("lf.eml", SENDER, ADA, message)
    assert (tmp_path / "lf.eml").read_bytes() == message


@pytest.mark.parametrize(
    "name",
    [
        "../ada.eml",
        "2026-03-11/../../ada.eml",
        "/tmp/ada.eml",
        "",
        ".",
        "2026-03-11/",
        "2026-03-11/./ada.eml",
        "2026-03-11\\ada.eml",
        "ada\x00.eml",
    ],
)
def test_outbox_refuses_names_outside_the_folder(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "outbox"
    with pytest.raises(DeliveryError, match="outbox: message name"):
        Outbox(folder).send(name, SENDER, ADA, b"x")
    assert list(tmp_path.rglob("*")) == []


def test_outbox_refuses_a_symlink_out_of_the_folder(tmp_path: Path) -> None:
    folder, elsewhere = tmp_path / "outbox", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    (folder / "link").symlink_to(elsewhere)
    with pytest.raises(DeliveryError, match="leads outside"):
        Outbox(folder).send("link/ada.eml", SENDER, ADA, b"x")
    assert list(elsewhere.iterdir()) == []


def test_outbox_notices_a_folder_swapped_for_a_symlink_during_a_run(tmp_path: Path) -> None:
    folder, elsewhere = tmp_path / "outbox", tmp_path / "elsewhere"
    elsewhere.mkdir()
    outbox = Outbox(folder)
    outbox.send("day/ada.eml", SENDER, ADA, b"x")  # the day's folder, checked and known
    (folder / "day" / "ada.eml").unlink()
    (folder / "day").rmdir()
    (folder / "day").symlink_to(elsewhere)
    with pytest.raises(DeliveryError, match="leads outside"):
        outbox.send("day/bob.eml", SENDER, ADA, b"x")
    assert list(elsewhere.iterdir()) == []


def test_outbox_never_writes_through_a_symlink_at_the_file_itself(tmp_path: Path) -> None:
    folder, victim, planted = tmp_path / "outbox", tmp_path / "victim", tmp_path / "planted"
    (folder / "day").mkdir(parents=True)
    victim.write_bytes(b"keep")
    planted.write_bytes(b"keep too")
    (folder / "day" / "ada.eml").symlink_to(victim)  # replaced by the rename, not followed
    outbox = Outbox(folder)
    outbox.send("day/ada.eml", SENDER, ADA, b"message")
    assert (folder / "day" / "ada.eml").read_bytes() == b"message"
    assert not (folder / "day" / "ada.eml").is_symlink()
    (folder / "day" / ".bob.eml.tmp").symlink_to(planted)  # the temporary name, planted
    outbox.send("day/bob.eml", SENDER, ADA, b"message")
    assert (folder / "day" / "bob.eml").read_bytes() == b"message"
    assert victim.read_bytes() == b"keep" and planted.read_bytes() == b"keep too"
    assert sorted(p.name for p in (folder / "day").iterdir()) == ["ada.eml", "bob.eml"]


def test_outbox_write_failure_is_an_error_and_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "ada.eml").mkdir()  # the target exists and cannot be replaced by a file
    with pytest.raises(DeliveryError, match="cannot write") as caught:
        Outbox(tmp_path).send("ada.eml", SENDER, ADA, b"x")
    assert isinstance(caught.value, DigestError)
    assert [p.name for p in tmp_path.iterdir()] == ["ada.eml"]


_WRITER = """
import sys
from digest.deliver.mail import Outbox

outbox = Outbox(sys.argv[1])
first, second = b"A" * 4_000_000, b"B" * 4_000_000
while True:
    outbox.send("day/ada.eml", "s", "r", first)
    outbox.send("day/ada.eml", "s", "r", second)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_outbox_killed_mid_write_leaves_a_whole_file(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)], env=env)
    target = tmp_path / "day" / "ada.eml"
    try:
        deadline = time.monotonic() + 10
        while not target.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.15)  # well into the rewriting loop
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert target.read_bytes() in (b"A" * 4_000_000, b"B" * 4_000_000)
    # A write cut short leaves at most a hidden temporary file, never a partial .eml.
    assert [p.name for p in target.parent.glob("*.eml")] == ["ada.eml"]
    assert all(p.name.startswith(".ada.eml.") for p in target.parent.glob("*.tmp"))


# --- an SMTP server on loopback ----------------------------------------------------------


@dataclass
class Received:
    """One message as the server accepted it."""

    peer: tuple[str, int]
    mail_from: str
    rcpt_tos: list[str]
    mail_options: list[str]
    content: bytes
    tls: bool


@dataclass
class Recorder:
    """An aiosmtpd handler that keeps what it received and misbehaves on request."""

    received: list[Received] = field(default_factory=list)
    #: Replies to give instead of accepting, per command, used up in order.
    fail_next: dict[str, list[str]] = field(default_factory=dict)
    #: Recipients refused for good.
    refused: set[str] = field(default_factory=set)
    #: How many connections to drop right after accepting a message.
    drop_after_data: int = 0
    #: How often each command was received; the connections that sent MAIL.
    tries: Counter[str] = field(default_factory=Counter)
    peers: set[tuple[str, int]] = field(default_factory=set)
    quits: int = 0
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)

    def _failure(self, command: str) -> str | None:
        self.tries[command] += 1
        replies = self.fail_next.get(command)
        return replies.pop(0) if replies else None

    async def handle_MAIL(self, server, session, envelope, address, mail_options) -> str:
        self.peers.add(session.peer)
        if reply := self._failure("MAIL"):
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        if reply := self._failure("RCPT"):
            return reply
        if address in self.refused:
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        if reply := self._failure("DATA"):
            return reply
        tls = server.transport.get_extra_info("cipher") is not None
        self.received.append(
            Received(
                session.peer,
                envelope.mail_from,
                list(envelope.rcpt_tos),
                list(envelope.mail_options),
                envelope.original_content,
                tls,
            )
        )
        if self.drop_after_data:
            self.drop_after_data -= 1
            server.loop.call_soon(server.transport.close)  # after the reply is written
        return f"250 2.0.0 OK queued as Q{len(self.received)}"

    async def handle_QUIT(self, server, session, envelope) -> str:
        self.quits += 1
        return "221 Bye"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        self.logins.append((auth_data.login, auth_data.password))
        ok = (auth_data.login, auth_data.password) == (b"digest", b"s3cret")
        return AuthResult(success=ok, handled=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    recorder: Recorder
    port: int


@pytest.fixture
def start_server() -> Iterator[Callable[..., Server]]:
    """Start an aiosmtpd server on 127.0.0.1 with the given SMTP options; stop it after."""
    controllers: list[Controller] = []

    def start(recorder: Recorder | None = None, **options: Any) -> Server:
        recorder = recorder or Recorder()
        if options.pop("auth", False):
            options["authenticator"] = recorder.authenticate
        port = free_port()
        controller = Controller(recorder, hostname="127.0.0.1", port=port, **options)
        controller.start()
        controllers.append(controller)
        return Server(recorder, port)

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def server(start_server: Callable[..., Server]) -> Server:
    return start_server()


def transport(server: Server | int, **options: Any) -> SmtpTransport:
    """A transport to the test server with test-speed timeouts and backoff."""
    port = server if isinstance(server, int) else server.port
    settings = {"security": "none", "timeout": 5, "backoff": 0.01, **options}
    return SmtpTransport("127.0.0.1", port, local_hostname="client.test", **settings)


@dataclass(frozen=True)
class Certificate:
    server: ssl.SSLContext
    client: ssl.SSLContext


_SELF_SIGNED = [
    "req",
    "-x509",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=localhost",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-addext",
    "subjectAltName=IP:127.0.0.1,DNS:localhost",
]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1; the client context trusts only it."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, *_SELF_SIGNED, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    return Certificate(server, ssl.create_default_context(cafile=str(cert)))


# --- SMTP: delivery ----------------------------------------------------------------------


def test_message_arrives_byte_identical(server: Server) -> None:
    with transport(server) as smtp:
        result = smtp.send("2026-03-11/ada.eml", SENDER, ADA, MESSAGE)

    assert result == DeliveryResult("delivered", detail="250 2.0.0 OK queued as Q1")
    [got] = server.recorder.received
    assert (got.mail_from, got.rcpt_tos) == (SENDER, [ADA])
    # Exact bytes: the long List-Unsubscribe line stays unfolded, dot lines survive.
    assert got.content == MESSAGE
    assert "BODY=8BITMIME" in got.mail_options  # the text part is 8-bit UTF-8


def test_envelope_recipient_is_independent_of_the_headers(server: Server) -> None:
    with transport(server) as smtp:
        smtp.send("x", "bounces+ada@example.org", BOB, message_for(ADA))
    [got] = server.recorder.received
    assert (got.mail_from, got.rcpt_tos) == ("bounces+ada@example.org", [BOB])
    assert got.mail_options == []  # a 7-bit message asks for nothing


def test_bare_line_feeds_go_out_as_crlf(server: Server) -> None:
    with transport(server) as smtp:
        smtp.send("x", SENDER, ADA, MESSAGE.replace(b"\r\n", b"\n"))
    assert server.recorder.received[0].content == MESSAGE


def test_one_connection_carries_many_messages(server: Server) -> None:
    with transport(server) as smtp:
        results = [smtp.send(f"{n}", SENDER, ADA, message_for(ADA, n)) for n in range(5)]

    assert all(r.delivered and r.attempts == 1 for r in results)
    assert [r.content for r in server.recorder.received] == [message_for(ADA, n) for n in range(5)]
    assert len({r.peer for r in server.recorder.received}) == 1
    assert server.recorder.quits == 1  # closed politely at the end


def test_nothing_connects_until_the_first_message(server: Server) -> None:
    smtp = transport(server)
    smtp.close()
    smtp.close()
    assert server.recorder.peers == set()


@pytest.mark.parametrize("command", ["MAIL", "RCPT", "DATA"])
def test_temporary_failures_are_retried(server: Server, command: str) -> None:
    server.recorder.fail_next[command] = ["451 4.7.1 greylisted, try again"] * 2
    with transport(server, attempts=3) as smtp:
        result = smtp.send("ada", SENDER, ADA, message_for(ADA))

    assert result.delivered and result.attempts == 3
    assert server.recorder.tries[command] == 3
    assert len(server.recorder.received) == 1
    # The refused transactions were reset, so the retries used the same connection.
    assert len(server.recorder.peers) == 1


def test_temporary_failures_use_up_the_attempts_with_backoff(server: Server) -> None:
    server.recorder.fail_next["RCPT"] = ["452 4.2.2 mailbox full"] * 10
    with transport(server, attempts=3, backoff=0.05) as smtp:
        started = time.monotonic()
        result = smtp.send("ada", SENDER, ADA, message_for(ADA))
        waited = time.monotonic() - started
        after = smtp.send("bob", SENDER, BOB, message_for(BOB))

    assert result == DeliveryResult(
        "failed", permanent=False, detail="452 4.2.2 mailbox full", attempts=3
    )
    assert waited >= 0.05 + 0.1  # slept 0.05 s, then twice as long
    assert server.recorder.tries["RCPT"] == 3 + 3  # bob's tries were refused too
    assert not after.delivered


def test_permanent_failure_is_reported_and_the_run_goes_on(server: Server) -> None:
    server.recorder.refused.add(BOB)
    with transport(server) as smtp:
        bob = smtp.send("bob", SENDER, BOB, message_for(BOB))
        ada = smtp.send("ada", SENDER, ADA, message_for(ADA))

    assert bob == DeliveryResult(
        "failed", permanent=True, detail=f"550 5.1.1 <{BOB}>: mailbox unavailable", attempts=1
    )
    assert ada.delivered
    assert [r.rcpt_tos for r in server.recorder.received] == [[ADA]]
    assert len(server.recorder.peers) == 1


@pytest.mark.parametrize("reply", ["553 5.7.1 sender not allowed", "554 5.6.0 content refused"])
def test_permanent_refusal_of_mail_or_data(server: Server, reply: str) -> None:
    command = "MAIL" if reply.startswith("553") else "DATA"
    server.recorder.fail_next[command] = [reply]
    with transport(server) as smtp:
        result = smtp.send("ada", SENDER, ADA, message_for(ADA))
    assert (result.status, result.permanent, result.detail) == ("failed", True, reply)
    assert server.recorder.tries[command] == 1


def test_a_421_reply_reconnects(server: Server) -> None:
    server.recorder.fail_next["MAIL"] = ["421 4.3.2 shutting down"]
    with transport(server) as smtp:
        result = smtp.send("ada", SENDER, ADA, message_for(ADA))
    assert result.delivered and result.attempts == 2
    assert len(server.recorder.peers) == 2  # the client closed as the server asked


def test_a_connection_dropped_while_idle_is_replaced(server: Server) -> None:
    server.recorder.drop_after_data = 1
    with transport(server, attempts=1) as smtp:
        first = smtp.send("ada", SENDER, ADA, message_for(ADA))
        time.sleep(0.05)
        second = smtp.send("bob", SENDER, BOB, message_for(BOB))

    assert first.delivered
    assert second.delivered and second.attempts == 1  # the stale connection cost no attempt
    assert len({r.peer for r in server.recorder.received}) == 2


def test_a_server_gone_for_good_stops_the_run() -> None:
    port = free_port()  # nothing listens here
    with (
        transport(port, attempts=2) as smtp,
        pytest.raises(DeliveryError, match=r"cannot reach 127\.0\.0\.1:\d+ in 2 attempts"),
    ):
        smtp.send("ada", SENDER, ADA, message_for(ADA))


def test_a_server_that_comes_back_is_used() -> None:
    """The connection is retried with the message: a refused connect is temporary."""
    port = free_port()
    smtp = transport(port, attempts=1)
    with pytest.raises(DeliveryError):
        smtp.send("ada", SENDER, ADA, message_for(ADA))
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        assert smtp.send("ada", SENDER, ADA, message_for(ADA)).delivered
    finally:
        smtp.close()
        controller.stop()


@pytest.mark.parametrize("enabled", [True, False])
def test_non_ascii_addresses_need_smtputf8(
    start_server: Callable[..., Server], enabled: bool
) -> None:
    server = start_server(enable_SMTPUTF8=enabled)
    recipient = "zoë@example.org"
    with transport(server) as smtp:
        result = smtp.send("zoe", SENDER, recipient, message_for("zoe@example.org"))

    if enabled:
        assert result.delivered
        assert server.recorder.received[0].rcpt_tos == [recipient]
    else:
        assert (result.status, result.permanent) == ("failed", True)
        assert "SMTPUTF8" in result.detail


# --- SMTP: TLS and login -----------------------------------------------------------------


def test_starttls(start_server: Callable[..., Server], certificate: Certificate) -> None:
    server = start_server(tls_context=certificate.server, require_starttls=True)
    with transport(server, security="starttls", ssl_context=certificate.client) as smtp:
        for n in range(2):
            assert smtp.send("ada", SENDER, ADA, message_for(ADA, n)).delivered
    assert [r.tls for r in server.recorder.received] == [True, True]
    assert server.recorder.received[0].content == message_for(ADA, 0)


def test_implicit_tls(start_server: Callable[..., Server], certificate: Certificate) -> None:
    server = start_server(ssl_context=certificate.server)
    with transport(server, security="ssl", ssl_context=certificate.client) as smtp:
        assert smtp.send("ada", SENDER, ADA, MESSAGE).delivered
    [got] = server.recorder.received
    assert got.tls and got.content == MESSAGE


def test_an_untrusted_certificate_stops_the_run_at_once(
    start_server: Callable[..., Server], certificate: Certificate
) -> None:
    server = start_server(tls_context=certificate.server)
    # The system's trusted authorities: the self-signed test certificate is not among them.
    with (
        transport(server, security="starttls", attempts=3, backoff=5) as smtp,
        pytest.raises(DeliveryError, match="TLS certificate not trusted"),
    ):
        smtp.send("ada", SENDER, ADA, message_for(ADA))


def test_starttls_never_falls_back_to_plain_text(server: Server) -> None:
    with (
        transport(server, security="starttls") as smtp,
        pytest.raises(DeliveryError, match="STARTTLS"),
    ):
        smtp.send("ada", SENDER, ADA, message_for(ADA))
    assert server.recorder.tries["MAIL"] == 0


def test_login_without_tls(start_server: Callable[..., Server]) -> None:
    server = start_server(auth=True, auth_require_tls=False)
    with transport(server, user="digest", password="s3cret") as smtp:
        assert smtp.send("ada", SENDER, ADA, message_for(ADA)).delivered
    assert server.recorder.logins == [(b"digest", b"s3cret")]


def test_login_over_starttls(start_server: Callable[..., Server], certificate: Certificate) -> None:
    server = start_server(auth=True, tls_context=certificate.server, require_starttls=True)
    options = {"security": "starttls", "ssl_context": certificate.client}
    with transport(server, user="digest", password="s3cret", **options) as smtp:
        assert smtp.send("ada", SENDER, ADA, message_for(ADA)).delivered
    assert server.recorder.received[0].tls


def test_a_refused_login_stops_the_run(start_server: Callable[..., Server]) -> None:
    server = start_server(auth=True, auth_require_tls=False)
    with (
        transport(server, user="digest", password="wrong", backoff=5) as smtp,
        pytest.raises(DeliveryError, match=r"refused the login of 'digest' .*535"),
    ):
        smtp.send("ada", SENDER, ADA, message_for(ADA))
    assert server.recorder.tries["MAIL"] == 0


def test_a_login_the_server_does_not_offer_stops_the_run(server: Server) -> None:
    with (
        transport(server, user="digest", password="s3cret") as smtp,
        pytest.raises(DeliveryError, match="AUTH"),
    ):
        smtp.send("ada", SENDER, ADA, message_for(ADA))


def test_no_common_login_method_stops_the_run(start_server: Callable[..., Server]) -> None:
    server = start_server(
        auth=True, auth_require_tls=False, auth_exclude_mechanism=["LOGIN", "PLAIN"]
    )
    with (
        transport(server, user="digest", password="s3cret", backoff=5) as smtp,
        pytest.raises(DeliveryError, match="No suitable authentication method"),
    ):
        smtp.send("ada", SENDER, ADA, message_for(ADA))


# --- settings and the common interface ---------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"security": "tls"}, "security must be one of starttls, ssl, none"),
        ({"user": "digest"}, "both a user and a password"),
        ({"password": "s3cret"}, "both a user and a password"),
        ({"attempts": 0}, "attempts must be at least 1"),
        ({"backoff": -1}, "backoff must be"),
        ({"host": ""}, "no host"),
    ],
)
def test_bad_settings_are_refused_up_front(options: dict[str, Any], message: str) -> None:
    settings = {"host": "mail.example.org", **options}
    with pytest.raises(DeliveryError, match=message):
        SmtpTransport(**settings)


@pytest.mark.parametrize(("security", "port"), [("starttls", 587), ("ssl", 465), ("none", 25)])
def test_default_ports(security: str, port: int) -> None:
    assert SmtpTransport("mail.example.org", security=security).port == port  # type: ignore[arg-type]


def test_both_transports_serve_the_daily_run(tmp_path: Path, server: Server) -> None:
    def run(chosen: Transport) -> list[DeliveryResult]:
        try:
            return [chosen.send(f"day/{r}.eml", SENDER, r, message_for(r)) for r in (ADA, BOB)]
        finally:
            chosen.close()

    assert all(r.delivered for r in run(Outbox(tmp_path)))
    assert all(r.delivered for r in run(transport(server)))
    assert len(list((tmp_path / "day").iterdir())) == len(server.recorder.received) == 2
