"""Smoke tests of the scripted broken twins: the default behaves, each fault changes what it claims."""

import hashlib
import socket
import ssl
import time

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from fixtures.twins import MAIL_FAULTS, DnsTwin, MailTwin

TIMEOUT = 2.0
MESSAGE = [b"Subject: dots", b"", b"..hidden line", b"plain line"]  # as sent: dot-stuffed


class Client:
    """A plain-socket, line-at-a-time client."""

    def __init__(self, port, timeout=TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.file = self.sock.makefile("rb")

    def close(self):
        self.file.close()
        self.sock.close()

    def send(self, *lines):
        self.sock.sendall(b"".join(line + b"\r\n" for line in lines))

    def line(self):
        return self.file.readline()

    def reply(self):
        """All lines of one SMTP reply, CRLF stripped."""
        lines = [self.line()]
        while lines[-1][3:4] == b"-":
            lines.append(self.line())
        return [line.rstrip(b"\r\n") for line in lines]

    def code(self, command):
        """Send an SMTP command; the reply code."""
        self.send(command)
        return int(self.reply()[-1][:3])

    def multiline(self):
        """A POP3 multi-line response after its +OK line, as sent (still stuffed)."""
        lines = []
        while (line := self.line()) != b".\r\n":
            lines.append(line.rstrip(b"\r\n"))
        return lines




def smtp_session(twin):
    client = Client(twin.smtp_port)
    assert client.reply()[-1].startswith(b"220 ")
    return client


def send_message(twin, lines=MESSAGE, rcpt=b"alice@TWIN.test"):
    """One SMTP transaction; the end-of-data reply code."""
    client = smtp_session(twin)
    assert client.code(b"EHLO client.test") == 250
    assert client.code(b"MAIL FROM:<bob@example.test>") == 250
    assert client.code(b"RCPT TO:<" + rcpt + b">") == 250
    assert client.code(b"DATA") == 354
    client.send(*lines, b".")
    code = int(client.reply()[-1][:3])
    client.code(b"QUIT")
    client.close()
    return code


def pop3_login(twin, password=b"alice-pw"):
    client = Client(twin.pop3_port)
    assert client.line() == b"+OK twin POP3 ready\r\n"
    client.send(b"USER alice")
    assert client.line().startswith(b"+OK")
    client.send(b"PASS " + password)
    return client, client.line()


def test_default_delivers_unstuffed_and_pop3_restuffs(twin_factory):
    twin = twin_factory()
    assert send_message(twin) == 250
    assert twin.accepted == 1
    [stored] = twin.mailbox("alice")
    assert stored.startswith(b"Received: from client.test by mail.twin.test with ESMTP; ")
    assert stored.endswith(b"\r\nSubject: dots\r\n\r\n.hidden line\r\nplain line\r\n")

    client, reply = pop3_login(twin)
    assert reply.startswith(b"+OK")
    client.send(b"STAT")
    assert client.line() == b"+OK 1 %d\r\n" % len(stored)
    client.send(b"RETR 1")
    assert client.line() == b"+OK %d octets\r\n" % len(stored)
    assert client.multiline()[1:] == MESSAGE
    client.send(b"DELE 1", b"QUIT")
    assert client.line().startswith(b"+OK") and client.line() == b"+OK bye\r\n"
    client.close()
    assert twin.mailbox("alice") == []


def test_pop3_drop_without_quit_keeps_mail_and_rset_unmarks(twin_factory):
    twin = twin_factory()
    send_message(twin)
    client, _ = pop3_login(twin)
    client.send(b"DELE 1", b"DELE 1", b"RSET", b"LIST 1", b"XYZZY")
    assert [client.line()[:4] for _ in range(5)] == [b"+OK ", b"-ERR", b"+OK ", b"+OK ", b"-ERR"]
    client.send(b"DELE 1")
    client.line()
    client.close()  # no QUIT: nothing is removed
    time.sleep(0.1)
    assert len(twin.mailbox("alice")) == 1


def test_smtp_errors_and_sequence(twin_factory):
    client = smtp_session(twin_factory())
    assert client.code(b"MAIL FROM:<bob@example.test>") == 503  # no EHLO yet
    assert client.code(b"ehlo client.test") == 250
    assert client.code(b"RCPT TO:<alice@twin.test>") == 503
    assert client.code(b"DATA") == 503
    assert client.code(b"mail from:<bob@example.test>") == 250
    assert client.code(b"MAIL FROM:<bob@example.test>") == 503
    assert client.code(b"RCPT TO:<nobody@twin.test>") == 550
    assert client.code(b"RCPT TO:<victim@example.com>") == 554
    assert client.code(b"RCPT TO:<postmaster@twin.test>") == 250
    assert client.code(b"X" * 3000) == 500
    assert client.code(b"\x00\xff garbage") == 500
    assert client.code(b"VRFY alice") == 252
    assert client.code(b"RSET") == 250
    assert client.code(b"DATA") == 503
    assert client.code(b"QUIT") == 221
    assert client.line() == b""


SMTP_FAULTS = [  # fault, commands after the greeting, last reply code: default, faulty
    ("ehlo-502", [b"EHLO c.test"], 250, 502),
    ("mail-550", [b"EHLO c.test", b"MAIL FROM:<b@example.test>"], 250, 550),
    ("rcpt-550", [b"HELO c.test", b"MAIL FROM:<>", b"RCPT TO:<alice@twin.test>"], 250, 550),
    ("data-554", [b"HELO c.test", b"MAIL FROM:<>", b"RCPT TO:<alice@twin.test>", b"DATA"], 354, 554),
    ("rcpt-before-mail-250", [b"HELO c.test", b"RCPT TO:<alice@twin.test>"], 503, 250),
    ("unknown-250", [b"FOOBAR"], 500, 250),
    ("unknown-502", [b"FOOBAR"], 500, 502),
    ("rset-500", [b"RSET"], 250, 500),
    ("noop-500", [b"NOOP"], 250, 500),
    ("quit-250", [b"QUIT"], 221, 250),
    ("greeting-554", [b"EHLO c.test"], 250, 503),
]


@pytest.mark.parametrize("fault, commands, default, faulty", SMTP_FAULTS, ids=[row[0] for row in SMTP_FAULTS])
def test_smtp_fault_changes_one_reply(twin_factory, fault, commands, default, faulty):
    for faults, expected in (((), default), ((fault,), faulty)):
        client = Client(twin_factory(*faults).smtp_port)
        client.reply()
        codes = [client.code(command) for command in commands]
        assert codes[-1] == expected, (faults, codes)
        client.close()


def test_multiline_replies(twin_factory):
    client = Client(twin_factory("greeting-multiline", "helo-multiline").smtp_port)
    assert client.reply() == [b"220-mail.twin.test ESMTP", b"220-this server says more", b"220 ready"]
    client.send(b"HELO c.test")
    assert len(client.reply()) == 6  # the EHLO reply: name, 4 extensions and STARTTLS


def test_bare_lf_replies(twin_factory):
    client = Client(twin_factory("bare-lf-replies").smtp_port)
    line = client.line()
    assert line.endswith(b"\n") and not line.endswith(b"\r\n")


def test_no_unstuff_and_lose_message(twin_factory):
    twin = twin_factory("no-unstuff")
    send_message(twin)
    assert b"\r\n..hidden line\r\n" in twin.mailbox("alice")[0]
    twin = twin_factory("lose-message")
    assert send_message(twin) == 250
    assert (twin.accepted, twin.mailbox("alice")) == (1, [])


def test_eod_early_ends_data_at_stuffed_dot(twin_factory):
    twin = twin_factory("eod-early")
    client = smtp_session(twin)
    for command in (b"EHLO c.test", b"MAIL FROM:<>", b"RCPT TO:<alice@twin.test>", b"DATA"):
        client.code(command)
    client.send(b"Subject: x", b"", b"..hidden line", b"plain line", b".")
    assert [client.reply()[0][:3] for _ in range(3)] == [b"250", b"500", b"500"]
    assert twin.mailbox("alice")[0].endswith(b"\r\nSubject: x\r\n\r\n")


def test_silent_and_garbage_greetings(twin_factory):
    silent = Client(twin_factory("greeting-silent").smtp_port, timeout=0.3)
    with pytest.raises(TimeoutError):
        silent.line()
    garbage = Client(twin_factory("greeting-garbage").smtp_port)
    chunk = garbage.sock.recv(65536)
    assert chunk and b"\n" not in chunk and all(0x21 <= b < 0x7F for b in chunk)
    garbage.close()


def test_quit_no_close_holds_until_stop_which_is_quick():
    with MailTwin(faults={"quit-no-close"}) as twin:
        held = smtp_session(twin)
        assert held.code(b"QUIT") == 221
        with pytest.raises(TimeoutError):
            held.sock.settimeout(0.2)
            held.sock.recv(10)
        held.sock.settimeout(TIMEOUT)
        started = time.monotonic()
    assert time.monotonic() - started < 1.0
    assert held.sock.recv(10) == b""  # stop() closed the held connection


def test_greeting_421_closes(twin_factory):
    client = Client(twin_factory("greeting-421").smtp_port)
    assert client.reply() == [b"421 4.3.2 service shutting down"]
    assert client.line() == b""


POP3_FAULTS = [  # fault, password, commands after login, check on the last response line: default, faulty
    ("pop3-login-fails", b"alice-pw", [], b"+OK", b"-ERR [AUTH]"),
    ("pop3-any-password", b"wrong", [], b"-ERR [AUTH]", b"+OK"),
    ("pop3-unknown-ok", b"alice-pw", [b"XYZZY"], b"-ERR", b"+OK"),
    ("pop3-stat-words", b"alice-pw", [b"STAT"], b"+OK 1 ", b"+OK 1 messages ("),
]


@pytest.mark.parametrize(
    "fault, password, commands, default, faulty", POP3_FAULTS, ids=[row[0] for row in POP3_FAULTS]
)
def test_pop3_fault_changes_one_response(twin_factory, fault, password, commands, default, faulty):
    for faults, expected in (((), default), ((fault,), faulty)):
        twin = twin_factory(*faults)
        send_message(twin)
        client, reply = pop3_login(twin, password)
        for command in commands:
            client.send(command)
            reply = client.line()
        assert reply.startswith(expected), (faults, reply)
        client.close()


def test_pop3_stuffing_and_list_size_faults(twin_factory):
    twin = twin_factory("pop3-no-stuff", "pop3-list-size-wrong")
    send_message(twin)
    size = len(twin.mailbox("alice")[0])
    client, _ = pop3_login(twin)
    client.send(b"LIST 1", b"RETR 1")
    assert client.line() == b"+OK 1 %d\r\n" % (size + 10)
    client.line()
    assert b".hidden line" in client.multiline()


def test_pop3_dele_ignored_keeps_mail(twin_factory):
    twin = twin_factory("pop3-dele-ignored")
    send_message(twin)
    client, _ = pop3_login(twin)
    client.send(b"DELE 1", b"QUIT")
    assert client.line().startswith(b"+OK") and client.line() == b"+OK bye\r\n"
    assert len(twin.mailbox("alice")) == 1


def uidl_listing(twin):
    """The unique-id listing of one new POP3 session."""
    client, _ = pop3_login(twin)
    client.send(b"UIDL")
    assert client.line().startswith(b"+OK")
    listing = client.multiline()
    client.close()
    return listing


@pytest.mark.parametrize("fault, stable", [((), True), (("pop3-uidl-unstable",), False)])
def test_uidl_is_stable_unless_unstable(twin_factory, fault, stable):
    twin = twin_factory(*fault)
    send_message(twin)
    first, second = uidl_listing(twin), uidl_listing(twin)
    assert len(first) == 1 and first[0].startswith(b"1 twin-")
    assert (first == second) is stable


@pytest.mark.parametrize("fault, lines", [((), 1), (("pop3-top-whole",), 2)])
def test_top_sends_n_body_lines_unless_whole(twin_factory, fault, lines):
    twin = twin_factory(*fault)
    send_message(twin)
    client, _ = pop3_login(twin)
    client.send(b"TOP 1 1")
    assert client.line().startswith(b"+OK")
    assert client.multiline()[-lines - 1:] == MESSAGE[1:][:lines + 1]
    client.close()


@pytest.mark.parametrize("fault, second", [((), b"+OK"), (("pop3-in-use-no-code",), b"-ERR maildrop already locked")])
def test_a_second_login_works_unless_the_maildrop_is_locked(twin_factory, fault, second):
    twin = twin_factory(*fault)
    first, reply = pop3_login(twin)
    assert reply.startswith(b"+OK")
    other, reply = pop3_login(twin)
    assert reply.startswith(second)
    other.close()
    first.send(b"QUIT")
    assert first.line() == b"+OK bye\r\n"
    first.close()
    third, reply = pop3_login(twin)  # the lock went with the session that held it
    assert reply.startswith(b"+OK")
    third.close()


def test_apop_replayable_offers_the_same_timestamp_every_time(twin_factory):
    default = Client(twin_factory().pop3_port)
    assert b"<" not in default.line()
    default.send(b"APOP alice 0123")
    assert default.line().startswith(b"-ERR unknown")
    twin = twin_factory("pop3-apop-replayable")
    greetings = []
    for password, reply in ((b"alice-pw", b"+OK 0 messages"), (b"wrong", b"-ERR [AUTH]")):
        client = Client(twin.pop3_port)
        greetings.append(client.line())
        digest = hashlib.md5(b"<1.1@mail.twin.test>" + password).hexdigest().encode()
        client.send(b"APOP alice " + digest)
        assert client.line().startswith(reply)
        client.close()
    assert greetings[0] == greetings[1] == b"+OK twin POP3 ready <1.1@mail.twin.test>\r\n"


def pop3_stls(twin, pipelined=b""):
    """A POP3 client after STLS (verified against the twin's CA), and the CAPA list inside TLS."""
    client = Client(twin.pop3_port)
    client.line()
    client.send(b"CAPA")
    assert client.line().startswith(b"+OK") and b"STLS" in client.multiline()
    client.sock.sendall(b"STLS\r\n" + pipelined)
    assert client.line().startswith(b"+OK")
    context = ssl.create_default_context(cafile=twin.ca_file)
    client.sock = context.wrap_socket(client.sock, server_hostname=twin.server_name)
    client.file = client.sock.makefile("rb")
    return client


def test_pop3_has_no_stls_unless_named(twin_factory):
    client = Client(twin_factory().pop3_port)
    client.line()
    client.send(b"CAPA", b"STLS")
    assert client.line().startswith(b"+OK") and b"STLS" not in client.multiline()
    assert client.line().startswith(b"-ERR unknown")
    client.close()


@pytest.mark.parametrize("fault, listed", [(("pop3-stls",), False), (("pop3-stls-capa-after",), True)])
def test_stls_and_capa_inside_tls(twin_factory, fault, listed):
    client = pop3_stls(twin_factory(*fault))
    client.send(b"CAPA")
    assert client.line().startswith(b"+OK")
    assert (b"STLS" in client.multiline()) is listed
    client.send(b"STLS")
    assert client.line().startswith(b"-ERR")
    client.send(b"USER alice", b"PASS alice-pw", b"STAT")
    assert [client.line()[:3] for _ in range(3)] == [b"+OK"] * 3
    client.close()


@pytest.mark.parametrize("fault, injected", [(("pop3-stls",), False), (("pop3-stls-injection",), True)])
def test_plaintext_after_stls_is_discarded_unless_injection(twin_factory, fault, injected):
    client = pop3_stls(twin_factory(*fault), pipelined=b"CAPA\r\n")
    client.send(b"NOOP")
    first = client.line()
    assert first.startswith(b"+OK capability list") is injected, first
    client.close()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="no-such-fault.*known: greeting-554"):
        MailTwin(faults={"no-such-fault"})
    with pytest.raises(ValueError, match="loopback"):
        MailTwin(host="0.0.0.0")
    assert "pop3-unknown-ok" in MAIL_FAULTS


ZONE = {
    "twin.test": {"MX": [(10, "mx.twin.test")]},
    "mx.twin.test": {"A": ["127.0.0.1"]},
    "alias.twin.test.": {"CNAME": ["mx.twin.test"]},
}


@pytest.fixture
def dns_twin():
    with DnsTwin(ZONE) as twin:
        yield twin


def ask(dns_twin, name, rdtype):
    query = dns.message.make_query(name, rdtype)
    return dns.query.udp(query, "127.0.0.1", port=dns_twin.port, timeout=TIMEOUT)


def test_dns_answers_mx_nxdomain_nodata(dns_twin):
    mx = ask(dns_twin, "TWIN.test.", "MX")
    assert mx.rcode() == dns.rcode.NOERROR and mx.flags & dns.flags.AA
    [rrset] = mx.answer
    assert rrset.ttl == 60
    assert [(r.preference, r.exchange) for r in rrset] == [(10, dns.name.from_text("mx.twin.test"))]

    assert ask(dns_twin, "nowhere.twin.test", "A").rcode() == dns.rcode.NXDOMAIN
    nodata = ask(dns_twin, "twin.test", "AAAA")
    assert (nodata.rcode(), nodata.answer) == (dns.rcode.NOERROR, [])

    alias = ask(dns_twin, "alias.twin.test", "A")
    assert [rrset.rdtype for rrset in alias.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]


def test_dns_ignores_malformed_queries(dns_twin):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        sock.sendto(b"\x00\x01garbage", ("127.0.0.1", dns_twin.port))
        with pytest.raises(TimeoutError):
            sock.recv(512)
    assert ask(dns_twin, "mx.twin.test", "A").answer[0][0].address == "127.0.0.1"
