"""Run the conformance suite in a separate pytest process and read back its verdicts."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass
class SuiteRun:
    returncode: int
    output: str
    results: list[dict]
    reports: Path

    def outcomes(self, target: str) -> dict[str, str]:
        """check id → outcome, for one target."""
        return {r["check"]: r["outcome"] for r in self.results if r["target"] == target}

    def checks_with(self, target: str, outcome: str) -> set[str]:
        return {check for check, got in self.outcomes(target).items() if got == outcome}

    def message(self, target: str, check: str) -> str:
        return next(r["message"] for r in self.results if r["target"] == target and r["check"] == check)


_ROW = re.compile(r"^([a-z0-9]+\.[a-z0-9.-]+(?:\[[a-z0-9.-]+\])?(?:@[a-z0-9]+)?)\s")


@cache
def listed_checks(step: str = "") -> tuple[str, ...]:
    """The rows the suites declare (``pytest --list-checks``), of one lab step or activity if given:
    what the self-tests expect comes from collection, never from a hand-kept list."""
    command = [sys.executable, "-m", "pytest", "suites", "-p", "no:cacheprovider", "--list-checks"]
    done = subprocess.run(command + (["--step", step] if step else []), cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=True)
    return tuple(match.group(1) for match in map(_ROW.match, done.stdout.splitlines()) if match)


def run_suite(reports: Path, targets: list[str], targets_file: Path | None = None, *args: str,
              timeout: float = 900) -> SuiteRun:
    """``pytest suites --target …`` with JSON, allure and JUnit output under ``reports``."""
    reports.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pytest", "suites", "-p", "no:cacheprovider", "-q",
               f"--results-json={reports / 'results.json'}", f"--alluredir={reports / 'allure'}",
               f"--junitxml={reports / 'junit.xml'}", *(f"--target={t}" for t in targets), *args]
    if targets_file is not None:
        command.append(f"--targets-file={targets_file}")
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    results_file = reports / "results.json"
    results = json.loads(results_file.read_text())["results"] if results_file.exists() else []
    return SuiteRun(done.returncode, done.stdout + done.stderr, results, reports)


def everything_written(run: SuiteRun) -> str:
    """Terminal output plus every report file, to search for things that must never appear."""
    texts = [run.output]
    for path in run.reports.rglob("*"):
        if path.is_file():
            texts.append(path.read_text(errors="replace"))
    return "\n".join(texts)
