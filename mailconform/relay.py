"""Open-relay probes (lab step A2.open-relay): the classic tricks of catalogue §3.2, each as one
MAIL/RCPT pair followed by RSET, a few per session, made once per run as an observation.

Every address outside the target is at a reserved name (RFC 2606: example.com, .invalid, .test)
or a documentation address (RFC 5737 192.0.2.0/24, RFC 3849 2001:db8::/32), and no probe goes
past RCPT: even a server that relays everything sends nothing anywhere.  The first round of the
first session is the positive control: mail from outside to the account (or postmaster), which
a server must accept — otherwise its refusals say nothing about relaying.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

from mailconform import messages
from mailconform.targets import Target
from mailconform.wire import SmtpReply, SmtpSession, Transcript, WireError

#: External domains the probes relay to: reserved, so nothing could ever be delivered there.
EXTERNAL = "example.com"
PROBE_SENDER = "relay-probe"      # the local part of the probes' senders
ROUNDS_PER_SESSION = 5            # refused RCPTs per session: below Postfix's smtpd_soft_error_limit (10)


@dataclass(frozen=True)
class RelayTrick:
    """One relay variant: its sender and recipient, with ``{F}`` (probe sender), ``{V}`` (a
    unique victim local part), ``{EXT}``, ``{LOC}`` (the target's domain), ``{HOST}`` (the name
    in its greeting) and ``{IP}`` (the address the probe talks to) filled per target."""

    sender: str
    recipient: str
    exploits: str
    ehlo: str | None = None   # a HELO name the trick relies on (relay trust derived from HELO)

    def addresses(self, places: dict[str, str]) -> tuple[str, str]:
        return self.sender.format(**places), self.recipient.format(**places)


#: Catalogue §3.2 (REL-xx), named for the report.  Each row of ``smtp.relay.refused`` is one.
TRICKS: dict[str, RelayTrick] = {
    "plain": RelayTrick("{F}@{EXT}", "{V}@{EXT}", "plain third-party relay (REL-01)"),
    "null-sender": RelayTrick("", "{V}@{EXT}", "the null sender trusted (REL-02)"),
    "sender-host": RelayTrick("{F}@{HOST}", "{V}@{EXT}", "a sender spoofed as the server itself (REL-03)"),
    "sender-local": RelayTrick("{F}@{LOC}", "{V}@{EXT}", "a sender at a local domain trusted (REL-04)"),
    "sender-localhost": RelayTrick("{F}@localhost", "{V}@{EXT}", "a 'localhost' sender trusted (REL-05)"),
    "sender-unqualified": RelayTrick("{F}", "{V}@{EXT}", "an unqualified sender taken as local (REL-06)"),
    "sender-literal": RelayTrick("{F}@[{IP}]", "{V}@{EXT}", "the server's address literal as sender (REL-07)"),
    "percent-literal": RelayTrick("{F}@[{IP}]", "{V}%{EXT}@[{IP}]", "percent hack via address literal (REL-08)"),
    "percent-host": RelayTrick("{F}@[{IP}]", "{V}%{EXT}@{HOST}", "percent hack via the host name (REL-09)"),
    "percent-local": RelayTrick("{F}@{LOC}", "{V}%{EXT}@{LOC}", "percent hack via the hosted domain (REL-10)"),
    "quoted-at": RelayTrick("{F}@[{IP}]", '"{V}@{EXT}"', "quoted local part holding '@' (REL-11)"),
    "quoted-percent": RelayTrick("{F}@[{IP}]", '"{V}%{EXT}"', "quoted percent hack (REL-12)"),
    "quoted-at-literal": RelayTrick("{F}@[{IP}]", '"{V}@{EXT}"@[{IP}]', "quoted '@', literal domain (REL-13)"),
    "quoted-at-local": RelayTrick("{F}@{LOC}", '"{V}@{EXT}"@{LOC}', "quoted '@', hosted domain (REL-14)"),
    "double-at-literal": RelayTrick("{F}@[{IP}]", "{V}@{EXT}@[{IP}]", "double '@' via literal (REL-15)"),
    "double-at-local": RelayTrick("{F}@{LOC}", "{V}@{EXT}@{LOC}", "double '@' via the hosted domain (REL-17)"),
    "source-route-literal": RelayTrick("{F}@[{IP}]", "@[{IP}]:{V}@{EXT}", "RFC 821 source route via literal (REL-18)"),
    "source-route-local": RelayTrick("{F}@{LOC}", "@{LOC}:{V}@{EXT}", "source route via the hosted domain (REL-19)"),
    "source-route-multi": RelayTrick("{F}@{LOC}", "@{LOC},@{EXT}:{V}@{EXT}", "multi-hop source route (REL-20)"),
    "bang": RelayTrick("{F}@[{IP}]", "{EXT}!{V}", "UUCP bang path (REL-21)"),
    "bang-literal": RelayTrick("{F}@[{IP}]", "{EXT}!{V}@[{IP}]", "bang path via literal (REL-22)"),
    "bang-local": RelayTrick("{F}@{LOC}", "{EXT}!{V}@{LOC}", "bang path via the hosted domain (REL-24)"),
    "ipv4-literal": RelayTrick("{F}@{EXT}", "{V}@[192.0.2.25]", "destination as an IPv4 literal (REL-25)"),
    "ipv6-literal": RelayTrick("{F}@{EXT}", "{V}@[IPv6:2001:db8::25]", "destination as an IPv6 literal (REL-26)"),
    "trailing-dot": RelayTrick("{F}@{EXT}", "{V}@{EXT}.", "a trailing-dot domain (REL-27)"),
    "local-suffix": RelayTrick("{F}@{EXT}", "{V}@{LOC}.{EXT}", "the local domain as a prefix (REL-28)"),
    "upper-case": RelayTrick("{F}@{EXT}", "{V}@EXAMPLE.COM", "an upper-case domain (string-compare bypass)"),
    "invalid-tld": RelayTrick("{F}@{EXT}", "{V}@relay.invalid", "a domain under .invalid"),
    "test-tld": RelayTrick("{F}@{EXT}", "{V}@relay.test", "a domain under .test"),
    "helo-localhost": RelayTrick("{F}@{EXT}", "{V}@{EXT}", "relay trust derived from HELO (REL-29)", ehlo="localhost"),
}


@dataclass(frozen=True)
class Round:
    """One MAIL/RCPT pair and what came back (``rcpt`` None when MAIL was refused or the wire broke)."""

    sender: str
    recipient: str
    mail: SmtpReply | None = None
    rcpt: SmtpReply | None = None
    error: str | None = None

    def __str__(self) -> str:
        said = self.error or (f"MAIL {self.mail}" if self.rcpt is None else f"RCPT {self.rcpt}")
        return f"MAIL FROM:<{self.sender}> RCPT TO:<{self.recipient}> → {said}"


@dataclass
class RelayProbes:
    """The control round and each trick's round, as one observation of a service."""

    source: str = ""                     # the address the probes came from
    control: Round | None = None         # None only when the probes broke before it
    rounds: dict[str, Round] = field(default_factory=dict)


def places(target: Target, session: SmtpSession, victim: str) -> dict[str, str]:
    """What the tricks' placeholders stand for on this target.  The greeting's host name is used
    only when it is the target's own (under its domain, or its host): a greeting may claim any name."""
    peer = session.connection.sock.getpeername()[0]
    words = session.greeting.lines[0].split() if session.greeting.lines else []
    own = own_names(target)
    announced = words[0].lower().rstrip(".") if words else ""
    host = announced if announced in own or any(announced.endswith("." + name) for name in own) else f"[{peer}]"
    return {"F": PROBE_SENDER, "V": victim, "EXT": EXTERNAL, "LOC": target.domain or host, "HOST": host, "IP": peer}


def own_names(target: Target) -> set[str]:
    """The names that are the target's own: its domain, host and TLS server name."""
    names = {target.domain, target.host, target.tls.server_name}
    if target.account and target.account.address:
        names.add(target.account.address.rpartition("@")[2])
    names |= {endpoint.host for endpoint in target.services.values()}
    return {name.lower() for name in names if name}


_LITERAL = re.compile(r"\[[^\]]*\]")


def foreign_domains(address: str, own: set[str]) -> list[str]:
    """The domains (and address literals) in a probe address that are neither reserved
    (RFC 2606, RFC 5737, RFC 3849) nor the target's own — a probe holding one is never sent."""
    literals = [literal.lower() for literal in _LITERAL.findall(address)]
    names = [token.lower().rstrip(".") for token in re.split(r'[@!%,:"<>\s]+', _LITERAL.sub(" ", address))
             if "." in token]

    def allowed(domain: str) -> bool:
        bare = domain.strip("[]").removeprefix("ipv6:")
        return (domain == EXTERNAL or domain.endswith(("." + EXTERNAL, ".invalid", ".test"))
                or bare.startswith(("192.0.2.", "2001:db8:")) or domain.strip("[]") in own
                or any(domain.endswith("." + name) for name in own))

    return [domain for domain in literals + names if not allowed(domain)]
def new_victim() -> str:
    """A local part no mailbox has, so any arrival could be told apart."""
    return f"mailconform-relay-{secrets.token_hex(4)}"


def probe(connect, target: Target, transcript: Transcript, control_recipient: str) -> RelayProbes:
    """Run the control round and every trick, ``ROUNDS_PER_SESSION`` per session on sessions from
    ``connect()`` (a broken session is replaced; the round it broke on keeps the error)."""
    victim = new_victim()
    found = RelayProbes()
    pending: list[tuple[str | None, RelayTrick]] = [(None, RelayTrick("{F}@{EXT}", control_recipient, "control")),
                                                    *TRICKS.items()]
    while pending:
        ehlo = pending[0][1].ehlo
        batch = [item for item in pending if item[1].ehlo == ehlo][:ROUNDS_PER_SESSION]
        session = _greeted(connect(), ehlo)
        if not found.source:
            found.source = session.connection.local_address or ""
            transcript.note(messages.core("relay-source", source=found.source))
        for item in batch:
            pending.remove(item)
            name, trick = item
            result = attempt(session, target, trick, victim)
            if name is None:
                found.control = result
            else:
                found.rounds[name] = result
            if result.error:
                break
        session.finish()
    return found


def _greeted(session: SmtpSession, ehlo_name: str | None) -> SmtpSession:
    """The session after a 220 greeting and a 250 EHLO (with ``ehlo_name`` when given)."""
    if session.greeting.code == 220 and (session.ehlo(ehlo_name) if ehlo_name else session.ehlo()).code == 250:
        return session
    session.finish()
    raise WireError(messages.core("relay-session-refused", reply=session.greeting))


def attempt(session: SmtpSession, target: Target, trick: RelayTrick, victim: str) -> Round:
    """One trick on a greeted session: MAIL, RCPT, RSET — never DATA, never a foreign domain."""
    filled = places(target, session, victim)
    sender, recipient = trick.addresses(filled)
    foreign = foreign_domains(recipient, own_names(target) | {filled["HOST"], filled["IP"]})
    if foreign:
        return Round(sender, recipient, error=messages.core("relay-not-reserved", domains=", ".join(foreign)))
    try:
        mail = session.mail(sender)
        if mail.code != 250:
            return Round(sender, recipient, mail)
        rcpt = session.rcpt(recipient)
        session.rset()
        return Round(sender, recipient, mail, rcpt)
    except WireError as error:
        return Round(sender, recipient, error=str(error))


