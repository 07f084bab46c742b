"""A whole-server URL (``mail://user@host``): look once at the services it may offer.

Each candidate port is connected to once, all at the same time (a connection that is opened and
closed at once; no session, so no connection budget): one that accepts becomes a service of the
target, one that refuses or does not answer is reported as not offered.  When SMTP answers and
the URL gave no domain, the name in its greeting gives the mail domain, and the header says so.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from types import MappingProxyType

from mailconform.targets import Endpoint, Target
from mailconform.wire import ConnectFailed, SmtpSession, Transcript, WireError
from mailconform.wire.connection import Connection


@dataclass(frozen=True)
class Discovery:
    """What looking at a whole-server URL's ports found."""

    found: dict[str, Endpoint]
    closed: dict[str, str]          # service → why it is not offered
    greeted_as: str | None            # the name the SMTP greeting announces (asked when the URL gave no domain)

    @property
    def domain(self) -> str | None:
        return domain_of(self.greeted_as) if self.greeted_as else None

    def lines(self) -> list[str]:
        """What the header says about it."""
        found = " ".join(f"{service}={endpoint}" for service, endpoint in self.found.items()) or "none"
        lines = [f"found: {found}"]
        if self.closed:
            lines.append("not offered: " + "; ".join(f"{service} ({why})" for service, why in self.closed.items()))
        if self.greeted_as:
            lines.append(f"domain {self.domain}: from {self.greeted_as}, the name the SMTP greeting announces "
                         f"(add ?domain=DOMAIN to the URL to give another)")
        return lines

    def to_json(self) -> str:
        return json.dumps({"found": {s: [e.host, e.port] for s, e in self.found.items()},
                           "closed": self.closed, "greeted_as": self.greeted_as})

    @classmethod
    def from_json(cls, text: str) -> "Discovery":
        data = json.loads(text)
        return cls({s: Endpoint(h, p) for s, (h, p) in data["found"].items()}, data["closed"], data["greeted_as"])


def _looks_open(target: Target, endpoint: Endpoint) -> str | None:
    """None when ``endpoint`` accepts a connection, else why not."""
    try:
        Connection.open(endpoint.host, endpoint.port, timeout=target.timeout, transcript=Transcript("discovery"),
                        source=target.source).close()
    except ConnectFailed as error:
        return error.detail
    return None


def _greeting_name(target: Target, endpoint: Endpoint) -> str | None:
    """The name an SMTP greeting announces (``220 mail.example.com ESMTP``), if any."""
    try:
        session = SmtpSession.connect(endpoint.host, endpoint.port, timeout=target.timeout,
                                      transcript=Transcript("discovery"), source=target.source)
    except WireError:
        return None
    session.finish()
    words = session.greeting.lines[0].split() if session.greeting.code == 220 and session.greeting.lines else []
    return words[0].lower().rstrip(".") if words and "." in words[0] else None


def domain_of(host_name: str) -> str:
    """The mail domain a server's own name suggests: less its first label when it has three or more
    (``mail.alumno07.lab.test`` → ``alumno07.lab.test``), as Postfix derives ``mydomain``."""
    labels = host_name.split(".")
    return ".".join(labels[1:]) if len(labels) >= 3 else host_name


def discover(target: Target) -> Discovery:
    """Connect once to every candidate service of ``target`` (in parallel) and keep those that answer."""
    with ThreadPoolExecutor(max_workers=len(target.services) or 1) as pool:
        answers = dict(zip(target.services, pool.map(lambda e: _looks_open(target, e), target.services.values())))
    found = {service: target.services[service] for service, why in answers.items() if why is None}
    closed = {service: f"{target.services[service]}: {why}" for service, why in answers.items() if why is not None}
    greeted_as = _greeting_name(target, found["smtp"]) if target.domain is None and "smtp" in found else None
    return Discovery(found, closed, greeted_as)


def apply(target: Target, discovery: Discovery) -> Target:
    """The target with the services found, and the greeting's domain (and mailbox address) if it had none."""
    domain = target.domain or discovery.domain
    account = target.account
    if account is not None and account.address is None and domain:
        account = replace(account, address=f"{account.user}@{domain}")
    return replace(target, services=MappingProxyType(dict(discovery.found)), domain=domain, account=account,
                   sender=account.address if account and account.address else target.sender)
