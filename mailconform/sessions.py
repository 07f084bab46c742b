"""Session factories the checks receive as fixtures (``smtp``, ``pop3``).

They open fresh sessions to the target for the running check, keep every transcript on it, read
the target run's observations (greeting, EHLO, CAPA…), and turn a service that is down into one
verdict: the check that judges its greeting fails (or is inconclusive) and every other check of
that service is blocked by it, without reconnecting for each check.
"""

from __future__ import annotations

import secrets
from base64 import b64encode
from dataclasses import dataclass, field

from mailconform import messages, relay
from mailconform.relay import RelayProbes
from mailconform.observations import (
    GREETED, Handshake, HandshakeFacts, Hello, ImapHello, Pop3Hello, SmtpHello, TlsRefused, secure,
)
from mailconform.targetrun import OPPORTUNISTIC_SERVICE, Failure, Observed, TargetRun
from mailconform.targets import IMPLICIT_TLS, Endpoint, Target
from mailconform.verdicts import (
    Blocked, CheckContext, Inconclusive, NotApplicable, TemporaryRefusal, require, temporary_reason,
)
from mailconform.wire import (
    ConnectFailed, ConnectionClosed, ImapResponse, ImapSession, Pop3Reply, Pop3Session, ReplyTimeout, SmtpReply, SmtpSession, TlsFailed,
    Transcript,
)
from mailconform.wire import WireError
from mailconform.wire.secret import Secret
from mailconform.wire.smtp import DEFAULT_EHLO_NAME

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
#: Services whose greeting and EHLO one check of their own judges (lab step A2, not A1's session).
OWN_GREETING_CHECKS = {"submission": "smtp.esmtp.greeting@submission", "smtps": "smtp.esmtp.greeting@smtps",
                       "imaps": "imap.imaps.implicit-tls"}
STARTTLS_CHECK = "smtp.starttls.handshake"     # @smtp, @submission: judges a refused or failed STARTTLS
SMTP_AUTH_CHECK = "smtp.submission.auth"       # @submission, @smtps: judges the account's AUTH PLAIN
IMPLICIT_TLS_CHECK = "smtp.smtps.implicit-tls"  # judges the handshake a client starts on connecting to smtps
#: Who judges a failed handshake on an implicit-TLS service (not its greeting check: nothing was said).
POP3_STLS_CHECK = "pop3.stls.handshake"       # judges a refused or failed STLS on pop3 (A3.stls)
POP3S_CHECK = "pop3.pop3s.implicit-tls"       # judges the handshake on pop3s (A3.pop3s)
IMPLICIT_TLS_JUDGES = {"smtps": IMPLICIT_TLS_CHECK, "pop3s": POP3S_CHECK}
IMAP_STARTTLS_CHECK = "imap.starttls.handshake"  # judges a refused or failed STARTTLS on imap (143)
IMAP_LOGIN_CHECK = "imap.login.account"          # @imap, @imaps: judges the account's LOGIN inside TLS
#: Who judges a refused or failed upgrade (STARTTLS, STLS) of each plaintext service; what goes
#: wrong is remembered under "SERVICE-tls" and blocks every check that needs TLS there.
UPGRADE_JUDGES = {"smtp": f"{STARTTLS_CHECK}@smtp", "submission": f"{STARTTLS_CHECK}@submission",
                  "pop3": POP3_STLS_CHECK, "imap": IMAP_STARTTLS_CHECK}
TLS_NOT_AVAILABLE = 454  # RFC 3207 §4 "TLS not available due to temporary reason": the STARTTLS check fails it
CLEARTEXT_WAIT = 2.0     # seconds an implicit-TLS port whose handshake failed is given to greet in clear


def upgrade_later(reply) -> str | None:
    """Why a refusal of STARTTLS/STLS is "not now" (421, a 4xx other than SMTP's 454, ``[SYS/TEMP]``), or None."""
    return None if getattr(reply, "code", None) == TLS_NOT_AVAILABLE else temporary_reason(reply)


def hello_check(target: Target, service: str) -> str:
    """Who is blamed when ``service`` greets and then breaks on the first command (EHLO, CAPA…)."""
    check_id = HELLO_CHECKS.get(PROTOCOL_OF[service])
    if check_id is None or service in OWN_GREETING_CHECKS:
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
    if service in OWN_GREETING_CHECKS:
        return OWN_GREETING_CHECKS[service]
    protocol = PROTOCOL_OF[service]
    check_id, judged = GREETING_CHECKS[protocol]
    judged = judged or pop3_greeting_service(target)
    if service == judged:
        return check_id
    return IMPLICIT_TLS_JUDGES.get(service, f"{check_id}@{service}")  # pop3s beside pop3: its own check


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
            tls_judge = IMPLICIT_TLS_JUDGES.get(service) if isinstance(observed.error, TlsFailed) else None
            self._record_down(service, str(observed.error), tls_judge)
            raise observed.error
        greeting = observed.value.greeting
        if not GREETED[self.target_run.session_class(service)](greeting) and temporary_reason(greeting) is None:
            self._record_down(service, messages.core("greeting-was", greeting=greeting))
        return observed.value

    def account_credentials(self) -> tuple[str, Secret]:
        """The account's user and password; not applicable without usable credentials."""
        account = self.target.account
        if account is None:
            raise NotApplicable(messages.advice(self.target.from_url, "no-account", target=self.target.name))
        if account.missing_credentials:
            raise NotApplicable(messages.core("no-credentials", why=account.missing_credentials))
        return account.user, Secret(account.password)

    def _blocked_by(self, key: str) -> None:
        """Blocked when ``key`` failed earlier in this run (a refused STARTTLS, a refused login…)."""
        failure = self.target_run.failure(key)
        if failure is not None:
            raise Blocked(failure.cause, failure.reason)

    def wrong_password(self) -> str:
        """A fake password for one deliberate failed login, within the target's budget of them."""
        self.target_run.spend_failed_login()
        return fake_password()

    def _greeted_again(self, service: str, hello: Hello) -> None:
        """An observation made on a new connection met a greeting that was not positive this time."""
        if hello.answer is None and hello.error is None:
            if (temporary := temporary_reason(hello.greeting)) is not None:
                raise TemporaryRefusal(temporary)
            raise Blocked(greeting_check(self.target, service), messages.core("greeting-was", greeting=hello.greeting))

    # ------------------------------------------------------------------ upgrading to TLS (STARTTLS, STLS)

    def start_tls(self, session, service: str) -> None:
        """The TLS handshake on ``session`` after the check's own STARTTLS/STLS was accepted (the
        run's TLS context, the target's server name); a failure is raised for the check to judge."""
        session.connection.start_tls(self.target_run.tls_context(service),
                                     self.target.server_name(self.endpoint(service)))

    def _upgrade_failed(self, service: str, reason: str) -> None:
        judge = UPGRADE_JUDGES[service]
        self.target_run.record(f"{service}-tls", Failure(judge, reason))
        raise Blocked(judge, reason)

    def _handshake(self, service: str, shown: bool) -> Handshake:
        """The upgrade's handshake observation (made once per run); a refusal other than "not now"
        or a failed handshake is remembered for the checks that need TLS on ``service``."""
        observed = self.target_run.handshake(service)
        if shown:
            self.run.shows(observed)
        if observed.error is not None:  # the service no longer greets: a connection that broke
            raise observed.error
        shake = observed.value
        self._greeted_again(service, shake)
        error = shake.error
        if service == OPPORTUNISTIC_SERVICE and isinstance(error, TlsFailed) and error.unverified:
            self.target_run.opportunistic = True  # a warning for the certificate; the rest goes on
        elif error is not None and not (isinstance(error, TlsRefused) and upgrade_later(error.reply)):
            self.target_run.record(f"{service}-tls", Failure(UPGRADE_JUDGES[service], str(error)))
        return shake

    def _upgrade_works(self, service: str, shake: Handshake) -> None:
        """After the handshake observation: "not now" for a temporary refusal, else blocked by the
        upgrade's check when it failed (an unverified certificate on port 25 does not block)."""
        if shake.error is None or self.target_run.opportunistic and service == OPPORTUNISTIC_SERVICE:
            return
        self.run.shows(self.target_run.handshake(service))  # what stops this check
        if isinstance(shake.error, TlsRefused) and (later := upgrade_later(shake.error.reply)):
            raise TemporaryRefusal(later)
        self._blocked_by(f"{service}-tls")

    def _upgraded_hello(self, service: str, observed: Observed) -> Hello:
        """The greeting and first answer observed inside TLS, blocked by the upgrade's check when
        the upgrade did not work on that connection."""
        self.run.shows(observed)
        if observed.error is not None:
            raise observed.error
        hello = observed.value
        self._greeted_again(service, hello)
        if isinstance(hello.error, TlsFailed):  # a TlsRefused too: this time the upgrade did not work
            if isinstance(hello.error, TlsRefused) and (later := upgrade_later(hello.error.reply)):
                raise TemporaryRefusal(later)
            self._upgrade_failed(service, str(hello.error))
        return hello

    def _secure(self, session, service: str, **options) -> None:
        """Upgrade a session of the check's own; a refusal or failure blocks it (remembered)."""
        try:
            secure(self.target_run, session, service, **options)
        except TlsRefused as refused:
            if (later := upgrade_later(refused.reply)) is not None:
                raise TemporaryRefusal(later) from None
            self._upgrade_failed(service, str(refused))
        except WireError as error:
            self._upgrade_failed(service, str(error))

    def _record_down(self, service: str, reason: str, cause: str | None = None) -> None:
        self.target_run.record(service, Failure(cause or greeting_check(self.target, service), reason))

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

    def _greeted(self, service: str, observe, needs_answer: bool = True) -> Hello:
        """:meth:`_usable`, the observation then shown with this check's transcripts: the greeting
        observation of the checks that read it but do not judge the greeting."""
        hello = self._usable(service, observe, needs_answer)
        self.run.shows(observe(service))
        return hello

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
        return self._greeted(service, self.target_run.smtp_hello, needs_ehlo)

    def connect_to(self, endpoint: Endpoint) -> SmtpSession:
        """A connection to another host (an MX), greeting read; failures are the caller's verdict."""
        transcript = self.run.transcript(f"smtp {endpoint}")
        session = SmtpSession.connect(endpoint.host, endpoint.port, timeout=self.target.timeout,
                                      transcript=transcript, source=self.target.source, budget=self.target_run.budget)
        return self.run.adopt(session)

    def session(self, service: str = "smtp", hello: bool = True, ehlo_name: str = DEFAULT_EHLO_NAME) -> SmtpSession:
        """A greeted session, after EHLO (HELO when EHLO is refused) unless ``hello`` is false."""
        self.greeted_hello(service, needs_ehlo=hello)
        session = self._open(service)
        if hello:
            try:
                reply = session.ehlo(ehlo_name)
            except WireError as error:
                raise Blocked("smtp.session.ehlo", str(error)) from None
            if reply.code not in (250, 421):
                reply = session.helo(ehlo_name)
            if reply.code == 421:
                raise TemporaryRefusal(messages.core("hello-421", reply=reply))
            if reply.code != 250:
                raise Blocked("smtp.session.helo", messages.core("no-hello", reply=reply))
        return session


    def relay_probes(self, service: str = "smtp") -> RelayProbes:
        """The open-relay probes of ``service`` (made once per run, in a few sessions): the control
        round to the account (else postmaster of the domain, else the bare ``postmaster`` every
        server must accept) and each trick of :data:`mailconform.relay.TRICKS`."""
        self.greeted_hello(service)
        control = self.target.account.address if self.target.account and self.target.account.address else (
            f"postmaster@{self.target.domain}" if self.target.domain else "postmaster")  # RFC 5321 §4.5.1

        observed = self.run.shows(self.target_run.observe(
            ("relay", service), f"{service} relay probes",
            lambda transcript: relay.probe(lambda: self.target_run.connect(service, transcript), self.target,
                                           transcript, control)))
        if observed.error is not None:
            raise Inconclusive(messages.core("relay-probes-broke", error=observed.error))
        return observed.value

    def secured(self, service: str = "smtp", ehlo_name: str = DEFAULT_EHLO_NAME) -> SmtpSession:
        """A session inside TLS, after EHLO there: STARTTLS on smtp and submission, implicit TLS on
        smtps.  A refused or failed upgrade blocks the check, judged by the STARTTLS check of the
        service and not tried again this run."""
        self.starttls_works(service)
        session = self.session(service, ehlo_name=ehlo_name)
        if service in IMPLICIT_TLS:
            return session
        self._secure(session, service, hello=False)
        try:
            reply = session.ehlo(ehlo_name)
        except WireError as error:
            self._upgrade_failed(service, str(error))
        require(reply, 250, by=f"smtp.starttls.ehlo-after@{service}")
        return session

    def authenticated(self, service: str = "submission", ehlo_name: str = DEFAULT_EHLO_NAME) -> SmtpSession:
        """A session inside TLS, logged in with the account (AUTH PLAIN); a refused login blocks the
        check, judged by the AUTH check of the service and not tried again this run."""
        judge = f"{SMTP_AUTH_CHECK}@{service}"
        try:
            session, reply = self.try_authenticate(service, ehlo_name)
        except WireError as error:
            raise Blocked(judge, str(error)) from None
        require(reply, 235, by=judge)
        return session

    def try_authenticate(self, service: str = "submission",
                         ehlo_name: str = DEFAULT_EHLO_NAME) -> tuple[SmtpSession, SmtpReply]:
        """AUTH PLAIN with the account inside TLS, for the check that judges it (``SMTP_AUTH_CHECK``)
        and for :meth:`authenticated`: a refusal (other than "not now") or a broken session is
        remembered, so later logins on ``service`` are blocked, not retried."""
        user, password = self.account_credentials()
        judge = f"{SMTP_AUTH_CHECK}@{service}"
        if judge != self.run.row_id:  # the AUTH check itself tries again: it is the judge
            self._blocked_by(f"{service}-auth")
        session = self.secured(service, ehlo_name)
        try:
            reply = session.auth_plain(user, password)
        except WireError as error:
            self.target_run.record(f"{service}-auth", Failure(judge, str(error)))
            raise
        if reply.code != 235 and temporary_reason(reply) is None:
            self.target_run.record(f"{service}-auth", Failure(judge, messages.core("server-answered", reply=reply)))
        return session, reply

    def auth_works(self, service: str = "submission") -> None:
        """Blocked when the account's own AUTH failed on ``service`` this run: a refused wrong
        password says nothing about a server that refuses every login."""
        self._blocked_by(f"{service}-auth")

    # ------------------------------------------------------------------ STARTTLS and implicit TLS (A2.starttls)

    def starttls_handshake(self, service: str = "smtp", shown: bool = True) -> tuple[SmtpHello, Handshake]:
        """The EHLO list before TLS and the STARTTLS handshake of ``service`` (each observed once per
        run), for the check that judges the upgrade (``STARTTLS_CHECK``).  A refusal other than "not
        now" (454 included: the STARTTLS check fails it) or a failed handshake is remembered: every
        check that needs TLS on ``service`` is then blocked by that check, without trying again.
        ``shown``: with the handshake's transcript (else the caller shows it when it matters)."""
        hello = self.greeted_hello(service)
        require(hello.answer, 250, by=hello_check(self.target, service))
        return hello, self._handshake(service, shown)

    def starttls_works(self, service: str = "smtp") -> None:
        """Blocked by the STARTTLS check of ``service`` when the upgrade was refused or failed this
        run (judged from the handshake observation, made now if no check made it yet); "not now"
        when the server answered STARTTLS with a temporary refusal."""
        self._blocked_by(f"{service}-tls")
        if service in IMPLICIT_TLS:
            return
        self._upgrade_works(service, self.starttls_handshake(service, shown=False)[1])

    def tls_hello(self, service: str = "smtp") -> SmtpHello:
        """The greeting and the EHLO reply inside TLS (observed once per run), for the checks that
        judge the EHLO list there; blocked by the STARTTLS check when the upgrade does not work."""
        self.starttls_works(service)
        return self._upgraded_hello(service, self.target_run.smtp_hello(service, tls=True))

    def cleartext_greeting(self, service: str = "smtps") -> SmtpReply | None:
        """What an implicit-TLS port says to a client that does not start TLS: the SMTP greeting of
        a server that speaks in clear there (a listener without wrapper mode), else None.  Asked
        only once its handshake failed, with a short wait: a TLS server stays silent."""
        endpoint = self.endpoint(service)
        transcript = self.run.transcript(f"{service} {endpoint} without TLS")
        try:
            session = SmtpSession.connect(endpoint.host, endpoint.port, transcript=transcript,
                                          timeout=min(CLEARTEXT_WAIT, self.target.timeout),
                                          source=self.target.source, budget=self.target_run.budget)
        except WireError:
            return None
        self.run.adopt(session).close()
        return session.greeting


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

    def greeted_hello(self, service: str | None = None) -> Pop3Hello:
        """The greeting and CAPA observation, blocked by the greeting check unless the server greeted
        +OK and went on answering: for the checks that read CAPA but do not judge the greeting."""
        return self._greeted(service or self.greeting_service(), self.target_run.pop3_hello)

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
        return self.account_credentials()

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
        if failure is not None and self.run.row_id != POP3_LOGIN_CHECK:  # the login check judges it again
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

    # ------------------------------------------------------------------ STLS and POP3S (A3)

    def stls_handshake(self, shown: bool = True) -> Handshake:
        """The STLS handshake on pop3 (observed once per run), for the check that judges it
        (``POP3_STLS_CHECK``); a refusal other than "not now" or a failed handshake is remembered,
        and every check that needs STLS is then blocked by that check."""
        self._usable("pop3", self.target_run.pop3_hello)
        return self._handshake("pop3", shown)

    def stls_works(self) -> None:
        """Blocked by the STLS check when STLS was refused or failed this run; "not now" for a
        temporary refusal."""
        self._blocked_by("pop3-tls")
        self._upgrade_works("pop3", self.stls_handshake(shown=False))

    def pop3s_works(self) -> None:
        """Blocked by the POP3S check when pop3s does not greet inside TLS this run."""
        self.endpoint("pop3s")
        try:
            self.hello("pop3s")
        except WireError as error:
            raise Blocked(POP3S_CHECK, str(error)) from None

    def secured(self, service: str = "pop3") -> Pop3Session:
        """A greeted session inside TLS: STLS on pop3, implicit TLS on pop3s; a refused or failed
        upgrade blocks the check (judged by the STLS or POP3S check)."""
        if service == "pop3s":
            self.pop3s_works()
            return self.session("pop3s")
        self.stls_works()
        session = self.session("pop3")
        self._secure(session, "pop3")
        return session

    def tls_hello(self, service: str = "pop3") -> Pop3Hello:
        """The greeting and CAPA inside TLS (observed once per run): after STLS on pop3, on pop3s
        from the first byte; blocked by the STLS or POP3S check when TLS does not work."""
        if service == "pop3s":
            self.pop3s_works()
            return self.hello("pop3s")
        self.stls_works()
        return self._upgraded_hello("pop3", self.target_run.pop3_hello("pop3", tls=True))

    def login_works(self) -> None:
        """Blocked when the account's own login failed this run: a check of refused logins (a wrong
        password) says nothing about a server that refuses every login, or garbles the answer."""
        failure = self.target_run.failure("pop3-login")
        if failure is not None:
            raise Blocked(failure.cause, failure.reason)


class ImapFactory(_ServiceFactory):
    """IMAP sessions: the greeting and CAPABILITY observations (before and inside TLS), the
    STARTTLS handshake, greeted sessions, secured sessions and logged-in sessions."""

    def hello(self, service: str = "imap") -> ImapHello:
        """The greeting and CAPABILITY (observed once per run); a wire error is the caller's to judge."""
        return self._hello(service, self.target_run.imap_hello)

    def greeted_hello(self, service: str = "imap") -> ImapHello:
        """The greeting observation, blocked by the greeting check unless it was ``* OK``."""
        return self._greeted(service, self.target_run.imap_hello)

    def session(self, service: str = "imap") -> ImapSession:
        """A new greeted session (nothing sent yet)."""
        self.greeted_hello(service)
        return self._open(service)

    def starttls_handshake(self, shown: bool = True) -> tuple[ImapHello, Handshake]:
        """CAPABILITY before TLS and the STARTTLS handshake on imap (each observed once per run), for
        the STARTTLS check; a refusal or failed handshake blocks every check that needs TLS on imap."""
        hello = self.greeted_hello("imap")
        return hello, self._handshake("imap", shown)

    def starttls_works(self) -> None:
        """Blocked by the STARTTLS check when the upgrade on imap was refused or failed this run."""
        self._blocked_by("imap-tls")
        self._upgrade_works("imap", self.starttls_handshake(shown=False)[1])

    def tls_hello(self) -> ImapHello:
        """The greeting and CAPABILITY inside TLS on imap (observed once per run)."""
        self.starttls_works()
        return self._upgraded_hello("imap", self.target_run.imap_hello("imap", tls=True))

    def secured(self, service: str = "imap") -> ImapSession:
        """A session inside TLS: STARTTLS on imap, implicit TLS on imaps."""
        if service in IMPLICIT_TLS:
            return self.session(service)
        self.starttls_works()
        session = self.session("imap")
        self._secure(session, "imap")
        return session

    def login_service(self) -> str:
        """Where a logged-in session is opened: imap (STARTTLS), else imaps."""
        service = next((s for s in ("imap", "imaps") if self.target.endpoint(s)), None)
        if service is None:
            raise NotApplicable(messages.core("no-service", target=self.target.name, service="imap"))
        return service

    def try_login(self, service: str = "imap") -> tuple[ImapSession, ImapResponse]:
        """LOGIN with the account inside TLS; a refusal (or a broken session) is remembered, so later
        logins on ``service`` are blocked by the login check, not retried."""
        user, password = self.account_credentials()
        judge = f"{IMAP_LOGIN_CHECK}@{service}"
        if judge != self.run.row_id:
            self._blocked_by(f"{service}-login")
        session = self.secured(service)
        try:
            response = session.login(user, password)
        except WireError as error:
            self.target_run.record(f"{service}-login", Failure(judge, str(error)))
            raise
        if not response.ok and temporary_reason(response) is None:
            self.target_run.record(f"{service}-login",
                                   Failure(judge, messages.core("server-answered", reply=response)))
        return session, response

    def logged_in(self, service: str | None = None) -> ImapSession:
        """A logged-in session inside TLS; a refused login blocks the check (the login check judges it)."""
        service = service or self.login_service()
        judge = f"{IMAP_LOGIN_CHECK}@{service}"
        try:
            session, response = self.try_login(service)
        except WireError as error:
            raise Blocked(judge, str(error)) from None
        require(response, by=judge)
        return session


class TlsFactory(_ServiceFactory):
    """What every TLS endpoint (STARTTLS, STLS or implicit TLS) presents, for the checks of suites/tls."""

    def certificate(self, service: str) -> HandshakeFacts:
        """The certificate chain ``service`` presents (its observation, made once per run and shown):
        a handshake that does not verify, so any certificate is read.  Any factory reads any TLS
        endpoint's.  Blocked by the greeting check when the service does not greet, and by the check
        of the upgrade (STARTTLS, STLS, implicit TLS) when it is refused or no handshake works at all."""
        self.endpoint(service)
        tls_judge = UPGRADE_JUDGES.get(service) or IMPLICIT_TLS_JUDGES.get(service) or greeting_check(self.target, service)
        down = self.target_run.failure(service)
        greeting = self.target_run.observed((f"{PROTOCOL_OF[service]}-hello", service, False))
        unverified = service in IMPLICIT_TLS and greeting is not None and isinstance(greeting.error, TlsFailed)
        if down is not None and not unverified:  # a certificate that did not verify on implicit TLS (the
            raise Blocked(down.cause, down.reason)  # greeting never came) is this reading's to judge
        observed = self.run.shows(self.target_run.certificate(service))
        if observed.error is not None:  # no connection or greeting; on implicit TLS, no handshake either
            judge = tls_judge if isinstance(observed.error, TlsFailed) else greeting_check(self.target, service)
            raise Blocked(judge, str(observed.error))
        shake = observed.value
        self._greeted_again(service, shake)
        error = shake.error
        if isinstance(error, TlsRefused) and (later := upgrade_later(error.reply)):
            raise TemporaryRefusal(later)
        if error is not None:
            raise Blocked(tls_judge if isinstance(error, TlsFailed) else hello_check(self.target, service), str(error))
        return shake.answer


#: How every fake password starts: the capture check knows a PASS of one is a probe's, not a login.
FAKE_PASSWORD_PREFIX = "mailconform-wrong-"


def fake_password() -> str:
    """A password no account has, for probes that must be refused."""
    return FAKE_PASSWORD_PREFIX + secrets.token_hex(6)


#: The user of made-up credentials probes send where a real password must never go (AUTH before TLS);
#: the capture checks know it, so a decoy is never reported as a credential that crossed in clear.
DECOY_USER = "mailconform-probe"


def decoy_plain_prefix() -> str:
    """The start every AUTH PLAIN payload of the decoy user has in base64 (``\\0user\\0…``)."""
    head = f"\0{DECOY_USER}".encode()
    return b64encode(head[:len(head) // 3 * 3]).decode()
