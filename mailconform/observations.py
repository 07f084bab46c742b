"""Observations: facts about a target that many checks judge, made once per run on first use.

The greeting and EHLO list, the EHLO list after STARTTLS, CAPA before and after STLS, IMAP
CAPABILITY before and after STARTTLS, and each TLS endpoint's handshake.  Each is made on its
own connection with its own transcript, which every check that reads it shows; a failure to make
it (a dead service, a timeout) is kept too and replayed, so it costs one connection per run.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailconform.targets import IMPLICIT_TLS
from mailconform.wire import (
    ImapResponse, ImapSession, Pop3Reply, Pop3Session, SmtpReply, SmtpSession, TlsFailed, Transcript,
)

if TYPE_CHECKING:
    from mailconform.targetrun import TargetRun

SESSION_CLASSES = {"smtp": SmtpSession, "submission": SmtpSession, "smtps": SmtpSession,
                   "pop3": Pop3Session, "pop3s": Pop3Session, "imap": ImapSession, "imaps": ImapSession}


@dataclass(frozen=True)
class SmtpHello:
    """The greeting, and the EHLO reply when the greeting was 220 (else None)."""

    greeting: SmtpReply
    ehlo: SmtpReply | None
    extensions: dict[str, str]


@dataclass(frozen=True)
class Pop3Hello:
    """The greeting, and the CAPA reply when the greeting was +OK (else None)."""

    greeting: Pop3Reply
    capa: Pop3Reply | None
    capabilities: dict[str, str]


@dataclass(frozen=True)
class ImapHello:
    """The greeting, and the CAPABILITY response when the greeting was OK (else None)."""

    greeting: ImapResponse
    capability: ImapResponse | None
    capabilities: frozenset[str]


@dataclass(frozen=True)
class Handshake:
    """What one TLS handshake showed: version, cipher and the server's certificate (DER)."""

    version: str
    cipher: str
    certificate: bytes


def _open(run: TargetRun, service: str, transcript: Transcript):
    """A fresh session for an observation, greeting read, recorded in the observation's transcript."""
    endpoint = run.target.endpoint(service)
    implicit = service in IMPLICIT_TLS
    return SESSION_CLASSES[service].connect(
        endpoint.host, endpoint.port, timeout=run.target.timeout, transcript=transcript,
        source=run.target.source, tls=run.tls_context() if implicit else None,
        server_name=run.target.server_name(endpoint) if implicit else None, budget=run.budget)


def _secure(run: TargetRun, session, service: str) -> None:
    """Upgrade a plaintext session to TLS with the protocol's own command (refusal → TlsFailed)."""
    if service in IMPLICIT_TLS:
        return
    endpoint = run.target.endpoint(service)
    context, name = run.tls_context(), run.target.server_name(endpoint)
    if isinstance(session, SmtpSession):
        if session.ehlo().code != 250:
            raise TlsFailed("EHLO was refused, so STARTTLS could not be asked for")
        reply = session.starttls(context, name)
        accepted = reply.code == 220
    else:
        reply = session.stls(context, name) if isinstance(session, Pop3Session) else session.starttls(context, name)
        accepted = reply.ok
    if not accepted:
        raise TlsFailed(f"the server refused to start TLS: {reply}")


def _hello(run: TargetRun, transcript: Transcript, service: str, tls: bool, greeted, ask):
    """Open, read the greeting and, when it is positive, secure (if ``tls``) and ``ask(session)``.
    Returns (session, the answer or None); the session is finished either way."""
    session = _open(run, service, transcript)
    try:
        answer = None
        if greeted(session.greeting):
            if tls:
                _secure(run, session, service)
            answer = ask(session)
        return session, answer
    finally:
        session.finish()


def smtp_hello(run: TargetRun, transcript: Transcript, service: str, tls: bool = False) -> SmtpHello:
    """Greeting + EHLO (after STARTTLS when ``tls``)."""
    session, ehlo = _hello(run, transcript, service, tls, lambda g: g.code == 220, SmtpSession.ehlo)
    return SmtpHello(session.greeting, ehlo, dict(session.extensions))


def pop3_hello(run: TargetRun, transcript: Transcript, service: str, tls: bool = False) -> Pop3Hello:
    """Greeting + CAPA (after STLS when ``tls``)."""
    session, capa = _hello(run, transcript, service, tls, lambda g: g.ok, Pop3Session.capa)
    return Pop3Hello(session.greeting, capa, dict(session.capabilities or {}))


def imap_hello(run: TargetRun, transcript: Transcript, service: str, tls: bool = False) -> ImapHello:
    """Greeting + CAPABILITY (after STARTTLS when ``tls``)."""
    session, capability = _hello(run, transcript, service, tls, lambda g: g.ok, ImapSession.capability)
    return ImapHello(session.greeting, capability, frozenset(session.capabilities))


def handshake(run: TargetRun, transcript: Transcript, service: str) -> Handshake:
    """The TLS handshake of ``service`` (implicit TLS, or the protocol's STARTTLS/STLS)."""
    session = _open(run, service, transcript)
    try:
        _secure(run, session, service)
        sock: ssl.SSLSocket = session.connection.sock
        return Handshake(sock.version() or "", sock.cipher()[0], sock.getpeercert(binary_form=True) or b"")
    finally:
        session.finish()
