"""Transcript notes: what each reply code means, in both languages, beside the server's first line
of each reply; DNS questions and answers as dig shows them."""

import pytest

from fixtures.twins import DnsTwin
from mailconform import messages
from mailconform.annotate import note
from mailconform.dns import Lookup
from mailconform.targets import Target
from mailconform.wire.transcript import Transcript

#: The lab handout's table, in English and in Spanish.
HANDOUT = {
    "220": ("service ready", "servicio preparado"),
    "221": ("service closing the connection", "el servicio cierra la conexión"),
    "250": ("requested action completed", "acción solicitada completada"),
    "251": ("user not local; will forward", "usuario no local; se reenviará"),
    "354": ("start mail input; end with <CRLF>.<CRLF>", "empieza la entrada del correo; termina con <CRLF>.<CRLF>"),
    "421": ("service not available, closing the connection", "servicio no disponible, cerrando la conexión"),
}


@pytest.mark.parametrize("code", sorted(HANDOUT))
@pytest.mark.parametrize("lang", ["en", "es"])
def test_every_code_of_the_handout_is_explained(code, lang):
    with messages.speaking(lang):
        assert note("smtp 127.0.0.1:25", f"{code} mail.example.test") == HANDOUT[code][lang == "es"]


@pytest.mark.parametrize("title, line, meaning", [
    ("submission 127.0.0.1:587", "550 5.7.1 <x@example.com>: Relay access denied",
     "mailbox unavailable, or refused by policy (permanent failure / security or policy)"),
    ("pop3 127.0.0.1:110", "-ERR [AUTH] Authentication failed.",
     "negative: refused or failed; the credentials were checked and are wrong"),
    ("pop3s 127.0.0.1:995", "+OK Dovecot ready.", "positive: done"),
    ("imap 127.0.0.1:143", "a1 NO [PRIVACYREQUIRED] Plaintext authentication disallowed",
     "refused or failed; refused: needs a TLS connection"),
    ("imaps 127.0.0.1:993", "* BYE Logging out", "the server is closing the connection"),
    ("smtp 127.0.0.1:25", "hello there", None),
    ("dns", "250 looks like a code", None),
])
def test_notes_follow_the_protocol_of_the_transcript(title, line, meaning):
    assert note(title, line) == meaning


def test_only_the_first_line_of_a_reply_is_annotated():
    transcript = Transcript("smtp 127.0.0.1:25")
    transcript.server(b"220 hi\r\n")
    transcript.client(b"EHLO me\r\n")
    transcript.server(b"250-hi\r\n250-PIPELINING\r\n250 SIZE 100\r\n")
    lines = transcript.render(annotate=note).splitlines()
    assert lines[1:] == ["S: 220 hi    ← service ready", "C: EHLO me", "S: 250-hi    ← requested action completed",
                         "S: 250-PIPELINING", "S: 250 SIZE 100"]


def test_dns_answers_read_like_dig():
    zone = {"lab.test": {"MX": [(10, "mx.lab.test")]}, "mx.lab.test": {"A": ["127.0.0.1"]}}
    with DnsTwin(zone) as resolver:
        target = Target("t", "127.0.0.1", {}, domain="lab.test", dns=(resolver.host, resolver.port), timeout=2)
        transcript = Transcript("dns")
        lookup = Lookup(target, transcript, {})
        lookup.mx("lab.test")
        lookup.addresses("nowhere.lab.test")
        lookup.mx("lab.test")
    rendered = transcript.render()
    assert "C: ;lab.test.\tIN\tMX" in rendered
    assert "S: ;; status: NOERROR, 1 answer(s)\nS: lab.test.\tIN\tMX\t10 mx.lab.test." in rendered
    assert "S: ;; status: NXDOMAIN (nowhere.lab.test does not exist)" in rendered
    assert "no line end" not in rendered
    assert rendered.count("*: answer from earlier in this run:") == 1
