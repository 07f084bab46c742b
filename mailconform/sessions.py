"""Session factories the checks receive as fixtures (``smtp``, ``pop3``).

They open fresh sessions to the target for the running check, keep every transcript on it, read
the target run's observations (greeting, EHLO, CAPA…), and turn a service that is down into one
verdict: the check that judges its greeting fails (or is inconclusive) and every other check of
that service is blocked by it, without reconnecting for each check.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from mailconform import messages
from mailconform.observations import GREETED, Hello, Pop3Hello, SmtpHello, secure
from mailconform.targetrun import Failure, Observed, TargetRun
from mailconform.targets import Endpoint, Target
from mailconform.verdicts import (
    Blocked, CheckContext, Inconclusive, NotApplicable, TemporaryRefusal, require, temporary_reason,
)
from mailconform.wire import (
    ConnectFailed, ConnectionClosed, Pop3Reply, Pop3Session, ReplyTimeout, SmtpSession, TlsFailed, Transcript,
)
from mailconform.wire import WireError
from mailconform.wire.secret import Secret

POP3_LOGIN_CHECK = "pop3.session.login"
#: The check that judges each protocol's greeting, and the service it judges it on.
GREETING_CHECKS = {"smtp": ("smtp.session.greeting", "smtp"), "pop3": ("pop3.session.greeting", None),
                   "imap": ("imap.session.greeting", "imap")}
PROTOCOL_OF = {"smtp": "smtp", "submission": "smtp", "smtps": "smtp", "pop3": "pop3", "pop3s": "pop3",
               "imap": "imap", "imaps": "imap"}


def pop3_greeting_service(target: Target) -> str | None:
    """The service the POP3 session checks talk to: pop3 (110), else pop3s (995)."""
    return next((service for service in ("pop3", "pop3s") if target.endpoint(service)), None)


#: The check that judges the answer to the first command after a protocol's greeting (EHLO); for
#: the others, the greeting check judges that the server goes on answering after its greeting.
HELLO_CHECKS = {"smtp": "smtp.session.ehlo"}


def hello_check(target: Target, service: str) -> str:
    """Who is blamed when ``service`` greets and then breaks on the first command (EHLO, CAPA…)."""
    check_id = HELLO_CHECKS.get(PROTOCOL_OF[service])
    if check_id is None:
        return greeting_check(target, service)
    return check_id if service == "smtp" else f"{check_id}@{service}"


def broken_after_greeting(service: str, hello: Hello, needs_answer: bool = True) -> WireError | None:
    """What makes a service that greeted unusable for the rest of the run: a server that stopped
    answering after its greeting; and, for a session that needs the first answer, SMTP's EHLO
    that broke (closed, malformed, endless) or a POP3/IMAP server that hung up on CAPA/CAPABILITY."""
    error = hello.error
    if isinstance(error, ReplyTimeout) and error.stalled:
        return error
    if not needs_answer or error is None or isinstance(error, TlsFailed):
        return None
    return error if PROTOCOL_OF[service] == "smtp" or isinstance(error, ConnectionClosed) else None


def greeting_check(target: Target, service: str) -> str:
    """Who is blamed when ``service`` does not greet: the greeting check of its protocol, with
    ``@service`` when that check judges another of the protocol's services."""
    protocol = PROTOCOL_OF[service]
    check_id, judged = GREETING_CHECKS[protocol]
    judged = judged or pop3_greeting_service(target)
    return check_id if service == judged else f"{check_id}@{service}"


@dataclass
class CheckRun:
    """What one check (one row: ``id[variant]@endpoint``, on one target) used and produced."""

    row_id: str
    context: CheckContext
    target_run: TargetRun
    transcripts: list[Transcript] = field(default_factory=list)
    sessions: list = field(default_factory=list)

    @property
    def target(self) -> Target:
        return self.target_run.target

    @property
    def warnings(self) -> list[str]:
        return self.context.warnings

    def transcript(self, title: str) -> Transcript:
        transcript = Transcript(title)
        self.transcripts.append(transcript)
        return transcript

    def shows(self, observed: Observed) -> Observed:
        """Show an observation's transcript with this check's own (once)."""
        if observed.transcript not in self.transcripts:
            self.transcripts.append(observed.transcript)
        return observed

    def adopt(self, session):
        self.sessions.append(session)
        return session

    def close(self) -> None:
        for session in self.sessions:
            session.close()
        self.sessions.clear()


class _ServiceFactory:
    """Shared plumbing: endpoints, health bookkeeping, the greeting as an observation."""

    def __init__(self, run: CheckRun):
        self.run = run
        self.target = run.target
        self.target_run = run.target_run

    def endpoint(self, service: str) -> Endpoint:
        endpoint = self.target.endpoint(service)
        if endpoint is None:
            raise NotApplicable(messages.core("no-service", target=self.target.name, service=service))
        return endpoint

    def _hello(self, service: str, observe, shown: bool = True) -> Hello:
        """The service's greeting observation, or its wire error raised for the check to judge
        (``shown``: with its transcript).  A greeting that is neither positive nor "not now" marks
        the service down for the run."""
        self.endpoint(service)
        observed = observe(service)
        if shown:
            self.run.shows(observed)
        if observed.error is not None:
            self._record_down(service, str(observed.error))
            raise observed.error
        greeting = observed.value.greeting
        if not GREETED[self.target_run.session_class(service)](greeting) and temporary_reason(greeting) is None:
            self._record_down(service, messages.core("greeting-was", greeting=greeting))
        return observed.value

    def _record_down(self, service: str, reason: str) -> None:
        self.target_run.record(service, Failure(greeting_check(self.target, service), reason))

    def _usable(self, service: str, observe, needs_answer: bool = True) -> Hello:
        """The greeting observation of a service that greets positively and answers after it; else
        blocked by the check that judges what went wrong, or "not now" (retried) for a 421 or
        ``[SYS/TEMP]`` greeting.  The judge of the answer after the greeting (EHLO) gets the
        observation to read the error itself.  A health check: its transcript is shown only when
        it is what stops this check.

        What is wrong is kept per service: a dead or stalled service blocks every check of it; a
        broken first answer (EHLO) only the sessions that need it (``needs_answer``)."""
        judge = hello_check(self.target, service)
        keys = [service, f"{service}-hello"] if needs_answer else [service]

        def blocking() -> Failure | None:
            found = (self.target_run.failure(key) for key in keys)
            return next((f for f in found if f is not None and not (f.cause == judge == self.run.row_id)), None)

        if failure := blocking():
            raise Blocked(failure.cause, failure.reason)
        try:
            hello = self._hello(service, observe, shown=False)
        except WireError:
            if blocking() is None:  # this check judges what broke (its own service's greeting)
                self.run.shows(observe(service))
                raise
            hello = None
        if (failure := blocking()) is None:  # a dead service is recorded by now
            broken = broken_after_greeting(service, hello, needs_answer)
            if broken is None or judge == self.run.row_id:
                if (temporary := temporary_reason(hello.greeting)) is None:
                    return hello
                self.run.shows(observe(service))
                raise TemporaryRefusal(temporary)
            stalled = isinstance(broken, ReplyTimeout)
            self.target_run.record(service if stalled else f"{service}-hello", failure := Failure(judge, str(broken)))
        self.run.shows(observe(service))
        raise Blocked(failure.cause, failure.reason)

    def _open(self, service: str):
        """A new connection for this check, greeting read (a failure blocks: the greeting worked before)."""
        transcript = self.run.transcript(f"{service} {self.endpoint(service)}")
        try:
            session = self.target_run.connect(service, transcript)
        except (ConnectFailed, ReplyTimeout, TlsFailed) as error:
            self._record_down(service, str(error))
            raise Blocked(greeting_check(self.target, service), str(error)) from None
        if not GREETED[type(session)](session.greeting):
            raise Blocked(greeting_check(self.target, service), messages.core("greeting-was", greeting=session.greeting))
        return self.run.adopt(session)


class SmtpFactory(_ServiceFactory):
    """``smtp.hello()`` for checks that judge the greeting or EHLO list; ``smtp.session()`` for the rest."""

    def hello(self, service: str = "smtp") -> SmtpHello:
        """The greeting and EHLO reply (observed once per run); a wire error is the caller's to judge."""
        return self._hello(service, self.target_run.smtp_hello)

    def greeted_hello(self, service: str = "smtp", needs_ehlo: bool = True) -> SmtpHello:
        """The greeting observation, blocked by the greeting check unless it was 220 (and by the
        EHLO check when EHLO broke and ``needs_ehlo``)."""
        hello = self._usable(service, self.target_run.smtp_hello, needs_ehlo)
        self.run.shows(self.target_run.smtp_hello(service))
        return hello

    def connect_to(self, endpoint: Endpoint) -> SmtpSession:
        """A connection to another host (an MX), greeting read; failures are the caller's verdict."""
        transcript = self.run.transcript(f"smtp {endpoint}")
        session = SmtpSession.connect(endpoint.host, endpoint.port, timeout=self.target.timeout,
                                      transcript=transcript, source=self.target.source, budget=self.target_run.budget)
        return self.run.adopt(session)

    def session(self, service: str = "smtp", hello: bool = True) -> SmtpSession:
        """A greeted session, after EHLO (HELO when EHLO is refused) unless ``hello`` is false."""
        self.greeted_hello(service, needs_ehlo=hello)
        session = self._open(service)
        if hello:
            try:
                reply = session.ehlo()
            except WireError as error:
                raise Blocked("smtp.session.ehlo", str(error)) from None
            if reply.code not in (250, 421):
                reply = session.helo()
            if reply.code == 421:
                raise TemporaryRefusal(messages.core("hello-421", reply=reply))
            if reply.code != 250:
                raise Blocked("smtp.session.helo", messages.core("no-hello", reply=reply))
        return session


class Pop3Factory(_ServiceFactory):
    """POP3 sessions: the greeting observation, greeted sessions, secured for login, logged in."""

    def greeting_service(self) -> str:
        service = pop3_greeting_service(self.target)
        if service is None:
            raise NotApplicable(messages.core("no-pop3", target=self.target.name))
        return service

    def hello(self, service: str | None = None) -> Pop3Hello:
        """The greeting and CAPA (observed once per run); a wire error is the caller's to judge."""
        return self._hello(service or self.greeting_service(), self.target_run.pop3_hello)

    def answering_hello(self) -> Pop3Hello:
        """The greeting observation of a server that goes on answering after it: one that greets and
        then falls silent or hangs up on CAPA raises that, for the greeting check to judge."""
        service = self.greeting_service()
        hello = self.hello(service)
        broken = broken_after_greeting(service, hello)
        if broken is not None:
            raise broken
        return hello

    def session(self, service: str | None = None) -> Pop3Session:
        service = service or self.greeting_service()
        self._usable(service, self.target_run.pop3_hello)
        return self._open(service)

    def credentials(self) -> tuple[str, Secret]:
        """The account's user and password; not applicable without POP3 or usable credentials."""
        self.greeting_service()
        account = self.target.account
        if account is None:
            raise NotApplicable(messages.advice(self.target.from_url, "no-account", target=self.target.name))
        if account.missing_credentials:
            raise NotApplicable(messages.core("no-credentials", why=account.missing_credentials))
        return account.user, Secret(account.password)

    def login_channel(self) -> Pop3Session:
        """A greeted session on which credentials may be sent: inside TLS (STLS on 110, or 995),
        or in cleartext only when the target sets ``allow_cleartext_auth = true``.  An STLS that
        failed once is not tried again in this run."""
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
                stls_failed = self.target_run.failure("pop3-stls")
                if stls_failed is None:
                    try:
                        secure(self.target_run, session, "pop3")
                        return session
                    except TlsFailed as error:
                        self.target_run.record("pop3-stls", Failure(POP3_LOGIN_CHECK, messages.core("stls-failed", error=error)))
                        stls_failed = self.target_run.failure("pop3-stls")
                tls_problems.append(stls_failed.reason)
                session.close()  # its slot goes to the pop3s fallback
        if self.target.endpoint("pop3s"):
            try:
                return self.session("pop3s")
            except Blocked as blocked:
                down.append(blocked)
        if down and not tls_problems:
            raise down[0]
        raise Inconclusive(messages.advice(self.target.from_url, "no-protected-channel",
                                         problems="; ".join(tls_problems + [b.reason for b in down])))

    def try_login(self) -> tuple[Pop3Session, Pop3Reply]:
        """Log in with the account; a refusal is remembered so later checks are blocked, not retried
        (a temporary refusal such as ``[IN-USE]`` is not)."""
        user, password = self.credentials()
        failure = self.target_run.failure("pop3-login")
        if failure is not None:
            raise Blocked(failure.cause, failure.reason)
        session = self.login_channel()
        try:
            reply = session.login(user, password)
        except WireError as error:
            self._login_failed(messages.core("login-broke", error=error))
            raise
        if not reply.ok and temporary_reason(reply) is None:
            self._login_failed(messages.core("login-refused", reply=reply))
        return session, reply

    def _login_failed(self, reason: str) -> None:
        self.target_run.record("pop3-login", Failure(POP3_LOGIN_CHECK, reason))

    def logged_in(self) -> Pop3Session:
        """A logged-in session, for checks that need one: a login that fails or breaks blocks them
        (the login check judges it)."""
        try:
            session, reply = self.try_login()
        except WireError as error:
            raise Blocked(POP3_LOGIN_CHECK, str(error)) from None
        if not reply.ok:
            require(reply, by=POP3_LOGIN_CHECK)
        return session

    def wrong_password(self) -> str:
        """A fake password for one deliberate failed login, within the target's budget of them."""
        self.target_run.spend_failed_login()
        return fake_password()

    def login_works(self) -> None:
        """Blocked when the account's own login failed this run: a check of refused logins (a wrong
        password) says nothing about a server that refuses every login, or garbles the answer."""
        failure = self.target_run.failure("pop3-login")
        if failure is not None:
            raise Blocked(failure.cause, failure.reason)


def fake_password() -> str:
    """A password no account has, for probes that must be refused."""
    return "mailconform-wrong-" + secrets.token_hex(6)
