"""What a person reads: failure details, allure descriptions, the terminal summary table."""

from __future__ import annotations

import inspect
from collections import Counter, defaultdict

from mailconform import messages
from mailconform.checks import CheckInfo
from mailconform.verdicts import Outcome

_COLUMNS = [o.value for o in Outcome]


def failure_details(info: CheckInfo) -> str:
    """The requirement and the setting that fixes it, shown under a failed check."""
    rows = [f"{info.id} ({info.step}): {info.title}", f"{info.rfc_label}, {info.level}: {info.rfc_url}"]
    if info.fix:
        rows.append(f"{messages.label('fix')}: {info.fix}")
    return "\n".join(rows)


def description(info: CheckInfo, outcome: Outcome, message: str) -> str:
    """The allure description: the requirement quoted in the docstring, the verdict, the fix."""
    rows = [info.title, "", inspect.cleandoc(info.doc), "",
            f"{messages.label('verdict')}: {outcome.value}" + (f" — {message}" if message else "")]
    if info.fix:
        rows.append(f"{messages.label('fix')}: {info.fix}")
    rows.append(f"{info.rfc_label} ({info.level}): {info.rfc_url}")
    return "\n".join(rows)


def summary_table(results: list[dict]) -> str:
    """One row per target and lab step: how many checks ended in each outcome; then what failed."""
    counts: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for result in results:
        counts[(result["target"], result["step"])][result["outcome"]] += 1
    header = ["target", "step", *_COLUMNS]
    rows = [header] + [[t, s, *(str(c[o] or "") for o in _COLUMNS)] for (t, s), c in sorted(counts.items())]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    problems = [r for r in results if r["outcome"] in ("fail", "inconclusive", "blocked")]
    if problems:
        lines.append("")
        for r in problems:
            first_line = (r["message"].splitlines() or [""])[0]
            lines.append(f"{r['outcome'].upper():13} {r['target']} {r['check']}: {first_line}")
    return "\n".join(lines)
