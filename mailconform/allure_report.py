"""The allure report as a lab reads it: a tree by target, lab activity and step; outcomes told
apart by categories; the run's environment; one clean results directory per run.

allure-pytest writes the results; this module only adds labels, titles, descriptions, attachments
and the two side files (``categories.json``, ``environment.properties``).  Nothing here is
needed for a run without ``--alluredir``.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from mailconform import annotate, messages, report
from mailconform.checks import CheckInfo
from mailconform.verdicts import Outcome

KEEP_HISTORY_OPTION = "--allure-keep-results"
_SEVERITY = {"critical": "blocker", "high": "critical", "medium": "normal", "low": "minor", "info": "trivial"}
#: What allure-pytest writes into a results directory (a run replaces them unless asked to keep them).
_RESULT_FILES = ("*-result.json", "*-container.json", "*-attachment.*", "categories.json", "environment.properties")


class Shown:
    """A parameter value allure shows as it is (it quotes a string: ``'alumno07'``)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def add_labels(item, info: CheckInfo, target: str, row_id: str, endpoint: str | None) -> None:
    """Labels on the item before it runs: the tree (parentSuite target, suite lab activity,
    subSuite step), behaviours (epic protocol, feature activity, story step), severity, target,
    check and the RFC link."""
    import allure

    step, activity = info.step_of(endpoint), info.activity_of(endpoint)
    for marker in (allure.parent_suite(target), allure.suite(activity), allure.sub_suite(step),
                   allure.epic(info.protocol), allure.feature(activity), allure.story(step),
                   allure.severity(allure.severity_level(_SEVERITY[info.severity])),
                   allure.label("target", target), allure.label("check", row_id),
                   allure.link(info.rfc_url, link_type="rfc", name=info.rfc_label)):
        item.add_marker(marker)


def attach(info: CheckInfo, target: str, row_id: str, outcome: Outcome, message: str, transcripts) -> None:
    """Title, description, the target parameter shown bare, and every transcript whole."""
    import allure

    mark = "" if outcome in (Outcome.PASS, Outcome.FAIL) else f"[{outcome.value}] "
    allure.dynamic.title(f"{mark}{row_id}: {info.title} [{target}]")
    allure.dynamic.description(report.description(info, outcome, message))
    allure.dynamic.parameter("target", Shown(target))
    if outcome is Outcome.WARN:
        allure.dynamic.tag("warning")
    for transcript in transcripts:
        allure.attach(transcript.render(timestamps=True, annotate=annotate.note), name=f"transcript {transcript.title}",
                      attachment_type=allure.attachment_type.TEXT)


def clean(directory: Path) -> None:
    """Remove the previous run's results, so a report shows this run only (not "retries")."""
    for pattern in _RESULT_FILES:
        for path in directory.glob(pattern):
            path.unlink(missing_ok=True)


def categories() -> list[dict]:
    """allure categories: fail, and the three kinds of "skipped" the suite means differently, by the
    first words of their message; then the families of findings."""
    skip = messages.core
    return [
        {"name": messages.label("category-open-relay"), "matchedStatuses": ["failed"],
         "messageRegex": "(?is).*relay.*"},
        # before the TLS family: an injection after STARTTLS speaks of TLS too (the first match wins)
        {"name": messages.label("category-smuggling"), "matchedStatuses": ["failed"],
         "messageRegex": "(?s).*(smuggl|injection|inyección|bare LF|bare CR|<LF>|<CR>).*"},
        {"name": messages.label("category-cleartext"), "matchedStatuses": ["failed"],
         "messageRegex": "(?s).*(cleartext|plaintext|en claro|before TLS|antes de TLS|LOGINDISABLED|PRIVACYREQUIRED).*"},
        {"name": messages.label("category-tls"), "matchedStatuses": ["failed"],
         "messageRegex": "(?s).*(TLS|certificate|certificado|handshake|STARTTLS|STLS).*"},
        {"name": messages.label("category-fail"), "matchedStatuses": ["failed"]},
        {"name": messages.label("category-inconclusive"), "matchedStatuses": ["skipped"],
         "messageRegex": _first_words(skip("skip-inconclusive", why=""))},
        {"name": messages.label("category-not-applicable"), "matchedStatuses": ["skipped"],
         "messageRegex": _first_words(skip("skip-not-applicable", why=""))},
        {"name": messages.label("category-blocked"), "matchedStatuses": ["skipped"],
         "messageRegex": _first_words(skip("blocked-by", cause="", reason="").split(" ")[0])},
        {"name": messages.label("category-broken"), "matchedStatuses": ["broken"]},
    ]


def _first_words(prefix: str) -> str:
    import re

    return f"(?s)(Skipped: )?{re.escape(prefix.strip().rstrip(':'))}.*"


def environment(targets, suite_version: str, lang: str) -> str:
    """``environment.properties``: the suite's version, the language and each target's services."""
    rows = [f"mailconform={suite_version}", f"language={lang}"]
    for target in targets:
        services = " ".join(f"{name}={endpoint}" for name, endpoint in target.services.items())
        rows.append(f"target.{target.name}={services}")
        rows.append(f"target.{target.name}.source={target.source or 'the system choice'}")
    return "\n".join(row.replace("\n", " ") for row in rows) + "\n"


def write_side_files(directory: Path, targets, suite_version: str, lang: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "categories.json").write_text(json.dumps(categories(), indent=2, ensure_ascii=False), encoding="utf-8")
    (directory / "environment.properties").write_text(environment(targets, suite_version, lang), encoding="utf-8")


def attach_files(directory: Path, target: str, step: str, files: list[Path], row: str) -> None:
    """Attach documents written after the run (the IMAP security report) to the result allure wrote
    for ``target``'s row ``row``, else to another of its results in lab step ``step``."""
    found = []
    for path in directory.glob("*-result.json"):
        result = json.loads(path.read_text(encoding="utf-8"))
        labels = {label["name"]: label["value"] for label in result.get("labels", [])}
        if labels.get("target") == target and labels.get("story") == step:
            found.append((labels.get("check") != row, path.name, path, result))
    if not found:
        return
    _, _, path, result = min(found, key=lambda candidate: candidate[:2])
    for document in files:
        source = f"{uuid.uuid4()}-attachment.md"
        (directory / source).write_bytes(document.read_bytes())
        result.setdefault("attachments", []).append({"name": document.name, "source": source, "type": "text/markdown"})
    path.write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
