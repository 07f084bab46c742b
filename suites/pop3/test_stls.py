"""A3.stls — STLS on port 110: +OK and a verified handshake, a fresh CAPA inside TLS without STLS
and with a way to log in, a second STLS refused, plaintext pipelined after STLS thrown away, and a
whole session (login, STAT, RETR, QUIT) inside TLS."""

from mailconform.checks import Blocked, check, expect, say
from mailconform.observations import TlsRefused
from mailconform.sessions import POP3_STLS_CHECK
from mailconform.wire import TlsFailed, WireError
from mailconform.wire.pop3 import capabilities_listed, parse_status

STEP = "A3.stls"
INJECTION_WAIT = 0.3  # seconds to listen inside TLS for a reply nobody asked for (the injected NOOP's)
LATE_WAIT = 0.1       # after CAPA: a reply left over means the injected one came first, late


@check("pop3.stls.handshake", step=STEP, rfc="2595#4", level="policy", severity="high", catalogue="POP-STLS",
       tls_failure_is_finding=True)
def test_stls_is_answered_ok_and_the_handshake_verifies(pop3):
    """RFC 2595 §4 (STLS): "A TLS negotiation begins immediately after the CRLF at the end of the +OK
    response from the server."  CAPA before TLS lists the STLS capability, and the handshake
    verifies against the target's trust anchor (tls.ca_file).  The lab requires STLS on port 110.
    """
    pop3.endpoint("pop3")
    shake = pop3.stls_handshake()  # blocked by the greeting check when pop3 does not greet
    hello = pop3.hello("pop3")
    offered = "STLS" in hello.capabilities
    error = shake.error
    if isinstance(error, TlsRefused):
        expect(offered, "not-offered", actual=str(error.reply))
        expect(error.reply, "refused").ok()
    expect(offered, "not-advertised", actual=capabilities_listed(hello.capabilities))
    if error is not None:
        raise error


@check("pop3.stls.capa-after", step=STEP, rfc="2595#4", level="MUST", severity="high", catalogue="POP-STLS-RECAPA")
def test_capa_inside_tls_lists_no_stls_and_a_login(pop3):
    """RFC 2595 §4: "Once TLS has been started, the client MUST discard cached information about
    server capabilities and SHOULD re-issue the CAPA command."  The STLS capability is present only
    where the command is permitted, and "A -ERR response MAY result if a security layer is already
    active"; inside TLS CAPA lists no STLS, and lists USER or a SASL mechanism to log in with.
    """
    hello = pop3.tls_hello("pop3")
    expect(hello.answered(), "capa-refused").ok()
    capabilities = hello.capabilities
    expect("STLS" not in capabilities, "stls-again", actual=capabilities_listed(capabilities))
    expect("USER" in capabilities or bool(capabilities.get("SASL", "").split()), "no-login",
           actual=capabilities_listed(capabilities))


@check("pop3.stls.twice", step=STEP, rfc="2595#4", level="MAY", severity="low", catalogue="POP-STLS-TWICE")
def test_a_second_stls_is_refused(pop3):
    """RFC 2595 §4: "A -ERR response MAY result if a security layer is already active.  Once a
    client issues a STLS command, it MUST NOT issue further commands until a server response is seen
    and the TLS negotiation is complete."  STLS inside TLS is refused (Dovecot: -ERR TLS is already
    active.).
    """
    reply = pop3.secured("pop3").command("STLS")
    expect(reply, "accepted").err()


@check("pop3.stls.injection", step=STEP, rfc="2595#4", level="MUST", severity="critical",
       catalogue="POP-STLS-INJECTION")
def test_plaintext_sent_with_stls_is_discarded(pop3):
    """RFC 2595 §4: "Once a client issues a STLS command, it MUST NOT issue further commands until a
    server response is seen and the TLS negotiation is complete."  A server must not act on bytes
    that came in clear with STLS: STLS and NOOP go in one write; a reply to that NOOP inside TLS is
    the plaintext command injection of CVE-2011-0411 (NO STARTTLS, USENIX Security 2021).
    """
    pop3.stls_works()
    session = pop3.session("pop3")
    session.connection.send(b"STLS\r\nNOOP\r\n")
    started = parse_status(session.connection.readline(session.connection.deadline()))
    if not started.ok:
        raise Blocked(POP3_STLS_CHECK, say("stls-refused", reply=started))
    early = session.connection.buffer.decode("ascii", "replace").strip()
    expect(not early, "answered-in-clear", tolerated=True, reply=early)
    try:
        pop3.start_tls(session, "pop3")
    except TlsFailed:  # the server took the NOOP for the start of the handshake: nothing was executed
        session.transcript.note(say("handshake-ate-it"))
        return
    unasked = session.connection.pending(INJECTION_WAIT).decode("ascii", "replace").strip()
    expect(not unasked, "injected", actual=unasked)
    try:
        capa = session.capa()
    except WireError as error:
        expect(False, "capa-broken", actual=str(error))
    expect(capa, "capa-refused").ok()
    late = session.connection.pending(LATE_WAIT).decode("ascii", "replace").strip()
    expect(not late, "injected", actual=late)


@check("pop3.stls.session", step=STEP, rfc="1939#5", level="MUST", severity="high", catalogue="POP-LOGIN-OK")
def test_a_whole_session_inside_stls(pop3):
    """RFC 1939 §5 (STAT): "The positive response consists of "+OK" followed by a single space, the
    number of messages in the maildrop, a single space, and the size of the maildrop in octets."
    (RETR): "If the POP3 server issues a positive response, then the response given is multi-line."
    Inside STLS: USER/PASS with the account, STAT, RETR of the newest message (when there is one)
    and QUIT, all +OK.
    """
    user, password = pop3.credentials()
    pop3.login_works()
    session = pop3.secured("pop3")
    expect(session.login(user, password), "login-refused", user=user).ok()
    expect(session.stat(), "stat-refused").ok()
    numbers = session.message_numbers()
    if numbers:
        expect(session.retr(numbers[-1]), "retr-refused", number=numbers[-1]).ok()
    else:
        session.transcript.note(say("empty"))
    expect(session.quit(), "quit-refused").ok()
