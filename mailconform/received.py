"""``Received:`` trace fields (RFC 5321 §4.4) read back from a delivered message.

A small tokenizer, not regular expressions: comments nest and may hold ``;`` or words that look
like clause keywords (``(using TLSv1.3 with cipher …)``, ``(envelope-from <x>; auth=y)``), so
they are kept as notes of the clause before them and never read as clauses.  What it gives:

- :func:`header_fields` — a message's header block (lines, as POP3 ``TOP n 0`` returns them)
  unfolded into ``(name, value)`` pairs (RFC 5322 §2.2.3);
- :func:`parse_received` — one field value → :class:`Received`: its clauses (``from``, ``by``,
  ``via``, ``with``, ``id``, ``for``, ``tls``…) and the date after the last top-level ``;``;
- :func:`received_fields` and :func:`hop_of` — every trace field of a message, top first, and the
  one a server wrote for a given connection (found by the client's EHLO name, else its address).

The ``with`` keyword is judged per RFC 3848 §1 (and RFC 6531 §4.3): :attr:`Received.protocol`
is upper case (Exim writes ``esmtpsa``), :attr:`Received.registered` says whether it is one of
the 17 registered values, :attr:`Received.tls` and :attr:`Received.auth` what its S and A say.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

#: Clause keywords of RFC 5321 §4.4 (Opt-info), plus RFC 8314 §4.3's registered "tls" clause.
CLAUSES = ("from", "by", "via", "with", "id", "for", "tls")
#: The registered WITH protocol types: RFC 5321 §4.4, RFC 3848 §1, RFC 6531 §4.3.
REGISTERED = frozenset({
    "SMTP", "ESMTP", "ESMTPA", "ESMTPS", "ESMTPSA",
    "LMTP", "LMTPA", "LMTPS", "LMTPSA",
    "UTF8SMTP", "UTF8SMTPA", "UTF8SMTPS", "UTF8SMTPSA",
    "UTF8LMTP", "UTF8LMTPA", "UTF8LMTPS", "UTF8LMTPSA",
})
_PROTOCOL = re.compile(r"^(UTF8)?(ESMTP|SMTP|LMTP)(S)?(A)?$")
_SPECIALS = '()<>[];"'


@dataclass(frozen=True)
class Token:
    kind: str   # "atom", "comment", "quoted", "angle", "literal", ";"
    text: str   # a comment's, a quoted string's, an angle address's or a literal's inside


@dataclass(frozen=True)
class Clause:
    """One clause of a trace field: ``with ESMTPS``, ``from host (rdns [ip])``…"""

    name: str                            # the keyword, lower case
    value: str | None                    # the token after it (None: the field ends there)
    comments: tuple[str, ...] = ()       # comments after it, before the next clause
    extra: tuple[str, ...] = ()          # other words after the value (``with Microsoft SMTP Server``)

    @property
    def text(self) -> str:
        """The clause as one line of text (value, extra words, comments), for matching and showing."""
        return " ".join([self.value or "", *self.extra, *(f"({c})" for c in self.comments)]).strip()


@dataclass(frozen=True)
class Received:
    """One ``Received:`` field, parsed."""

    value: str                                         # the unfolded field value, whitespace collapsed
    clauses: tuple[Clause, ...] = ()
    leading: tuple[str, ...] = ()                      # comments before the first clause (qmail, Postfix)
    date: str | None = None                            # the text after the last top-level ";"

    def clause(self, name: str) -> Clause | None:
        return next((c for c in self.clauses if c.name == name), None)

    @property
    def protocol(self) -> str | None:
        """The WITH keyword, upper case (None: no ``with`` clause)."""
        clause = self.clause("with")
        return clause.value.upper() if clause and clause.value else None

    @property
    def registered(self) -> bool:
        return self.protocol in REGISTERED

    @property
    def tls(self) -> bool:
        """The WITH keyword says TLS was in effect (the S of RFC 3848)."""
        match = _PROTOCOL.match(self.protocol or "")
        return bool(match and match.group(3)) and self.registered

    @property
    def auth(self) -> bool:
        """The WITH keyword says the client authenticated (the A of RFC 3848)."""
        match = _PROTOCOL.match(self.protocol or "")
        return bool(match and match.group(4)) and self.registered

    def mentions(self, text: str) -> bool:
        """The FROM clause (its domain, address literal or comments: Exim's ``helo=``) holds ``text``."""
        clause = self.clause("from")
        return clause is not None and text.lower() in clause.text.lower()

    def __str__(self) -> str:
        return f"Received: {self.value}"


# --------------------------------------------------------------------------- header blocks

def header_fields(lines: Iterable[bytes | str]) -> list[tuple[str, str]]:
    """A message's header lines (up to the first empty line; line ends optional) → unfolded
    ``(name, value)`` pairs in order.  A line that starts with a space or tab continues the field
    before it (RFC 5322 §2.2.3); a line with no colon that continues nothing is skipped."""
    fields: list[list[str]] = []
    for raw in lines:
        line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        line = line.rstrip("\r\n")
        if line == "":
            break
        if line[:1] in (" ", "\t"):
            if fields:
                fields[-1][1] += line
            continue
        name, colon, value = line.partition(":")
        if colon and name.strip() and " " not in name.strip():
            fields.append([name.strip(), value])
    return [(name, value.strip()) for name, value in fields]


def received_fields(lines: Iterable[bytes | str]) -> list[Received]:
    """Every ``Received:`` field of a header block, parsed, top (the last hop) first."""
    return [parse_received(value) for name, value in header_fields(lines) if name.lower() == "received"]


def hop_of(fields: list[Received], ehlo_name: str, address: str | None = None) -> Received | None:
    """The trace field a server wrote for one connection: the top-most whose FROM clause names the
    client's EHLO name; failing that, the top-most whose FROM clause holds its address literal."""
    named = next((f for f in fields if f.mentions(ehlo_name)), None)
    if named is not None or not address:
        return named
    return next((f for f in fields if f.mentions(f"[{address}]")), None)


# --------------------------------------------------------------------------- one field

def tokens(text: str) -> list[Token]:
    """Split a field value into atoms, comments (nested, with ``\\`` quoted pairs), quoted strings,
    angle addresses, address literals and ``;``.  An unclosed comment or bracket runs to the end."""
    out: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == "(":
            depth, j, body = 1, i + 1, []
            while j < n and depth:
                c = text[j]
                if c == "\\" and j + 1 < n:
                    body.append(text[j:j + 2])
                    j += 2
                    continue
                depth += (c == "(") - (c == ")")
                if depth:
                    body.append(c)
                j += 1
            out.append(Token("comment", " ".join("".join(body).split())))
            i = j
        elif ch == '"':
            j, body = i + 1, []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                body.append(text[j])
                j += 1
            out.append(Token("quoted", "".join(body)))
            i = j + 1
        elif ch in "<[":
            close = ">" if ch == "<" else "]"
            j = text.find(close, i + 1)
            j = n if j < 0 else j
            out.append(Token("angle" if ch == "<" else "literal", text[i + 1:j]))
            i = j + 1
        elif ch == ";":
            out.append(Token(";", ";"))
            i += 1
        elif ch in ")>]":
            i += 1  # a stray closer: not content
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in _SPECIALS:
                j += 1
            out.append(Token("atom", text[i:j]))
            i = j
    return out


def _shown(token: Token) -> str:
    return {"angle": f"<{token.text}>", "literal": f"[{token.text}]", "quoted": f'"{token.text}"'}.get(
        token.kind, token.text)


def parse_received(value: str) -> Received:
    """One ``Received:`` field value (unfolded) → :class:`Received`.  Clause keywords are
    case-insensitive top-level atoms; the token right after a keyword is always its value (so
    ``with local`` or ``id for`` read right); comments belong to the clause before them."""
    value = " ".join(value.split())
    found = tokens(value)
    semicolons = [i for i, t in enumerate(found) if t.kind == ";"]
    date = None
    if semicolons:
        cut = semicolons[-1]
        date_start = _char_after_last_semicolon(value)
        date = value[date_start:].strip() or None
        found = found[:cut]
    leading: list[str] = []
    clauses: list[dict] = []
    expecting_value = False
    for token in found:
        if expecting_value and token.kind != "comment":
            clauses[-1]["value"] = _shown(token)
            expecting_value = False
        elif token.kind == "atom" and token.text.lower() in CLAUSES:
            clauses.append({"name": token.text.lower(), "value": None, "comments": [], "extra": []})
            expecting_value = True
        elif token.kind == "comment":
            (clauses[-1]["comments"] if clauses else leading).append(token.text)
        elif clauses:
            clauses[-1]["extra"].append(_shown(token))
    return Received(value, tuple(Clause(c["name"], c["value"], tuple(c["comments"]), tuple(c["extra"]))
                                 for c in clauses), tuple(leading), date)


def _char_after_last_semicolon(value: str) -> int:
    """Where the date starts: after the last ``;`` outside comments, quotes and brackets."""
    depth, quoted, bracket, last = 0, False, None, -1
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and (depth or quoted):
            i += 2
            continue
        if quoted:
            quoted = ch != '"'
        elif bracket:
            bracket = None if ch == bracket else bracket
        elif ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif depth:
            pass
        elif ch == '"':
            quoted = True
        elif ch in "<[":
            bracket = ">" if ch == "<" else "]"
        elif ch == ";":
            last = i
        i += 1
    return last + 1
