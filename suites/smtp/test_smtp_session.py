"""A1.smtp-session — talk SMTP by hand: the commands of the lab handout, one check each."""

import re

from mailconform.checks import check, expect, require, say
from mailconform.probes import ProbeMessage

STEP = "A1.smtp-session"
EXTRA_REPLY_WAIT = 0.5  # seconds to listen for replies nobody asked for, once something is off
EHLO_KEYWORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")  # RFC 5321 §4.1.1.1 ehlo-keyword
LEGACY_AUTH = re.compile(r"^AUTH=", re.IGNORECASE)         # Postfix broken_sasl_auth_clients = yes


@check("smtp.session.greeting", step=STEP, rfc="5321#3.1", level="policy", severity="high",
       catalogue="SMTP-GREETING-220")
def test_greeting_is_220(smtp):
    """RFC 5321 §3.1: "An SMTP session is initiated when a client opens a connection to a server and
    the server responds with an opening message."  §4.3.2: CONNECTION ESTABLISHMENT S: 220 E: 554.
    §2.3.8: "Lines consist of zero or more data characters terminated by the sequence ASCII
    character "CR" (hex value 0D) followed immediately by ASCII character "LF" (hex value 0A)."
    """
    greeting = smtp.hello().greeting
    expect(greeting, "not-220").code(220)
    expect(not greeting.bare_lf, "bare-lf")


@check("smtp.session.ehlo", step=STEP, rfc="5321#4.1.1.1", level="MUST", severity="high",
       catalogue="SMTP-EHLO-250")
def test_ehlo_is_accepted_and_lists_extensions(smtp):
    """RFC 5321 §4.1.1.1: "If the SMTP server supports the SMTP service extensions, it will give a
    successful response, a failure response, or an error response."  §4.5.1: the minimum
    implementation "MUST be provided by all receivers": EHLO, HELO, MAIL, RCPT, DATA, RSET, NOOP,
    QUIT, VRFY.  ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-").
    """
    reply = expect(smtp.greeted_hello().answered(), "ehlo-refused").code(250)
    expect(bool(reply.lines[0].split()), "no-domain", actual=repr(reply.lines[0]))
    keywords = [line.split()[0] for line in reply.lines[1:] if line.split()]
    legacy = [k for k in keywords if LEGACY_AUTH.match(k)]
    malformed = [k for k in keywords if not EHLO_KEYWORD.match(k) and k not in legacy]
    expect(not malformed, "malformed-keywords", actual=", ".join(malformed))
    expect(not legacy, "legacy-auth", tolerated=True, keywords=", ".join(legacy))


@check("smtp.session.helo", step=STEP, rfc="5321#3.2", level="MUST", severity="high", catalogue="SMTP-HELO")
def test_helo_is_accepted_with_a_single_line(smtp):
    """RFC 5321 §3.2: "Servers MUST NOT return the extended EHLO-style response to a HELO command."
    RFC 5321 also says that "servers MUST support the HELO command and reply properly to it."
    """
    session = smtp.session(hello=False)
    reply = expect(session.helo()).code(250)
    expect(not reply.is_multiline, "multiline", lines=len(reply.lines))


@check("smtp.session.mail-from", step=STEP, rfc="5321#3.3", level="MUST", severity="high",
       catalogue="SMTP-TXN-HAPPY")
def test_mail_from_is_accepted(smtp, target):
    """RFC 5321 §3.3 (MAIL): "If accepted, the SMTP server returns a "250 OK" reply."
    """
    session = smtp.session()
    expect(session.mail(target.sender)).code(250)


@check("smtp.session.rcpt-to", step=STEP, rfc="5321#3.3", level="MUST", severity="high",
       catalogue="SMTP-TXN-HAPPY")
def test_rcpt_to_the_account_is_accepted(smtp, recipient, target):
    """RFC 5321 §3.3 (RCPT): "If accepted, the SMTP server returns a "250 OK" reply and stores the
    forward-path."  §4.5.1: "Any system that includes an SMTP server supporting mail relaying or
    delivery MUST support the reserved mailbox "postmaster"" — the recipient when the target
    names no account address.
    """
    session = smtp.session()
    require(session.mail(target.sender), 250, by="smtp.session.mail-from")
    why = "" if target.account and target.account.address else say("postmaster-used")
    expect(session.rcpt(recipient), "refused", recipient=recipient, sender=target.sender, why=why).code(250, 251)


@check("smtp.session.data", step=STEP, rfc="5321#3.3", level="MUST", severity="high", catalogue="SMTP-TXN-HAPPY")
def test_data_is_answered_354(smtp, recipient, target):
    """RFC 5321 §3.3 (DATA): "If accepted, the SMTP server returns a 354 Intermediate reply and
    considers all succeeding lines up to but not including the end of mail data indicator to be the
    message text."  (The message is then abandoned, never sent.)
    """
    session = smtp.session()
    require(session.mail(target.sender), 250, by="smtp.session.mail-from")
    require(session.rcpt(recipient), 250, 251, by="smtp.session.rcpt-to")
    expect(session.data()).code(354)


@check("smtp.session.end-of-data", step=STEP, rfc="5321#4.5.2", level="MUST", severity="high",
       catalogue="SMTP-DOTSTUFF-RX")
def test_message_ends_at_crlf_dot_crlf(smtp, mailbox, target, intrusive_recipient):
    """RFC 5321 §4.5.2: "If the line is composed of a single period, it is treated as the end of mail
    indicator.  If the first character is a period and there are other characters on the line, the
    first character is deleted."  §3.3: "When the end of text is successfully received and stored,
    the SMTP-receiver sends a "250 OK" reply."
    """
    message = ProbeMessage.new(target.sender, intrusive_recipient)
    session = smtp.session()
    require(session.mail(message.sender), 250, by="smtp.session.mail-from")
    require(session.rcpt(message.recipient), 250, 251, by="smtp.session.rcpt-to")
    require(session.data(), 354, by="smtp.session.data")
    expect(mailbox.transmit(session, message), "not-accepted").code(250)
    extra = b"" if session.noop().code == 250 else session.connection.pending(EXTRA_REPLY_WAIT)
    expect(not extra, "ended-early", actual=extra.decode(errors="replace").strip())


@check("smtp.session.quit", step=STEP, rfc="5321#4.1.1.10", level="MUST", severity="high", catalogue="SMTP-QUIT")
def test_quit_gets_221_and_the_server_closes(smtp):
    """RFC 5321 §4.1.1.10: "This command specifies that the receiver MUST send a "221 OK" reply, and
    then close the transmission channel."
    """
    session = smtp.session()
    expect(session.quit()).code(221)
    wait = session.connection.timeout
    expect(session.connection.wait_closed(wait), "stays-open", wait=f"{wait:g}")


@check("smtp.session.rcpt-before-mail", step=STEP, rfc="5321#3.3", level="MUST", severity="high",
       catalogue="SMTP-SEQ-RCPT-FIRST")
def test_rcpt_before_mail_is_503(smtp, recipient):
    """RFC 5321 §3.3: "If a RCPT command appears without a previous MAIL command, the server MUST
    return a 503 "Bad sequence of commands" response."
    """
    session = smtp.session()
    expect(session.rcpt(recipient)).code(503)


@check("smtp.session.unknown-command", step=STEP, rfc="5321#4.2.4", level="SHOULD", severity="medium",
       catalogue="SMTP-CMD-UNKNOWN")
def test_unknown_command_is_500(smtp):
    """RFC 5321 §4.2.4: "502 SHOULD be used when the command is actually recognized by the SMTP
    server, but not implemented.  If the command is not recognized, code 500 SHOULD be returned."
    """
    session = smtp.session()
    expect(session.command("XMAILCONFORM")).code(500, tolerated={502: "answered-502"})
    after = session.noop()
    expect(after.code != 421, "session-ended", actual=str(after))


@check("smtp.session.rset", step=STEP, rfc="5321#4.1.1.5", level="MUST", severity="high", catalogue="SMTP-RSET")
def test_rset_is_250(smtp, target):
    """RFC 5321 §4.1.1.5: "The receiver MUST send a "250 OK" reply to a RSET command with no arguments."
    """
    session = smtp.session()
    require(session.mail(target.sender), 250, by="smtp.session.mail-from")
    expect(session.rset()).code(250)


@check("smtp.session.noop", step=STEP, rfc="5321#4.1.1.9", level="MUST", severity="low", catalogue="SMTP-NOOP")
def test_noop_is_250(smtp):
    """RFC 5321 §4.1.1.9: "This command does not affect any parameters or previously entered
    commands.  It specifies no action other than that the receiver send a "250 OK" reply."
    """
    session = smtp.session()
    expect(session.noop()).code(250)
