"""A transcript of every byte each way, shown like the lab handout (``C:`` / ``S:``).

Secrets are redacted when they are recorded, so no rendering of a transcript can leak them."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from mailconform.wire.secret import REDACTED, Secret, redact, redact_bytes


@dataclass(frozen=True)
class Entry:
    direction: str  # "C" client, "S" server, "*" a note from the suite
    text: str
    at: float


def _printable(data: bytes) -> str:
    """Show bytes as text, with line ends and control bytes made visible."""
    return escape_controls(data.decode("utf-8", errors="backslashreplace"), keep="\t")


def escape_controls(text: str, keep: str = "\t\n") -> str:
    """``text`` safe to print on a terminal: control characters (ESC, CR, BEL…) as ``\\r``,
    ``\\x1b``, so text a server wrote can never move the cursor or recolour a line."""
    out = []
    for ch in text:
        if ch in keep or ch.isprintable():
            out.append(ch)
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\n":
            out.append("\\n")
        else:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}")
    return "".join(out)


def shown(text: str) -> str:
    """Any text on its way to a person (terminal, report, JSON): known passwords hidden, control
    characters escaped."""
    return escape_controls(redact(text))


def excerpt(data: bytes | str, limit: int = 80) -> str:
    """Server bytes quoted in a message: passwords hidden first (a cut could split one), control
    characters and the quotes escaped, then cut to ``limit`` characters — ``'…'``."""
    text = _printable(redact_bytes(data)) if isinstance(data, bytes) else escape_controls(data, keep="")
    text = redact(text).replace("'", "\\'")
    return f"'{text[:limit]}'" + ("…" if len(text) > limit else "")


#: A transcript keeps its first and last lines and counts what it drops between them, so an endless
#: server reply costs bounded memory and a bounded report; a line is cut at MAX_ENTRY_CHARS.
HEAD_ENTRIES = 300
TAIL_ENTRIES = 100
MAX_ENTRY_CHARS = 2000


@dataclass
class Transcript:
    """Everything exchanged with one endpoint, in order (its middle dropped past a size)."""

    title: str
    head: list[Entry] = field(default_factory=list)
    tail: deque[Entry] = field(default_factory=lambda: deque(maxlen=TAIL_ENTRIES))
    dropped_lines: int = 0
    dropped_chars: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def entries(self) -> list[Entry]:
        return self.head + list(self.tail)

    def _add(self, direction: str, text: str) -> None:
        text = redact(text)
        if len(text) > MAX_ENTRY_CHARS:
            text = f"{text[:MAX_ENTRY_CHARS]} … ({len(text) - MAX_ENTRY_CHARS} more characters)"
        entry = Entry(direction, text, time.monotonic() - self.started)
        if len(self.head) < HEAD_ENTRIES:
            self.head.append(entry)
            return
        if len(self.tail) == TAIL_ENTRIES:
            self.dropped_lines += 1
            self.dropped_chars += len(self.tail[0].text)
        self.tail.append(entry)

    def client(self, data: bytes | Secret, redacted: str | None = None) -> None:
        """Record bytes the client sent; ``redacted`` replaces them when they hold a secret."""
        if isinstance(data, Secret) and redacted is None:
            redacted = REDACTED
        for line in _lines(data) if redacted is None else [redacted]:
            self._add("C", line)

    def server(self, data: bytes) -> None:
        for line in _lines(redact_bytes(data)):
            self._add("S", line)

    def note(self, text: str) -> None:
        self._add("*", text)

    def text(self, direction: str, text: str) -> None:
        """A line of a conversation that is not bytes on a socket (a DNS question or answer)."""
        self._add(direction, escape_controls(text))

    def render(self, tail: int | None = None, timestamps: bool = False,
               annotate: Callable[[str, str], str | None] | None = None) -> str:
        """The transcript as text (its last ``tail`` lines only, if given); ``annotate(title, line)``
        gives a note shown beside the first line of each server reply."""
        entries = self.entries

        def row(index: int, e: Entry) -> str:
            text = (f"[{e.at:7.3f}] " if timestamps else "") + f"{e.direction}: {e.text}"
            first = e.direction == "S" and (index == 0 or entries[index - 1].direction != "S")
            meaning = annotate(self.title, e.text) if annotate and first else None
            return f"{text}    ← {meaning}" if meaning else text

        rows = [row(i, e) for i, e in enumerate(entries)]
        if tail is not None:
            earlier = len(rows) - tail + self.dropped_lines
            return "\n".join(([f"   … {earlier} earlier line(s)"] if len(rows) > tail else []) + rows[-tail:])
        middle = [f"   … {self.dropped_lines} line(s), {self.dropped_chars} characters, not kept"] \
            if self.dropped_lines else []
        return "\n".join([f"# {self.title}", *rows[:len(self.head)], *middle, *rows[len(self.head):]])


def _lines(data: bytes) -> list[str]:
    """Split on LF, keeping a visible marker for anything but CRLF endings."""
    parts = data.split(b"\n")
    lines = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if last and not part:
            break
        if last:
            lines.append(_printable(part) + " (no line end)")
        elif part.endswith(b"\r"):
            lines.append(_printable(part[:-1]))
        else:
            lines.append(_printable(part) + " (bare LF)")
    return lines
