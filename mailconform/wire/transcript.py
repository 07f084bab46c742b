"""A transcript of every byte each way, shown like the lab handout (``C:`` / ``S:``).

Secrets are redacted when they are recorded, so no rendering of a transcript can leak them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from mailconform.wire.secret import Secret

REDACTED = "***"


@dataclass(frozen=True)
class Entry:
    direction: str  # "C" client, "S" server, "*" a note from the suite
    text: str
    at: float


def _printable(data: bytes) -> str:
    """Show bytes as text, with line ends and control bytes made visible."""
    text = data.decode("utf-8", errors="backslashreplace")
    out = []
    for ch in text:
        if ch == "\r":
            out.append("\\r")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t" or ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\x{ord(ch):02x}")
    return "".join(out)


@dataclass
class Transcript:
    """Everything exchanged with one endpoint, in order."""

    title: str
    entries: list[Entry] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def _add(self, direction: str, text: str) -> None:
        self.entries.append(Entry(direction, text, time.monotonic() - self.started))

    def client(self, data: bytes | Secret, redacted: str | None = None) -> None:
        """Record bytes the client sent; ``redacted`` replaces them when they hold a secret."""
        if isinstance(data, Secret) and redacted is None:
            redacted = REDACTED
        for line in _lines(data) if redacted is None else [redacted]:
            self._add("C", line)

    def server(self, data: bytes) -> None:
        for line in _lines(data):
            self._add("S", line)

    def note(self, text: str) -> None:
        self._add("*", text)

    def render(self, tail: int | None = None, timestamps: bool = False) -> str:
        entries = self.entries if tail is None else self.entries[-tail:]
        rows = [f"# {self.title}"] if tail is None else []
        if tail is not None and len(self.entries) > tail:
            rows.append(f"   … {len(self.entries) - tail} earlier line(s)")
        for e in entries:
            stamp = f"[{e.at:7.3f}] " if timestamps else ""
            rows.append(f"{stamp}{e.direction}: {e.text}")
        return "\n".join(rows)


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
