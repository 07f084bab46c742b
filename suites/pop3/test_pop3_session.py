"""A1.pop3-session — talk POP3 by hand: greeting, login, STAT, LIST, RETR, DELE, RSET, QUIT; and the
maildrop's semantics: UIDL stable across sessions, TOP, a second login while the maildrop is open.

This step is about the POP3 commands, not the channel: the login goes over STLS or POP3S when the
server refuses cleartext (TLS itself is judged in A3), never over cleartext unless the target allows it.
"""

from collections import Counter

from mailconform.checks import LAST, NotApplicable, check, expect, say
from mailconform.probes import body_of, header_lines
from mailconform.wire import WireError
from mailconform.wire.pop3 import parse_scan_listing, parse_unique_id_listing

STEP = "A1.pop3-session"
TOP_LINES = 1  # body lines asked of TOP (the probe's first body line has no leading dot)


@check("pop3.session.greeting", step=STEP, rfc="1939#4", level="MUST", severity="high", catalogue="POP-GREETING")
def test_greeting_is_ok(pop3):
    """RFC 1939 §4: "Once the TCP connection has been opened by a POP3 client, the POP3 server issues
    a one line greeting.  This can be any positive response."  (A server that greets and then stops
    answering fails here too: every other POP3 check is blocked by it.)
    """
    expect(pop3.answering_hello().greeting, "not-ok").ok()


@check("pop3.session.login", step=STEP, rfc="1939#7", level="policy", severity="high", catalogue="POP-LOGIN-OK")
def test_user_and_pass_log_in(pop3):
    """RFC 1939 §7 (PASS): "When the client issues the PASS command, the POP3 server uses the argument
    pair from the USER and PASS commands to determine if the client should be given access to the
    appropriate maildrop."  Possible responses: "+OK maildrop locked and ready".
    """
    _, reply = pop3.try_login()
    expect(reply, "refused").ok()


@check("pop3.session.stat", step=STEP, rfc="1939#5", level="MUST", severity="high", catalogue="POP-STAT")
def test_stat_gives_count_and_size(pop3):
    """RFC 1939 §5 (STAT): "The positive response consists of "+OK" followed by a single space, the
    number of messages in the maildrop, a single space, and the size of the maildrop in octets."
    """
    session = pop3.logged_in()
    reply = expect(session.stat()).ok()
    drop = parse_scan_listing(reply.text)
    expect(drop is not None, "not-a-drop-listing", actual=f"+OK {reply.text}")
    listed = session.message_numbers()
    expect(drop[0] == len(listed), "count-differs", actual=f"STAT {drop[0]}, LIST {len(listed)}",
           stat=drop[0], listed=len(listed))


@check("pop3.session.list", step=STEP, rfc="1939#5", level="MUST", severity="high", catalogue="POP-LIST")
def test_list_sizes_match_retr(mailbox):
    """RFC 1939 §5 (LIST): "If an argument was given and the POP3 server issues a positive response
    with a line containing information for that message.  This line is called a "scan listing" for
    that message."  A scan listing is "the message-number of the message, ... a single space and
    the exact size of the message in octets."
    """
    found = mailbox.any_message()
    session, number = found.session, found.number
    one = expect(session.list(number), "list-refused", number=number).ok()
    scan = parse_scan_listing(one.text)
    expect(scan is not None and scan[0] == number, "not-a-scan-listing", actual=f"+OK {one.text}", number=number)
    all_scans = [parse_scan_listing(line) for line in expect(session.list()).ok().lines]
    expect(scan in all_scans, "missing-from-list", number=number, octets=scan[1], listings=len(all_scans))
    message = expect(session.retr(number), "retr-refused", number=number).ok()
    expect(scan[1] == message.octets, "size-differs", actual=f"LIST {scan[1]}, RETR {message.octets}",
           number=number, listed=scan[1], sent=message.octets)


@check("pop3.session.retr", step=STEP, rfc="1939#3", level="MUST", severity="high", catalogue="POP-BYTESTUFF")
def test_retr_returns_the_message_as_sent(mailbox):
    """RFC 1939 §3: "If any line of the multi-line response begins with the termination octet, the line
    is "byte-stuffed" by pre-pending the termination octet to that line of the response."
    """
    found = mailbox.any_message()
    message = expect(found.session.retr(found.number), "retr-refused", number=found.number).ok()
    if found.sent is None:
        expect(bool(message.lines), "empty", number=found.number)
        return
    expected, got = found.sent.body_lines, body_of(message.lines)
    for index, (want, have) in enumerate(zip(expected, got), start=1):
        expect(want == have, "line-differs", actual=repr(have.decode(errors="replace")),
               index=index, sent=repr(want.decode()))
    expect(len(got) >= len(expected), "ends-early", got=len(got), sent=len(expected))


@check("pop3.session.dele-rset", step=STEP, rfc="1939#5", level="MUST", severity="high", catalogue="POP-RSET")
def test_rset_undoes_dele(mailbox, pop3):
    """RFC 1939 §5 (RSET): "If any messages have been marked as deleted by the POP3 server, they are
    unmarked."  (Only ever done to a message the suite delivered: a broken RSET must not cost
    anybody their mail.)
    """
    found = mailbox.delivered_message()
    session, number = found.session, found.number
    before = session.message_numbers()
    expect(session.dele(number), "dele-refused", number=number).ok()
    expect(session.rset(), "rset-refused").ok()
    after = session.message_numbers()
    expect(after == before, "not-listed-again", actual=f"LIST {after}", number=number)
    expect(session.quit(), "quit-refused").ok()
    expect(mailbox.locate(pop3.logged_in(), found.sent.token) is not None, "gone-next-session",
           token=found.sent.token)


@check("pop3.session.dele-quit", step=STEP, rfc="1939#6", level="MUST", severity="high",
       catalogue="POP-QUIT-COMMITS")
def test_dele_then_quit_removes_the_message(mailbox, pop3):
    """RFC 1939 §6: "The POP3 server removes all messages marked as deleted from the maildrop and
    replies as to the status of this operation."  (Only ever done to a message the suite delivered.)
    """
    found = mailbox.delivered_message()
    session = found.session
    expect(session.dele(found.number), "dele-refused", number=found.number).ok()
    expect(session.quit(), "quit-refused").ok()
    expect(mailbox.locate(pop3.logged_in(), found.sent.token) is None, "still-there", token=found.sent.token)


@check("pop3.session.uidl", step=STEP, rfc="1939#7", level="MUST", severity="medium", catalogue="POP-UIDL")
def test_uidl_is_stable_across_sessions(mailbox, pop3):
    """RFC 1939 §7 (UIDL): "The unique-id of a message is an arbitrary server-determined string,
    consisting of one to 70 characters in the range 0x21 to 0x7E, which uniquely identifies a
    message within a maildrop and which persists across sessions."  UIDL of a message, then in a
    new session the whole unique-id listing: the same message has the same unique-id, and no two
    messages share one.  Not applicable when CAPA does not list UIDL and the server refuses it.
    """
    found = mailbox.any_message()
    offered = "UIDL" in pop3.greeted_hello().capabilities
    first = found.session.uidl(found.number)
    if not first.ok and not offered:
        raise NotApplicable(say("not-offered", reply=first))
    expect(first, "refused", number=found.number).ok()
    listing = parse_unique_id_listing(first.text)
    expect(listing is not None and listing[0] == found.number, "not-a-listing", actual=f"+OK {first.text}",
           number=found.number)
    unique_id = listing[1]
    expect(found.session.quit(), "quit-refused").ok()
    again = pop3.logged_in()
    listings = [parse_unique_id_listing(line) for line in expect(again.uidl(), "list-refused").ok().lines]
    expect(None not in listings, "not-a-listing", actual=f"{listings.count(None)} malformed lines", number="*")
    ids = dict(listings)
    repeated = sorted(uid for uid, times in Counter(ids.values()).items() if times > 1)
    expect(not repeated, "duplicate", actual=", ".join(repeated[:3]))
    number = mailbox.locate(again, found.sent.token) if found.sent else found.number
    expect(number is not None, "gone", token=found.sent.token if found.sent else "")
    expect(ids.get(number) == unique_id, "changed", actual=f"{number} {ids.get(number)}", before=unique_id,
           number=number)


@check("pop3.session.top", step=STEP, rfc="1939#7", level="MUST", severity="low", catalogue="POP-TOP")
def test_top_returns_headers_and_n_lines(mailbox, pop3):
    """RFC 1939 §7 (TOP): "After the initial +OK, the POP3 server sends the headers of the message,
    the blank line separating the headers from the body, and then the number of lines of the
    indicated message's body".  TOP msg 1 gives the same headers as TOP msg 0, the empty line and
    one body line (the first one the suite sent); a second empty line before it is only warned
    about (clients show one blank line more).  Not applicable when CAPA does not list TOP and the
    server refuses it.
    """
    found = mailbox.any_message()
    offered = "TOP" in pop3.greeted_hello().capabilities
    session, number = found.session, found.number
    none = session.top(number, 0)
    if not none.ok and not offered:
        raise NotApplicable(say("not-offered", reply=none))
    expect(none, "refused", number=number, lines=0).ok()
    top = expect(session.top(number, TOP_LINES), "refused", number=number, lines=TOP_LINES).ok()
    headers = header_lines(top.lines)
    expect(headers == header_lines(none.lines) and bool(headers), "headers-differ", number=number,
           actual=f"{len(headers)} header lines, {len(header_lines(none.lines))} with TOP {number} 0")
    expect(len(top.lines) > len(headers), "no-blank-line", number=number)
    body = body_of(top.lines)
    if len(body) == TOP_LINES + 1 and body[0] == b"" and (found.sent is None or found.sent.body_lines[0]):
        # a second empty line (GNU Mailutils pop3d): clients show one blank line more; a warning
        expect(False, "too-many-lines", tolerated=True, number=number, lines=TOP_LINES, got=len(body))
        body = body[1:]
    expect(len(body) <= TOP_LINES, "too-many-lines", actual=f"{len(body)} body lines", number=number,
           lines=TOP_LINES, got=len(body))
    if found.sent is not None:
        expect(body == found.sent.body_lines[:TOP_LINES], "wrong-lines", number=number, lines=TOP_LINES,
               actual=" | ".join(line.decode(errors="replace") for line in body) or "(none)")


@check("pop3.session.in-use", step=STEP, rfc="2449#8.1.2", level="policy", severity="info", catalogue="POP-IN-USE")
def test_a_second_login_while_the_maildrop_is_open(pop3):
    """RFC 2449 §8.1.2 (IN-USE): "This occurs on an -ERR response to an AUTH, APOP, or PASS command.
    It indicates the authentication was successful, but the user's maildrop is currently in use
    (probably by another POP3 client)."  While one session is logged in, a second logs in to the
    same maildrop: both working (Dovecot's default, pop3_lock_session = no) or the second refused
    with -ERR [IN-USE] passes; a refusal without the code, or a session that breaks, is a warning.
    Two connections at once: not applicable when the target allows only one (max_connections).
    """
    user, password = pop3.credentials()
    if pop3.target.max_connections < 2:
        raise NotApplicable(say("one-connection", allowed=pop3.target.max_connections))
    first = pop3.logged_in()
    second = pop3.login_channel()
    try:
        reply = second.login(user, password)
    except WireError as error:
        expect(False, "second-broke", tolerated=True, error=error)
        return
    problem = stat_problem(first)
    expect(problem is None, "first-broken", tolerated=True, problem=problem)
    if reply.ok:
        problem = stat_problem(second)
        expect(problem is None, "second-broken", tolerated=True, problem=problem)
        second.transcript.note(say("both-work"))
    elif reply.resp_code == "IN-USE":
        second.transcript.note(say("locked", reply=reply))
    else:
        expect(False, "no-code", tolerated=True, reply=reply)


def stat_problem(session) -> str | None:
    """What STAT shows is wrong with a logged-in session (a refusal, a broken connection), or None."""
    try:
        reply = session.stat()
    except WireError as error:
        return str(error)
    return None if reply.ok else str(reply)


@check("pop3.session.unknown-command", step=STEP, rfc="1939#3", level="MUST", severity="medium",
       catalogue="POP-UNKNOWN")
def test_unknown_command_is_err(pop3):
    """RFC 1939 §3: "A server MUST respond to an unrecognized, unimplemented, or syntactically
    invalid command by responding with a negative status indicator."
    """
    session = pop3.session()
    expect(session.command("XMAILCONFORM")).err()


# Runs after every other check of its target: Dovecot slows every later login from an address
# after a failed one (its "auth penalty"), so the one deliberate failure comes last.
@check("pop3.session.bad-password", step=STEP, rfc="1939#7", level="policy", severity="critical",
       catalogue="POP-LOGIN-BAD", order=LAST)
def test_wrong_password_is_refused(pop3):
    """RFC 1939 §7 (PASS): the server "uses the argument pair from the USER and PASS commands to
    determine if the client should be given access"; "-ERR invalid password".
    """
    user = pop3.credentials()[0]
    pop3.login_works()
    session = pop3.login_channel()
    expect(session.login(user, pop3.wrong_password()), "accepted").err()
