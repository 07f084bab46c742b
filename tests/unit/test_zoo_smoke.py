"""Smoke tests of the hostile-server zoo, over raw sockets: each member does what ZOO says, quickly."""

import base64
import socket
import ssl
import time

import pytest

from fixtures.zoo import ZOO, ZooServer
from fixtures.zoo.hostile import SlowGreeting
from fixtures.zoo.imap import ImapTwin

TIMEOUT = 2.0
QUIET = 0.3  # how long "says nothing" is watched
PASSWORD = "s3cret-Zoo!"
PLAINTEXT = ("smtp", "pop3", "imap")
IMPLICIT_TLS = ("smtps", "pop3s", "imaps")
GREETING_START = {"smtp": "220 ", "pop3": "+OK ", "imap": "* OK "}
FIRST_COMMAND = {"smtp": "EHLO client.test", "pop3": "CAPA", "imap": "a1 CAPABILITY"}
REFUSAL = {"smtp": "421 4.3.2 try later", "pop3": "-ERR [SYS/TEMP] try later", "imap": "* BYE try later"}
ANSI = "\x1b[2K\r\x1b[32mPASS\x1b[0m \x1b]0;owned\x07"

EXPECTED_ZOO = {
    "silent": {*PLAINTEXT, *IMPLICIT_TLS},
    "greeting-then-silence": {*PLAINTEXT},
    "greeting-drip": {*PLAINTEXT},
    "slow-greeting": {*PLAINTEXT},
    "endless-line": {*PLAINTEXT},
    "garbage": {*PLAINTEXT},
    "refuse-at-once": {*PLAINTEXT},
    "close-in-data": {"smtp"},
    "huge-hello": {*PLAINTEXT},
    "huge-list": {"pop3"},
    "malformed-code": {"smtp"},
    "malformed-code-letter": {"smtp"},
    "endless-continuation": {"smtp"},
    "slow-continuation": {"smtp"},
    "tls-reset": {*IMPLICIT_TLS},
    "tls-silent": {*IMPLICIT_TLS},
    "tls-garbage": {*IMPLICIT_TLS},
    "early-talker-trap": {"smtp"},
    "echo-secrets": {*PLAINTEXT},
    "endless-body": {"pop3"},
    "ansi-escapes": {*PLAINTEXT},
}


class Client:
    """A raw-socket client reading CRLF-terminated lines."""

    def __init__(self, server, timeout=TIMEOUT):
        self.sock = socket.create_connection((server.host, server.port), timeout=timeout)
        self.buffer = bytearray()

    def close(self):
        self.sock.close()

    def send(self, *lines):
        self.sock.sendall(b"".join(line.encode() + b"\r\n" for line in lines))

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("the server closed the connection")
        self.buffer += chunk

    def line(self):
        """The next line, without its CRLF."""
        while (end := self.buffer.find(b"\r\n")) < 0:
            self._fill()
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 2]
        return line.decode("utf-8", "surrogateescape")

    def receive(self, size):
        """Exactly size bytes."""
        while len(self.buffer) < size:
            self._fill()
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def reply(self):
        """All lines of one SMTP reply."""
        lines = [self.line()]
        while lines[-1][3:4] == "-":
            lines.append(self.line())
        return lines

    def command(self, line):
        """Send one SMTP command; its reply code."""
        self.send(line)
        return int(self.reply()[-1][:3])

    def multiline(self):
        """A POP3 multi-line response after its +OK line."""
        lines = []
        while (line := self.line()) != ".":
            lines.append(line)
        return lines

    def is_quiet(self, seconds=QUIET):
        """True if nothing arrives for `seconds`."""
        if self.buffer:
            return False
        self.sock.settimeout(seconds)
        try:
            self.sock.recv(1)
        except TimeoutError:
            return True
        finally:
            self.sock.settimeout(TIMEOUT)
        return False

    def until_closed(self):
        """Everything still unread when the server closes (or resets) the connection."""
        try:
            while True:
                self._fill()
        except (EOFError, ConnectionResetError):
            pass
        rest = bytes(self.buffer)
        self.buffer.clear()
        return rest


@pytest.fixture
def zoo():
    """start(name, protocol): a started ZooServer, stopped after the test."""
    servers = []

    def start(name, protocol):
        server = ZooServer(name, protocol, password=PASSWORD)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def connect(zoo):
    """connect(name, protocol): a Client of a fresh server, closed after the test."""
    clients = []

    def open_client(name, protocol):
        client = Client(zoo(name, protocol))
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()


def pop3_login(client):
    """Log alice in, after the POP3 greeting."""
    client.send("USER alice", f"PASS {PASSWORD}")
    assert client.line().startswith("+OK")
    assert client.line().startswith("+OK")


def smtp_conversation(client):
    """A whole correct SMTP session after the greeting; every reply line."""
    lines = []

    def expect(code, *sent):
        client.send(*sent)
        lines.extend(client.reply())
        assert lines[-1].startswith(f"{code} "), sent

    expect(250, "EHLO client.test")
    expect(503, "RCPT TO:<alice@zoo.test>")
    expect(250, "MAIL FROM:<bob@client.test>")
    expect(250, "RCPT TO:<alice@zoo.test>")
    expect(354, "DATA")
    expect(250, "Subject: hi", "", "..a dot-stuffed line", ".")
    expect(250, "RSET")
    expect(250, "NOOP")
    expect(500, "FROB")
    expect(221, "QUIT")
    assert client.until_closed() == b""
    return lines


def pop3_conversation(client):
    """A whole correct POP3 session after the greeting; every +OK / -ERR line."""
    statuses = []

    def status(command, ok=True):
        client.send(command)
        line = client.line()
        assert line.startswith("+OK" if ok else "-ERR"), (command, line)
        statuses.append(line)
        return line.split()[1:3]

    status("CAPA")
    assert "USER" in client.multiline()
    status("STAT", ok=False)
    status("USER alice")
    status("PASS wrong", ok=False)
    status("USER alice")
    status(f"PASS {PASSWORD}")
    count, size = status("STAT")
    assert count == "1"
    status("LIST")
    assert client.multiline() == [f"1 {size}"]
    status("UIDL")
    assert client.multiline() == ["1 zoo-1"]
    status("RETR 1")
    message = client.multiline()
    assert sum(len(line.removeprefix(".")) + 2 for line in message) == int(size)
    status("TOP 1 0")
    assert client.multiline() == message[: message.index("") + 1]
    status("DELE 1")
    assert status("STAT") == ["0", "0"]
    status("RSET")
    assert status("STAT")[0] == "1"
    status("NOOP")
    status("FROB", ok=False)
    status("QUIT")
    assert client.until_closed() == b""
    return statuses


def imap_conversation(client):
    """A whole correct IMAP session after the greeting; every status line."""
    statuses = []
    for command, expected in [("a1 CAPABILITY", ["* CAPABILITY IMAP4rev1", "a1 OK"]), ("a2 LOGIN alice wrong", ["a2 NO"]),
                              (f'a3 LOGIN "alice" "{PASSWORD}"', ["a3 OK"]), ("a4 SELECT INBOX", ["a4 BAD"]),
                              ("a5 LOGOUT", ["* BYE", "a5 OK"])]:
        client.send(command)
        for start in expected:
            statuses.append(client.line())
            assert statuses[-1].startswith(start), command
    assert client.until_closed() == b""
    return [line for line in statuses if not line.startswith("* CAPABILITY")]


CONVERSATION = {"smtp": smtp_conversation, "pop3": pop3_conversation, "imap": imap_conversation}


def test_zoo_lists_exactly_the_members_and_their_protocols():
    assert {name: set(member.protocols) for name, member in ZOO.items()} == EXPECTED_ZOO
    for name, member in ZOO.items():
        assert member.name == name
        assert member.description and "\n" not in member.description


def test_servers_listen_on_loopback_only_and_check_their_arguments():
    with pytest.raises(ValueError, match="loopback"):
        ZooServer("silent", "smtp", host="192.0.2.1")
    with pytest.raises(ValueError, match="unknown zoo member"):
        ZooServer("polite", "smtp")
    with pytest.raises(ValueError, match="not 'imap'"):
        ZooServer("huge-list", "imap")


def test_connections_are_counted(zoo):
    server = zoo("silent", "smtp")
    clients = [Client(server) for _ in range(3)]
    deadline = time.monotonic() + TIMEOUT
    while server.connections < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.connections == 3
    for client in clients:
        client.close()


@pytest.mark.parametrize("protocol", PLAINTEXT + IMPLICIT_TLS)
def test_silent_never_sends_a_byte(connect, protocol):
    client = connect("silent", protocol)
    assert client.is_quiet()
    client.send(FIRST_COMMAND.get(protocol, "hello"))
    assert client.is_quiet()


@pytest.mark.parametrize("protocol", PLAINTEXT)
def test_greeting_then_silence(connect, protocol):
    client = connect("greeting-then-silence", protocol)
    assert client.line().startswith(GREETING_START[protocol])
    client.send(FIRST_COMMAND[protocol])
    assert client.is_quiet()


@pytest.mark.parametrize("protocol", PLAINTEXT)
def test_greeting_drip_sends_one_byte_per_second(connect, protocol):
    client = connect("greeting-drip", protocol)
    started = time.monotonic()
    assert client.receive(1) == GREETING_START[protocol][:1].encode()
    assert client.receive(1) == GREETING_START[protocol][1:2].encode()
    assert 0.8 < time.monotonic() - started < 1.5
    assert client.is_quiet(0.5)


@pytest.mark.parametrize("protocol", PLAINTEXT)
def test_slow_greeting_says_nothing_for_a_while(connect, protocol):
    assert connect("slow-greeting", protocol).is_quiet(1.0)


@pytest.mark.parametrize("protocol", PLAINTEXT)
def test_slow_greeting_then_behaves(connect, monkeypatch, protocol):
    monkeypatch.setattr(SlowGreeting, "delay", 0.3)
    client = connect("slow-greeting", protocol)
    started = time.monotonic()
    assert client.line().startswith(GREETING_START[protocol])
    assert time.monotonic() - started > 0.2
    CONVERSATION[protocol](client)


@pytest.mark.parametrize("protocol", PLAINTEXT)
def test_endless_line_never_ends_its_line(connect, protocol):
    client = connect("endless-line", protocol)
    data = client.receive(1 << 20)
    assert data.startswith(GREETING_START[protocol].encode())
    assert b"\n" not in data and data.endswith(b"a" * 1000)


@pytest.mark.parametrize("protocol", PLAINTEXT)
def test_garbage_is_binary(connect, protocol):
    data = connect("garbage", protocol).receive(1 << 18)
    assert b"\0" in data and b"\n" in data and max(data) > 0x7F


@pytest.mark.parametrize("protocol", PLAINTEXT)
def test_refuse_at_once(connect, protocol):
    client = connect("refuse-at-once", protocol)
    assert client.line() == REFUSAL[protocol]
    assert client.until_closed() == b""


def test_close_in_data_hangs_up_inside_the_message(connect):
    client = connect("close-in-data", "smtp")
    assert client.reply()[-1].startswith("220 ")
    for command, code in [("EHLO client.test", 250), ("MAIL FROM:<bob@client.test>", 250),
                          ("RCPT TO:<alice@zoo.test>", 250), ("DATA", 354)]:
        assert client.command(command) == code
    client.send("Subject: lost", "", "this message never ends")
    assert client.until_closed() == b""  # no 250, nothing


@pytest.mark.parametrize("protocol", PLAINTEXT)
def test_huge_hello(connect, protocol):
    client = connect("huge-hello", protocol)
    client.line()
    client.send(FIRST_COMMAND[protocol])
    if protocol == "smtp":
        lines = client.reply()
        assert len(lines) > 10_000 and all(line.startswith("250") for line in lines)
    elif protocol == "pop3":
        assert client.line().startswith("+OK")
        assert len(client.multiline()) > 10_000
    else:
        assert len(client.line().split()) > 10_000
        assert client.line().startswith("a1 OK")


def test_huge_list(connect):
    client = connect("huge-list", "pop3")
    client.line()
    pop3_login(client)
    client.send("STAT", "LIST", "UIDL 100000")
    assert client.line().split()[:2] == ["+OK", "100000"]
    assert client.line().startswith("+OK")
    listing = client.multiline()
    assert len(listing) == 100_000 and listing[-1].startswith("100000 ")
    assert client.line() == "+OK 100000 zoo-100000"


@pytest.mark.parametrize("name, greeting", [("malformed-code", "2500 ok"), ("malformed-code-letter", "25O ok")])
def test_malformed_reply_code(connect, name, greeting):
    assert connect(name, "smtp").line() == greeting


def test_endless_continuation(connect):
    client = connect("endless-continuation", "smtp")
    client.line()
    client.send("EHLO client.test")
    assert all(client.line().startswith("250-") for _ in range(50_000))


def test_slow_continuation(connect):
    client = connect("slow-continuation", "smtp")
    client.line()
    client.send("EHLO client.test")
    started = time.monotonic()
    lines = [client.line() for _ in range(3)]
    assert all(line.startswith("250-") for line in lines)
    assert 0.8 < time.monotonic() - started < 1.5


def tls_handshake(server, timeout):
    """Attempt a TLS handshake with the server (certificate checks off: they come after)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
        with context.wrap_socket(sock, server_hostname="mail.zoo.test"):
            pass


@pytest.mark.parametrize("protocol", IMPLICIT_TLS)
def test_tls_reset(zoo, protocol):
    server = zoo("tls-reset", protocol)
    with pytest.raises((ConnectionResetError, ssl.SSLError)):
        tls_handshake(server, TIMEOUT)
    client = Client(server)
    client.sock.sendall(b"\x16\x03\x01\x00\x04hello")
    with pytest.raises(ConnectionResetError):
        client.sock.recv(1)
    client.close()


@pytest.mark.parametrize("protocol", IMPLICIT_TLS)
def test_tls_silent(zoo, protocol):
    with pytest.raises(TimeoutError):
        tls_handshake(zoo("tls-silent", protocol), 0.5)


@pytest.mark.parametrize("protocol", IMPLICIT_TLS)
def test_tls_garbage(zoo, protocol):
    with pytest.raises(ssl.SSLError):
        tls_handshake(zoo("tls-garbage", protocol), TIMEOUT)


def test_early_talker_trap_catches_a_client_that_talks_first(connect):
    client = connect("early-talker-trap", "smtp")
    client.send("EHLO eager.test")
    assert client.line() == "554 5.5.1 you talked before my greeting"
    assert client.until_closed() == b""


def test_early_talker_trap_serves_a_patient_client(connect):
    client = connect("early-talker-trap", "smtp")
    assert client.is_quiet(1.0)
    assert client.line().startswith("220 ")
    smtp_conversation(client)


def test_echo_secrets_smtp(connect):
    client = connect("echo-secrets", "smtp")
    client.line()
    client.send("EHLO client.test")
    assert "250 AUTH PLAIN LOGIN" in client.reply()
    plain = base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode()
    client.send(f"AUTH PLAIN {plain}")
    assert client.reply() == [f"535 5.7.8 you said: AUTH PLAIN {plain}"]
    client.send("AUTH LOGIN")
    assert client.line() == "334 VXNlcm5hbWU6"
    client.send("YWxpY2U=")
    assert client.line() == "334 UGFzc3dvcmQ6"
    secret = base64.b64encode(PASSWORD.encode()).decode()
    client.send(secret)
    assert client.line() == f"535 5.7.8 you said: AUTH LOGIN YWxpY2U= {secret}"


def test_echo_secrets_pop3(connect):
    client = connect("echo-secrets", "pop3")
    client.line()
    client.send("USER alice", f"PASS {PASSWORD}", "AUTH PLAIN")
    assert client.line() == "+OK you said USER alice"
    assert client.line() == f"-ERR [AUTH] not today, you said: PASS {PASSWORD}"
    assert client.line() == "+ "
    plain = base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode()
    client.send(plain)
    assert client.line() == f"-ERR [AUTH] not today, you said: AUTH PLAIN {plain}"


def test_echo_secrets_imap(connect):
    client = connect("echo-secrets", "imap")
    client.line()
    client.send(f"a1 LOGIN alice {PASSWORD}")
    assert client.line() == f"a1 NO [AUTHENTICATIONFAILED] you said: a1 LOGIN alice {PASSWORD}"
    plain = base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode()
    client.send(f"a2 AUTHENTICATE PLAIN {plain}")
    assert client.line() == f"a2 NO [AUTHENTICATIONFAILED] you said: a2 AUTHENTICATE PLAIN {plain}"


@pytest.mark.parametrize("command", ["RETR 1", "TOP 1 0"])
def test_endless_body(connect, command):
    client = connect("endless-body", "pop3")
    client.line()
    pop3_login(client)
    client.send(command)
    assert client.line().startswith("+OK")
    assert "." not in (client.line() for _ in range(20_000))


@pytest.mark.parametrize("protocol", PLAINTEXT)
def test_ansi_escapes_in_every_reply_of_a_correct_server(connect, protocol):
    client = connect("ansi-escapes", protocol)
    greeting = client.line()
    assert greeting.startswith(GREETING_START[protocol]) and greeting.endswith(ANSI)
    lines = CONVERSATION[protocol](client)
    assert all(line.endswith(ANSI) for line in lines)


def assert_stops_promptly(server, client):
    """server.stop() returns quickly and closes the client's connection."""
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 1.5
    client.until_closed()  # returns: the connection is gone, not left hanging
    client.close()


@pytest.mark.parametrize("name, protocol, script", [
    ("endless-line", "smtp", ""),
    ("garbage", "imap", ""),
    ("greeting-drip", "pop3", ""),
    ("tls-garbage", "imaps", "\x16\x03\x01\x00\x05hello"),
    ("endless-continuation", "smtp", "EHLO client.test\r\n"),
    ("slow-continuation", "smtp", "EHLO client.test\r\n"),
    ("huge-list", "pop3", f"USER alice\r\nPASS {PASSWORD}\r\nLIST\r\n"),
    ("endless-body", "pop3", f"USER alice\r\nPASS {PASSWORD}\r\nRETR 1\r\n"),
])
def test_stop_is_prompt_while_a_member_streams_to_a_client(zoo, name, protocol, script):
    server = zoo(name, protocol)
    client = Client(server)
    client.sock.sendall(script.encode("latin-1"))
    client.receive(1)  # the server is talking, and from now on nobody reads
    assert_stops_promptly(server, client)


@pytest.mark.parametrize("name, protocol", [
    ("silent", "smtps"), ("greeting-then-silence", "imap"), ("slow-greeting", "smtp"), ("early-talker-trap", "smtp"),
])
def test_stop_is_prompt_while_a_member_waits(zoo, name, protocol):
    server = zoo(name, protocol)
    client = Client(server)
    time.sleep(0.1)  # the session is waiting now
    assert_stops_promptly(server, client)


def imap_after_starttls(twin, pipelined=""):
    """A client of an ImapTwin after STARTTLS (verified against the twin's CA); the CAPABILITY lines
    before TLS are checked on the way."""
    client = Client(twin)
    assert client.line().startswith("* OK ")
    client.send("a1 CAPABILITY", "a2 LOGIN alice " + PASSWORD)
    assert client.line() == "* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED" and client.line().startswith("a1 OK")
    assert client.line().startswith("a2 NO [PRIVACYREQUIRED]")
    client.sock.sendall(b"a3 STARTTLS\r\n" + pipelined.encode())
    assert client.line().startswith("a3 OK")
    client.sock = ssl.create_default_context(cafile=twin.pki.ca_file).wrap_socket(
        client.sock, server_hostname=twin.server_name)
    return client


@pytest.mark.parametrize("faults, stale", [((), ""), (("tls-capabilities",), " STARTTLS LOGINDISABLED")])
def test_the_imap_twin_upgrades_and_offers_plain_inside_tls(faults, stale):
    with ImapTwin(faults, password=PASSWORD) as twin:
        client = imap_after_starttls(twin)
        plain = base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode()
        client.send("b1 CAPABILITY", f"b2 AUTHENTICATE PLAIN {plain}", "b3 SELECT INBOX", "b4 STARTTLS")
        assert client.line() == "* CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR" + stale
        assert [client.line()[:5] for _ in range(6)] == ["b1 OK", "b2 OK", "* FLA", "* 0 E", "* 0 R", "b3 OK"]
        assert client.line().startswith("b4 BAD")
        client.close()


@pytest.mark.parametrize("faults, first", [((), "c1 BAD"), (("starttls-injection",), "x1 OK NOOP")])
def test_the_imap_twin_discards_plaintext_after_starttls_unless_injection(faults, first):
    with ImapTwin(faults, password=PASSWORD) as twin:
        client = imap_after_starttls(twin, pipelined="x1 NOOP\r\n")
        client.send("c1 BOGUS")
        assert client.line().startswith(first)
        client.close()


def test_the_imap_twin_refuses_unknown_faults():
    with pytest.raises(ValueError, match="no-such.*known: preauth"):
        ImapTwin({"no-such"})
