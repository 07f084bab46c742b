"""What a person reads: failure details, allure descriptions, the terminal summary table."""

from __future__ import annotations

import inspect
from collections import Counter, defaultdict

from mailconform import messages
from mailconform.checks import STEPS, CheckInfo
from mailconform.grading import STEP_OUTCOME_ORDER
from mailconform.verdicts import Outcome

_COLUMNS = [o.value for o in Outcome]


def failure_details(info: CheckInfo, step: str) -> str:
    """The requirement and the setting that fixes it, shown under a failed check (of lab step ``step``)."""
    rows = [f"{info.id} ({step}): {info.title}", f"{info.rfc_label}, {info.level}: {info.rfc_url}"]
    if info.fix:
        rows.append(f"{messages.label('fix')}: {info.fix}")
    return "\n".join(rows)


def description(info: CheckInfo, outcome: Outcome, message: str) -> str:
    """The allure description (Markdown), one paragraph each: what the check establishes (the
    RFC's words), the verdict with Expected/Actual, the fix, the RFC link."""
    quoted = "\n".join(f"> {line}" if line else ">" for line in inspect.cleandoc(info.doc).splitlines())
    paragraphs = [f"**{info.title}**", quoted, f"**{messages.label('verdict')}:** {outcome.value}"]
    if message:
        paragraphs.append(FENCE + "\n" + message.replace(FENCE, "` ` `") + "\n" + FENCE)
    if info.fix:
        paragraphs.append(f"**{messages.label('fix')}:** {info.fix}")
    paragraphs.append(f"[{info.rfc_label}]({info.rfc_url}) ({info.level})")
    return "\n\n".join(paragraphs)


FENCE = "`" * 3  # a Markdown code block keeps Expected and Actual aligned


#: What a summary lists first, and how many findings it shows per target.  A blocked check is left
#: out: what blocked it is listed.
_FINDING_ORDER = ("fail", "warn", "inconclusive")
_SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")
TOP_FINDINGS = 5


def summary(results: list[dict], grades: dict[str, dict], targets: list[str]) -> list[str]:
    """The end-of-run summary: per target (in the order of ``targets``) one row per lab step
    (outcome, points, how many checks ended in each outcome), its score, then its top findings
    with the fix."""
    counts: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for result in results:
        counts[(result["target"], result["step"])][result["outcome"]] += 1
    header = [messages.label("target"), messages.label("step"), messages.label("outcome"),
              messages.label("points"), *_COLUMNS]
    rows: list[list[str] | str] = [header]
    targets = [target for target in targets if any(result["target"] == target for result in results)]
    for target in targets:
        steps = grades.get(target, {}).get("steps", {})
        for step in (step for step in STEPS if (target, step) in counts):  # in lab order
            count = counts[(target, step)]
            graded = steps.get(step)
            points = f"{graded['score']:g} / {graded['max']:g}" if graded else "-"
            outcome = graded["outcome"] if graded else _step_outcome(count)
            rows.append([target, step, outcome, points, *(str(count[o] or "") for o in _COLUMNS)])
        rows.append(score_line(target, grades.get(target)))
    table = [row for row in rows if isinstance(row, list)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [row if isinstance(row, str) else "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
             for row in rows]
    for target in targets:
        lines += findings(target, [r for r in results if r["target"] == target])
    return lines


def score_line(target: str, grade: dict | None) -> str:
    if grade is None:
        return f"{messages.label('score'):13} {target}: -"
    flags = f" — {'; '.join(grade['flags'])}" if grade["flags"] else ""
    return f"{messages.label('score'):13} {target}: {grade['score']:g} / {grade['max']:g}{flags}"


def _step_outcome(count: Counter) -> str:
    """A step no rubric grades: its outcome by the same order as a graded step's."""
    return next((o.value for o in STEP_OUTCOME_ORDER if count[o.value]), Outcome.NOT_APPLICABLE.value)


def findings(target: str, results: list[dict]) -> list[str]:
    """The target's most important findings: failures by severity, then warnings, then what could
    not be decided, each with its first message line and the fix; checks with the same message on
    one line.  Then one line per cause that blocked other checks, with how many and which."""
    found = sorted((r for r in results if r["outcome"] in _FINDING_ORDER),
                   key=lambda r: (_FINDING_ORDER.index(r["outcome"]), _SEVERITY_ORDER.index(r["severity"])))
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in found:
        groups.setdefault((r["outcome"], (r["message"].splitlines() or [""])[0]), []).append(r)
    blocked: dict[str, list[dict]] = {}
    for r in results:
        if r["outcome"] == "blocked":
            blocked.setdefault(r.get("blocked_by") or "?", []).append(r)
    if not groups and not blocked:
        return []
    lines = [""]
    for (outcome, first_line), rows in list(groups.items())[:TOP_FINDINGS]:
        lines.append(f"{outcome.upper():13} {target} {_checks(rows)}: {first_line}")
        if outcome in ("fail", "warn") and rows[0].get("fix"):
            lines.append(f"{'':13} {messages.label('fix')}: {rows[0]['fix']}")
    if len(groups) > TOP_FINDINGS:
        more = sum(len(rows) for rows in list(groups.values())[TOP_FINDINGS:])
        lines.append(f"{'':13} {messages.core('more-findings', count=more, target=target)}")
    for cause, rows in blocked.items():
        lines.append(f"{'BLOCKED':13} {target} {messages.core('blocked-count', count=len(rows), cause=cause)}: "
                     f"{_checks(rows)}")
    return lines


def _checks(rows: list[dict], shown: int = 3) -> str:
    names = [r["check"] for r in rows]
    return ", ".join(names[:shown]) + (f" (+{len(names) - shown})" if len(names) > shown else "")
