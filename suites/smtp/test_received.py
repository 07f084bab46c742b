"""A2.rfc3848 — read the headers: a message sent over TLS (and AUTH) and read back carries the
trace field its server wrote for that connection, ``Received: … with ESMTPS`` / ``ESMTPSA``."""

from dataclasses import dataclass

from mailconform.checks import check, expect
from mailconform.probes import ProbeMessage
from mailconform.received import hop_of, received_fields
from mailconform.verdicts import say

STEP = "A2.rfc3848"


@dataclass(frozen=True)
class Route:
    """How the probe message goes in, and the WITH keyword that says so (RFC 3848 §1)."""

    name: str
    service: str
    tls: bool
    auth: bool
    keyword: str


ROUTES = {route.name: route for route in (
    Route("starttls", "smtp", tls=True, auth=False, keyword="ESMTPS"),
    Route("submission", "submission", tls=True, auth=True, keyword="ESMTPSA"),
    Route("smtps", "smtps", tls=True, auth=True, keyword="ESMTPSA"),
    Route("cleartext", "smtp", tls=False, auth=False, keyword="ESMTP"),
)}


@check("smtp.received.with-keyword", step=STEP, rfc="3848#1", level="SHOULD", severity="medium",
       variants=ROUTES, catalogue="RCV-WITH")
def test_received_records_tls_and_auth(smtp, mailbox, check_run, target, intrusive_recipient, variant):
    """RFC 3848 §1: "The new keyword "ESMTPA" indicates the use of ESMTP when the SMTP AUTH
    extension is also used and authentication is successfully achieved.  The new keyword "ESMTPS"
    indicates the use of ESMTP when STARTTLS is also successfully negotiated to provide a strong
    transport encryption layer.  The new keyword "ESMTPSA" indicates the use of ESMTP when both
    STARTTLS and SMTP AUTH are successfully negotiated (the combination of ESMTPS and ESMTPA)."
    RFC 4954 §7: "Upon successful authentication, a server SHOULD use the "ESMTPA" or the
    "ESMTPSA" [SMTP-TT] (when appropriate) keyword in the "with" clause of the Received header
    field."  RFC 5321 §4.4: "When an SMTP server receives a message for delivery or further
    processing, it MUST insert trace ("time stamp" or "Received") information at the beginning of
    the message content"; the FROM clause "SHOULD contain both (1) the name of the source host as
    presented in the EHLO command and (2) an address literal containing the IP address of the
    source, determined from the TCP connection."  (Implicit TLS on 465 writes the same S, RFC 8314.)

    The probe goes in with an EHLO name of its own, is read back over POP3 inside TLS, and the
    trace field judged is the one whose FROM clause names that EHLO name (or our address): the
    hop of this connection, not merely the top field (an LMTP or filter hop may sit above it).
    """
    route = variant
    endpoint = smtp.endpoint(route.service)
    mailbox.ready(route.service)
    message = ProbeMessage.new(target.sender, intrusive_recipient)
    name = message.ehlo_name
    if route.auth:
        session = smtp.authenticated(route.service, ehlo_name=name)
    elif route.tls:
        session = smtp.secured(route.service, ehlo_name=name)
    else:
        session = smtp.session(route.service, ehlo_name=name)
    address = session.connection.local_address
    mailbox.send(session, message, route.service)
    session.finish()

    found = mailbox.find(message)
    fields = received_fields(found.headers)
    hop = hop_of(fields, name, address)
    shown = check_run.transcript("Received")
    for field in fields:
        shown.note(("→ " if field is hop else "  ") + str(field))
    facts = {"endpoint": endpoint, "how": say(f"route-{route.name}"), "wanted": route.keyword, "ehlo": name,
             "address": address or "?", "token": message.token, "sender": message.sender,
             "recipient": message.recipient, "count": len(fields)}
    expect(hop is not None, "no-trace", actual="; ".join(map(str, fields)) or say("no-received"), **facts)
    facts |= {"found": hop.protocol or "", "header": str(hop)}
    expect(hop.protocol is not None, "no-with", actual=hop, **facts)
    expect(hop.registered, "unregistered", actual=hop, **facts)
    expect(hop.tls or not route.tls, "tls-not-recorded", actual=hop, **facts)
    expect(hop.auth or not route.auth, "auth-not-recorded", actual=hop, **facts)
    expect(route.tls or not hop.tls, "tls-claimed", actual=hop, **facts)
    expect(route.auth or not hop.auth, "auth-claimed", actual=hop, **facts)
    expect(hop.protocol == route.keyword, "other-keyword", actual=hop, **facts)
