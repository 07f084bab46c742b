"""SMTP reply parsing (RFC 5321 §4.2) on recorded bytes, and read_reply over a local socketpair."""

import socket
import threading
import time

import pytest

from mailconform.wire.connection import MAX_LINE, Connection
from mailconform.wire.errors import ConnectionClosed, MalformedReply, ReplyTimeout, ReplyTooLong
from mailconform.wire.smtp import (
    MAX_REPLY_LINES, SmtpReply, dot_stuff, parse_ehlo_keywords, parse_reply, parse_reply_line, read_reply,
)
from mailconform.wire.transcript import Transcript

TIMEOUT = 0.3

EHLO_REPLY = [
    b"250-mail.example.test Hello\r\n",
    b"250-SIZE 10240000\r\n",
    b"250-pipelining\r\n",
    b"250-AUTH PLAIN  LOGIN\r\n",
    b"250 STARTTLS\r\n",
]


# --------------------------------------------------------------------------- parse_reply_line

@pytest.mark.parametrize("line, expected", [
    (b"250 OK\r\n", (250, False, "OK")),
    (b"250-SIZE 100\r\n", (250, True, "SIZE 100")),
    (b"220 ready\n", (220, False, "ready")),          # bare LF is tolerated on input
    (b"250\r\n", (250, False, "")),                   # a bare code: the text is optional
    (b"250-\r\n", (250, True, "")),
    (b"554 5.7.1 no\r\n", (554, False, "5.7.1 no")),
])
def test_reply_line_yields_code_continuation_and_text(line, expected):
    assert parse_reply_line(line) == expected


@pytest.mark.parametrize("line", [
    b"",
    b"250 OK",                 # no line end: not a complete line
    b"25 OK\r\n",              # two digits
    b"2500 OK\r\n",            # four digits
    b"250_OK\r\n",             # neither space nor hyphen after the code
    b"abc OK\r\n",
    b"HTTP/1.1 400 Bad Request\r\n",
    b"\x16\x03\x01\x02\x00\r\n",  # a TLS record where text was expected
])
def test_garbage_is_not_a_reply_line(line):
    with pytest.raises(MalformedReply):
        parse_reply_line(line)


@pytest.mark.parametrize("code", [b"000", b"100", b"199", b"600", b"999"])
def test_code_outside_2xx_to_5xx_is_malformed(code):
    with pytest.raises(MalformedReply, match="not a valid code"):
        parse_reply_line(code + b" text\r\n")


@pytest.mark.parametrize("code", [b"299", b"460"])
def test_code_with_second_digit_above_5_is_malformed(code):
    with pytest.raises(MalformedReply):
        parse_reply_line(code + b" text\r\n")


# --------------------------------------------------------------------------- parse_reply

def test_single_line_reply():
    reply = parse_reply([b"250 2.1.0 Ok\r\n"])
    assert (reply.code, reply.lines, reply.is_multiline) == (250, ("2.1.0 Ok",), False)


def test_multi_line_reply_keeps_every_line_in_order():
    reply = parse_reply(EHLO_REPLY)
    assert reply.code == 250
    assert reply.lines == ("mail.example.test Hello", "SIZE 10240000", "pipelining", "AUTH PLAIN  LOGIN", "STARTTLS")
    assert reply.is_multiline
    assert str(reply) == "250 mail.example.test Hello (+4 more lines)"


def test_bare_code_reply_has_one_empty_line():
    reply = parse_reply([b"250\r\n"])
    assert (reply.code, reply.lines, str(reply)) == (250, ("",), "250")


@pytest.mark.parametrize("lines, problem", [
    ([b"250-first\r\n", b"251 second\r\n"], "mixes codes"),
    ([b"250-first\r\n", b"250-second\r\n"], "continuation"),   # the last line still says more follows
    ([b"250 first\r\n", b"250 second\r\n"], "continuation"),   # a final line before the end
    ([], "empty"),
])
def test_inconsistent_reply_is_malformed(lines, problem):
    with pytest.raises(MalformedReply, match=problem):
        parse_reply(lines)


# --------------------------------------------------------------------------- EHLO keywords

def test_ehlo_keywords_skip_the_greeting_line_and_upper_case_keywords():
    keywords = parse_ehlo_keywords(parse_reply(EHLO_REPLY))
    assert keywords == {"SIZE": "10240000", "PIPELINING": "", "AUTH": "PLAIN  LOGIN", "STARTTLS": ""}


def test_single_line_ehlo_reply_has_no_keywords():
    assert parse_ehlo_keywords(parse_reply([b"250 mail.example.test\r\n"])) == {}


# --------------------------------------------------------------------------- enhanced status codes

@pytest.mark.parametrize("first_line, enhanced", [
    ("2.1.0 Ok", "2.1.0"),
    ("5.7.1 <x@example.com>: Relay access denied", "5.7.1"),
    ("4.7.0", "4.7.0"),
    ("5.123.999 long fields", "5.123.999"),
    ("Ok", None),
    ("3.0.0 not a class", None),          # class must be 2, 4 or 5 (RFC 3463 §2)
    ("5.7.1234 too long", None),
    ("5.7.1.", None),
    ("", None),
])
def test_enhanced_status_code_of_first_line(first_line, enhanced):
    assert SmtpReply(250, (first_line, "2.0.0 second line ignored")).enhanced == enhanced


def test_reply_without_lines_has_no_enhanced_code():
    assert SmtpReply(250, ()).enhanced is None


# --------------------------------------------------------------------------- dot-stuffing

@pytest.mark.parametrize("message, payload", [
    (b"Subject: x\r\n\r\nbody\r\n", b"Subject: x\r\n\r\nbody\r\n.\r\n"),
    (b".starts with a dot\r\n", b"..starts with a dot\r\n.\r\n"),
    (b"a\r\n..two dots\r\n", b"a\r\n...two dots\r\n.\r\n"),
    (b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),            # a lone dot must not end the data
    (b"no final line end", b"no final line end\r\n.\r\n"),
    (b"last line.\r\n.", b"last line.\r\n..\r\n.\r\n"),          # lone dot without CRLF at the very end
    (b"mid. dot\r\n", b"mid. dot\r\n.\r\n"),                     # only a leading dot is doubled
])
def test_dot_stuff_doubles_leading_dots_and_ends_with_crlf_dot_crlf(message, payload):
    assert dot_stuff(message) == payload


# --------------------------------------------------------------------------- read_reply over a socket

@pytest.fixture
def wire():
    """A Connection on one end of a socketpair, and the other end playing the server."""
    ours, server = socket.socketpair()
    connection = Connection(ours, Transcript("smtp test"), timeout=TIMEOUT)
    yield connection, server
    connection.close()
    server.close()


def send_later(sock, chunks, pause=0.03):
    """Send ``chunks`` one by one from a thread, pausing between them."""
    def run():
        for chunk in chunks:
            time.sleep(pause)
            sock.sendall(chunk)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_read_reply_assembles_a_multi_line_reply_split_across_sends(wire):
    connection, server = wire
    raw = b"".join(EHLO_REPLY)
    # cut inside a code, inside a line and inside a CRLF
    sender = send_later(server, [raw[:2], raw[2:17], raw[17:40], raw[40:-1], raw[-1:]])
    reply = read_reply(connection)   # reads while the pieces are still arriving
    sender.join()
    assert reply == parse_reply(EHLO_REPLY)
    assert connection.buffer == b""


def test_read_reply_leaves_the_next_reply_in_the_buffer(wire):
    connection, server = wire
    server.sendall(b"250-a\r\n250 b\r\n354 go on\r\n")
    assert read_reply(connection).lines == ("a", "b")
    assert read_reply(connection).code == 354


def test_read_reply_refuses_a_line_over_the_cap(wire):
    connection, server = wire
    server.sendall(b"250 " + b"x" * MAX_LINE + b"\r\n")
    with pytest.raises(ReplyTooLong):
        read_reply(connection)


def test_read_reply_refuses_an_endless_line_without_waiting_for_its_end(wire):
    connection, server = wire
    server.sendall(b"250-" + b"x" * (MAX_LINE + 10))
    start = time.monotonic()
    with pytest.raises(ReplyTooLong):
        read_reply(connection)
    assert time.monotonic() - start < TIMEOUT


def test_read_reply_refuses_more_than_max_reply_lines(wire):
    connection, server = wire
    server.sendall(b"250-more\r\n" * (MAX_REPLY_LINES + 5) + b"250 end\r\n")
    with pytest.raises(ReplyTooLong, match=str(MAX_REPLY_LINES)):
        read_reply(connection)


def test_read_reply_accepts_a_reply_of_exactly_max_reply_lines(wire):
    connection, server = wire
    server.sendall(b"250-more\r\n" * (MAX_REPLY_LINES - 1) + b"250 end\r\n")
    assert len(read_reply(connection).lines) == MAX_REPLY_LINES


def test_read_reply_times_out_on_silence_within_the_timeout(wire):
    connection, server = wire
    start = time.monotonic()
    with pytest.raises(ReplyTimeout):
        read_reply(connection)
    elapsed = time.monotonic() - start
    assert TIMEOUT * 0.9 <= elapsed < TIMEOUT + 0.5


def test_read_reply_times_out_when_a_multi_line_reply_never_ends(wire):
    connection, server = wire
    server.sendall(b"250-first\r\n250-second\r\n")
    with pytest.raises(ReplyTimeout):
        read_reply(connection)
    assert "no complete reply" in connection.transcript.render()


@pytest.mark.parametrize("sent", [b"", b"250-half a reply\r\n", b"250 no line end"])
def test_read_reply_reports_peer_close(wire, sent):
    connection, server = wire
    server.sendall(sent)
    server.close()
    with pytest.raises(ConnectionClosed):
        read_reply(connection)
    assert connection.closed


def test_read_reply_rejects_a_malformed_line_from_the_wire(wire):
    connection, server = wire
    server.sendall(b"hello there\r\n")
    with pytest.raises(MalformedReply):
        read_reply(connection)


def test_loopback_only_mode_refuses_other_addresses_without_connecting(monkeypatch):
    """The self-tests' safety switch: no packet leaves for a non-loopback address."""
    from mailconform.wire.connection import Connection
    from mailconform.wire.errors import ConnectFailed
    from mailconform.wire.transcript import Transcript

    monkeypatch.setenv("MAILCONFORM_LOOPBACK_ONLY", "1")
    transcript = Transcript("safety")
    with pytest.raises(ConnectFailed) as refused:
        Connection.open("192.0.2.1", 25, timeout=5, transcript=transcript)
    assert refused.value.kind == "not-loopback"
    assert "connecting to" not in transcript.render()
