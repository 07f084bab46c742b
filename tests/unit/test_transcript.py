"""Transcripts: rendered like the lab handout (C:/S:), odd bytes made visible, secrets never recorded."""

import base64
import socket

import pytest

from mailconform.wire.connection import Connection
from mailconform.wire.imap import ImapResponse, ImapSession
from mailconform.wire.pop3 import Pop3Session, parse_status
from mailconform.wire.smtp import SmtpSession, parse_reply
from mailconform.wire.secret import register
from mailconform.wire.errors import MalformedReply
from mailconform.wire.transcript import (
    HEAD_ENTRIES, MAX_ENTRY_CHARS, REDACTED, TAIL_ENTRIES, Transcript, excerpt, shown,
)

PASSWORD = "s3cr3t-pw\u00e9!"


def rendered_lines(direction, data):
    transcript = Transcript("t")
    getattr(transcript, direction)(data)
    return transcript.render().splitlines()[1:]


@pytest.mark.parametrize("direction, data, lines", [
    ("client", b"EHLO me\r\n", ["C: EHLO me"]),
    ("server", b"250-one\r\n250 two\r\n", ["S: 250-one", "S: 250 two"]),
    ("server", b"250 bare\n", ["S: 250 bare (bare LF)"]),
    ("client", b"QUIT", ["C: QUIT (no line end)"]),
    ("client", b"a\r\n\r\n", ["C: a", "C: "]),
    ("server", b"a\rb\r\n", ["S: a\\rb"]),                          # a bare CR inside a line
    ("server", b"\x00\x07\x1b[31m\x7f\r\n", ["S: \\x00\\x07\\x1b[31m\\x7f"]),
    ("server", b"caf\xc3\xa9 \xff\r\n", ["S: caf\u00e9 \\xff"]),      # UTF-8 shown, invalid bytes escaped
    ("server", b"tab\there\r\n", ["S: tab\there"]),
    ("server", b"\r\n.\n", ["S: ", "S: . (bare LF)"]),
])
def test_bytes_are_rendered_one_line_per_entry_with_odd_bytes_visible(direction, data, lines):
    assert rendered_lines(direction, data) == lines


def test_render_has_a_title_notes_and_optional_timestamps_and_tail():
    transcript = Transcript("smtp 127.0.0.1:25")
    transcript.note("connecting")
    transcript.server(b"220 hi\r\n")
    transcript.client(b"QUIT\r\n")
    assert transcript.render() == "# smtp 127.0.0.1:25\n*: connecting\nS: 220 hi\nC: QUIT"
    assert transcript.render(tail=2) == "   \u2026 1 earlier line(s)\nS: 220 hi\nC: QUIT"
    stamped = transcript.render(timestamps=True).splitlines()
    assert all(line.startswith("[") and "] " in line for line in stamped[1:])


def test_redacted_client_data_is_replaced_as_a_whole():
    transcript = Transcript("t")
    transcript.client(b"PASS one\r\nPASS two\r\n", redacted="PASS ***")
    assert transcript.render().splitlines()[1:] == ["C: PASS ***"]


# --------------------------------------------------------------------------- sessions never record secrets

def smtp_auth(connection, server):
    server.sendall(b"235 2.7.0 Authentication successful\r\n")
    SmtpSession(connection, parse_reply([b"220 hi\r\n"])).auth_plain("alice", PASSWORD)
    return "AUTH PLAIN " + REDACTED


def pop3_pass(connection, server):
    server.sendall(b"+OK logged in\r\n")
    Pop3Session(connection, parse_status(b"+OK hi\r\n")).pass_(PASSWORD)
    return "PASS " + REDACTED


def imap_login(connection, server):
    server.sendall(b"a1 OK logged in\r\n")
    ImapSession(connection, ImapResponse("*", "OK", "hi")).login("alice", PASSWORD)
    return f'a1 LOGIN "alice" {REDACTED}'


def secret_forms():
    """The password as it could appear: plain, and inside the AUTH PLAIN base64 payload."""
    plain = PASSWORD.encode()
    return [plain, base64.b64encode(b"\0alice\0" + plain), base64.b64encode(plain)]


@pytest.mark.parametrize("authenticate", [smtp_auth, pop3_pass, imap_login])
def test_credentials_reach_the_server_but_never_the_transcript(authenticate):
    ours, server = socket.socketpair()
    transcript = Transcript("auth")
    try:
        shown = authenticate(Connection(ours, transcript, timeout=1.0), server)
        on_the_wire = server.recv(4096)
    finally:
        ours.close()
        server.close()
    assert any(secret in on_the_wire for secret in secret_forms()), "the test did not really send the password"
    rendered = transcript.render(timestamps=True)
    assert f"C: {shown}" in rendered
    for secret in secret_forms():
        assert secret.decode() not in rendered
    assert "s3cr3t" not in rendered


def test_a_secret_never_shows_itself():
    from mailconform.wire.secret import Secret, line_bytes, reveal

    secret = Secret("hunter2")
    assert "hunter2" not in repr(secret) and "hunter2" not in str(secret) and "hunter2" not in f"{secret}"
    assert reveal(secret) == "hunter2" and reveal("plain") == "plain"
    assert reveal(line_bytes(Secret("PASS hunter2"))) == b"PASS hunter2\r\n"
    assert line_bytes("NOOP") == b"NOOP\r\n"


# --------------------------------------------------------------------------- bounds, secrets, control characters

def test_an_endless_reply_keeps_a_bounded_head_and_tail():
    transcript = Transcript("pop3")
    for number in range(100_000):
        transcript.server(f"{number} 120\r\n".encode())
    transcript.server(b"x" * 50_000 + b"\r\n")
    assert len(transcript.entries) == HEAD_ENTRIES + TAIL_ENTRIES
    rendered = transcript.render()
    assert "S: 0 120" in rendered and "S: 99999 120" in rendered and "S: 50000 120" not in rendered
    assert f"… {100_001 - HEAD_ENTRIES - TAIL_ENTRIES} line(s)" in rendered
    assert f"… ({50_000 - MAX_ENTRY_CHARS} more characters)" in rendered
    assert len(rendered) < 60_000


def test_a_password_the_server_echoes_is_hidden_in_every_form():
    register("Echo-Pw-5512", "alice")
    plain = base64.b64encode(b"\0alice\0Echo-Pw-5512").decode()
    transcript = Transcript("pop3")
    transcript.server(b"-ERR [AUTH] you said: PASS Echo-Pw-5512\r\n")
    transcript.server(f"535 5.7.8 you said: AUTH PLAIN {plain}\r\n".encode())
    transcript.server(b'a1 NO you said: a1 LOGIN alice "Echo-Pw-5512"\r\n')
    transcript.note(f"LOGIN {base64.b64encode(b'Echo-Pw-5512').decode()}")
    rendered = transcript.render()
    assert "Echo-Pw-5512" not in rendered and plain not in rendered and "RWNoby1Qdy01NTEy" not in rendered
    assert rendered.count("***") == 4
    assert shown(f"message: PASS Echo-Pw-5512 {plain.rstrip('=')}") == "message: PASS *** ***"


def test_control_characters_a_server_sends_are_escaped():
    assert shown("220 \x1b[2K\r\x1b[32mPASS\x1b[0m \x1b]0;owned\x07 ready\x9b") == \
        "220 \\x1b[2K\\r\\x1b[32mPASS\\x1b[0m \\x1b]0;owned\\x07 ready\\x9b"
    assert shown("line one\nline two\ttab") == "line one\nline two\ttab"


@pytest.mark.parametrize("parse, prefix", [(parse_status, b"-ERRX "), (lambda line: parse_reply([line]), b"5x0 ")])
@pytest.mark.parametrize("charset", ["utf-8", "latin-1"])
@pytest.mark.parametrize("padding", [0, 70, 76])  # the password whole, or where an 80-character cut would split it
def test_a_malformed_reply_that_echoes_the_password_never_shows_it(parse, prefix, charset, padding):
    password = "Pässwörd\\9-x"
    register(password, "alice")
    line = prefix + b"y" * padding + password.encode(charset) + b"\r\n"
    with pytest.raises(MalformedReply) as raised:
        parse(line)
    message = str(raised.value)
    assert "ssw" not in message and "9-x" not in message
    assert "***" in message or message.endswith("…")


def test_an_excerpt_escapes_controls_and_quotes_and_marks_the_cut():
    assert excerpt(b"\x1b[32mOK 'x'\r\n") == "'\\x1b[32mOK \\'x\\'\\r\\n'"
    assert excerpt("y" * 100, limit=10) == "'yyyyyyyyyy'…"
