"""The ``mailbox`` fixture: deliver probe messages over SMTP, find them again over POP3, and
remove them after the check.

Looking for a message costs a POP3 login (a maildrop is a snapshot taken at login, RFC 1939 §8),
so the looks back off — 0.25 s, 0.5 s, 1 s, 2 s… up to ``delivery_wait`` — and the transcript
says how many logins a delivery cost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

from mailconform import messages
from mailconform.probes import ProbeMessage, header_lines
from mailconform.sessions import CheckRun, Pop3Factory, SmtpFactory
from mailconform.targetrun import Failure
from mailconform.verdicts import Blocked, CheckFailed, NotApplicable, require
from mailconform.wire import Pop3Session, SmtpReply, SmtpSession, WireError

FIRST_LOOK_PAUSE = 0.25  # seconds before the second look; doubled after each look
MAX_LOOK_PAUSE = 4.0


def looks(wait: float) -> Iterator[int]:
    """Yield 1, 2, 3… for each look at the mailbox, pausing in between with a doubling backoff,
    until ``wait`` seconds have passed (there is always at least one look)."""
    deadline = time.monotonic() + wait
    pause, number = FIRST_LOOK_PAUSE, 1
    while True:
        yield number
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        time.sleep(min(pause, remaining))
        pause, number = min(pause * 2, MAX_LOOK_PAUSE), number + 1


@dataclass
class FoundMessage:
    """A message in the account's POP3 mailbox: its number in ``session`` and what was sent."""

    session: Pop3Session
    number: int
    sent: ProbeMessage | None  # None: a message the suite did not deliver
    headers: tuple[bytes, ...] = ()  # its header lines, when the search read them


class Mailbox:
    """Delivers probe messages over SMTP and finds them again over POP3."""

    SEARCH_DEPTH = 50  # newest messages looked at when searching for a probe

    def __init__(self, run: CheckRun, smtp: SmtpFactory, pop3: Pop3Factory):
        self.run = run
        self.target = run.target
        self.smtp = smtp
        self.pop3 = pop3
        self.delivered: list[ProbeMessage] = []  # accepted with 250: removed after the check
        self.unseen: set[str] = set()             # tokens of those not yet seen in the mailbox

    def delivery_refusal(self, service: str = "smtp") -> str | None:
        """Why the suite may not deliver a message to this target (over ``service``), or None."""
        account = self.target.account
        if not self.target.endpoint(service):
            if service != "smtp":
                return messages.core("no-service", target=self.target.name, service=service)
            return messages.core("no-smtp-to-deliver")
        if account is None or not account.address:
            return messages.advice(self.target.from_url, "no-address-to-deliver")
        if not self.target.intrusive:
            return messages.advice(self.target.from_url, "not-intrusive")
        return None

    def deliver(self) -> ProbeMessage:
        """Send a probe message to the account over SMTP; any refusal blocks the calling check."""
        refusal = self.delivery_refusal()
        if refusal:
            raise NotApplicable(refusal)
        message = ProbeMessage.new(self.target.sender, self.target.account.address)
        session = self.smtp.session()
        self.send(session, message)
        session.finish()
        return message

    def send(self, session: SmtpSession, message: ProbeMessage, service: str = "smtp") -> None:
        """Send ``message`` over a greeted (perhaps secured, logged-in) ``session`` to ``service``:
        MAIL, RCPT, DATA, the message.  What breaks here is the finding of the A1 session check of
        that step (``@service`` for another service than smtp), which blocks the calling check."""
        where = "" if service == "smtp" else f"@{service}"
        steps = (("smtp.session.mail-from", lambda: session.mail(message.sender), (250,)),
                 ("smtp.session.rcpt-to", lambda: session.rcpt(message.recipient), (250, 251)),
                 ("smtp.session.data", session.data, (354,)),
                 ("smtp.session.end-of-data", lambda: self.transmit(session, message), (250,)))
        for judge, send, codes in steps:  # what breaks here is that check's finding, not this one's
            try:
                reply = send()
            except WireError as error:
                raise Blocked(judge + where, str(error)) from None
            require(reply, *codes, by=judge + where)

    def transmit(self, session: SmtpSession, message: ProbeMessage) -> SmtpReply:
        """Send ``message`` after a 354; once accepted (250) it is removed again after the check."""
        reply = session.send_message(message.as_bytes())
        if reply.code == 250:
            self.accepted(message)
        return reply

    def accepted(self, message: ProbeMessage, seen: bool = False) -> None:
        """Remember a message the server took (however it was sent) so it is removed after the
        check; one not ``seen`` yet is waited for then, as its delivery may lag the 250."""
        if message not in self.delivered:
            self.delivered.append(message)
        if not seen:
            self.unseen.add(message.token)

    def ready(self, service: str = "smtp") -> None:
        """Before a check delivers over ``service`` and reads the message back: not applicable when
        the suite may not deliver there or cannot read the mailbox; blocked when an earlier delivery
        of this run was lost."""
        self.pop3.credentials()
        refusal = self.delivery_refusal(service)
        if refusal:
            raise NotApplicable(refusal)
        lost = self.run.target_run.failure("delivery")
        if lost is not None:
            raise Blocked(lost.cause, lost.reason)

    def readable(self) -> str | None:
        """Why the suite cannot read the account's mailbox back (no POP3, no credentials), or None."""
        try:
            self.pop3.credentials()
        except NotApplicable as why:
            return str(why)
        return None

    def locate(self, session: Pop3Session, token: str) -> int | None:
        """The number of the newest message whose headers carry ``token`` in this session's mailbox, or None."""
        found = self._search(session, token)
        return found[0] if found else None

    def _search(self, session: Pop3Session, token: str) -> tuple[int, tuple[bytes, ...]] | None:
        """(number, header lines) of the newest message whose headers carry ``token``, or None."""
        for number in list(reversed(session.message_numbers()))[: self.SEARCH_DEPTH]:
            headers = self.headers(session, number)
            if any(token.encode() in line for line in headers):
                return number, headers
        return None

    def headers(self, session: Pop3Session, number: int) -> tuple[bytes, ...]:
        """The header lines of message ``number`` (TOP n 0, or RETR where TOP is refused)."""
        top = session.top(number, 0)
        return header_lines((top if top.ok else session.retr(number)).lines)

    def messages_with(self, session: Pop3Session, *tokens: str) -> dict[str, list[int]]:
        """token → the numbers, newest first, of the messages (among the newest SEARCH_DEPTH) whose
        headers carry it.  Headers only: a probe may quote another probe's token in its body."""
        found: dict[str, list[int]] = {token: [] for token in tokens}
        for number in list(reversed(session.message_numbers()))[: self.SEARCH_DEPTH]:
            lines = self.headers(session, number)
            for token in tokens:
                if any(token.encode() in line for line in lines):
                    found[token].append(number)
        return found

    def delivered_message(self) -> FoundMessage:
        """A message this check delivered, found in the mailbox; a lost one fails the check."""
        self.pop3.credentials()
        lost = self.run.target_run.failure("delivery")
        if lost is not None:
            raise Blocked(lost.cause, lost.reason)
        return self.find(self.deliver())

    def find(self, message: ProbeMessage) -> FoundMessage:
        """A message the server accepted, found in the mailbox (looking again, backing off, for up
        to ``delivery_wait``); a lost one fails the check (and blocks later deliveries)."""
        lost = self.run.target_run.failure("delivery")
        if lost is not None:
            raise Blocked(lost.cause, lost.reason)
        for look in looks(self.target.delivery_wait):
            session = self.pop3.logged_in()
            found = self._search(session, message.token)
            if found is not None:
                session.transcript.note(messages.core("delivery-looks", looks=look))
                self.unseen.discard(message.token)
                return FoundMessage(session, found[0], message, found[1])
            session.finish()
        reason = messages.core("message-lost", user=self.target.account.user, wait=f"{self.target.delivery_wait:g}",
                               token=message.token, looks=look)
        self.run.target_run.record("delivery", Failure(self.run.row_id, reason))
        raise CheckFailed(reason)

    def any_message(self) -> FoundMessage:
        """A message to work on: one the suite delivers when it may, else the newest one there."""
        self.pop3.credentials()
        if self.delivery_refusal() is None:
            return self.delivered_message()
        session = self.pop3.logged_in()
        numbers = session.message_numbers()
        if not numbers:
            raise NotApplicable(messages.core("mailbox-empty", why=self.delivery_refusal()))
        return FoundMessage(session, numbers[-1], None)

    def clean_up(self) -> None:
        """Delete the probe messages this check got accepted (best effort).

        Messages already seen in the mailbox are looked for once (the check may have deleted them);
        the others are waited for, up to ``delivery_wait``, since delivery may lag the 250."""
        if not self.delivered:
            return
        self.run.close()
        transcript = self.run.transcript("cleanup")
        pending = {message.token for message in self.delivered}
        try:
            self.pop3.credentials()
            for _ in looks(self.target.delivery_wait if self.unseen else 0):
                if self.run.target_run.failure("delivery") is not None:
                    break
                session = self.pop3.logged_in()
                for token in list(pending):
                    number = self.locate(session, token)
                    if (number is not None and session.dele(number).ok) or token not in self.unseen:
                        pending.discard(token)
                session.finish()
                if not pending:
                    break
        except Exception as error:  # cleanup must never change the check's verdict
            transcript.note(f"removing probe messages failed: {error}")
        finally:
            self.run.close()
        if pending:
            transcript.note(f"probe message(s) left in the mailbox: {', '.join(sorted(pending))}")
