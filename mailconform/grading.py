"""Grading: a rubric (TOML, a teacher edits it) turns each target's verdicts into points per lab
step and a total.  It never opens a socket: it reads the results the checks produced.

A step's score is its points times the share of its checks' weight earned: a pass earns the whole
weight (its severity's), a warning the rubric's share of it, a fail or a blocked check nothing; a
not-applicable check is left out; an inconclusive one earns nothing, is left out, or is left out
and flags the step for review, as the rubric says.  A waived check counts as passed, and says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mailconform import messages, suite_version
from mailconform.checks import SEVERITIES, STEPS
from mailconform.roster import toml_key
from mailconform.targets import FileProblems, read_toml
from mailconform.verdicts import Outcome

DEFAULT_RUBRIC = Path(__file__).parent / "rubric.toml"
DEFAULT_WEIGHTS = {"critical": 4, "high": 3, "medium": 2, "low": 1, "info": 0}  # when a rubric gives none
INCONCLUSIVE_POLICIES = ("zero", "exclude", "review")
UNREACHABLE_POLICIES = ("zero", "review")
#: Exit status when no check failed but some target could not be judged at all (pytest's own
#: codes are 0-5): a script must not take an unreachable server for a perfect one.
EXIT_NOT_JUDGED = 6
#: How a step's outcome follows from its checks': the first that any check has, in this order.
STEP_OUTCOME_ORDER = (Outcome.FAIL, Outcome.BLOCKED, Outcome.INCONCLUSIVE, Outcome.WARN, Outcome.PASS)


class RubricError(FileProblems):
    """A rubric file is wrong."""


@dataclass(frozen=True)
class Rubric:
    path: Path
    steps: dict[str, float]
    weights: dict[str, float]
    warn: float = 0.5
    inconclusive: str = "review"
    unreachable: str = "review"
    waivers: dict[str, dict[str, str]] = field(default_factory=dict)  # target → check → reason


def load_rubric(path: Path = DEFAULT_RUBRIC) -> Rubric:
    """Read and validate a rubric; :class:`RubricError` lists every problem at once."""
    data = read_toml(path, RubricError)
    errors: list[str] = []
    for key in data:
        if key not in ("scoring", "steps", "waivers"):
            errors.append(f"{key}: unknown table (known: scoring, steps, waivers)")
    scoring = data.get("scoring", {})
    for key in scoring:
        if key not in ("weights", "warn", "inconclusive", "unreachable"):
            errors.append(f"scoring.{key}: unknown key (known: inconclusive, unreachable, warn, weights)")
    weights = scoring.get("weights", DEFAULT_WEIGHTS)
    for severity in weights:
        if severity not in SEVERITIES:
            errors.append(f"scoring.weights.{severity}: unknown severity (known: {', '.join(SEVERITIES)})")
    errors += [f"scoring.weights.{s}: expected a number ≥ 0, got {v!r}" for s, v in weights.items()
               if not _number(v)]
    missing = [s for s in SEVERITIES if s not in weights]
    if missing:
        errors.append(f"scoring.weights: no weight for {', '.join(missing)}")
    warn = scoring.get("warn", 0.5)
    if not _number(warn) or warn > 1:
        errors.append(f"scoring.warn: expected a share from 0 to 1, got {warn!r}")
    for key, known in (("inconclusive", INCONCLUSIVE_POLICIES), ("unreachable", UNREACHABLE_POLICIES)):
        if scoring.get(key, "review") not in known:
            errors.append(f"scoring.{key}: expected one of {', '.join(known)}, got {scoring[key]!r}")
    steps = data.get("steps", {})
    for step, points in steps.items():
        if step not in STEPS:
            errors.append(f"steps.{step}: unknown lab step (known: {', '.join(STEPS)})")
        elif not _number(points):
            errors.append(f"steps.{step}: expected points ≥ 0, got {points!r}")
    waivers = data.get("waivers", {})
    for target, checks in waivers.items():
        if not isinstance(checks, dict):
            errors.append(f"waivers.{target}: expected a table of check = \"reason\"")
            continue
        errors += [f"waivers.{target}.{check}: expected the reason, a non-empty string" for check, reason in
                   checks.items() if not (isinstance(reason, str) and reason.strip())]
    if errors:
        raise RubricError(str(path), errors)
    return Rubric(path, {s: float(p) for s, p in steps.items()}, {s: float(w) for s, w in weights.items()},
                  float(warn), scoring.get("inconclusive", "review"), scoring.get("unreachable", "review"), waivers)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def grade(rubric: Rubric, results: list[dict]) -> dict[str, dict]:
    """Per target: ``score``, ``max``, ``flags`` and per graded step its ``outcome``, ``score``,
    ``max`` and checks (each row's ``check``, ``outcome``, one-line ``message``, ``waived``)."""
    by_target: dict[str, list[dict]] = {}
    for result in results:
        by_target.setdefault(result["target"], []).append(result)
    return {target: _grade_target(rubric, target, rows) for target, rows in by_target.items()}


def _grade_target(rubric: Rubric, target: str, rows: list[dict]) -> dict:
    waivers = rubric.waivers.get(target, {})
    flags: list[str] = []
    steps = {}
    decided = {Outcome.PASS.value, Outcome.WARN.value, Outcome.FAIL.value}
    unreachable = not any(row["outcome"] in decided for row in rows)
    for step, points in rubric.steps.items():
        checks = [_check_row(row, waivers) for row in rows if row["step"] == step]
        if checks:
            steps[step] = _grade_step(rubric, step, points, checks, rows, flags)
    score = sum(step["score"] for step in steps.values())
    maximum = sum(step["max"] for step in steps.values())
    if unreachable:  # "zero": every step it has counts, none earned; "review": left for the teacher
        flags.insert(0, messages.core("flag-unreachable"))
        maximum = sum(rubric.steps[s] for s in steps) if rubric.unreachable == "zero" else 0.0
        score = 0.0
    return {"score": round(score, 2), "max": round(maximum, 2), "judged": not unreachable, "flags": flags,
            "steps": steps}


def _check_row(row: dict, waivers: dict[str, str]) -> dict:
    waived = waivers.get(row["check"]) or waivers.get(row.get("id", ""))
    outcome = Outcome.PASS.value if waived else row["outcome"]
    message = f"waived: {waived}" if waived else (row["message"].splitlines() or [""])[0]
    return {"check": row["check"], "outcome": outcome, "message": message, "waived": bool(waived)}


def _grade_step(rubric: Rubric, step: str, points: float, checks: list[dict], rows: list[dict],
                flags: list[str]) -> dict:
    severity = {row["check"]: row["severity"] for row in rows}
    earned = possible = 0.0
    review = False
    for check in checks:
        weight = rubric.weights[severity[check["check"]]]
        outcome = check["outcome"]
        if outcome == Outcome.NOT_APPLICABLE.value:
            continue
        if outcome == Outcome.INCONCLUSIVE.value and rubric.inconclusive != "zero":
            review = review or rubric.inconclusive == "review"
            continue
        possible += weight
        earned += weight * {Outcome.PASS.value: 1.0, Outcome.WARN.value: rubric.warn}.get(outcome, 0.0)
    outcomes = {check["outcome"] for check in checks}
    outcome = next((o.value for o in STEP_OUTCOME_ORDER if o.value in outcomes), Outcome.NOT_APPLICABLE.value)
    if review:
        flags.append(messages.core("flag-review", step=step))
    if possible == 0:
        return {"outcome": outcome, "score": 0.0, "max": 0.0, "checks": checks}
    return {"outcome": outcome, "score": round(points * earned / possible, 2), "max": points, "checks": checks}


def grade_document(rubric: Rubric, grades: dict[str, dict], targets: list, lang: str, shard: str | None = None,
                   positions: dict[str, int] | None = None) -> dict:
    """The grade JSON: run metadata (with the rubric's points per step, so shards can be merged
    without it), then each target's grade.  ``positions``: each target's place in the whole
    (unsharded) run, so merged shards list the targets in the order one run would."""
    positions = positions or {t.name: place for place, t in enumerate(targets)}
    return {
        "run": {"suite_version": suite_version(), "time": _now(),
                "rubric": str(rubric.path), "lang": lang, "shard": shard, "steps": rubric.steps,
                "targets": {t.name: {"position": positions[t.name], "source": t.source or "the system's choice",
                                     "services": {s: str(e) for s, e in t.services.items()}} for t in targets}},
        "targets": {name: grades[name] for name in sorted(grades, key=lambda name: positions.get(name, 0))},
    }


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_csv(path: Path, document: dict) -> None:
    """One row per target: each graded step's points, total, max and flags; UTF-8 with a BOM, so a
    spreadsheet opens accents intact.  The header is in the run's language."""
    import csv

    grades = document["targets"]
    steps = [step for step in document["run"]["steps"]  # a step no target could be graded on has no column
             if any(grade["steps"].get(step, {}).get("max") for grade in grades.values())]
    with messages.speaking(document["run"]["lang"]), path.open("w", encoding="utf-8-sig", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([messages.label("target"), *steps, messages.label("total"), messages.label("max"),
                         messages.label("flags")])
        for target, grade in grades.items():
            writer.writerow([target, *(grade["steps"][s]["score"] if s in grade["steps"] else "" for s in steps),
                             grade["score"], grade["max"], "; ".join(grade["flags"])])


class MergeError(FileProblems):
    """Grade files that cannot be merged into one."""


def merge_documents(documents: dict[str, Any]) -> dict:
    """One grade document from the shards' (file name → parsed JSON): each a grade file, the same
    rubric in all, each target in one only; :class:`MergeError` lists every problem at once."""
    problems = [problem for name, document in documents.items() if (problem := grade_file_problem(name, document))]
    if problems:
        raise MergeError("merge", problems)
    runs = {name: document["run"] for name, document in documents.items()}
    first, *others = documents
    for name in others:
        if runs[name]["steps"] != runs[first]["steps"]:
            problems.append(f"{name}: graded with another rubric than {first} (points per step differ)")
    owner: dict[str, str] = {}
    for name, document in documents.items():
        for target in document["targets"]:
            if target in owner:
                problems.append(f"{name}: target {target} is graded in {owner[target]} too")
            owner.setdefault(target, name)
    if problems:
        raise MergeError("merge", problems)
    metadata = {target: data for run in runs.values() for target, data in run.get("targets", {}).items()}
    grades = {target: grade for document in documents.values() for target, grade in document["targets"].items()}
    order = sorted(grades, key=lambda target: metadata.get(target, {}).get("position", 0))
    return {
        "run": {**runs[first], "time": _now(), "shard": None, "merged_from": [
                    {"file": name, "shard": run.get("shard"), "time": run.get("time"),
                     "suite_version": run.get("suite_version")} for name, run in runs.items()],
                "targets": {target: metadata[target] for target in order if target in metadata}},
        "targets": {target: grades[target] for target in order},
    }


_MISSING = object()
#: What a value of a grade file must be, as a message says it, and how to tell.
_JSON_KINDS: dict[str, Callable[[Any], bool]] = {
    "an object": lambda value: isinstance(value, dict),
    "a number": lambda value: isinstance(value, (int, float)) and not isinstance(value, bool),
    "a string": lambda value: isinstance(value, str),
    "true or false": lambda value: isinstance(value, bool),
    "a list of strings": lambda value: isinstance(value, list) and all(isinstance(item, str) for item in value),
}


def grade_file_problem(name: str, document: Any) -> str | None:
    """Why the parsed JSON file ``name`` is no grade file as --grade-json writes it, in one line, or None."""
    why = _not_a_grade_file(document)
    return f"{name}: not a grade file written by --grade-json ({why})" if why else None


def _not_a_grade_file(document: Any) -> str | None:
    """The first thing that makes ``document`` no grade file, with its JSON path (never its value), or
    None: the merge, the CSV and the table may then read it blindly."""
    if not isinstance(document, dict):
        return f"expected an object at the top level, got {_json_kind(document)}"
    for path, value, kind in _grade_file_values(document):
        if value is _MISSING:
            return f"{path}: missing"
        if not _JSON_KINDS[kind](value):
            return f"{path}: expected {kind}, got {_json_kind(value)}"
    return None


def _grade_file_values(document: dict):
    """(JSON path, value, what it must be) for every value of a grade file the merge reads, each table
    before what is in it (the caller stops at the first that is wrong, so the next may index it)."""
    yield "run", document.get("run", _MISSING), "an object"
    run = document["run"]
    yield "run.steps", run.get("steps", _MISSING), "an object"
    for step, points in run["steps"].items():
        yield f"run.steps.{toml_key(step)}", points, "a number"
    yield "run.lang", run.get("lang", _MISSING), "a string"
    if "targets" in run:
        yield "run.targets", run["targets"], "an object"
        for target, about in run["targets"].items():
            yield f"run.targets.{toml_key(target)}", about, "an object"
            if "position" in about:
                yield f"run.targets.{toml_key(target)}.position", about["position"], "a number"
    yield "targets", document.get("targets", _MISSING), "an object"
    for target, graded in document["targets"].items():
        path = f"targets.{toml_key(target)}"
        yield path, graded, "an object"
        for key, kind in (("score", "a number"), ("max", "a number"), ("flags", "a list of strings"),
                          ("steps", "an object")):
            yield f"{path}.{key}", graded.get(key, _MISSING), kind
        if "judged" in graded:
            yield f"{path}.judged", graded["judged"], "true or false"
        for step, step_grade in graded["steps"].items():
            yield f"{path}.steps.{toml_key(step)}", step_grade, "an object"
            for key in ("score", "max"):
                yield f"{path}.steps.{toml_key(step)}.{key}", step_grade.get(key, _MISSING), "a number"


def _json_kind(value: Any) -> str:
    """What JSON calls the kind of ``value``: a message says it rather than the value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    kinds = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)
