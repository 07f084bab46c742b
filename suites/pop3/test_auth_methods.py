"""A3.auth-methods — how POP3 lets a client log in: CAPA read whole, no cleartext credentials before
TLS (USER/PASS and AUTH PLAIN with made-up credentials are refused without being checked), SASL
AUTH PLAIN with the account inside TLS, the mechanisms offered there judged, and APOP when the
greeting offers it.

The probes before TLS use the decoy user and a fake password, never the account's; they run last
(order=LAST), and one that a server would evaluate is counted in the target's failed-login budget.
"""

import re

from mailconform.checks import LAST, NotApplicable, check, expect, say
from mailconform.sessions import DECOY_USER, fake_password
from mailconform.wire.pop3 import apop_timestamp, capabilities_listed

STEP = "A3.auth-methods"
#: CAPA tags reported in the transcript (RFC 2449 §6, RFC 5034 §3).
REPORTED = ("USER", "SASL", "RESP-CODES", "AUTH-RESP-CODE", "TOP", "UIDL", "PIPELINING", "EXPIRE",
            "LOGIN-DELAY", "IMPLEMENTATION", "STLS")
PLAINTEXT_MECHANISMS = {"PLAIN", "LOGIN"}
WEAK_MECHANISMS = {"CRAM-MD5", "DIGEST-MD5"}  # RFC 6331 made DIGEST-MD5 historic; CRAM-MD5 is MD5 too
#: Words of a refusal that says "not without TLS" rather than "wrong credentials".
NOT_WITHOUT_TLS = re.compile(r"plain ?text|clear ?text|clear-text|disallowed|disabled|not allowed|tls|ssl|secur"
                             r"|encrypt|privacy", re.I)


def mechanisms(capabilities: dict[str, str]) -> set[str]:
    return {word.upper() for word in capabilities.get("SASL", "").split()}


#: Words of a refusal that says the credentials were wrong, i.e. that they were checked.
CHECKED = re.compile(r"fail|invalid|incorrect|wrong|bad (user|pass)", re.I)


def evaluated(reply, offered: bool) -> bool:
    """A refusal that shows the credentials were checked: it does not say "not without TLS", and
    either the login was offered in clear or the answer says they were wrong (Dovecot: -ERR [AUTH]
    Authentication failed.)."""
    return not NOT_WITHOUT_TLS.search(reply.text) and (offered or bool(CHECKED.search(reply.text)))


@check("pop3.auth.capa", step=STEP, rfc="2449#5", level="MUST", severity="medium", catalogue="POP-CAPA")
def test_capa_lists_the_capabilities(pop3, check_run):
    """RFC 2449 §5: "An -ERR response indicates the capability command is not implemented and the
    client will have to probe for capabilities as before."  CAPA is read whole; TOP and UIDL
    (RFC 1939 §7, what mail clients rely on) must be listed; USER, SASL, RESP-CODES, PIPELINING and
    IMPLEMENTATION are reported.
    """
    hello = pop3.greeted_hello()
    reply = expect(hello.answered(), "refused").ok()
    capabilities = hello.capabilities
    check_run.transcript("CAPA tags").note(say("reported", tags="; ".join(
        f"{tag}={capabilities[tag] or 'yes'}" if tag in capabilities else f"{tag}=no" for tag in REPORTED)))
    expect(bool(reply.lines), "empty", actual="+OK and no capability")
    for tag in ("TOP", "UIDL"):
        expect(tag in capabilities, "missing", actual=capabilities_listed(capabilities), tag=tag)
    expect("RESP-CODES" in capabilities, "no-resp-codes", tolerated=True)


@check("pop3.auth.capa-before-tls", step=STEP, rfc="2595#2.3", level="MUST", severity="high",
       catalogue="POP-CAPA-PRETLS")
def test_no_cleartext_login_is_offered_before_tls(pop3):
    """RFC 2595 §2.3: "Clients and servers which implement STARTTLS MUST be configurable to refuse
    all clear-text login commands or mechanisms (including both standards-track and nonstandard
    mechanisms) unless an encryption layer of adequate strength is active."  Before STLS on port 110
    CAPA lists neither USER nor a SASL PLAIN or LOGIN mechanism.
    """
    pop3.endpoint("pop3")
    hello = pop3.greeted_hello("pop3")
    expect(hello.answered(), "capa-refused").ok()
    capabilities = hello.capabilities
    expect("USER" not in capabilities, "user-offered", actual=capabilities_listed(capabilities))
    cleartext = mechanisms(capabilities) & PLAINTEXT_MECHANISMS
    expect(not cleartext, "plain-offered", actual=capabilities_listed(capabilities), mechanisms=" ".join(sorted(cleartext)))


@check("pop3.auth.user-refused-before-tls", step=STEP, rfc="2595#2.3", level="MUST", severity="critical",
       catalogue="POP-USER-PRETLS", order=LAST)
def test_user_and_pass_are_refused_before_tls(pop3):
    """RFC 2595 §2.3: "Clients and servers which implement STARTTLS MUST be configurable to refuse
    all clear-text login commands or mechanisms ... unless an encryption layer of adequate strength is
    active."  USER and PASS carry the password as it is typed.  Probed
    with made-up credentials: USER refused (-ERR), or PASS refused without checking them; a PASS
    answered "-ERR [AUTH] Authentication failed" shows the password was checked in clear.
    """
    pop3.endpoint("pop3")
    session = pop3.session("pop3")
    offered = "USER" in pop3.greeted_hello("pop3").capabilities
    user = session.user(DECOY_USER)
    if not user.ok:
        return
    password = pop3.wrong_password()  # the server is about to check what it is given
    reply = session.pass_(password)
    expect(not reply.ok, "accepted", actual=str(reply), user=DECOY_USER)
    expect(not evaluated(reply, True), "evaluated", actual=str(reply), user=DECOY_USER,
           offered="yes" if offered else "no")


@check("pop3.auth.plain-refused-before-tls", step=STEP, rfc="5034#4", level="MUST", severity="critical",
       catalogue="POP-AUTH-PRETLS", order=LAST)
def test_auth_plain_is_refused_before_tls(pop3):
    """RFC 5034 §4: "The AUTH command initiates a SASL authentication exchange between the client
    and the server. ... If the server supports the requested authentication mechanism, it performs
    the SASL exchange to authenticate the user."  "A server implementation MUST implement a
    configuration in which it does NOT advertise or permit any plaintext password mechanisms, unless
    the STLS command has been used to negotiate a TLS session (see [RFC2595])."  RFC 2595 §2.3:
    servers "MUST be configurable to refuse all clear-text login commands or mechanisms".  AUTH PLAIN
    with made-up credentials before STLS is refused, and not with an answer that says they were
    checked.
    """
    pop3.endpoint("pop3")
    session = pop3.session("pop3")
    offered = "PLAIN" in mechanisms(pop3.greeted_hello("pop3").capabilities)
    password = pop3.wrong_password() if offered else fake_password()  # an offered PLAIN checks what it gets
    reply = session.auth_plain(DECOY_USER, password)
    expect(not reply.ok, "accepted", actual=str(reply), user=DECOY_USER)
    expect(not evaluated(reply, offered), "evaluated", actual=str(reply), user=DECOY_USER)


@check("pop3.auth.sasl-plain", step=STEP, rfc="5034#4", level="MUST", severity="high", catalogue="POP-AUTH-SASL")
def test_auth_plain_logs_in_inside_tls(pop3):
    """RFC 5034 §4: "The AUTH command initiates a SASL authentication exchange between the client
    and the server. ... If the server supports the requested authentication mechanism, it performs
    the SASL exchange to authenticate the user."  Inside TLS (STLS, else POP3S) the account's
    AUTH PLAIN (RFC 4616, initial response on the command line) is answered +OK and STAT works.
    """
    user, password = pop3.credentials()
    service = "pop3" if pop3.target.endpoint("pop3") else "pop3s"
    session = pop3.secured(service)
    reply = session.auth_plain(user, password)
    expect(reply, "refused", user=user, service=service).ok()
    expect(session.stat(), "stat-refused", service=service).ok()
    session.quit()


@check("pop3.auth.mechanisms", step=STEP, rfc="5034#4", level="policy", severity="medium", catalogue="POP-CAPA")
def test_the_mechanisms_inside_tls_are_sound(pop3):
    """RFC 5034 §4: the AUTH command's argument is "A string identifying a SASL authentication
    mechanism"; the SASL capability (RFC 5034 §3) lists those offered.  Inside TLS: ANONYMOUS
    (RFC 4505) lets anybody in and fails; CRAM-MD5 and DIGEST-MD5 (made historic by RFC 6331) keep a
    password-equivalent on the server and are warned; SCRAM-SHA-256 is the one to prefer besides
    PLAIN.
    """
    service = "pop3" if pop3.target.endpoint("pop3") else "pop3s"
    capabilities = pop3.tls_hello(service).capabilities
    offered = mechanisms(capabilities)
    shown = " ".join(sorted(offered)) or "(none)"
    expect("ANONYMOUS" not in offered, "anonymous", actual=shown, service=service)
    weak = offered & WEAK_MECHANISMS
    expect(not weak, "weak", tolerated=True, weak=" ".join(sorted(weak)), service=service)


@check("pop3.auth.apop", step=STEP, rfc="1939#7", level="MUST", severity="medium", catalogue="POP-APOP-TIMESTAMP")
def test_apop_works_and_is_md5(pop3):
    """RFC 1939 §7 (APOP): "A POP3 server which implements the APOP command will include a timestamp
    in its banner greeting.  The syntax of the timestamp corresponds to the `msg-id' in [RFC822],
    and MUST be different each time the POP3 server issues a banner greeting."  The client sends
    the MD5 digest of that timestamp and the password: the password never crosses, but the server
    must keep it retrievable, and MD5 is broken (RFC 6151).  Judged only when the greeting carries
    a timestamp: two greetings carry different ones (the same one twice makes a digest replayable),
    the account's APOP inside TLS (STLS, else POP3S) is answered +OK, and APOP is warned about.
    """
    user, password = pop3.credentials()
    service = "pop3" if pop3.target.endpoint("pop3") else "pop3s"
    greeting = pop3.greeted_hello(service).greeting
    first = apop_timestamp(greeting.text)
    if first is None:
        raise NotApplicable(say("no-timestamp", greeting=greeting, service=service))
    pop3.login_works()
    session = pop3.secured(service)
    second = apop_timestamp(session.greeting.text)
    expect(second is not None, "timestamp-gone", actual=str(session.greeting), service=service)
    expect(second != first, "same-timestamp", timestamp=first, service=service)
    expect(session.apop(user, password), "refused", user=user, service=service).ok()
    expect(session.stat(), "stat-refused", service=service).ok()
    session.quit()
    expect(False, "md5", tolerated=True, service=service)
