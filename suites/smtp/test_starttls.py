"""A2.starttls — a STARTTLS session: 220 and a verified handshake on 25 and 587, a fresh EHLO list
without STARTTLS inside TLS, a session reset by the upgrade, plaintext injected with STARTTLS thrown
away; implicit TLS on 465; 587 refuses mail before TLS and before AUTH; the account's AUTH PLAIN."""

from mailconform.checks import LAST, Blocked, Inconclusive, check, expect, say
from mailconform.observations import TlsRefused
from mailconform.probes import ProbeMessage
from mailconform.sessions import STARTTLS_CHECK, TLS_NOT_AVAILABLE
from mailconform.wire import TlsFailed, WireError

STEP = "A2.starttls"
#: Refusals: every 4xx and 5xx but 421 (service closing: "not now", retried, never a verdict).
REFUSALS = tuple(code for code in range(400, 600) if code != 421)
INJECTION_WAIT = 0.3  # seconds to listen inside TLS for a reply nobody asked for (the injected NOOP's)
LATE_WAIT = 0.1       # after EHLO: a reply left over means the injected one came first, late


def where(smtp, service: str) -> str:
    """``submission (127.0.10.2:587)``: the endpoint as the messages name it (not applicable when absent)."""
    return f"{service} ({smtp.endpoint(service)})"


def probe_recipient(target) -> str:
    """A RCPT address for probes that must be refused anyway: the account's, else postmaster (of the
    domain, or bare: RFC 5321 §4.5.1 says every server accepts "Postmaster" without a domain)."""
    if target.account and target.account.address:
        return target.account.address
    return f"postmaster@{target.domain}" if target.domain else "postmaster"


def extensions(hello) -> str:
    return ", ".join(hello.extensions) or "(no extensions)"


@check("smtp.starttls.handshake", step=STEP, rfc="3207#4", level="policy", severity="high",
       endpoints=("smtp", "submission"), catalogue="EXT-TLS-220", tls_failure_is_finding=True)
def test_starttls_is_answered_220_and_the_handshake_verifies(smtp, endpoint):
    """RFC 3207 §4: "After the client gives the STARTTLS command, the server responds with one of
    the following reply codes: 220 Ready to start TLS / 501 Syntax error (no parameters allowed) /
    454 TLS not available due to temporary reason".  §4.1: "After receiving a 220 response to a
    STARTTLS command, the client MUST start the TLS negotiation before giving any other SMTP
    commands."  The handshake must verify against the target's trust anchor (tls.ca_file).  RFC 3207
    leaves STARTTLS optional; the lab requires it on port 25 and on 587 (RFC 8314 §3.3: "Clients and
    servers SHOULD implement both STARTTLS on port 587 and Implicit TLS on port 465").  On port 25
    TLS between servers is opportunistic (RFC 7435): a certificate that does not verify is a warning
    there, and a failure where mail clients verify it (587).
    """
    at = where(smtp, endpoint)
    hello, shake = smtp.starttls_handshake(endpoint)
    offered = "STARTTLS" in hello.extensions
    error = shake.error
    if isinstance(error, TlsRefused):
        reply = error.reply
        expect(reply.code != TLS_NOT_AVAILABLE, "tls-454", actual=str(reply), endpoint=at)
        if endpoint == "smtp":  # the lab requires STARTTLS on the MX port too: said so plainly
            expect(offered or reply.code < 500, "not-offered-25", actual=str(reply), endpoint=at)
        else:
            expect(offered or reply.code < 500, "not-offered", actual=str(reply), endpoint=at)
        expect(reply, "refused", endpoint=at).code(220)
    expect(offered, "not-advertised", actual=extensions(hello), endpoint=at)
    if isinstance(error, TlsFailed) and error.unverified and endpoint == "smtp":
        expect(False, "unverified-25", tolerated=True, error=error, endpoint=at)  # opportunistic: RFC 7435
        return
    if error is not None:
        expect(not isinstance(error, TlsFailed), "handshake-failed", actual=str(error), endpoint=at)
        raise error


@check("smtp.starttls.ehlo-after", step=STEP, rfc="3207#4.2", level="MUST NOT", severity="high",
       endpoints=("smtp", "submission"), catalogue="EXT-TLS-REEHLO")
def test_ehlo_inside_tls_lists_no_starttls(smtp, endpoint):
    """RFC 3207 §4.2: "The client SHOULD send an EHLO command as the first command after a
    successful TLS negotiation."  "A server MUST NOT return the STARTTLS extension in response to an
    EHLO command received after a TLS handshake has completed."
    """
    at = where(smtp, endpoint)
    hello = smtp.tls_hello(endpoint)
    expect(hello.answered(), "ehlo-refused", endpoint=at).code(250)
    expect("STARTTLS" not in hello.extensions, "starttls-again", actual=extensions(hello), endpoint=at)


@check("smtp.starttls.arguments", step=STEP, rfc="3207#4", level="MUST", severity="low",
       endpoints=("smtp", "submission"), catalogue="EXT-TLS-ARGS")
def test_starttls_with_an_argument_is_501(smtp, endpoint):
    """RFC 3207 §4: "The format for the STARTTLS command is: STARTTLS with no parameters."  The
    server answers "501 Syntax error (no parameters allowed)".
    """
    at = where(smtp, endpoint)
    smtp.starttls_works(endpoint)
    reply = smtp.session(endpoint).command("STARTTLS mailconform")
    expect(reply.code != 220, "accepted", actual=str(reply), endpoint=at)
    expect(reply, "not-501", endpoint=at).code(
        501, tolerated={code: "other-refusal" for code in range(500, 600) if code != 501})


@check("smtp.starttls.twice", step=STEP, rfc="3207#4.2", level="MUST", severity="low",
       endpoints=("smtp", "submission"), catalogue="EXT-TLS-TWICE")
def test_a_second_starttls_is_refused(smtp, endpoint):
    """RFC 3207 §4.2: "Both the client and the server MUST know if there is a TLS session active.
    A client MUST NOT attempt to start a TLS session if a TLS session is already active."  A
    STARTTLS inside TLS is refused (4xx or 5xx; Postfix: 554 5.5.1 Error: TLS already active).
    """
    at = where(smtp, endpoint)
    reply = smtp.secured(endpoint).command("STARTTLS")
    expect(reply.code != 220, "accepted", actual=str(reply), endpoint=at)
    expect(reply, "not-refused", endpoint=at).code(*REFUSALS)


@check("smtp.starttls.state-reset", step=STEP, rfc="3207#4.2", level="MUST", severity="medium",
       endpoints=("smtp",), catalogue="EXT-TLS-STATE-RESET")
def test_starttls_resets_the_session(smtp, target, endpoint):
    """RFC 3207 §4.2: "Upon completion of the TLS handshake, the SMTP protocol is reset to the initial
    state (the state in SMTP after a server issues a 220 service ready greeting).  The server MUST
    discard any knowledge obtained from the client, such as the argument to the EHLO command, which
    was not obtained from the TLS negotiation itself."  A transaction opened (MAIL) before STARTTLS
    is gone after it: RCPT without a new MAIL (and without a new EHLO, which would reset it anyway)
    is refused 503.  A server that wants EHLO before MAIL in a new session wants it after TLS too.
    """
    at = where(smtp, endpoint)
    recipient = probe_recipient(target)
    judge = f"{STARTTLS_CHECK}@{endpoint}"
    smtp.starttls_works(endpoint)
    session = smtp.session(endpoint, hello=False)
    initial = session.mail(target.sender)  # what the initial state says to MAIL before any EHLO
    if initial.code == 250:
        session.rset()
    expect(session.ehlo(), "ehlo-refused", endpoint=at).code(250)
    opened = session.mail(target.sender).code == 250
    started = session.command("STARTTLS")
    if started.code != 220 and opened:  # refused inside a transaction (Postfix does not, others may)
        session.rset()
        opened, started = False, session.command("STARTTLS")
    if started.code != 220:
        raise Blocked(judge, say("starttls-refused", reply=started))
    try:
        smtp.start_tls(session, endpoint)
    except TlsFailed as failed:
        raise Blocked(judge, str(failed)) from None
    decided = False
    if opened:
        after = session.rcpt(recipient)
        expect(after.code not in (250, 251), "transaction-kept", actual=str(after), sender=target.sender,
               recipient=recipient, endpoint=at)
        decided = True
    if initial.code == 503:
        again = session.mail(target.sender)
        expect(again.code != 250, "ehlo-kept", actual=str(again), initial=initial, endpoint=at)
        decided = True
    if not decided:
        raise Inconclusive(say("undecided", initial=initial, endpoint=at))


@check("smtp.starttls.injection", step=STEP, rfc="3207#6", level="MUST", severity="critical",
       endpoints=("smtp", "submission"), catalogue="EXT-TLS-INJECTION")
def test_plaintext_sent_with_starttls_is_discarded(smtp, endpoint):
    """RFC 3207 §6: "Before the TLS handshake has begun, any protocol interactions are performed in
    the clear and may be modified by an active attacker.  For this reason, clients and servers MUST
    discard any knowledge obtained prior to the start of the TLS handshake upon completion of the TLS
    handshake."  §4: "If the SMTP client is using pipelining as defined in RFC 1854, the STARTTLS
    command must be the last command in a group."  STARTTLS and NOOP go in one write; a reply to that
    NOOP inside TLS is the plaintext command injection of CVE-2011-0411.
    """
    at = where(smtp, endpoint)
    judge = f"{STARTTLS_CHECK}@{endpoint}"
    smtp.starttls_works(endpoint)
    session = smtp.session(endpoint)
    session.send_raw(b"STARTTLS\r\nNOOP\r\n")
    started = session.read_reply()
    if started.code != 220:
        raise Blocked(judge, say("starttls-refused", reply=started))
    early = session.connection.buffer.decode("ascii", "replace").strip()
    expect(not early, "answered-in-clear", tolerated=True, reply=early, endpoint=at)
    try:
        smtp.start_tls(session, endpoint)
    except TlsFailed:  # the server took the NOOP for the start of the handshake: nothing was executed
        session.transcript.note(say("handshake-ate-it"))
        return
    unasked = session.connection.pending(INJECTION_WAIT).decode("ascii", "replace").strip()
    expect(not unasked, "injected", actual=unasked, endpoint=at)
    try:
        ehlo = session.ehlo()
    except WireError as error:
        expect(False, "ehlo-broken", actual=str(error), endpoint=at)
    expect(ehlo, "ehlo-refused", endpoint=at).code(250)
    late = session.connection.pending(LATE_WAIT).decode("ascii", "replace").strip()
    expect(not late, "injected", actual=late, endpoint=at)


@check("smtp.smtps.implicit-tls", step=STEP, rfc="8314#3.3", level="SHOULD", severity="high",
       catalogue="EXT-465-IMPLICIT", tls_failure_is_finding=True)
def test_smtps_speaks_tls_from_the_first_byte(smtp):
    """RFC 8314 §3.3: "When a TCP connection is established for the "submissions" service (default
    port 465), a TLS handshake begins immediately."  "Clients and servers SHOULD implement both
    STARTTLS on port 587 and Implicit TLS on port 465 for this transition period."  Inside TLS the
    greeting is 220 and EHLO offers AUTH but not STARTTLS (RFC 3207 §4.2: "A server MUST NOT return
    the STARTTLS extension in response to an EHLO command received after a TLS handshake has
    completed.").
    """
    at = where(smtp, "smtps")
    try:
        hello = smtp.hello("smtps")  # a failed handshake is this check's to judge
    except TlsFailed as failed:
        greeting = smtp.cleartext_greeting("smtps")
        expect(greeting is None, "cleartext", actual=str(greeting), endpoint=at)
        expect(False, "handshake-failed", actual=str(failed), endpoint=at)
    expect(hello.greeting, "not-220", endpoint=at).code(220)
    expect(hello.answered(), "ehlo-refused", endpoint=at).code(250)
    expect("STARTTLS" not in hello.extensions, "starttls-offered", actual=extensions(hello), endpoint=at)
    expect("AUTH" in hello.extensions, "no-auth", actual=extensions(hello), endpoint=at)


@check("smtp.submission.mail-before-tls", step=STEP, rfc="3207#4", level="SHOULD", severity="high",
       catalogue="EXT-TLS-REQUIRED-587")
def test_submission_refuses_mail_before_starttls(smtp, target):
    """RFC 3207 §4: "A SMTP server that is not publicly referenced may choose to require that the
    client perform a TLS negotiation before accepting any commands.  In this case, the server SHOULD
    return the reply code: 530 Must issue a STARTTLS command first to every command other than NOOP,
    EHLO, STARTTLS, or QUIT."  The lab's submission port (587) requires TLS.
    """
    at = where(smtp, "submission")
    reply = smtp.session("submission").mail(target.sender)
    expect(reply.code not in (250, 251), "accepted", actual=str(reply), sender=target.sender, endpoint=at)
    expect(reply, "not-530", endpoint=at).code(
        530, tolerated={code: "other-refusal" for code in range(500, 600) if code != 530})


@check("smtp.submission.auth", step=STEP, rfc="4954#6", level="MUST", severity="high",
       endpoints=("submission", "smtps"), catalogue="EXT-AUTH-OK")
def test_the_account_logs_in_and_submits(smtp, mailbox, target, recipient, endpoint):
    """RFC 4954 §4: "A server implementation MUST implement a configuration in which it does NOT
    permit any plaintext password mechanisms, unless either the STARTTLS command has been negotiated
    or some other mechanism that protects the session from password snooping has been provided."
    §6: "235 2.7.0 Authentication Succeeded".  Inside TLS the account's AUTH PLAIN is accepted and
    the account may submit mail (to its own address; the message is sent only to an intrusive
    target, else the check stops at RCPT).
    """
    at = where(smtp, endpoint)
    user = smtp.account_credentials()[0]
    session, reply = smtp.try_authenticate(endpoint)
    expect(reply, "refused", user=user, endpoint=at).code(235)
    sender = target.account.address or target.sender
    expect(session.mail(sender), "mail-refused", user=user, sender=sender, endpoint=at).code(250)
    expect(session.rcpt(recipient), "rcpt-refused", user=user, recipient=recipient, endpoint=at).code(250, 251)
    if not (target.intrusive and recipient == target.account.address):
        session.transcript.note(say("not-sent", recipient=recipient))
        session.rset()
        return
    message = ProbeMessage.new(sender, recipient)
    expect(session.data(), "data-refused", endpoint=at).code(354)
    expect(mailbox.transmit(session, message), "not-accepted", recipient=recipient, endpoint=at).code(250)


@check("smtp.submission.auth-required", step=STEP, rfc="6409#4.3", level="MUST", severity="critical",
       endpoints=("submission", "smtps"), catalogue="SUB-587-AUTH-REQUIRED")
def test_submission_without_auth_is_refused(smtp, target, recipient, endpoint):
    """RFC 6409 §4.3: "The MSA MUST, by default, issue an error response to the MAIL command if the
    session has not been authenticated using [SMTP-AUTH], unless it has already independently
    established authentication or authorization (such as being within a protected subnetwork)."
    Inside TLS, without AUTH: MAIL is refused (530), or RCPT is (Postfix's smtpd_delay_reject
    refuses at RCPT).  Never past RCPT.
    """
    at = where(smtp, endpoint)
    session = smtp.secured(endpoint)
    mail = expect(session.mail(target.sender), "mail-odd", endpoint=at).code(250, *REFUSALS)
    if mail.code != 250:
        return  # refused at MAIL, as RFC 6409 §4.3 says
    rcpt = session.rcpt(recipient)
    if rcpt.code in REFUSALS:
        session.transcript.note(say("late-refusal"))
    expect(rcpt.code not in (250, 251), "accepted", actual=str(rcpt), sender=target.sender, recipient=recipient,
           endpoint=at)
    expect(rcpt, "rcpt-odd", endpoint=at).code(*REFUSALS)
    session.rset()


# Runs after every other check of its target: after a failed login Dovecot (the usual SASL backend of
# Postfix) slows every later login from the same address, and fail2ban may count it.
@check("smtp.submission.wrong-password", step=STEP, rfc="4954#6", level="policy", severity="critical",
       endpoints=("submission",), order=LAST, catalogue="EXT-AUTH-BADPW")
def test_a_wrong_password_is_refused_535(smtp, endpoint):
    """RFC 4954 §6: "535 5.7.8 Authentication credentials invalid: This response to the AUTH command
    indicates that the authentication failed due to invalid or insufficient authentication
    credentials."  The account's user with a made-up password is refused.
    """
    at = where(smtp, endpoint)
    user = smtp.account_credentials()[0]
    smtp.auth_works(endpoint)
    session = smtp.secured(endpoint)
    reply = session.auth_plain(user, smtp.wrong_password())
    expect(reply.code != 235, "accepted", actual=str(reply), user=user, endpoint=at)
    expect(reply, "not-535", endpoint=at).code(
        535, tolerated={code: "other-refusal" for code in range(500, 600) if code != 535})
