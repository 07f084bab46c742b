"""POP3 status lines, scan listings and multi-line replies (RFC 1939, RFC 2449 §8)."""

import socket
import threading

import pytest

from mailconform.wire import pop3
from mailconform.wire.errors import EndlessReply, MalformedReply, ReplyTimeout
from mailconform.wire.connection import Connection
from mailconform.wire.pop3 import Pop3Reply, Pop3Session, parse_scan_listing, parse_status, unstuff
from mailconform.wire.transcript import Transcript

TIMEOUT = 0.3


# --------------------------------------------------------------------------- status lines

@pytest.mark.parametrize("line, ok, text", [
    (b"+OK\r\n", True, ""),
    (b"+OK 2 320\r\n", True, "2 320"),
    (b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n", True,
     "POP3 server ready <1896.697170952@dbc.mtview.ca.us>"),
    (b"-ERR\r\n", False, ""),
    (b"-ERR no such message\r\n", False, "no such message"),
    (b"+OK bare LF\n", True, "bare LF"),
])
def test_status_line_is_parsed(line, ok, text):
    reply = parse_status(line)
    assert (reply.ok, reply.text) == (ok, text)


@pytest.mark.parametrize("line", [
    b"+ok lower case\r\n",      # RFC 1939 §3: status indicators are upper case
    b"-err lower case\r\n",
    b"+Ok mixed\r\n",
    b"+OKAY\r\n",
    b"OK\r\n",
    b"+OK no line end",
    b"* OK IMAP greeting\r\n",
    b"220 an SMTP greeting\r\n",
    b"",
])
def test_anything_else_is_not_a_status_line(line):
    with pytest.raises(MalformedReply):
        parse_status(line)


@pytest.mark.parametrize("line, code", [
    (b"-ERR [AUTH] bad password\r\n", "AUTH"),
    (b"-ERR [SYS/TEMP] try later\r\n", "SYS/TEMP"),
    (b"-ERR [IN-USE] mailbox locked\r\n", "IN-USE"),
    (b"-ERR [LOGIN-DELAY] wait\r\n", "LOGIN-DELAY"),
    (b"+OK [XYZ] fine\r\n", "XYZ"),
    (b"-ERR bad password [AUTH]\r\n", None),   # only at the start of the text
    (b"-ERR [auth] lower case\r\n", None),
    (b"-ERR\r\n", None),
])
def test_response_code_is_read_from_the_start_of_the_text(line, code):
    assert parse_status(line).resp_code == code


def test_reply_str_shows_status_and_line_count():
    assert str(Pop3Reply(False, "[AUTH] no")) == "-ERR [AUTH] no"
    assert str(Pop3Reply(True, "", (b"a", b"b"))) == "+OK (+2 lines)"


# --------------------------------------------------------------------------- un-stuffing and scan listings

@pytest.mark.parametrize("line, content", [
    (b"plain", b"plain"),
    (b"..one dot", b".one dot"),
    (b"...two dots", b"..two dots"),
    (b"..", b"."),                 # a body line that is a lone dot
    (b"", b""),
    (b".", None),                  # the terminator
])
def test_unstuff_removes_one_leading_dot_and_spots_the_terminator(line, content):
    assert unstuff(line) == content


@pytest.mark.parametrize("text, scan", [
    ("1 320", (1, 320)),
    (b"2 4096\r\n", (2, 4096)),
    ("3 120 extra text after the size", (3, 120)),   # RFC 1939 §5: no requirement on what follows
    ("10 0", (10, 0)),
])
def test_scan_listing_is_parsed(text, scan):
    assert parse_scan_listing(text) == scan


@pytest.mark.parametrize("text", ["", "1", "1  320", " 1 320", "1\t320", "one 320", "1 -320", "1 320x", "1 3.5"])
def test_malformed_scan_listing_is_none(text):
    assert parse_scan_listing(text) is None


# --------------------------------------------------------------------------- sessions over a socketpair

@pytest.fixture
def pop3_pair():
    """A Pop3Session on one end of a socketpair (already greeted), and the server end."""
    ours, server = socket.socketpair()
    session = Pop3Session(Connection(ours, Transcript("pop3 test"), timeout=TIMEOUT), parse_status(b"+OK hi\r\n"))
    yield session, server
    session.close()
    server.close()


RETR = (b"+OK 5 lines\r\n"
        b"Subject: dots\r\n"
        b"\r\n"
        b"..starts with a dot\r\n"
        b"..\r\n"
        b"last\r\n"
        b".\r\n")


def test_multiline_unstuffs_lines_counts_octets_and_stops_at_the_terminator(pop3_pair):
    session, server = pop3_pair
    server.sendall(RETR + b"+OK next reply\r\n")
    reply = session.multiline("RETR 1")
    assert reply.ok and reply.text == "5 lines"
    assert reply.lines == (b"Subject: dots", b"", b".starts with a dot", b".", b"last")
    assert reply.octets == sum(len(line) + 2 for line in reply.lines) == 46
    assert server.recv(100) == b"RETR 1\r\n"
    assert session.connection.buffer == b"+OK next reply\r\n"   # nothing after the terminator consumed


def test_multiline_on_err_reads_only_the_status_line(pop3_pair):
    session, server = pop3_pair
    server.sendall(b"-ERR no such message\r\n")
    reply = session.multiline("RETR 9")
    assert (reply.ok, reply.lines) == (False, ())


def test_multiline_without_terminator_times_out(pop3_pair):
    session, server = pop3_pair
    server.sendall(b"+OK\r\nline\r\n")
    with pytest.raises(ReplyTimeout):
        session.multiline("LIST")


def test_endless_multiline_reply_is_capped(pop3_pair, monkeypatch):
    monkeypatch.setattr(pop3, "MAX_MULTILINE_OCTETS", 64 * 1024)
    session, server = pop3_pair
    stop = threading.Event()

    def flood():
        server.sendall(b"+OK here it comes\r\n")
        try:
            while not stop.is_set():
                server.sendall(b"x" * 1000 + b"\r\n")
        except OSError:
            pass

    threading.Thread(target=flood, daemon=True).start()
    try:
        with pytest.raises(EndlessReply, match="the reply to RETR went on past 65536 octets"):
            session.retr(1)
    finally:
        stop.set()
    assert session.connection.timed_out  # no QUIT waits for the rest of it


def test_an_endless_list_of_tiny_lines_is_capped_by_its_line_count(pop3_pair, monkeypatch):
    monkeypatch.setattr(pop3, "MAX_MULTILINE_LINES", 1000)
    session, server = pop3_pair
    server.sendall(b"+OK\r\n" + b"1 1\r\n" * 1001)
    with pytest.raises(EndlessReply, match="1001 lines"):
        session.list()


def test_list_gives_message_numbers_and_skips_malformed_lines(pop3_pair):
    session, server = pop3_pair
    server.sendall(b"+OK 3 messages\r\n1 120\r\ngarbage\r\n3 300 extra\r\n.\r\n")
    assert session.message_numbers() == [1, 3]


def test_capa_keeps_capability_names_upper_case_with_arguments(pop3_pair):
    session, server = pop3_pair
    server.sendall(b"+OK\r\nUSER\r\nsasl PLAIN LOGIN\r\nSTLS\r\n.\r\n")
    session.capa()
    assert session.capabilities == {"USER": "", "SASL": "PLAIN LOGIN", "STLS": ""}


@pytest.mark.parametrize("text, listing", [
    ("1 whqtswO00WBw418f9t5JxYwZ", (1, "whqtswO00WBw418f9t5JxYwZ")),   # RFC 1939 §7's example
    (b"2 QhdPYR:00WBw1Ph7x7\r\n", (2, "QhdPYR:00WBw1Ph7x7")),
    ("3 " + "x" * 70, (3, "x" * 70)),
])
def test_unique_id_listing_is_parsed(text, listing):
    assert pop3.parse_unique_id_listing(text) == listing


@pytest.mark.parametrize("text", ["1", "1 ", "x abc", "1 two words", "1 " + "x" * 71, "1 caf\u00e9"])
def test_malformed_unique_id_listing_is_none(text):
    assert pop3.parse_unique_id_listing(text) is None


def test_apop_sends_the_rfc_1939_digest_and_never_records_it():
    """RFC 1939 §7's example: timestamp <1896.697170952@dbc.mtview.ca.us>, secret tanstaaf."""
    ours, server = socket.socketpair()
    greeting = parse_status(b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n")
    session = Pop3Session(Connection(ours, Transcript("pop3 test"), timeout=TIMEOUT), greeting)
    try:
        server.sendall(b"+OK maildrop has 1 message (369 octets)\r\n")
        assert session.apop("mrose", "tanstaaf").ok
        assert server.recv(100) == b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n"
        assert "c4c9334bac560ecc979e58001b3e22fb" not in session.transcript.render()
        assert "APOP mrose ***" in session.transcript.render()
    finally:
        session.close()
        server.close()


def test_apop_without_a_timestamp_sends_nothing(pop3_pair):
    session, server = pop3_pair
    assert pop3.apop_timestamp("hi") is None
    with pytest.raises(ValueError):
        session.apop("alice", "pw")
    server.setblocking(False)
    with pytest.raises(BlockingIOError):
        server.recv(10)


def test_uidl_for_one_message_and_for_all(pop3_pair):
    session, server = pop3_pair
    server.sendall(b"+OK 1 abc\r\n+OK\r\n1 abc\r\n2 def\r\n.\r\n")
    assert session.uidl(1).text == "1 abc"
    assert session.uidl().lines == (b"1 abc", b"2 def")
    assert server.recv(100) == b"UIDL 1\r\nUIDL\r\n"
