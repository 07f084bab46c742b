"""A2.esmtp — which ESMTP extensions?  The EHLO lists before and after TLS, judged: STARTTLS and AUTH
where they belong, SIZE enforced, enhanced status codes, the rest reported; VRFY and EXPN policy."""

import re
import secrets

from mailconform.checks import LAST, check, expect
from mailconform.sessions import DECOY_USER, fake_password

STEP = "A2.esmtp"
PLAINTEXT_MECHANISMS = {"PLAIN", "LOGIN"}
BAD_CREDENTIALS = 535
#: Refusals of AUTH before TLS that do not say the credentials were checked: 530, 538, 503, 504… (RFC 4954 §4, §6).
NOT_EVALUATED = tuple(code for code in range(500, 600) if code != BAD_CREDENTIALS)
ENHANCED = re.compile(r"^([245])\.\d{1,3}\.\d{1,3}$")


def mechanisms(extensions: dict[str, str]) -> set[str]:
    """The SASL mechanisms of an EHLO ``AUTH`` line, upper case."""
    return {word.upper() for word in extensions.get("AUTH", "").split()}


@check("smtp.esmtp.greeting", step=STEP, rfc="5321#4.1.1.1", level="MUST", severity="high",
       endpoints=("submission", "smtps"), catalogue="SMTP-GREETING-220")
def test_submission_greets_and_answers_ehlo(smtp, endpoint):
    """RFC 5321 §4.3.2: CONNECTION ESTABLISHMENT S: 220 E: 554; §4.1.1.1: a server that supports
    the SMTP service extensions "will give a successful response" to EHLO.  The submission ports
    (587, 465 inside TLS) greet and answer EHLO like port 25.
    """
    hello = smtp.hello(endpoint)
    expect(hello.greeting, "not-220").code(220)
    expect(hello.answered(), "ehlo-refused").code(250)


@check("smtp.esmtp.starttls-offered", step=STEP, rfc="3207#4", level="SHOULD", severity="high",
       endpoints=("smtp", "submission"), catalogue="EXT-TLS-ADV-25")
def test_starttls_is_offered(smtp, endpoint):
    """RFC 3207 §4: "The STARTTLS keyword is used to tell the SMTP client that the SMTP server is
    currently able to negotiate the use of TLS."  RFC 8314 §3.3: submission servers SHOULD
    implement STARTTLS on port 587; the lab asks for it on 25 too.
    """
    hello = smtp.greeted_hello(endpoint)
    expect("STARTTLS" in hello.extensions, "not-offered", actual=", ".join(hello.extensions) or "(no extensions)",
           endpoint=endpoint)


@check("smtp.esmtp.auth-not-before-tls", step=STEP, rfc="4954#4", level="SHOULD NOT", severity="high",
       endpoints=("smtp", "submission"), catalogue="EXT-AUTH-PRETLS-NOADV")
def test_plaintext_auth_is_not_offered_before_tls(smtp, endpoint):
    """RFC 4954 §4: "Server sites SHOULD NOT use any configuration which permits a plaintext password
    mechanism without such a protection mechanism against password snooping."  §6 (538): servers
    "SHOULD NOT advertise mechanisms that are not permitted due to lack of encryption".
    """
    offered = mechanisms(smtp.greeted_hello(endpoint).extensions) & PLAINTEXT_MECHANISMS
    expect(not offered, "offered", mechanisms=" ".join(sorted(offered)), endpoint=endpoint)


# Last: where the server offers PLAIN or LOGIN in clear it evaluates the decoy's AUTH, a failed login
# (Dovecot, the usual SASL backend of Postfix, then slows every later login from this address).
@check("smtp.esmtp.auth-refused-before-tls", step=STEP, rfc="4954#4", level="MUST", severity="critical",
       endpoints=("smtp", "submission"), order=LAST, catalogue="EXT-AUTH-PRETLS-REFUSED")
def test_plaintext_auth_is_refused_before_tls(smtp, endpoint):
    """RFC 4954 §4: "A server implementation MUST implement a configuration in which it does NOT
    permit any plaintext password mechanisms, unless either the STARTTLS command has been negotiated
    or some other mechanism that protects the session from password snooping has been provided."
    Probed with made-up credentials: a refusal that says they were checked (535) is a finding too.
    """
    session = smtp.session(endpoint)
    offered = mechanisms(session.extensions) & PLAINTEXT_MECHANISMS
    password = smtp.wrong_password() if offered else fake_password()  # an offered mechanism checks what it gets
    reply = session.auth_plain(DECOY_USER, password)
    expect(reply.code != 235, "accepted", reply=reply, endpoint=endpoint)
    expect(reply.code != BAD_CREDENTIALS, "evaluated", actual=str(reply), endpoint=endpoint)
    expect(reply, "not-refused", endpoint=endpoint).code(*NOT_EVALUATED)


@check("smtp.esmtp.auth-after-tls", step=STEP, rfc="4954#4", level="MUST", severity="high",
       endpoints=("submission", "smtps"), catalogue="EXT-AUTH-POSTTLS-ADV")
def test_auth_plain_is_offered_inside_tls(smtp, endpoint):
    """RFC 4954 §4: "A server implementation MUST implement a configuration in which it does NOT
    permit any plaintext password mechanisms, unless ... STARTTLS ... has been negotiated"; RFC 4616
    (PLAIN) over TLS is what mail clients use: inside TLS the EHLO list offers AUTH PLAIN.
    """
    session = smtp.secured(endpoint)
    offered = mechanisms(session.extensions)
    expect("PLAIN" in offered, "not-offered", actual=" ".join(sorted(offered)) or "(no AUTH line)",
           endpoint=endpoint)


@check("smtp.esmtp.size", step=STEP, rfc="1870#6", level="MUST", severity="medium", catalogue="EXT-SIZE-OVER")
def test_a_declared_size_above_the_limit_is_refused(smtp, target):
    """RFC 1870 §6.1: "If the server cannot accept a message of the indicated size ... the server
    must return a 552 reply"; §4: the SIZE keyword's parameter is the fixed maximum message size
    (0 or none: no fixed maximum).  The lab asks for a declared limit.
    """
    session = smtp.session()
    declared = session.extensions.get("SIZE")
    expect(declared is not None, "not-offered")
    limit = int(declared) if declared.isdigit() else 0
    expect(limit > 0, "no-limit", tolerated=True, declared=declared or "(no value)")
    if limit > 0:
        expect(session.mail(target.sender, f"SIZE={limit + 1}"), "over-accepted", size=limit + 1,
               limit=limit).code(552)


@check("smtp.esmtp.enhanced-status-codes", step=STEP, rfc="2034#4", level="MUST", severity="medium",
       catalogue="EXT-ESC-FORMAT")
def test_replies_carry_enhanced_status_codes(smtp, target):
    """RFC 2034 §4: "the status codes must appear in all 2xx, 4xx, and 5xx response lines other than
    initial greeting and any response to HELO or EHLO", and the class matches the reply's first digit.
    """
    session = smtp.session()
    expect("ENHANCEDSTATUSCODES" in session.extensions, "not-offered", tolerated=True)
    if "ENHANCEDSTATUSCODES" not in session.extensions:
        return
    replies = [session.mail(target.sender), session.rset(), session.noop(), session.command("XMAILCONFORM")]
    wrong = [str(reply) for reply in replies if not _has_enhanced_code(reply)]
    expect(not wrong, "missing", actual="; ".join(wrong))


def _has_enhanced_code(reply) -> bool:
    """Every line starts with ``class.subject.detail`` whose class is the reply code's first digit."""
    codes = [line.split(" ", 1)[0] for line in reply.lines]
    return all(ENHANCED.match(code) and code[0] == str(reply.code)[0] for code in codes)


@check("smtp.esmtp.extensions", step=STEP, rfc="6531#3.1", level="MUST", severity="low", catalogue="EXT-UTF8-ADV")
def test_extensions_are_consistent(smtp, check_run):
    """RFC 6531 §3.1: servers offering SMTPUTF8 "MUST support and announce" 8BITMIME (paraphrased by
    the catalogue).  8BITMIME (RFC 6152) and PIPELINING (RFC 2920) are expected of a modern server;
    SMTPUTF8, CHUNKING and DSN are reported.
    """
    extensions = smtp.session().extensions
    reported = ", ".join(f"{name} {'yes' if name in extensions else 'no'}"
                         for name in ("8BITMIME", "PIPELINING", "SMTPUTF8", "CHUNKING", "DSN"))
    check_run.transcript("extensions").note(reported)
    expect(not ("SMTPUTF8" in extensions and "8BITMIME" not in extensions), "utf8-without-8bitmime")
    missing = [name for name in ("8BITMIME", "PIPELINING") if name not in extensions]
    expect(not missing, "missing", tolerated=True, names=", ".join(missing))


@check("smtp.esmtp.vrfy-expn", step=STEP, rfc="5321#7.3", level="SHOULD", severity="low", catalogue="SMTP-VRFY-ENUM")
def test_vrfy_and_expn_disclose_no_users(smtp, target, recipient):
    """RFC 5321 §7.3: "As discussed in Section 3.5, individual sites may want to disable either or
    both of VRFY or EXPN for security reasons"; a server that answers VRFY differently for a known
    and an unknown user lets anyone list its users.
    """
    session = smtp.session()
    known = session.command(f"VRFY {recipient}")
    unknown = session.command(f"VRFY mailconform-nobody-{secrets.token_hex(4)}@{recipient.rpartition('@')[2]}")
    expect(known.code == unknown.code or known.code >= 500, "vrfy-enumerates", tolerated=True,
           known=known, unknown=unknown, recipient=recipient)
    expn = session.command(f"EXPN {recipient}")
    expect(not 200 <= expn.code < 300, "expn-discloses", tolerated=True, reply=expn, recipient=recipient)
