"""A1.smtp-session — talk SMTP by hand: the commands of the lab handout, one check each."""

from mailconform.checks import check, expect, require, warn
from mailconform.probes import ProbeMessage

STEP = "A1.smtp-session"
EXTRA_REPLY_WAIT = 0.5  # seconds to listen for replies nobody asked for, once something is off


@check("smtp.session.greeting", step=STEP, rfc="5321#3.1", level="policy", severity="high",
       hint="Postfix: is `smtpd` listening on this address (master.cf `smtp inet`, inet_interfaces)? "
            "Is a firewall dropping port 25?")
def test_greeting_is_220(smtp):
    """The server greets with 220, read whole even when it spans several lines, lines ending in CRLF.

    RFC 5321 §3.1: "An SMTP session is initiated when a client opens a connection to a server and
    the server responds with an opening message."  §4.3.2: CONNECTION ESTABLISHMENT S: 220 E: 554.
    §2.3.8: "Lines consist of zero or more data characters terminated by the sequence ASCII
    character "CR" (hex value 0D) followed immediately by ASCII character "LF" (hex value 0A)."
    """
    session = smtp.connect()
    greeting = expect(session.greeting, "the opening message is not a 220 reply").code(220)
    expect(not greeting.bare_lf, "the greeting's lines end in a bare LF instead of CRLF")


@check("smtp.session.ehlo", step=STEP, rfc="5321#4.1.1.1", level="MUST", severity="high",
       hint="EHLO is built into every current MTA; a 500/502 means an old or broken SMTP front end")
def test_ehlo_is_accepted_and_lists_extensions(smtp):
    """EHLO gets 250 and a well-formed extension list.

    RFC 5321 §4.1.1.1: "If the SMTP server supports the SMTP service extensions, it will give a
    successful response, a failure response, or an error response."  §4.5.1: the minimum
    implementation "MUST be provided by all receivers": EHLO, HELO, MAIL, RCPT, DATA, RSET, NOOP,
    QUIT, VRFY.
    """
    session = smtp.session(hello=False)
    reply = expect(session.ehlo()).code(250)
    expect(bool(reply.lines[0].split()), "the first line of the EHLO reply names no domain")
    keywords = [line.split()[0] for line in reply.lines[1:] if line.split()]
    bad = [k for k in keywords if not k.replace("-", "").isalnum()]
    expect(not bad, f"malformed EHLO keywords {bad} (ehlo-keyword = ALPHA / DIGIT *(ALPHA / DIGIT / \"-\"))")


@check("smtp.session.helo", step=STEP, rfc="5321#3.2", level="MUST", severity="high",
       hint="servers must keep accepting the old HELO greeting, answered with one 250 line")
def test_helo_is_accepted_with_a_single_line(smtp):
    """HELO gets a single-line 250 (no EHLO-style extension list).

    RFC 5321 §3.2: "Servers MUST NOT return the extended EHLO-style response to a HELO command."
    RFC 5321 also says that "servers MUST support the HELO command and reply properly to it."
    """
    session = smtp.session(hello=False)
    reply = expect(session.helo()).code(250)
    expect(not reply.is_multiline, f"HELO was answered with a multi-line (EHLO-style) reply of {len(reply.lines)} lines")


@check("smtp.session.mail-from", step=STEP, rfc="5321#3.3", level="MUST", severity="high",
       hint="Postfix: check smtpd_sender_restrictions and smtpd_client_restrictions in main.cf")
def test_mail_from_is_accepted(smtp, target):
    """MAIL FROM with an ordinary sender gets 250.

    RFC 5321 §3.3 (MAIL): "If accepted, the SMTP server returns a "250 OK" reply."
    """
    session = smtp.session()
    expect(session.mail(target.sender)).code(250)


@check("smtp.session.rcpt-to", step=STEP, rfc="5321#3.3", level="MUST", severity="high",
       hint="Postfix: is the account's domain in mydestination (or virtual_mailbox_domains) and the user known?")
def test_rcpt_to_the_account_is_accepted(smtp, recipient, target):
    """RCPT TO the account's address gets 250 (or 251).

    RFC 5321 §3.3 (RCPT): "If accepted, the SMTP server returns a "250 OK" reply and stores the
    forward-path."
    """
    session = smtp.session()
    require(session.mail(target.sender), 250, by="smtp.session.mail-from")
    expect(session.rcpt(recipient)).code(250, 251)


@check("smtp.session.data", step=STEP, rfc="5321#3.3", level="MUST", severity="high",
       hint="Postfix: check smtpd_data_restrictions; a content filter or milter that is down also refuses DATA")
def test_data_is_answered_354(smtp, recipient, target):
    """DATA after a valid MAIL and RCPT gets 354 (the message is then abandoned, never sent).

    RFC 5321 §3.3 (DATA): "If accepted, the SMTP server returns a 354 Intermediate reply and considers
    all succeeding lines up to but not including the end of mail data indicator to be the message text."
    """
    session = smtp.session()
    require(session.mail(target.sender), 250, by="smtp.session.mail-from")
    require(session.rcpt(recipient), 250, 251, by="smtp.session.rcpt-to")
    expect(session.data()).code(354)


@check("smtp.session.end-of-data", step=STEP, rfc="5321#4.5.2", level="MUST", severity="high",
       hint="the server must end the message only at <CRLF>.<CRLF> and remove one leading dot from other lines")
def test_message_ends_at_crlf_dot_crlf(smtp, mailbox, target, intrusive_recipient):
    """A message with lines starting with "." ends only at <CRLF>.<CRLF>, with exactly one 250.

    RFC 5321 §4.5.2: "If the line is composed of a single period, it is treated as the end of mail
    indicator.  If the first character is a period and there are other characters on the line, the
    first character is deleted."  §3.3: "When the end of text is successfully received and stored,
    the SMTP-receiver sends a "250 OK" reply."
    """
    message = ProbeMessage.new(target.sender, intrusive_recipient)
    session = smtp.session()
    require(session.mail(message.sender), 250, by="smtp.session.mail-from")
    require(session.rcpt(message.recipient), 250, 251, by="smtp.session.rcpt-to")
    require(session.data(), 354, by="smtp.session.data")
    expect(mailbox.transmit(session, message), "end of data was not accepted").code(250)
    in_step = session.noop().code == 250 or not session.connection.pending(EXTRA_REPLY_WAIT)
    expect(in_step, "more replies came after the 250: the server ended the message early (at a line "
                    "starting with a dot) and answered the rest of the message as commands")


@check("smtp.session.quit", step=STEP, rfc="5321#4.1.1.10", level="MUST", severity="high",
       hint="a server must answer QUIT with 221 and close the connection itself")
def test_quit_gets_221_and_the_server_closes(smtp):
    """QUIT gets 221, then the server closes the connection.

    RFC 5321 §4.1.1.10: "This command specifies that the receiver MUST send a "221 OK" reply, and
    then close the transmission channel."
    """
    session = smtp.session()
    expect(session.quit()).code(221)
    expect(session.connection.wait_closed(session.connection.timeout),
           f"the server did not close the connection within {session.connection.timeout:g} s after 221")


@check("smtp.session.rcpt-before-mail", step=STEP, rfc="5321#3.3", level="MUST", severity="high",
       hint="an SMTP server must enforce the MAIL, RCPT, DATA order")
def test_rcpt_before_mail_is_503(smtp, recipient):
    """RCPT without a MAIL first gets 503 (bad sequence of commands).

    RFC 5321 §3.3: "If a RCPT command appears without a previous MAIL command, the server MUST
    return a 503 "Bad sequence of commands" response."
    """
    session = smtp.session()
    expect(session.rcpt(recipient)).code(503)


@check("smtp.session.unknown-command", step=STEP, rfc="5321#4.2.4", level="SHOULD", severity="medium",
       hint="unknown verbs must be refused with 500 and the session kept open")
def test_unknown_command_is_500(smtp):
    """An unknown command gets 500 (502 is tolerated with a warning) and the session goes on.

    RFC 5321 §4.2.4: "502 SHOULD be used when the command is actually recognized by the SMTP
    server, but not implemented.  If the command is not recognized, code 500 SHOULD be returned."
    """
    session = smtp.session()
    reply = expect(session.command("XMAILCONFORM")).code(500, 502)
    if reply.code == 502:
        warn("the unknown command got 502 (not implemented) where RFC 5321 §4.2.4 recommends 500 (not recognized)")
    expect(session.noop().code != 421, "the server ended the session after the unknown command")


@check("smtp.session.rset", step=STEP, rfc="5321#4.1.1.5", level="MUST", severity="high",
       hint="RSET must answer 250 and clear the transaction")
def test_rset_is_250(smtp, target):
    """RSET in the middle of a transaction gets 250.

    RFC 5321 §4.1.1.5: "The receiver MUST send a "250 OK" reply to a RSET command with no arguments."
    """
    session = smtp.session()
    require(session.mail(target.sender), 250, by="smtp.session.mail-from")
    expect(session.rset()).code(250)


@check("smtp.session.noop", step=STEP, rfc="5321#4.1.1.9", level="MUST", severity="low",
       hint="NOOP must answer 250 and do nothing else")
def test_noop_is_250(smtp):
    """NOOP gets 250.

    RFC 5321 §4.1.1.9: "This command does not affect any parameters or previously entered commands.
    It specifies no action other than that the receiver send a "250 OK" reply."
    """
    session = smtp.session()
    expect(session.noop()).code(250)
