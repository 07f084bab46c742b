"""IMAP status responses, capabilities, literals and tagged/untagged handling (RFC 3501 / RFC 9051)."""

import socket

import pytest

from mailconform.wire.connection import Connection
from mailconform.wire.errors import MalformedReply, ReplyTimeout
from mailconform.wire.imap import ImapResponse, ImapSession, capabilities_from, parse_status_line, read_response_line
from mailconform.wire.transcript import Transcript

TIMEOUT = 0.3


@pytest.mark.parametrize("line, parsed", [
    ("* OK [CAPABILITY IMAP4rev1 STARTTLS] Dovecot ready.",
     ("*", "OK", "[CAPABILITY IMAP4rev1 STARTTLS] Dovecot ready.")),
    ("* PREAUTH welcome", ("*", "PREAUTH", "welcome")),
    ("* BYE shutting down", ("*", "BYE", "shutting down")),
    ("* bad [ALERT] lower case status", ("*", "BAD", "[ALERT] lower case status")),
    ("a1 OK LOGIN completed", ("a1", "OK", "LOGIN completed")),
    ("a2 NO [PRIVACYREQUIRED] Plaintext authentication disallowed",
     ("a2", "NO", "[PRIVACYREQUIRED] Plaintext authentication disallowed")),
    ("a3 BAD", ("a3", "BAD", "")),
    ("A0004 ok done", ("A0004", "OK", "done")),
])
def test_status_line_is_split_into_tag_status_and_text(line, parsed):
    assert parse_status_line(line) == parsed


@pytest.mark.parametrize("line", ["", "* CAPABILITY IMAP4rev1", "* 3 EXISTS", "a1 MAYBE", "a1", "+ go ahead", "a1OK"])
def test_non_status_lines_are_malformed(line):
    with pytest.raises(MalformedReply):
        parse_status_line(line)


@pytest.mark.parametrize("text, capabilities", [
    ("CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN LOGINDISABLED",
     {"IMAP4REV1", "STARTTLS", "AUTH=PLAIN", "LOGINDISABLED"}),
    ("capability imap4rev1 idle", {"IMAP4REV1", "IDLE"}),
    ("CAPABILITY", set()),
    ("PRIVACYREQUIRED", set()),
    ("", set()),
])
def test_capabilities_from_capability_text(text, capabilities):
    assert capabilities_from(text) == capabilities


@pytest.mark.parametrize("text, code", [
    ("[PRIVACYREQUIRED] no", "PRIVACYREQUIRED"),
    ("[CAPABILITY IMAP4rev1 IDLE] ok", "CAPABILITY IMAP4rev1 IDLE"),
    ("no [CODE] here", None),
])
def test_response_code_is_the_leading_bracket(text, code):
    assert ImapResponse("a1", "NO", text).resp_code == code


# --------------------------------------------------------------------------- over a socketpair

@pytest.fixture
def imap_pair():
    """An ImapSession on one end of a socketpair (greeted with capabilities), and the server end."""
    ours, server = socket.socketpair()
    greeting = ImapResponse("*", "OK", "[CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready")
    session = ImapSession(Connection(ours, Transcript("imap test"), timeout=TIMEOUT), greeting)
    yield session, server
    session.close()
    server.close()


def test_greeting_capabilities_are_remembered(imap_pair):
    session, _ = imap_pair
    assert session.capabilities == {"IMAP4REV1", "STARTTLS", "LOGINDISABLED"}


def test_literal_is_read_by_size_and_inlined(imap_pair):
    session, server = imap_pair
    body = b"a line\r\n* 9 FAKE\r\n)"        # CRLF and an untagged look-alike inside the literal
    server.sendall(b"* 1 FETCH (BODY[] {%d}\r\n" % len(body) + body + b")\r\nnext\r\n")
    line = read_response_line(session.connection, session.connection.deadline())
    assert line == "* 1 FETCH (BODY[] " + body.decode() + ")"
    assert session.connection.buffer == b"next\r\n"


def test_two_literals_and_a_non_synchronizing_one_in_one_response(imap_pair):
    session, server = imap_pair
    server.sendall(b"* 2 FETCH (A {3}\r\nabc B {2+}\r\nde)\r\n")
    assert read_response_line(session.connection, session.connection.deadline()) == "* 2 FETCH (A abc B de)"


def test_literal_shorter_than_announced_times_out(imap_pair):
    session, server = imap_pair
    server.sendall(b"* 1 FETCH (BODY[] {100}\r\nshort)\r\n")
    with pytest.raises(ReplyTimeout):
        read_response_line(session.connection, session.connection.deadline())


def test_untagged_alert_before_tagged_privacyrequired_is_kept_and_the_tagged_reply_returned(imap_pair):
    session, server = imap_pair
    server.sendall(b"* BAD [ALERT] Plaintext authentication not allowed without SSL/TLS, but your client did it "
                   b"anyway. If anyone was listening, the password was exposed.\r\n"
                   b"a1 NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) "
                   b"connections.\r\n")
    response = session.login("alice", "fake-pw")
    assert (response.tag, response.status, response.ok) == ("a1", "NO", False)
    assert response.resp_code == "PRIVACYREQUIRED"
    assert len(response.untagged) == 1 and response.untagged[0].startswith("* BAD [ALERT]")
    assert session.connection.buffer == b""


def test_tags_count_up_and_untagged_capability_replaces_the_known_list(imap_pair):
    session, server = imap_pair
    server.sendall(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\na1 OK done\r\n")
    first = session.capability()
    server.sendall(b"a2 OK [CAPABILITY IMAP4rev1 IDLE] done\r\n")
    second = session.command("NOOP")
    assert (first.tag, second.tag) == ("a1", "a2")
    assert server.recv(100) == b"a1 CAPABILITY\r\na2 NOOP\r\n"
    assert session.capabilities == {"IMAP4REV1", "IDLE"}


@pytest.mark.parametrize("reply, problem", [
    (b"a7 OK not mine\r\n", "while waiting"),
    (b"+ ready for more\r\n", "continuation"),
    (b"gibberish\r\n", "not an IMAP status"),
])
def test_unexpected_completion_is_malformed(imap_pair, reply, problem):
    session, server = imap_pair
    server.sendall(reply)
    with pytest.raises(MalformedReply, match=problem):
        session.command("NOOP")


@pytest.mark.parametrize("initial", [True, False], ids=["sasl-ir", "continuation"])
def test_authenticate_plain_sends_the_payload_and_never_records_it(imap_pair, initial):
    from base64 import b64encode

    session, server = imap_pair
    payload = b64encode(b"\0alice\0s3cret-pw").decode()
    server.sendall((b"" if initial else b"+ \r\n") + b"a1 OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n")
    response = session.authenticate_plain("alice", "s3cret-pw", initial=initial)
    assert response.ok and session.capabilities == {"IMAP4REV1", "IDLE"}
    sent = server.recv(4096).decode()
    assert sent == (f"a1 AUTHENTICATE PLAIN {payload}\r\n" if initial else f"a1 AUTHENTICATE PLAIN\r\n{payload}\r\n")
    shown = session.transcript.render()
    assert payload not in shown and "s3cret-pw" not in shown and "AUTHENTICATE PLAIN" in shown


def test_read_tagged_after_pipelined_commands(imap_pair):
    session, server = imap_pair
    session.send_raw(b"x1 STARTTLS\r\nx2 NOOP\r\n")
    server.sendall(b"x1 OK Begin TLS negotiation now\r\n")
    assert session.read_tagged("x1").ok
    assert server.recv(4096) == b"x1 STARTTLS\r\nx2 NOOP\r\n"
