"""Notes beside a transcript's server lines: what a reply code means, in the run's language (the
lab handout's table of SMTP codes and the rest of RFC 5321 §4.2, RFC 3463 enhanced status codes,
POP3 ``+OK``/``-ERR`` and response codes, IMAP status responses and response codes)."""

from __future__ import annotations

import re

from mailconform import messages

_SMTP = re.compile(r"^(\d{3})[ -](?:([245])\.(\d{1,3})\.\d{1,3}\b)?")
_POP3 = re.compile(r"^(\+OK|-ERR)(?: \[([A-Z0-9/-]+)\])?")
_IMAP = re.compile(r"^(?:\*|[A-Za-z0-9.]+) (OK|NO|BAD|PREAUTH|BYE)\b(?: \[([A-Z-]+))?")
#: The service a transcript's title starts with, and the protocol whose codes its replies carry.
_PROTOCOLS = {"smtp": "smtp", "submission": "smtp", "smtps": "smtp", "pop3": "pop3", "pop3s": "pop3",
              "imap": "imap", "imaps": "imap"}


def note(title: str, line: str) -> str | None:
    """What ``line``, a server reply in a transcript titled ``title``, means; None when nothing."""
    protocol = _PROTOCOLS.get(title.split(" ", 1)[0])
    codes = messages.codes(protocol) if protocol else {}
    if protocol == "smtp" and (match := _SMTP.match(line)):
        meaning = codes.get(match.group(1))
        if meaning and match.group(2):
            enhanced = messages.codes("enhanced")
            detail = " / ".join(filter(None, (enhanced.get(match.group(2)), enhanced.get(f"x.{match.group(3)}"))))
            meaning = f"{meaning} ({detail})" if detail else meaning
        return meaning
    if protocol in ("pop3", "imap"):
        match = (_POP3 if protocol == "pop3" else _IMAP).match(line)
        if match:
            return "; ".join(filter(None, (codes.get(match.group(1)), codes.get(match.group(2) or ""))))
    return None
