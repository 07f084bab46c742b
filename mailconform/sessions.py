"""Session factories the checks receive as fixtures (``smtp``, ``pop3``, ``mailbox``).

They open fresh sessions to the target, keep every transcript on the running check, and turn a
service that is down into one verdict: the greeting check fails (or is inconclusive) and every
other check of that service is blocked, without reconnecting for each check.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from mailconform.checks import (
    Blocked, CheckFailed, Inconclusive, NotApplicable, TemporaryRefusal, require, temporary_reason,
)
from mailconform.probes import ProbeMessage
from mailconform.targets import IMPLICIT_TLS, Endpoint, Target
from mailconform.wire import (
    ConnectFailed, Pop3Reply, Pop3Session, ReplyTimeout, SmtpReply, SmtpSession, TlsFailed, Transcript, WireError,
)
from mailconform.wire.secret import Secret
from mailconform.wire.tls import client_context

SMTP_GREETING_CHECK = "smtp.session.greeting"
POP3_GREETING_CHECK = "pop3.session.greeting"
POP3_LOGIN_CHECK = "pop3.session.login"


@dataclass
class CheckRun:
    """What one check (on one target) used and produced."""

    check_id: str
    target: Target
    transcripts: list[Transcript] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    sessions: list = field(default_factory=list)

    def transcript(self, title: str) -> Transcript:
        transcript = Transcript(title)
        self.transcripts.append(transcript)
        return transcript

    def adopt(self, session):
        self.sessions.append(session)
        return session

    def close(self) -> None:
        for session in self.sessions:
            session.close()


@dataclass(frozen=True)
class Failure:
    """Why a service (or a login) is unusable for the rest of the run."""

    cause: str                      # the check that judges it
    reason: str
    error: WireError | None = None  # replayed instead of reconnecting


class ServiceHealth:
    """Per run: what already failed on a target, so later checks are blocked instead of retried.

    Keyed by (target name, key); the keys are service names ("smtp", "pop3s"…) and "pop3-login",
    "delivery" (a probe accepted but never stored) and "retry" (a retry met a refusal again)."""

    def __init__(self) -> None:
        self.failures: dict[tuple[str, str], Failure] = {}

    def get(self, target: Target, key: str) -> Failure | None:
        return self.failures.get((target.name, key))

    def record(self, target: Target, key: str, failure: Failure) -> None:
        self.failures.setdefault((target.name, key), failure)


class _ServiceFactory:
    """Shared plumbing: endpoints, TLS contexts, health bookkeeping."""

    greeting_check = ""

    def __init__(self, target: Target, run: CheckRun, health: ServiceHealth):
        self.target = target
        self.run = run
        self.health = health

    def endpoint(self, service: str) -> Endpoint:
        endpoint = self.target.endpoint(service)
        if endpoint is None:
            raise NotApplicable(f"target {self.target.name} offers no {service} service")
        return endpoint

    def tls_context(self):
        return client_context(self.target.tls)

    def _open(self, session_class, service: str):
        """Connect and read the greeting, replaying a connection failure already seen this run."""
        endpoint = self.endpoint(service)
        transcript = self.run.transcript(f"{service} {endpoint}")
        failure = self.health.get(self.target, service)
        if failure is not None and failure.error is not None:
            transcript.note(f"not reconnecting: {failure.reason} (seen earlier in this run)")
            raise failure.error.with_traceback(None)
        implicit = service in IMPLICIT_TLS
        try:
            session = session_class.connect(
                endpoint.host, endpoint.port, timeout=self.target.timeout, transcript=transcript,
                source=self.target.source, tls=self.tls_context() if implicit else None,
                server_name=self.target.server_name(endpoint) if implicit else None)
        except (ConnectFailed, ReplyTimeout, TlsFailed) as error:
            self.health.record(self.target, service, Failure(self.greeting_check, str(error), error))
            raise
        except WireError as error:
            self.health.record(self.target, service, Failure(self.greeting_check, str(error)))
            raise
        return self.run.adopt(session)

    def _blocked_if_down(self, service: str) -> None:
        failure = self.health.get(self.target, service)
        if failure is not None:
            raise Blocked(failure.cause, failure.reason)

    def _greeted(self, service: str, session_class, greeting_ok) -> object:
        """A session whose greeting is positive; anything else blocks (421 is inconclusive)."""
        self._blocked_if_down(service)
        try:
            session = self._open(session_class, service)
        except WireError as error:
            raise Blocked(self.greeting_check, str(error)) from None
        problem = greeting_ok(session.greeting)
        if problem:
            self.health.record(self.target, service, Failure(self.greeting_check, problem))
            raise Blocked(self.greeting_check, problem)
        return session


class SmtpFactory(_ServiceFactory):
    """``smtp.connect()`` for checks that judge the greeting; ``smtp.session()`` for the rest."""

    greeting_check = SMTP_GREETING_CHECK

    def connect(self, service: str = "smtp") -> SmtpSession:
        """A new connection with its greeting read, whatever the greeting says."""
        session = self._open(SmtpSession, service)
        if session.greeting.code != 220:
            self.health.record(self.target, service,
                               Failure(self.greeting_check, f"the greeting was {session.greeting}"))
        return session

    def connect_to(self, endpoint: Endpoint) -> SmtpSession:
        """A connection to another host (an MX), greeting read; failures are the caller's verdict."""
        transcript = self.run.transcript(f"smtp {endpoint}")
        session = SmtpSession.connect(endpoint.host, endpoint.port, timeout=self.target.timeout,
                                      transcript=transcript, source=self.target.source)
        return self.run.adopt(session)

    def session(self, service: str = "smtp", hello: bool = True) -> SmtpSession:
        """A greeted session, after EHLO (HELO when EHLO is refused) unless ``hello`` is false."""
        session = self._greeted(service, SmtpSession, _smtp_greeting_problem)
        if hello:
            reply = session.ehlo()
            if reply.code not in (250, 421):
                reply = session.helo()
            if reply.code == 421:
                raise TemporaryRefusal(f"the server answered {reply} to the greeting command; try again later")
            if reply.code != 250:
                raise Blocked("smtp.session.helo", f"neither EHLO nor HELO was accepted ({reply})")
        return session


def _smtp_greeting_problem(greeting) -> str | None:
    if greeting.code == 421:
        raise TemporaryRefusal(f"the greeting was {greeting}: the server is not taking connections now")
    return None if greeting.code == 220 else f"the greeting was {greeting}"


def _pop3_greeting_problem(greeting: Pop3Reply) -> str | None:
    return None if greeting.ok else f"the greeting was {greeting}"


class Pop3Factory(_ServiceFactory):
    """POP3 sessions: greeted, secured for login, logged in."""

    greeting_check = POP3_GREETING_CHECK

    def greeting_service(self) -> str:
        """The service the POP3 session checks talk to: pop3 (110), else pop3s (995)."""
        for service in ("pop3", "pop3s"):
            if self.target.endpoint(service):
                return service
        raise NotApplicable(f"target {self.target.name} offers neither pop3 nor pop3s")

    def connect(self, service: str | None = None) -> Pop3Session:
        service = service or self.greeting_service()
        session = self._open(Pop3Session, service)
        if not session.greeting.ok:
            self.health.record(self.target, service, Failure(self.greeting_check, f"the greeting was {session.greeting}"))
        return session

    def session(self, service: str | None = None) -> Pop3Session:
        return self._greeted(service or self.greeting_service(), Pop3Session, _pop3_greeting_problem)

    def credentials(self) -> tuple[str, Secret]:
        """The account's user and password; not applicable without POP3 or usable credentials."""
        self.greeting_service()
        account = self.target.account
        if account is None:
            raise NotApplicable(f"target {self.target.name} has no [account] to log in with")
        if account.missing_credentials:
            raise NotApplicable(f"cannot log in with the target's account: {account.missing_credentials}")
        return account.user, Secret(account.password)

    def login_channel(self) -> Pop3Session:
        """A greeted session on which credentials may be sent: inside TLS (STLS on 110, or 995),
        or in cleartext only when the target sets ``allow_cleartext_auth = true``."""
        self.credentials()
        tls_problems: list[str] = []
        down: list[Blocked] = []
        if self.target.endpoint("pop3"):
            try:
                session = self.session("pop3")
            except Blocked as blocked:
                down.append(blocked)
            else:
                if self.target.allow_cleartext_auth:
                    session.transcript.note("allow_cleartext_auth = true: logging in without TLS")
                    return session
                try:
                    if session.stls(self.tls_context(), self.target.server_name(self.endpoint("pop3"))).ok:
                        return session
                    tls_problems.append("pop3 refused STLS")
                except TlsFailed as error:
                    tls_problems.append(f"STLS on pop3 failed: {error}")
        if self.target.endpoint("pop3s"):
            try:
                return self.session("pop3s")
            except Blocked as blocked:
                down.append(blocked)
        if down and not tls_problems:
            raise down[0]
        raise Inconclusive(
            "no protected channel to log in over (" + "; ".join(tls_problems + [b.reason for b in down]) + "); "
            "the suite never sends a real password in cleartext — set allow_cleartext_auth = true in the "
            "target to allow it, or give the TLS trust anchor in [tls] ca_file (TLS itself is judged in A3)")

    def try_login(self) -> tuple[Pop3Session, Pop3Reply]:
        """Log in with the account; a refusal is remembered so later checks are blocked, not retried
        (a temporary refusal such as ``[IN-USE]`` is not)."""
        user, password = self.credentials()
        failure = self.health.get(self.target, "pop3-login")
        if failure is not None:
            raise Blocked(failure.cause, failure.reason)
        session = self.login_channel()
        try:
            reply = session.login(user, password)
        except WireError as error:
            self._login_failed(f"the connection broke during the login: {error}")
            raise
        if not reply.ok and temporary_reason(reply) is None:
            self._login_failed(f"the server refused the account's login: {reply}")
        return session, reply

    def _login_failed(self, reason: str) -> None:
        self.health.record(self.target, "pop3-login", Failure(POP3_LOGIN_CHECK, reason))

    def logged_in(self) -> Pop3Session:
        session, reply = self.try_login()
        if not reply.ok:
            require(reply, by=POP3_LOGIN_CHECK)
        return session


@dataclass
class FoundMessage:
    """A message in the account's POP3 mailbox: its number in ``session`` and what was sent."""

    session: Pop3Session
    number: int
    sent: ProbeMessage | None  # None: a message the suite did not deliver


class Mailbox:
    """Delivers probe messages over SMTP and finds them again over POP3."""

    SEARCH_DEPTH = 50  # newest messages looked at when searching for a probe

    def __init__(self, target: Target, smtp: SmtpFactory, pop3: Pop3Factory):
        self.target = target
        self.smtp = smtp
        self.pop3 = pop3
        self.health = pop3.health
        self.delivered: list[ProbeMessage] = []  # accepted with 250: removed after the check
        self.unseen: set[str] = set()             # tokens of those not yet seen in the mailbox

    def delivery_refusal(self) -> str | None:
        """Why the suite may not deliver a message to this target, or None."""
        account = self.target.account
        if not self.target.endpoint("smtp"):
            return "the target offers no smtp service to deliver a message with"
        if account is None or not account.address:
            return "the target's [account] has no address to deliver to"
        if not self.target.intrusive:
            return "the target sets intrusive = false, so the suite sends it no message"
        return None

    def deliver(self) -> ProbeMessage:
        """Send a probe message to the account over SMTP; any refusal blocks the calling check."""
        refusal = self.delivery_refusal()
        if refusal:
            raise NotApplicable(refusal)
        message = ProbeMessage.new(self.target.sender, self.target.account.address)
        session = self.smtp.session()
        require(session.mail(message.sender), 250, by="smtp.session.mail-from")
        require(session.rcpt(message.recipient), 250, 251, by="smtp.session.rcpt-to")
        require(session.data(), 354, by="smtp.session.data")
        require(self.transmit(session, message), 250, by="smtp.session.end-of-data")
        session.quit()
        return message

    def transmit(self, session: SmtpSession, message: ProbeMessage) -> SmtpReply:
        """Send ``message`` after a 354; once accepted (250) it is removed again after the check."""
        reply = session.send_message(message.as_bytes())
        if reply.code == 250:
            self.delivered.append(message)
            self.unseen.add(message.token)
        return reply

    def locate(self, session: Pop3Session, token: str) -> int | None:
        """The number of the message carrying ``token`` in this session's mailbox, or None."""
        for number in list(reversed(session.message_numbers()))[: self.SEARCH_DEPTH]:
            top = session.top(number, 0)
            headers = top if top.ok else session.retr(number)
            if any(token.encode() in line for line in headers.lines):
                return number
        return None

    def delivered_message(self) -> FoundMessage:
        """A message this check delivered, found in the mailbox; a lost one fails the check."""
        self.pop3.credentials()
        lost = self.health.get(self.target, "delivery")
        if lost is not None:
            raise Blocked(lost.cause, lost.reason)
        message = self.deliver()
        deadline = time.monotonic() + self.target.delivery_wait
        while True:
            session = self.pop3.logged_in()
            number = self.locate(session, message.token)
            if number is not None:
                self.unseen.discard(message.token)
                return FoundMessage(session, number, message)
            session.quit()
            if time.monotonic() >= deadline:
                reason = (f"the server accepted a message with 250 but it is not in {self.target.account.user}'s "
                          f"mailbox after {self.target.delivery_wait:g} s (probe {message.token})")
                self.health.record(self.target, "delivery", Failure(self.pop3.run.check_id, reason))
                raise CheckFailed(reason)
            time.sleep(0.2)

    def any_message(self) -> FoundMessage:
        """A message to work on: one the suite delivers when it may, else the newest one there."""
        self.pop3.credentials()
        if self.delivery_refusal() is None:
            return self.delivered_message()
        session = self.pop3.logged_in()
        numbers = session.message_numbers()
        if not numbers:
            raise NotApplicable(f"the mailbox is empty and {self.delivery_refusal()}")
        return FoundMessage(session, numbers[-1], None)

    def clean_up(self) -> None:
        """Delete the probe messages this check got accepted (best effort).

        Messages already seen in the mailbox are looked for once (the check may have deleted them);
        the others are waited for, up to ``delivery_wait``, since delivery may lag the 250."""
        if not self.delivered:
            return
        transcript = self.pop3.run.transcript("cleanup")
        pending = {message.token for message in self.delivered}
        deadline = time.monotonic() + self.target.delivery_wait
        try:
            self.pop3.credentials()
            while pending and self.health.get(self.target, "delivery") is None:
                session = self.pop3.logged_in()
                for token in list(pending):
                    number = self.locate(session, token)
                    if (number is not None and session.dele(number).ok) or token not in self.unseen:
                        pending.discard(token)
                session.quit()
                if not pending or time.monotonic() >= deadline:
                    break
                time.sleep(0.2)
        except Exception as error:  # cleanup must never change the check's verdict
            transcript.note(f"removing probe messages failed: {error}")
        finally:
            self.pop3.run.close()
        if pending:
            transcript.note(f"probe message(s) left in the mailbox: {', '.join(sorted(pending))}")


def fake_password() -> str:
    """A password no account has, for probes that must be refused."""
    return "mailconform-wrong-" + secrets.token_hex(6)
