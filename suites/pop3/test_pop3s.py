"""A3.pop3s — implicit TLS on the pop3s port (995): a verified handshake from the first byte, the
+OK greeting inside TLS, CAPA without STLS, and the account's login with STAT and QUIT."""

from mailconform.checks import check, expect, say
from mailconform.wire import TlsFailed
from mailconform.wire.pop3 import capabilities_listed

STEP = "A3.pop3s"


@check("pop3.pop3s.implicit-tls", step=STEP, rfc="8314#3.1", level="SHOULD", severity="high",
       catalogue="POP-995-IMPLICIT", tls_failure_is_finding=True)
def test_pop3s_speaks_tls_from_the_first_byte(pop3):
    """RFC 8314 §3.1: "When a TCP connection is established for the "pop3s" service (default port
    995), a TLS handshake begins immediately."  Once TLS is up the server greets +OK (RFC 1939 §4)
    and CAPA lists no STLS (RFC 2595 §4: "A -ERR response MAY result if a security layer is already
    active").  The handshake verifies against the target's trust anchor (tls.ca_file).
    """
    at = f"pop3s ({pop3.endpoint('pop3s')})"
    try:
        hello = pop3.hello("pop3s")  # a failed handshake (or nothing listening) is this check's to judge
    except TlsFailed as failed:
        expect(False, "handshake-failed", actual=str(failed), endpoint=at)
    expect(hello.greeting, "not-ok", endpoint=at).ok()
    expect(hello.answered(), "capa-refused", endpoint=at).ok()
    expect("STLS" not in hello.capabilities, "stls-offered", actual=capabilities_listed(hello.capabilities), endpoint=at)


@check("pop3.pop3s.session", step=STEP, rfc="1939#5", level="MUST", severity="high", catalogue="POP-995-IMPLICIT")
def test_a_session_on_pop3s(pop3):
    """RFC 1939 §5 (STAT): "The positive response consists of "+OK" followed by a single space, the
    number of messages in the maildrop, a single space, and the size of the maildrop in octets."
    RFC 8314 §3.1: "Once the TLS session is established, POP3 [RFC1939] protocol messages are
    exchanged as TLS application data for the remainder of the TCP connection."  On pop3s: USER/PASS
    with the account, STAT and QUIT, all +OK.
    """
    user, password = pop3.credentials()
    pop3.login_works()
    session = pop3.secured("pop3s")
    expect(session.login(user, password), "login-refused", user=user).ok()
    expect(session.stat(), "stat-refused").ok()
    expect(session.quit(), "quit-refused").ok()
    session.transcript.note(say("done", user=user))
