"""One target's run: everything a pytest run learns about one target, shared by all its checks.

All checks of a target run in one process, one after the other (under ``-n``, on one worker), so
this object holds for the whole run: what is down and which check found it, the DNS answers, the
one TLS context, the connection budget, and the observations (:mod:`mailconform.observations`).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from mailconform import observations
from mailconform.tlsinfo import reading_context
from mailconform.capture import Capture
from mailconform.targets import IMPLICIT_TLS, Target
from mailconform import messages
from mailconform.verdicts import Inconclusive, temporary_reason
from mailconform.wire import ImapSession, Pop3Reply, Pop3Session, SmtpReply, SmtpSession, Transcript, WireError
from mailconform.wire.budget import ConnectionBudget
from mailconform.wire.tls import client_context


#: The service whose TLS is opportunistic (MTA to MTA, RFC 7435): an unverified certificate is a warning there.
OPPORTUNISTIC_SERVICE = "smtp"
SESSION_CLASSES = {"smtp": SmtpSession, "submission": SmtpSession, "smtps": SmtpSession,
                   "pop3": Pop3Session, "pop3s": Pop3Session, "imap": ImapSession, "imaps": ImapSession}


@dataclass(frozen=True)
class Failure:
    """Why something is unusable for the rest of the run."""

    cause: str   # the check that judges it (``id`` or ``id@service``)
    reason: str


@dataclass(frozen=True)
class Observed:
    """An observation's value (or the error that stopped it) and the transcript that made it."""

    value: object
    error: Exception | None
    transcript: Transcript


class TargetRun:
    """The run scope of one target.  Failures are keyed by service name ("smtp", "pop3s"…: dead,
    not greeting, or stalled), "SERVICE-hello" (the first command after the greeting broke, e.g.
    EHLO), "pop3-login", "delivery" (a probe accepted but never stored) and "retry" (a retry met
    a refusal again)."""

    def __init__(self, target: Target, capture_dir: Path | None = None):
        self.target = target
        #: ``--capture-dir``: the target's traffic from before its first connection (A1.capture).
        self.capture: Capture | None = None
        if capture_dir:
            try:
                self.capture = Capture.start(capture_dir, target.name, {service: (e.host, e.port) for service, e in
                                                                         target.services.items()}, target.dns)
            except Exception as error:  # the run goes on without it, and the A1.capture checks say why
                self.capture = Capture.failed(capture_dir, target.name, error)
        self.failures: dict[str, Failure] = {}
        self.failed_logins = 0
        self.dns_answers: dict = {}
        self.budget = ConnectionBudget(target.max_connections, target.connections_per_second)
        self._observed: dict[tuple, Observed] = {}
        #: every verdict reached on this target in this process (the reports written at the end read them)
        self.results: list[dict] = []
        self._tls_context: ssl.SSLContext | None = None
        self._opportunistic_context: ssl.SSLContext | None = None
        #: port 25's certificate did not verify: its later STARTTLS sessions go on without verifying
        self.opportunistic = False

    # ------------------------------------------------------------------ health

    def failure(self, key: str) -> Failure | None:
        return self.failures.get(key)

    def record(self, key: str, failure: Failure) -> None:
        self.failures.setdefault(key, failure)

    def spend_failed_login(self) -> None:
        """Count one deliberate wrong-password login; past the target's ``max_failed_logins`` it is
        not made (a student's fail2ban or Dovecot's auth penalty would ban the grader)."""
        if self.failed_logins >= self.target.max_failed_logins:
            raise Inconclusive(messages.core("failed-logins-spent", count=self.target.max_failed_logins))
        self.failed_logins += 1

    def session_class(self, service: str):
        return SESSION_CLASSES[service]

    def connect(self, service: str, transcript: Transcript, context: ssl.SSLContext | None = None):
        """A new session to ``service``, greeting read (through TLS for implicit TLS: the run's
        context, or ``context`` for a probe of its own), within the budget."""
        endpoint = self.target.endpoint(service)
        implicit = service in IMPLICIT_TLS
        return SESSION_CLASSES[service].connect(
            endpoint.host, endpoint.port, timeout=self.target.timeout, transcript=transcript,
            source=self.target.source, tls=(context or self.tls_context()) if implicit else None,
            server_name=self.target.server_name(endpoint) if implicit else None, budget=self.budget, service=service)

    def tls_context(self, service: str | None = None) -> ssl.SSLContext:
        """The target's client TLS context (trust anchor, verification) for the whole run; for port 25
        once its certificate was found not to verify, one that does not verify: server-to-server TLS
        is opportunistic (RFC 7435), and the checks after the certificate's own are not about it."""
        if service == OPPORTUNISTIC_SERVICE and self.opportunistic:
            if self._opportunistic_context is None:
                self._opportunistic_context = self._keylogged(client_context(replace(self.target.tls, verify=False)))
            return self._opportunistic_context
        if self._tls_context is None:
            self._tls_context = self._keylogged(client_context(self.target.tls))
        return self._tls_context

    def _keylogged(self, context: ssl.SSLContext) -> ssl.SSLContext:
        if self.capture is not None and self.capture.error is None:
            context.keylog_filename = str(self.capture.keylog)  # Wireshark decrypts with it
        return context

    # ------------------------------------------------------------------ observations

    def observe(self, key: tuple, title: str, make: Callable[[Transcript], object]) -> Observed:
        """The observation ``key``, made by ``make(transcript)`` on first use and kept for the run,
        or the wire error that stopped it (replayed to every later reader, never retried)."""
        if key not in self._observed:
            transcript = Transcript(f"{title} (observed once in this run)")
            try:
                observed = Observed(make(transcript), None, transcript)
            except WireError as error:
                observed = Observed(None, error.with_traceback(None), transcript)
            self._observed[key] = observed
        return self._observed[key]

    def observed(self, key: tuple) -> Observed | None:
        """The observation ``key`` if a check made it in this run; never a connection."""
        return self._observed.get(key)

    def forget_temporary(self) -> None:
        """Before a retry: forget observations in which the server said "not now" (a 421, another
        4xx or ``[SYS/TEMP]`` greeting, a 421 to EHLO, a 4xx refusal of STARTTLS)."""
        for key, observed in list(self._observed.items()):
            value = observed.value
            replies = (getattr(value, "greeting", None), getattr(value, "answer", None),
                       getattr(getattr(value, "error", None), "reply", None))
            if any(isinstance(reply, (SmtpReply, Pop3Reply)) and temporary_reason(reply) for reply in replies):
                del self._observed[key]

    def smtp_hello(self, service: str, tls: bool = False) -> Observed:
        """Greeting and EHLO of ``service`` (after STARTTLS when ``tls``)."""
        return self.observe(("smtp-hello", service, tls), f"{service} greeting and EHLO" + _inside(tls),
                            lambda t: observations.smtp_hello(self, t, service, tls))

    def pop3_hello(self, service: str, tls: bool = False) -> Observed:
        """Greeting and CAPA of ``service`` (after STLS when ``tls``)."""
        return self.observe(("pop3-hello", service, tls), f"{service} greeting and CAPA" + _inside(tls),
                            lambda t: observations.pop3_hello(self, t, service, tls))

    def imap_hello(self, service: str, tls: bool = False) -> Observed:
        """Greeting and CAPABILITY of ``service`` (after STARTTLS when ``tls``)."""
        return self.observe(("imap-hello", service, tls), f"{service} greeting and CAPABILITY" + _inside(tls),
                            lambda t: observations.imap_hello(self, t, service, tls))

    def handshake(self, service: str) -> Observed:
        """The TLS handshake of ``service``."""
        return self.observe(("handshake", service), f"{service} TLS handshake",
                            lambda t: observations.handshake(self, t, service))

    def certificate(self, service: str) -> Observed:
        """The certificate chain ``service`` presents: a handshake of its own that does not verify,
        so an expired, self-signed or misnamed certificate is read and judged (suites/tls)."""
        return self.observe(("certificate", service), f"{service} TLS certificate",
                            lambda t: observations.certificate(self, t, service, self._keylogged(reading_context())))


def _inside(tls: bool) -> str:
    return " inside TLS" if tls else ""
