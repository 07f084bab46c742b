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
    peak_rss_mb: float = 0.0  # the largest process of the run (a worker under -n), when measured

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


#: Runs a command and prints the peak resident size of its largest descendant, in kilobytes.
_PEAK_RSS = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)")


def run_suite(reports: Path, targets: list[str], targets_file: Path | None = None, *args: str,
              timeout: float = 900, measure_memory: bool = False) -> SuiteRun:
    """``pytest suites --target …`` with JSON, allure and JUnit output under ``reports``."""
    reports.mkdir(parents=True, exist_ok=True)
    command = [*([sys.executable, "-c", _PEAK_RSS] if measure_memory else []),
               sys.executable, "-m", "pytest", "suites", "-p", "no:cacheprovider", "-q",
               f"--results-json={reports / 'results.json'}", f"--alluredir={reports / 'allure'}",
               f"--junitxml={reports / 'junit.xml'}", *(f"--target={t}" for t in targets), *args]
    if targets_file is not None:
        command.append(f"--targets-file={targets_file}")
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    results_file = reports / "results.json"
    results = json.loads(results_file.read_text())["results"] if results_file.exists() else []
    peak = float(done.stderr.strip().splitlines()[-1]) / 1024 if measure_memory else 0.0
    return SuiteRun(done.returncode, done.stdout + done.stderr, results, reports, peak)


def everything_written(run: SuiteRun) -> str:
    """Terminal output plus every report file, to search for things that must never appear."""
    texts = [run.output]
    for path in run.reports.rglob("*"):
        if path.is_file():
            texts.append(path.read_text(errors="replace"))
    return "\n".join(texts)


def twin_table(name: str, twin, password: str, *, cleartext_auth: bool = False) -> str:
    """A targets.toml table for a STARTTLS-capable mail twin: its smtp port doubles as submission
    (STARTTLS, then AUTH inside TLS), smtps is its implicit-TLS port, its CA is the trust anchor."""
    return (f'[targets.{name}]\nhost = "{twin.host}"\ndomain = "twin.test"\nintrusive = true\n'
            f'allow_cleartext_auth = {str(cleartext_auth).lower()}\ntimeout = 2\ndelivery_wait = 1\n'
            f'connections_per_second = 1000\n'
            f'[targets.{name}.services]\nsmtp = {twin.smtp_port}\nsubmission = {twin.smtp_port}\n'
            f'smtps = {twin.smtps_port}\npop3 = {twin.pop3_port}\n'
            f'[targets.{name}.tls]\nca_file = "{twin.ca_file}"\nserver_name = "{twin.server_name}"\n'
            f'[targets.{name}.account]\nuser = "alice"\npassword = "{password}"\naddress = "alice@twin.test"\n')


def mailbox_size(address: str) -> int:
    """How many messages alice has on the reference instance at ``address`` (POP3 inside STLS, as the
    suite logs in): a self-test compares it before and after a run to prove probes are cleaned up."""
    from mailconform.targets import load_targets
    from mailconform.wire import Pop3Session, Transcript
    from mailconform.wire.tls import client_context

    reference = load_targets(REPO / "targets.toml")["reference"]
    session = Pop3Session.connect(address, 110, timeout=5, transcript=Transcript("self-test"), source=reference.source)
    try:
        session.stls(client_context(reference.tls), reference.tls.server_name)
        assert session.login(reference.account.user, reference.account.password).ok
        return len(session.message_numbers())
    finally:
        session.finish()
