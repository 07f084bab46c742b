"""Outcomes, the exceptions that carry them, and expectations as data.

An expectation names what is acceptable (``expect(reply).code(500, tolerated={502: "502-warning"})``):
an acceptable answer passes, a tolerated one passes with the warning of its own message, anything
else fails with Expected and Actual.  Messages are catalogue keys of the running check
(:mod:`mailconform.messages`); a "not now" answer (421, other 4xx, ``[SYS/TEMP]``) is never a verdict.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import Enum

from mailconform import messages
from mailconform.wire.pop3 import Pop3Reply
from mailconform.wire.smtp import SmtpReply


class Outcome(str, Enum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    NOT_APPLICABLE = "not_applicable"
    BLOCKED = "blocked"


class CheckFailed(AssertionError):
    """The server violates the requirement."""

    def __init__(self, message: str, expected: str | None = None, actual: str | None = None):
        self.message = message
        self.expected = expected
        self.actual = actual
        labels = {key: messages.label(key) + ":" for key in ("expected", "actual")}
        width = max(map(len, labels.values()))
        rows = [message]
        if expected is not None:
            rows.append(f"{labels['expected']:<{width}} {expected}")
        if actual is not None:
            rows.append(f"{labels['actual']:<{width}} {actual}")
        super().__init__("\n".join(rows))


class Inconclusive(Exception):
    """The check could not decide (timeout, 421, greylisting, rate limit…)."""


class TemporaryRefusal(Inconclusive):
    """The server said "not now" (421, another 4xx, ``[SYS/TEMP]``): the check is tried once more."""


class NotApplicable(Exception):
    """The target does not offer what the check needs (a service, an account…)."""


class Blocked(Exception):
    """An earlier step this check depends on failed; ``cause`` names that check (``id`` or ``id@service``)."""

    def __init__(self, cause: str, reason: str):
        self.cause = cause
        self.reason = reason
        super().__init__(messages.core("blocked-by", cause=cause, reason=reason))


@dataclass
class CheckContext:
    """The check that is running: whose catalogue its messages come from, and its warnings."""

    check_id: str
    warnings: list[str] = field(default_factory=list)


#: Set by the plugin around each check.
current_check: ContextVar[CheckContext] = ContextVar("current_check")


def _context() -> CheckContext:
    return current_check.get(None) or CheckContext(messages.CORE)


def say(key: str, **fields) -> str:
    """The running check's sentence ``key`` in this run's language."""
    return messages.message(_context().check_id, key, **fields)


def _warn(key: str, fields: dict) -> None:
    _context().warnings.append(say(key, **fields))


# --------------------------------------------------------------------------- expectations

_TEMPORARY_POP3_CODES = {"SYS/TEMP", "IN-USE", "LOGIN-DELAY"}


def temporary_reason(reply: SmtpReply | Pop3Reply, wanted_success: bool = True) -> str | None:
    """Why a reply is a transient refusal that decides nothing, or None."""
    if isinstance(reply, SmtpReply):
        if reply.code == 421:
            return messages.core("temporary-421", reply=reply)
        if wanted_success and 400 <= reply.code < 500:
            return messages.core("temporary-4xx", reply=reply)
    elif wanted_success and not reply.ok and reply.resp_code in _TEMPORARY_POP3_CODES:
        return messages.core("temporary-pop3", reply=reply, code=reply.resp_code)
    return None


class ReplyExpectation:
    def __init__(self, reply: SmtpReply | Pop3Reply, key: str | None, fields: dict):
        self.reply = reply
        self.key = key
        self.fields = fields

    def _fail(self, expected: str) -> CheckFailed:
        message = say(self.key, reply=self.reply, **self.fields) if self.key else \
            messages.core("unexpected-reply", reply=self.reply, expected=expected)
        return CheckFailed(message, expected, str(self.reply))

    def code(self, *codes: int, tolerated: dict[int, str] | None = None) -> SmtpReply:
        """The SMTP reply carries one of ``codes``; a ``tolerated`` code passes with its warning.
        421 (and any 4xx where success was wanted) is inconclusive."""
        __tracebackhide__ = True
        tolerated = tolerated or {}
        if self.reply.code in codes:
            return self.reply
        if self.reply.code in tolerated:
            _warn(tolerated[self.reply.code], {"reply": self.reply, **self.fields})
            return self.reply
        temporary = temporary_reason(self.reply, wanted_success=all(c < 400 for c in codes))
        if temporary:
            raise TemporaryRefusal(temporary)
        raise self._fail(" or ".join(map(str, codes)))

    def ok(self) -> Pop3Reply:
        """The POP3 reply is ``+OK``."""
        __tracebackhide__ = True
        if self.reply.ok:
            return self.reply
        temporary = temporary_reason(self.reply)
        if temporary:
            raise TemporaryRefusal(temporary)
        raise self._fail("+OK")

    def err(self) -> Pop3Reply:
        """The POP3 reply is ``-ERR``."""
        __tracebackhide__ = True
        if not self.reply.ok:
            return self.reply
        raise self._fail("-ERR")


def expect(subject, key: str | None = None, *, actual: object = None, tolerated: bool = False, **fields):
    """``expect(reply, key).code(250)`` / ``.ok()`` / ``.err()``, or ``expect(condition, key, actual=…)``.

    ``key`` names the check's message in the catalogue (``{field}``\\s filled from ``fields``); for a
    condition, the catalogue's ``expected`` entry of the same key says what was wanted, and ``actual``
    (data: a reply, a list) or else the catalogue's ``actual`` entry what came instead.  ``tolerated=True`` declares a condition whose failure is only a warning."""
    __tracebackhide__ = True
    if isinstance(subject, (SmtpReply, Pop3Reply)):
        return ReplyExpectation(subject, key, fields)
    if key is None:
        raise TypeError("expect(condition, key): a condition needs the catalogue key of its message")
    if subject:
        return None
    if tolerated:
        _warn(key, fields)
        return None
    check_id = _context().check_id
    shown = messages.actual(check_id, key, **fields) if actual is None else str(actual)
    raise CheckFailed(say(key, **fields), messages.expected(check_id, key, **fields), shown)


def require(reply: SmtpReply | Pop3Reply, *codes: int, by: str) -> None:
    """A step this check builds on must succeed, else the check is blocked by check ``by``.

    For an SMTP reply, ``codes`` are the acceptable codes; a POP3 reply must be ``+OK``."""
    __tracebackhide__ = True
    good = reply.code in codes if isinstance(reply, SmtpReply) else reply.ok
    if good:
        return
    temporary = temporary_reason(reply)
    if temporary:
        raise TemporaryRefusal(temporary)
    raise Blocked(by, messages.core("server-answered", reply=reply))
