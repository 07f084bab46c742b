"""A1.pop3-session — talk POP3 by hand: greeting, login, STAT, LIST, RETR, DELE, RSET, QUIT.

This step is about the POP3 commands, not the channel: the login goes over STLS or POP3S when the
server refuses cleartext (TLS itself is judged in A3), never over cleartext unless the target allows it.
"""

from mailconform.checks import check, expect
from mailconform.probes import body_of
from mailconform.sessions import fake_password
from mailconform.wire.pop3 import parse_scan_listing

STEP = "A1.pop3-session"


@check("pop3.session.greeting", step=STEP, rfc="1939#4", level="MUST", severity="high",
       hint="Dovecot: is `pop3` in `protocols` and the pop3-login listener on this address (inet_listener pop3)?")
def test_greeting_is_ok(pop3):
    """The server greets with a one-line +OK.

    RFC 1939 §4: "Once the TCP connection has been opened by a POP3 client, the POP3 server issues
    a one line greeting.  This can be any positive response."
    """
    session = pop3.connect()
    expect(session.greeting, "the greeting is not a positive response").ok()


@check("pop3.session.login", step=STEP, rfc="1939#7", level="policy", severity="high",
       hint="Dovecot: check passdb/userdb, mail_location and the mailbox permissions (auth_verbose = yes helps)")
def test_user_and_pass_log_in(pop3):
    """USER and PASS with the account's credentials open the maildrop (+OK, +OK).

    RFC 1939 §7 (PASS): "When the client issues the PASS command, the POP3 server uses the argument
    pair from the USER and PASS commands to determine if the client should be given access to the
    appropriate maildrop."  Possible responses: "+OK maildrop locked and ready".
    """
    _, reply = pop3.try_login()
    expect(reply, "the account could not log in").ok()


@check("pop3.session.stat", step=STEP, rfc="1939#5", level="MUST", severity="high",
       hint="a POP3 server's STAT answer is exactly `+OK <messages> <octets>`")
def test_stat_gives_count_and_size(pop3):
    """STAT answers "+OK nn mm", and nn is the number of messages LIST shows.

    RFC 1939 §5 (STAT): "The positive response consists of "+OK" followed by a single space, the
    number of messages in the maildrop, a single space, and the size of the maildrop in octets."
    """
    session = pop3.logged_in()
    reply = expect(session.stat()).ok()
    drop = parse_scan_listing(reply.text)
    expect(drop is not None, f"the STAT answer is not '+OK <messages> <octets>': +OK {reply.text}")
    listed = session.message_numbers()
    expect(drop[0] == len(listed), f"STAT counts {drop[0]} messages but LIST shows {len(listed)}")


@check("pop3.session.list", step=STEP, rfc="1939#5", level="MUST", severity="high",
       hint="LIST must report each message's exact size in octets, as RETR sends it")
def test_list_sizes_match_retr(mailbox):
    """LIST (all, and for one message) gives "n size", and the size is what RETR sends.

    RFC 1939 §5 (LIST): "If an argument was given and the POP3 server issues a positive response
    with a line containing information for that message.  This line is called a "scan listing" for
    that message."  A scan listing is "the message-number of the message, ... a single space and
    the exact size of the message in octets."
    """
    found = mailbox.any_message()
    session, number = found.session, found.number
    one = expect(session.list(number), f"LIST {number} was refused").ok()
    scan = parse_scan_listing(one.text)
    expect(scan is not None and scan[0] == number, f"LIST {number} is not '+OK {number} <octets>': +OK {one.text}")
    all_scans = [parse_scan_listing(line) for line in expect(session.list()).ok().lines]
    expect(scan in all_scans, f"LIST (all) does not show message {number} with {scan[1]} octets")
    message = expect(session.retr(number), f"RETR {number} was refused").ok()
    expect(scan[1] == message.octets,
           f"LIST says message {number} has {scan[1]} octets but RETR sent {message.octets}")


@check("pop3.session.retr", step=STEP, rfc="1939#3", level="MUST", severity="high",
       hint="the SMTP side must remove the stuffed dot (RFC 5321 §4.5.2) and POP3 must add it back on RETR")
def test_retr_returns_the_message_as_sent(mailbox):
    """RETR returns the message the suite delivered, body intact (dots un-stuffed and re-stuffed).

    RFC 1939 §3: "If any line of the multi-line response begins with the termination octet, the line
    is "byte-stuffed" by pre-pending the termination octet to that line of the response."
    """
    found = mailbox.any_message()
    message = expect(found.session.retr(found.number), f"RETR {found.number} was refused").ok()
    if found.sent is None:
        expect(bool(message.lines), f"RETR {found.number} returned an empty message")
        return
    expected, got = found.sent.body_lines, body_of(message.lines)
    for index, (want, have) in enumerate(zip(expected, got), start=1):
        expect(want == have,
               f"body line {index} differs: sent {want.decode()!r}, RETR gave {have.decode(errors='replace')!r}")
    expect(len(got) >= len(expected),
           f"RETR gave {len(got)} body lines, {len(expected)} were sent: the message ends early "
           "(a line starting with a dot was not byte-stuffed, or the SMTP side cut the message)")


@check("pop3.session.dele-rset", step=STEP, rfc="1939#5", level="MUST", severity="high",
       hint="RSET must unmark every message marked as deleted")
def test_rset_undoes_dele(mailbox, pop3):
    """DELE then RSET: the message is listed again and still there in the next session (only
    ever done to a message the suite delivered: a broken RSET must not cost anybody their mail).

    RFC 1939 §5 (RSET): "If any messages have been marked as deleted by the POP3 server, they are
    unmarked."
    """
    found = mailbox.delivered_message()
    session, number = found.session, found.number
    before = session.message_numbers()
    expect(session.dele(number), f"DELE {number} was refused").ok()
    expect(session.rset(), "RSET was refused").ok()
    expect(session.message_numbers() == before, f"after RSET, LIST does not show message {number} again")
    expect(session.quit(), "QUIT was refused").ok()
    expect(mailbox.locate(pop3.logged_in(), found.sent.token) is not None,
           "the message is gone in the next session although RSET undid its DELE")


@check("pop3.session.dele-quit", step=STEP, rfc="1939#6", level="MUST", severity="high",
       hint="Dovecot: deletions are committed at QUIT; check the mailbox is writable by the mail user")
def test_dele_then_quit_removes_the_message(mailbox, pop3):
    """DELE then QUIT removes the message (only ever done to a message the suite delivered).

    RFC 1939 §6: "The POP3 server removes all messages marked as deleted from the maildrop and
    replies as to the status of this operation."
    """
    found = mailbox.delivered_message()
    session = found.session
    expect(session.dele(found.number), f"DELE {found.number} was refused").ok()
    expect(session.quit(), "QUIT after DELE was refused").ok()
    expect(mailbox.locate(pop3.logged_in(), found.sent.token) is None,
           "the message is still in the mailbox after DELE and QUIT")


@check("pop3.session.unknown-command", step=STEP, rfc="1939#3", level="MUST", severity="medium",
       hint="a POP3 server must answer unknown commands with -ERR")
def test_unknown_command_is_err(pop3):
    """An unknown command gets -ERR.

    RFC 1939 §3: "A server MUST respond to an unrecognized, unimplemented, or syntactically
    invalid command by responding with a negative status indicator."
    """
    session = pop3.session()
    expect(session.command("XMAILCONFORM")).err()


# Last in the file on purpose: Dovecot slows every later login from an address after a failed one
# (its "auth penalty"), so the one deliberate failure comes after the logins the other checks need.
@check("pop3.session.bad-password", step=STEP, rfc="1939#7", level="policy", severity="critical",
       hint="Dovecot: check passdb; a passdb with `nopassword` or a static password accepts anything")
def test_wrong_password_is_refused(pop3):
    """PASS with a wrong password gets -ERR.

    RFC 1939 §7 (PASS): the server "uses the argument pair from the USER and PASS commands to
    determine if the client should be given access"; "-ERR invalid password".
    """
    user = pop3.credentials()[0]
    session = pop3.login_channel()
    expect(session.login(user, fake_password()), "a wrong password was accepted").err()
