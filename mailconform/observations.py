"""Observations: facts about a target that many checks judge, made once per run on first use.

The greeting and EHLO list, the EHLO list after STARTTLS, CAPA before and after STLS, IMAP
CAPABILITY before and after STARTTLS, each TLS endpoint's handshake, and the certificate chain
each TLS endpoint presents (read by a handshake that does not verify).  Each is made on its
own connection with its own transcript, which every check that reads it shows.

What went wrong is kept where it went wrong: a service that cannot be reached or does not greet
is the observation's error (replayed, so a dead service costs one connection per run); a
command after a good greeting that breaks (a closed connection, a malformed reply, a refused or
failed TLS upgrade) is the ``error`` of a hello whose greeting is still there to judge.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailconform import tlsinfo
from mailconform.targets import IMPLICIT_TLS
from mailconform.wire import (
    ImapResponse, ImapSession, Pop3Reply, Pop3Session, SmtpReply, SmtpSession, TlsFailed, Transcript, WireError,
)

if TYPE_CHECKING:
    from mailconform.targetrun import TargetRun


class TlsRefused(TlsFailed):
    """The server answered the STARTTLS/STLS command with a refusal (``reply``): no handshake."""

    def __init__(self, reply):
        self.reply = reply
        super().__init__(f"the server refused to start TLS: {reply}")


@dataclass(frozen=True)
class Hello:
    """A greeting and what one command after it answered.  ``answer`` is None when the greeting was
    not positive (nothing was asked) or when ``error`` stopped the command."""

    greeting: object
    answer: object
    error: WireError | None

    def answered(self):
        """The answer, or the wire error that stopped the command after the greeting."""
        if self.error is not None:
            raise self.error
        return self.answer


@dataclass(frozen=True)
class SmtpHello(Hello):
    """The greeting and the EHLO reply."""

    greeting: SmtpReply
    answer: SmtpReply | None
    extensions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Pop3Hello(Hello):
    """The greeting and the CAPA reply."""

    greeting: Pop3Reply
    answer: Pop3Reply | None
    capabilities: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ImapHello(Hello):
    """The greeting and the CAPABILITY response."""

    greeting: ImapResponse
    answer: ImapResponse | None
    capabilities: frozenset[str] = frozenset()


@dataclass(frozen=True)
class HandshakeFacts:
    """What one TLS handshake showed: version, cipher, the server's certificate and the whole chain
    it sent, leaf first (DER)."""

    version: str
    cipher: str
    certificate: bytes
    chain: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class Handshake(Hello):
    """The greeting and, when it was positive, the handshake's facts (or what stopped it)."""

    answer: HandshakeFacts | None


def secure(run: TargetRun, session, service: str, hello: bool = True, context: ssl.SSLContext | None = None) -> None:
    """Upgrade a plaintext session to TLS with the protocol's own command (SMTP: after an EHLO,
    unless ``hello`` is false because the session has just had one), with the run's TLS context or
    ``context``; a refusal raises :class:`TlsRefused` (its reply says whether it was "not now"),
    a failed handshake TlsFailed."""
    if service in IMPLICIT_TLS:
        return
    context = context or run.tls_context(service)
    name = run.target.server_name(run.target.endpoint(service))
    if isinstance(session, SmtpSession):
        if hello and (ehlo := session.ehlo()).code != 250:
            raise TlsRefused(ehlo)
        reply = session.starttls(context, name)
        accepted = reply.code == 220
    else:
        reply = session.stls(context, name) if isinstance(session, Pop3Session) else session.starttls(context, name)
        accepted = reply.ok
    if not accepted:
        raise TlsRefused(reply)


def _hello(run: TargetRun, transcript: Transcript, service: str, tls: bool, greeted, ask,
           context: ssl.SSLContext | None = None):
    """Open and read the greeting (a failure here is raised: the service is down); when the greeting
    is positive, secure (if ``tls``) and ``ask(session)``, keeping a failure there as the error.
    TLS with the run's context, or ``context``.  Returns (session, answer, error); the session is
    finished either way."""
    session = run.connect(service, transcript, context=context)
    try:
        answer = error = None
        if greeted(session.greeting):
            try:
                if tls:
                    secure(run, session, service, context=context)
                answer = ask(session)
            except WireError as stopped:
                error = stopped.with_traceback(None)
        return session, answer, error
    finally:
        session.finish()


def _smtp_greeted(greeting: SmtpReply) -> bool:
    return greeting.code == 220


def _greeted(greeting) -> bool:
    return greeting.ok


GREETED = {SmtpSession: _smtp_greeted, Pop3Session: _greeted, ImapSession: _greeted}


def smtp_hello(run: TargetRun, transcript: Transcript, service: str, tls: bool = False) -> SmtpHello:
    """Greeting + EHLO (after STARTTLS when ``tls``)."""
    session, ehlo, error = _hello(run, transcript, service, tls, _smtp_greeted, SmtpSession.ehlo)
    return SmtpHello(session.greeting, ehlo, error, dict(session.extensions))


def pop3_hello(run: TargetRun, transcript: Transcript, service: str, tls: bool = False) -> Pop3Hello:
    """Greeting + CAPA (after STLS when ``tls``)."""
    session, capa, error = _hello(run, transcript, service, tls, _greeted, Pop3Session.capa)
    return Pop3Hello(session.greeting, capa, error, dict(session.capabilities or {}))


def imap_hello(run: TargetRun, transcript: Transcript, service: str, tls: bool = False) -> ImapHello:
    """Greeting + CAPABILITY (after STARTTLS when ``tls``)."""
    session, capability, error = _hello(run, transcript, service, tls, _greeted, ImapSession.capability)
    return ImapHello(session.greeting, capability, error, frozenset(session.capabilities))


def handshake(run: TargetRun, transcript: Transcript, service: str,
              context: ssl.SSLContext | None = None) -> Handshake:
    """The TLS handshake of ``service`` (with the run's context, or ``context``): implicit TLS, or the
    protocol's STARTTLS/STLS after a positive greeting (a failed implicit-TLS handshake is the
    service's error, like a dead port)."""
    session_class = run.session_class(service)

    def facts(session) -> HandshakeFacts:
        sock: ssl.SSLSocket = session.connection.sock
        chain = tlsinfo.peer_chain(sock)
        return HandshakeFacts(sock.version() or "", sock.cipher()[0], chain[0] if chain else b"", chain)

    session, answer, error = _hello(run, transcript, service, True, GREETED[session_class], facts, context)
    return Handshake(session.greeting, answer, error)


def certificate(run: TargetRun, transcript: Transcript, service: str, context: ssl.SSLContext) -> Handshake:
    """The handshake of ``service`` with ``context``, one that does not verify
    (:func:`mailconform.tlsinfo.reading_context`), so a certificate that would not verify is read
    all the same; the chain it sent goes into the transcript as PEM and as a readable summary."""
    shake = handshake(run, transcript, service, context)
    if shake.answer is not None:
        try:
            lines = tlsinfo.describe(tlsinfo.chain_of(shake.answer.chain))
        except ValueError as error:  # not a certificate: the checks say so
            lines = [f"the server sent something that is not a certificate: {error}"]
        for line in lines:
            transcript.note(line)
    return shake
