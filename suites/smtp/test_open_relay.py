"""A2.open-relay — is it an open relay?  Each classic relay trick as its own MAIL/RCPT pair from an
untrusted source, stopping at RCPT, against a positive control (mail to the domain is accepted)."""

from mailconform import relay
from mailconform.checks import Inconclusive, check, expect, say

STEP = "A2.open-relay"
RELAY_DENIED_LATER = 454   # Postfix defer_unauth_destination: "454 4.7.1 Relay access denied", still a refusal


def judge(attempt: relay.Round, source: str) -> None:
    """RFC 5321 §3.6.2 / RFC 2505 §2.1: a relay attempt is refused.  A 2xx fails; a 5xx or 454 passes;
    any other 4xx (a DNS lookup, greylisting, a rate limit) masks the answer and decides nothing."""
    if attempt.error:
        raise Inconclusive(say("broke", attempt=attempt))
    reply = attempt.rcpt or attempt.mail
    if 400 <= reply.code < 500 and reply.code != RELAY_DENIED_LATER:
        raise Inconclusive(say("masked", attempt=attempt))
    expect(not 200 <= reply.code < 300, "relayed", actual=str(attempt), source=source,
           recipient=attempt.recipient)


@check("smtp.relay.local-delivery", step=STEP, rfc="5321#3.3", level="MUST", severity="high",
       catalogue="REL-LEGIT")
def test_mail_from_outside_to_the_domain_is_accepted(smtp):
    """RFC 5321 §3.3 (RCPT): "If accepted, the SMTP server returns a "250 OK" reply and stores the
    forward-path."  The positive control of the relay probes: a server that refuses mail for its own
    users from outside refuses relaying for no telling reason.
    """
    control = smtp.relay_probes().control
    if control.error:
        raise Inconclusive(say("broke", attempt=control))
    expect(control.rcpt or control.mail, "refused", recipient=control.recipient, sender=control.sender
           ).code(250, 251)


@check("smtp.relay.refused", step=STEP, rfc="5321#3.6.2", level="MUST", severity="critical",
       variants={name: name for name in relay.TRICKS}, catalogue="REL-MATRIX-25")
def test_relay_trick_is_refused(smtp, variant):
    """RFC 2505 §2.1: "the MTA MUST be able to control/refuse such Relay usage."  RFC 5321 §3.6.2:
    "since hosts are not required to relay mail at all, xyz.com MAY also reject the message entirely
    when the RCPT command is received, using a 550 code (since this is a "policy reason")."
    Sent from an untrusted source; never past RCPT.
    """
    probes = smtp.relay_probes()
    control = probes.control
    if control.error or (control.rcpt or control.mail).code not in (250, 251):
        raise Inconclusive(say("no-control", control=control))
    judge(probes.rounds[variant], probes.source)


@check("smtp.relay.submission-unauthenticated", step=STEP, rfc="6409#3.2", level="MUST", severity="critical",
       endpoints=("submission", "smtps"), catalogue="REL-MATRIX-SUB")
def test_submission_does_not_relay_without_auth(smtp, target, endpoint):
    """RFC 6409 §3.2: sites "configure their MSA to reject all message submissions that do not
    come from authorized users, based on IP address, or authenticated identity."  Inside TLS,
    without AUTH, mail to an outside domain is refused.
    """
    session = smtp.secured(endpoint)
    judge(relay.attempt(session, target, relay.TRICKS["plain"], relay.new_victim()),
          session.connection.local_address)
