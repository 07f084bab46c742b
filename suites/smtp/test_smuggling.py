"""A2.smuggling — SMTP smuggling (SEC Consult, December 2023; CVE-2023-51764 Postfix, -51765
Sendmail, -51766 Exim): no end-of-data sequence but <CRLF>.<CRLF> may end a message, or the lines
after it are read as commands and a second, spoofed message rides inside the first."""

from mailconform.checks import check, expect, require
from mailconform.probes import SmugglingProbe
from mailconform.verdicts import Inconclusive, TemporaryRefusal, say, temporary_reason

STEP = "A2.smuggling"
#: The odd end-of-data sequences of catalogue §4.2 (the names of Hanno Böck's smtpsmug): what
#: follows the last body line instead of <CRLF>.<CRLF>.
END_OF_DATA_VARIANTS = {
    "lflf": b"\n.\n",
    "lfcrlf": b"\n.\r\n",
    "crlflf": b"\r\n.\n",
    "crcr": b"\r.\r",
    "crlf": b"\r.\n",
    "lfcr": b"\n.\r",
    "crcrlf": b"\r.\r\n",
    "crlfcr": b"\r\n.\r",
    "nul": b"\r\n\x00.\r\n",
}
#: Seconds to listen after the odd sequence and the smuggled transaction: a server that took the
#: sequence for the end of the message answers at once (250, then 250 250 354 for the smuggled
#: commands); one that did not stays silent inside DATA.  A server slower than this (a milter at
#: the end of the message) is still caught: it then answers the real end more than once.
LISTEN = 0.2
#: Seconds to listen after the real end of the message for replies beyond its one 250.
AFTER_END = 0.1
_NAMES = {0x0D: "<CR>", 0x0A: "<LF>", 0x00: "<NUL>"}


def spelled(sequence: bytes) -> str:
    """``b"\\n.\\r\\n"`` → ``<LF>.<CR><LF>``: a byte sequence as the RFCs write it."""
    return "".join(_NAMES.get(byte, chr(byte)) for byte in sequence)


@check("smtp.smuggling.end-of-data", step=STEP, rfc="5321#4.1.1.4", level="MUST NOT", severity="critical",
       variants=END_OF_DATA_VARIANTS, catalogue="SMUG-EOD")
def test_only_crlf_dot_crlf_ends_a_message(smtp, mailbox, target, intrusive_recipient, variant):
    """RFC 5321 §4.1.1.4: "The custom of accepting lines ending only in <LF>, as a concession to
    non-conforming behavior on the part of some UNIX systems, has proven to cause more
    interoperability problems than it solves, and SMTP server systems MUST NOT do this, even in the
    name of improved robustness.  In particular, the sequence "<LF>.<LF>" (bare line feeds, without
    carriage returns) MUST NOT be treated as equivalent to <CRLF>.<CRLF> as the end of mail data
    indication."  §2.3.8: "Conforming implementations MUST NOT recognize or generate any other
    character or character sequence as a line terminator."

    Catalogue §4.3: after DATA, the first message's headers and a body line, then the odd
    sequence, then a harmless second transaction to the same account (MAIL, RCPT, DATA, a message
    with a token of its own) — without the real end.  A server that answers now took the odd
    sequence for the end (fail; "mitigated" when it refused the smuggled commands as unauthorised
    pipelining).  A refusal or a closed connection is strict and passes.  A silent one gets the
    real <CRLF>.<CRLF>, must answer it once, and the mailbox must then hold one message, not two.
    """
    probe = SmugglingProbe.new(target.sender, intrusive_recipient, variant)
    session = smtp.session()
    fields = {"sequence": spelled(variant), "endpoint": smtp.endpoint("smtp"), "sender": probe.first.sender,
              "recipient": probe.first.recipient, "first": probe.first.token, "second": probe.second.token}
    require(session.mail(probe.first.sender), 250, by="smtp.session.mail-from")
    require(session.rcpt(probe.first.recipient), 250, 251, by="smtp.session.rcpt-to")
    require(session.data(), 354, by="smtp.session.data")
    session.send_data(probe.content(), probe.end, probe.smuggled())
    wait = min(LISTEN, target.timeout)
    heard = session.listen(wait)

    if not heard.silent:  # the server spoke (or hung up) before the message was over
        positive = [reply for reply in heard.replies if reply.code < 400]
        if positive:
            if heard.replies[0].code == 250:  # the first message was taken: remove it after the check
                mailbox.accepted(probe.first)
            mailbox.accepted(probe.second, seen=True)  # never ended by us, but look once all the same
            after = heard.replies[heard.replies.index(positive[0]) + 1:]
            mitigated = not any(r.code == 354 for r in after) and any(r.code >= 500 for r in after)
            expect(not mitigated, "mitigated", actual=heard, heard=heard, **fields)
            expect(not positive, "ended-early", actual=heard, heard=heard, **fields)
        refusal = heard.replies[0] if heard.replies else None
        if refusal is not None and refusal.code < 500 and not (refusal.code == 421 and _syntax(refusal)):
            raise TemporaryRefusal(temporary_reason(refusal) or str(refusal))
        if refusal is None and not heard.closed:
            raise Inconclusive(say("unfinished", heard=heard, **fields))
        session.transcript.note(say("refused-strictly", heard=heard, **fields))
        return

    session.transcript.note(say("silent", wait=f"{wait:g}", **fields))
    reply = session.end_data()
    if reply.code == 250:
        mailbox.accepted(probe.first)
    extra = session.listen(AFTER_END)  # a server slower than LISTEN that split the message answers now
    if reply.code == 250 or extra.replies:
        mailbox.accepted(probe.second, seen=True)
    expect(not extra.replies, "answered-twice", actual=extra, heard=extra, **fields)
    if reply.code >= 500:  # refused at the real end: nothing was stored (Postfix reject does this)
        session.transcript.note(say("refused-strictly", heard=reply, **fields))
        return
    expect(reply, "not-accepted", **fields).code(250)

    unreadable = mailbox.readable()
    if unreadable:  # judged on the replies alone
        session.transcript.note(say("not-read-back", why=unreadable, **fields))
        return
    found = mailbox.find(probe.first)
    stored = mailbox.messages_with(found.session, probe.first.token, probe.second.token)
    firsts, seconds = stored[probe.first.token], stored[probe.second.token]
    found.session.transcript.note(say("stored", count=len(firsts), smuggled=len(seconds), **fields))
    expect(not seconds, "smuggled-stored", **fields)
    expect(len(firsts) == 1, "two-messages", count=len(firsts), **fields)


def _syntax(reply) -> bool:
    """An enhanced status code of class x.5.x (protocol, syntax): a refusal of the line ends, not a "not now"."""
    return bool(reply.enhanced and reply.enhanced.split(".")[1] == "5")
