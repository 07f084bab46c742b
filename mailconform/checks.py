"""What a check author writes with: ``@check`` (the metadata of one requirement) and the
expectation helpers re-exported from :mod:`mailconform.verdicts`.

A check is one test function decorated with :func:`check`.  It judges; it never opens a socket
itself (the session fixtures do) and it asserts on reply codes, never on reply text.  Its title,
fix and messages live in the catalogues of :mod:`mailconform.messages`, keyed by its ID.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Callable, Mapping

from mailconform import messages
from mailconform.targets import DEFAULT_PORTS
from mailconform.verdicts import (  # noqa: F401  (the check author's API, in one import)
    Blocked, CheckFailed, Inconclusive, NotApplicable, expect, require, say,
)

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
#: Lab activities, the allure ``feature`` of each step; ``--step A1`` selects a whole activity.
ACTIVITIES: dict[str, str] = {
    "A1": "A1 · mail protocols by hand",
    "A2": "A2 · securing SMTP",
    "A3": "A3 · securing POP3",
    "E": "E · IMAP security",
}
PROTOCOLS: dict[str, str] = {"smtp": "SMTP", "pop3": "POP3", "imap": "IMAP", "tls": "TLS", "dns": "DNS",
                             "capture": "Capture"}
LEVELS = ("MUST", "MUST NOT", "SHOULD", "SHOULD NOT", "MAY", "policy")
SEVERITIES = ("critical", "high", "medium", "low", "info")

#: ``order=`` of a check that must run after every other check of its target (e.g. one that
#: fails a login on purpose: Dovecot then slows every later login from the same address).
LAST = 100
#: ``order=`` of the checks that read the run's own traffic back (``--capture-dir``): after all others.
AFTER_EVERYTHING = LAST + 1

_ID = re.compile(r"^[a-z0-9]+(\.[a-z0-9-]+){2,}$")
_VARIANT = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
_RFC = re.compile(r"^(\d+)(?:#([0-9A-Za-z.]+))?$")


@dataclass(frozen=True)
class CheckInfo:
    """Everything the reports say about a check besides its result."""

    id: str
    step: str                         # the lab step of its rows (of its first endpoint's, see ``steps``)
    rfc: str
    level: str
    severity: str
    doc: str
    variants: Mapping[str, object] = field(default_factory=dict)  # name → value given to the check
    endpoints: tuple[str, ...] = ()   # services the check runs on, one row each
    order: int = 0                    # checks of one target run by (order, place in the suites)
    catalogue: str = ""               # the row of shared/reference/check-catalogue.md it implements
    tls_failure_is_finding: bool = False  # a failed handshake fails the check (else: inconclusive)
    steps: Mapping[str, str] = field(default_factory=dict)  # endpoint → its lab step, when they differ

    def step_of(self, endpoint: str | None) -> str:
        """The lab step of the row on ``endpoint`` (a certificate check on pop3s is graded in A3)."""
        return self.steps.get(endpoint, self.step)

    def all_steps(self) -> set[str]:
        return {self.step, *self.steps.values()}

    @property
    def protocol(self) -> str:
        return PROTOCOLS[self.id.split(".")[0]]

    def activity_of(self, endpoint: str | None = None) -> str:
        """The lab activity (allure feature) of the row on ``endpoint``."""
        return ACTIVITIES[self.step_of(endpoint).split(".")[0]]

    @property
    def title(self) -> str:
        """The title in this run's language."""
        return messages.title(self.id, fallback=self.doc.strip().splitlines()[0].strip())

    @property
    def fix(self) -> str:
        return messages.fix(self.id)

    @property
    def rfc_label(self) -> str:
        number, section = _RFC.match(self.rfc).groups()
        return f"RFC {number}" + (f" §{section}" if section else "")

    @property
    def rfc_url(self) -> str:
        number, section = _RFC.match(self.rfc).groups()
        return f"https://datatracker.ietf.org/doc/html/rfc{number}" + (f"#section-{section}" if section else "")

    def row_ids(self) -> list[str]:
        """One result row per variant and endpoint: ``id``, ``id[variant]``, ``id@endpoint``."""
        variants = [f"[{name}]" for name in self.variants] or [""]
        endpoints = [f"@{service}" for service in self.endpoints] or [""]
        return [f"{self.id}{v}{e}" for v in variants for e in endpoints]


def check(id: str, *, step: str | Mapping[str, str], rfc: str, level: str, severity: str, variants: Mapping[str, object] | None = None,
          endpoints: tuple[str, ...] = (), order: int = 0, catalogue: str = "",
          tls_failure_is_finding: bool = False) -> Callable:
    """Declare a test function as the check ``id`` of lab step ``step``.

    ``step`` is a lab step, or endpoint → lab step for a check whose rows on different services
    belong to different steps (``{"smtp": "A2.smtp-tls", "pop3": "A3.pop3-tls"}``: every endpoint
    named).  ``rfc`` is ``"NUMBER#SECTION"``; the docstring quotes the requirement.  ``variants`` (name →
    value, the check receives ``variant``) and ``endpoints`` (services, the check receives
    ``endpoint``) make one result row each.  ``order`` places the check among the checks of its
    target (``LAST`` runs it after the others).  Bad metadata fails at import, so a typo cannot
    reach a report."""
    problems = []
    if not _ID.match(id):
        problems.append(f"id {id!r} is not protocol.topic.detail in lower case")
    elif id.split(".")[0] not in PROTOCOLS:
        problems.append(f"id {id!r} starts with an unknown protocol (known: {', '.join(PROTOCOLS)})")
    steps = dict(step) if isinstance(step, Mapping) else {}
    if steps:
        if set(steps) != set(endpoints):
            problems.append(f"a step per endpoint names every endpoint and nothing else: {sorted(steps)}"
                            f" is not {sorted(endpoints)}")
        step = next(iter(steps.values()), "")
    problems += [f"step {name!r} is not a lab step (known: {', '.join(STEPS)})"
                 for name in dict.fromkeys([step, *steps.values()]) if name not in STEPS]
    if not _RFC.match(rfc):
        problems.append(f"rfc {rfc!r} is not 'NUMBER#SECTION', e.g. '5321#4.2'")
    if level not in LEVELS:
        problems.append(f"level {level!r} is not one of {', '.join(LEVELS)}")
    if severity not in SEVERITIES:
        problems.append(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    variants = dict(variants or {})
    problems += [f"variant {name!r} is not lower-case letters, digits, '-' and '.'"
                 for name in variants if not _VARIANT.match(name)]
    problems += [f"endpoint {service!r} is not a service (known: {', '.join(DEFAULT_PORTS)})"
                 for service in endpoints if service not in DEFAULT_PORTS]

    def decorate(function: Callable) -> Callable:
        if not (function.__doc__ or "").strip():
            problems.append("a check needs a docstring quoting the RFC sentence it enforces")
        parameters = inspect.signature(function).parameters
        for declared, argument in ((variants, "variant"), (endpoints, "endpoint")):
            if declared and argument not in parameters:
                problems.append(f"a check with {argument}s takes a {argument!r} argument")
        if problems:
            raise ValueError(f"check {function.__qualname__}: " + "; ".join(problems))
        function.__mailconform_check__ = CheckInfo(
            id, step, rfc, level, severity, function.__doc__, variants, tuple(endpoints), order, catalogue,
            tls_failure_is_finding, steps if len(set(steps.values())) > 1 else {})
        return function

    return decorate


def check_info(function: Callable) -> CheckInfo | None:
    return getattr(function, "__mailconform_check__", None)


def step_selection(words: list[str]) -> tuple[set[str], list[str]]:
    """``--step`` values (steps, or activities such as ``A1``) → (the steps, the unknown words)."""
    selected, unknown = set(), []
    for word in words:
        if word in STEPS:
            selected.add(word)
        elif word in ACTIVITIES:
            selected |= {step for step in STEPS if step.split(".")[0] == word}
        else:
            unknown.append(word)
    return selected, unknown
