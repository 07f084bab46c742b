"""Check metadata, outcomes and the expectation helpers checks are written with.

A check is one test function decorated with :func:`check`.  It judges; it never opens a socket
itself (the session fixtures do) and it asserts on reply codes, never on reply text.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from dataclasses import dataclass
from enum import Enum
from typing import Callable

from mailconform.wire.pop3 import Pop3Reply
from mailconform.wire.smtp import SmtpReply

#: The lab steps, as graded.  These IDs are a contract: extend, never rename.
STEPS: dict[str, str] = {
    "A1.smtp-session": "talk SMTP by hand",
    "A1.mx": "find the domain's MX and reach it",
    "A1.pop3-session": "talk POP3 by hand",
    "A1.capture": "watch it in Wireshark",
    "A2.open-relay": "is it an open relay?",
    "A2.esmtp": "which ESMTP extensions?",
    "A2.smtp-tls": "configure SSL on SMTP",
    "A2.starttls": "STARTTLS session",
    "A2.rfc3848": "read the Received headers",
    "A2.smuggling": "SMTP smuggling",
    "A3.auth-methods": "POP3 auth methods",
    "A3.stls": "POP3 STLS",
    "A3.pop3-tls": "configure SSL on POP3",
    "A3.pop3s": "POP3S (995)",
    "E.imap-security": "report on IMAP security",
}
#: Lab activities, the allure ``feature`` of each step.
ACTIVITIES: dict[str, str] = {
    "A1": "A1 · mail protocols by hand",
    "A2": "A2 · securing SMTP",
    "A3": "A3 · securing POP3",
    "E": "E · IMAP security",
}
PROTOCOLS: dict[str, str] = {"smtp": "SMTP", "pop3": "POP3", "imap": "IMAP", "tls": "TLS", "dns": "DNS"}
LEVELS = ("MUST", "MUST NOT", "SHOULD", "SHOULD NOT", "MAY", "policy")
SEVERITIES = ("critical", "high", "medium", "low", "info")

_ID = re.compile(r"^[a-z0-9]+(\.[a-z0-9-]+){2,}$")
_RFC = re.compile(r"^(\d+)(?:#([0-9A-Za-z.]+))?$")


class Outcome(str, Enum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    NOT_APPLICABLE = "not_applicable"
    BLOCKED = "blocked"


@dataclass(frozen=True)
class CheckInfo:
    """Everything the reports say about a check besides its result."""

    id: str
    step: str
    rfc: str
    level: str
    severity: str
    hint: str
    doc: str

    @property
    def protocol(self) -> str:
        return PROTOCOLS[self.id.split(".")[0]]

    @property
    def activity(self) -> str:
        return ACTIVITIES[self.step.split(".")[0]]

    @property
    def title(self) -> str:
        return self.doc.strip().splitlines()[0].strip()

    @property
    def rfc_label(self) -> str:
        number, section = _RFC.match(self.rfc).groups()
        return f"RFC {number}" + (f" §{section}" if section else "")

    @property
    def rfc_url(self) -> str:
        number, section = _RFC.match(self.rfc).groups()
        return f"https://datatracker.ietf.org/doc/html/rfc{number}" + (f"#section-{section}" if section else "")


def check(id: str, *, step: str, rfc: str, level: str, severity: str, hint: str = "") -> Callable:
    """Declare a test function as the check ``id`` of lab step ``step``.

    ``rfc`` is ``"NUMBER#SECTION"``; the docstring's first line is the title and the rest quotes
    the requirement.  Bad metadata fails at import, so a typo cannot reach a report."""
    problems = []
    if not _ID.match(id):
        problems.append(f"id {id!r} is not protocol.topic.detail in lower case")
    elif id.split(".")[0] not in PROTOCOLS:
        problems.append(f"id {id!r} starts with an unknown protocol (known: {', '.join(PROTOCOLS)})")
    if step not in STEPS:
        problems.append(f"step {step!r} is not a lab step (known: {', '.join(STEPS)})")
    if not _RFC.match(rfc):
        problems.append(f"rfc {rfc!r} is not 'NUMBER#SECTION', e.g. '5321#4.2'")
    if level not in LEVELS:
        problems.append(f"level {level!r} is not one of {', '.join(LEVELS)}")
    if severity not in SEVERITIES:
        problems.append(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")

    def decorate(function: Callable) -> Callable:
        if not (function.__doc__ or "").strip():
            problems.append("a check needs a docstring: a title line, then the RFC sentence it enforces")
        if problems:
            raise ValueError(f"check {function.__qualname__}: " + "; ".join(problems))
        function.__mailconform_check__ = CheckInfo(id, step, rfc, level, severity, hint, function.__doc__)
        return function

    return decorate


def check_info(function: Callable) -> CheckInfo | None:
    return getattr(function, "__mailconform_check__", None)


# --------------------------------------------------------------------------- verdicts


class CheckFailed(AssertionError):
    """The server violates the requirement."""

    def __init__(self, message: str, expected: str | None = None, actual: str | None = None):
        self.expected = expected
        self.actual = actual
        rows = [message]
        if expected is not None:
            rows.append(f"Expected: {expected}")
        if actual is not None:
            rows.append(f"Actual:   {actual}")
        super().__init__("\n".join(rows))


class Inconclusive(Exception):
    """The check could not decide (timeout, 421, greylisting, rate limit…)."""


class TemporaryRefusal(Inconclusive):
    """The server said "not now" (421, another 4xx, ``[SYS/TEMP]``): the check is tried once more."""


class NotApplicable(Exception):
    """The target does not offer what the check needs (a service, an account…)."""


class Blocked(Exception):
    """An earlier step this check depends on failed; ``cause`` names that check."""

    def __init__(self, cause: str, reason: str):
        self.cause = cause
        self.reason = reason
        super().__init__(f"blocked by {cause}: {reason}")


#: Warnings of the check that is running (set by the plugin around each check).
current_warnings: ContextVar[list[str]] = ContextVar("current_warnings")


def warn(message: str) -> None:
    """The requirement is met, but not the way the RFC recommends: the check passes with a warning."""
    current_warnings.get().append(message)


# --------------------------------------------------------------------------- expectations

_TEMPORARY_POP3_CODES = {"SYS/TEMP", "IN-USE", "LOGIN-DELAY"}


def temporary_reason(reply: SmtpReply | Pop3Reply) -> str | None:
    """Why a refusal, where success was wanted, is transient and decides nothing; None if it is not."""
    return _temporary(reply, wanted_success=True)


def _temporary(reply: SmtpReply | Pop3Reply, wanted_success: bool) -> str | None:
    """Why a reply is a transient refusal that decides nothing, or None."""
    if isinstance(reply, SmtpReply):
        if reply.code == 421:
            return f"the server answered {reply} (421: service not available, closing); try again later"
        if wanted_success and 400 <= reply.code < 500:
            return f"the server answered {reply}: a temporary refusal (greylisting, rate limit or a local problem)"
    elif wanted_success and not reply.ok and reply.resp_code in _TEMPORARY_POP3_CODES:
        return f"the server answered {reply}: a temporary refusal ([{reply.resp_code}])"
    return None


class ReplyExpectation:
    def __init__(self, reply: SmtpReply | Pop3Reply, what: str):
        self.reply = reply
        self.what = what

    def code(self, *codes: int) -> SmtpReply:
        """The SMTP reply carries one of ``codes``; 421 (and 4xx where success was wanted) is inconclusive."""
        __tracebackhide__ = True
        reply = self.reply
        if reply.code in codes:
            return reply
        temporary = _temporary(reply, wanted_success=all(c < 400 for c in codes))
        if temporary:
            raise TemporaryRefusal(temporary)
        expected = " or ".join(map(str, codes))
        raise CheckFailed(self.what or f"the server answered {reply} where {expected} was expected", expected, str(reply))

    def ok(self) -> Pop3Reply:
        """The POP3 reply is ``+OK``."""
        __tracebackhide__ = True
        if self.reply.ok:
            return self.reply
        temporary = _temporary(self.reply, wanted_success=True)
        if temporary:
            raise TemporaryRefusal(temporary)
        raise CheckFailed(self.what or f"the server answered {self.reply} where +OK was expected", "+OK", str(self.reply))

    def err(self) -> Pop3Reply:
        """The POP3 reply is ``-ERR``."""
        __tracebackhide__ = True
        if not self.reply.ok:
            return self.reply
        raise CheckFailed(self.what or f"the server answered {self.reply} where -ERR was expected", "-ERR", str(self.reply))


def expect(subject, message: str | None = None):
    """``expect(reply).code(250)`` / ``expect(reply).ok()``, or ``expect(condition, "what went wrong")``."""
    __tracebackhide__ = True
    if isinstance(subject, (SmtpReply, Pop3Reply)):
        return ReplyExpectation(subject, message or "")
    if message is None:
        raise TypeError("expect(condition, message): a condition needs a message saying what went wrong")
    if not subject:
        raise CheckFailed(message)
    return None


def require(reply: SmtpReply | Pop3Reply, *codes: int, by: str) -> None:
    """A step this check builds on must succeed, else the check is blocked by check ``by``.

    For an SMTP reply, ``codes`` are the acceptable codes; a POP3 reply must be ``+OK``."""
    __tracebackhide__ = True
    if isinstance(reply, SmtpReply):
        good = reply.code in codes
    else:
        good = reply.ok
    if good:
        return
    temporary = _temporary(reply, wanted_success=True)
    if temporary:
        raise TemporaryRefusal(temporary)
    raise Blocked(by, f"the server answered {reply}")
