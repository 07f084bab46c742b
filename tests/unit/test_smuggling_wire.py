"""The wire steps of the smuggling probe: raw message bytes after 354 with a chosen end, listening
for what a server says unasked, and the probe's bytes."""

import socket
import threading

import pytest

from mailconform.probes import SmugglingProbe
from mailconform.wire import MalformedReply, SmtpSession, Transcript
from mailconform.wire.connection import Connection
from mailconform.wire.smtp import SmtpReply, parse_replies
from suites.smtp.test_smuggling import END_OF_DATA_VARIANTS, spelled


def session_with(server_script):
    """An SmtpSession on one end of a socket pair; ``server_script(sock)`` plays the server in a thread."""
    client, server = socket.socketpair()
    thread = threading.Thread(target=server_script, args=(server,), daemon=True)
    thread.start()
    return SmtpSession(Connection(client, Transcript("test"), timeout=2), SmtpReply(220, ("ready",))), thread


def test_parse_replies_keeps_an_unfinished_reply_apart():
    replies, rest = parse_replies(b"250 2.0.0 Ok: queued\r\n250-a\r\n250 b\r\n354 go on\r\n554 5.5.0 no\r\n55")
    assert [r.code for r in replies] == [250, 250, 354, 554] and replies[1].lines == ("a", "b")
    assert rest == b"55"
    assert parse_replies(b"250-a\r\n") == ((), b"250-a\r\n")
    assert parse_replies(b"") == ((), b"")
    with pytest.raises(MalformedReply):
        parse_replies(b"hello\r\n")


def test_a_cr_alone_does_not_end_a_reply_line():
    replies, rest = parse_replies(b"250 one\rtwo\r\n")
    assert [r.lines for r in replies] == [("one\rtwo",)] and rest == b""


def test_listen_hears_replies_then_stops_after_quiet():
    def server(sock):
        sock.sendall(b"250 2.0.0 Ok: queued\r\n250 2.1.0 Ok\r\n")
        sock.sendall(b"250 2.1.5 Ok\r\n354 End data\r\n")
        sock.recv(100)  # hold the connection open until the client goes

    session, _ = session_with(server)
    heard = session.listen(2.0, settle=0.1)
    assert [r.code for r in heard.replies] == [250, 250, 250, 354] and not heard.closed and not heard.silent
    assert "354 End data" in str(heard)
    session.close()


def test_listen_hears_silence_and_a_close():
    def silent(sock):
        sock.recv(100)

    session, _ = session_with(silent)
    heard = session.listen(0.2)
    assert heard.silent and str(heard) == "(nothing)"
    session.close()

    def refuses(sock):
        sock.sendall(b"550 5.5.2 Error: bare <LF> received\r\n")
        sock.close()

    session, thread = session_with(refuses)
    thread.join()
    heard = session.listen(1.0, settle=0.2)
    assert [r.code for r in heard.replies] == [550] and heard.closed


def test_send_data_sends_exact_bytes_and_end_data_reads_the_reply():
    received = []

    def server(sock):
        data = b""
        while not data.endswith(b"\r\n.\r\n"):
            data += sock.recv(4096)
        received.append(data)
        sock.sendall(b"250 2.0.0 Ok: queued\r\n")
        sock.recv(100)

    session, _ = session_with(server)
    session.send_data(b"Subject: x\r\n\r\nbody", b"\n.\r\n", b"MAIL FROM:<a@b>")
    assert session.end_data().code == 250
    assert received == [b"Subject: x\r\n\r\nbody\n.\r\nMAIL FROM:<a@b>\r\n.\r\n"]  # no dot-stuffing, no added CRLF
    shown = session.transcript.render()
    assert "body (bare LF)" in shown and "MAIL FROM:<a@b>" in shown
    session.close()


def test_the_probe_bytes():
    probe = SmugglingProbe.new("alice@lab.test", "alice@lab.test", END_OF_DATA_VARIANTS["lfcrlf"])
    content, smuggled = probe.content(), probe.smuggled()
    assert probe.first.token.encode() in content and probe.second.token.encode() not in content
    assert not content.endswith(b"\n") and not smuggled.endswith(b"\n")  # the sequences supply every line end
    assert smuggled.startswith(b"MAIL FROM:<alice@lab.test>\r\nRCPT TO:<alice@lab.test>\r\nDATA\r\n")
    assert f"Subject: mailconform smuggling probe 2 (smuggled) {probe.second.token}".encode() in smuggled
    for end in END_OF_DATA_VARIANTS.values():  # the real end is never in the same write
        assert b"\r\n.\r\n" not in content + end + smuggled


@pytest.mark.parametrize("name, shown", [("lflf", "<LF>.<LF>"), ("lfcrlf", "<LF>.<CR><LF>"),
                                         ("crcr", "<CR>.<CR>"), ("nul", "<CR><LF><NUL>.<CR><LF>")])
def test_sequences_are_spelled_as_the_rfcs_write_them(name, shown):
    assert spelled(END_OF_DATA_VARIANTS[name]) == shown
