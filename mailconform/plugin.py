"""The pytest plugin: options, target parametrization, outcomes, allure labels, results.

Registered through the ``pytest11`` entry point, so its options are known before pytest reads
the command line.  Checks live in ``suites/``; this module never judges a server itself.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mailconform import report
from mailconform.checks import (
    STEPS, Blocked, CheckFailed, CheckInfo, Inconclusive, NotApplicable, Outcome, TemporaryRefusal, check_info,
    current_warnings,
)
from mailconform.dns import DnsFailure, Lookup
from mailconform.sessions import CheckRun, Failure, Mailbox, Pop3Factory, ServiceHealth, SmtpFactory
from mailconform.targets import Target, TargetsError, load_targets, resolve_targets
from mailconform.wire import ConnectFailed, ReplyTimeout, TlsFailed, WireError

TARGET_PARAM = "target"  # parametrized by target *name*: reports never hold a password
RESULT_PROPERTY = "mailconform"


@dataclass
class RunState:
    """What the plugin knows for one pytest run."""

    targets_file: Path
    targets: list[Target] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    health: ServiceHealth = field(default_factory=ServiceHealth)
    dns_answers: dict[str, dict] = field(default_factory=dict)  # per target: (name, type) → answer

    def target(self, name: str) -> Target:
        return next(t for t in self.targets if t.name == name)


STATE = pytest.StashKey[RunState]()
RUN = pytest.StashKey[CheckRun]()
RESULT = pytest.StashKey[dict]()


# --------------------------------------------------------------------------- options and configuration

def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mailconform", "mailconform: mail server conformance")
    group.addoption("--target", action="append", default=[], metavar="NAME|URL",
                    help="run the checks against this target: a name from the targets file, or a URL such as "
                         "smtp://host:25, pop3s://user@host (password from MAILCONFORM_PASSWORD, a CA to trust from "
                         "MAILCONFORM_CA_FILE). Repeatable; "
                         "a comma-separated list works too.")
    group.addoption("--targets-file", default=None, metavar="PATH",
                    help="the targets file (default: targets.toml in the rootdir).")
    group.addoption("--step", action="append", default=[], metavar="STEP",
                    help="run only the checks of this lab step, e.g. A1.smtp-session. Repeatable.")
    group.addoption("--results-json", default=None, metavar="PATH",
                    help="write every check's verdict (target, check, step, outcome, message) to this JSON file.")


def pytest_configure(config: pytest.Config) -> None:
    option = config.option
    targets_file = Path(option.targets_file) if option.targets_file else config.rootpath / "targets.toml"
    state = RunState(targets_file=targets_file)
    config.stash[STATE] = state
    if option.help or option.version:
        return
    unknown_steps = [s for s in _split(option.step) if s not in STEPS]
    if unknown_steps:
        raise pytest.UsageError(f"unknown --step {', '.join(unknown_steps)} (lab steps: {', '.join(STEPS)})")
    state.steps = _split(option.step)
    config.pluginmanager.register(Results(config), "mailconform-results")
    try:
        state.targets = resolve_targets(option.target, targets_file)
    except TargetsError as error:
        raise pytest.UsageError(str(error)) from None


def _split(values: list[str]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash[STATE]
    if not state.targets:
        return []
    lines = [f"mailconform: {len(state.targets)} target(s) (targets file {state.targets_file})"]
    lines += [f"  {target.summary()}" for target in state.targets]
    if state.steps:
        lines.append(f"  steps: {', '.join(state.steps)}")
    return lines


# --------------------------------------------------------------------------- collection

def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if check_info(metafunc.function) is None:
        return
    state = metafunc.config.stash[STATE]
    if not state.targets:
        return  # reported as a usage error once collection is over
    if TARGET_PARAM not in metafunc.fixturenames:
        metafunc.fixturenames.append(TARGET_PARAM)
    names = [t.name for t in state.targets]
    metafunc.parametrize(TARGET_PARAM, names, ids=names, indirect=True)


def _known_names(state: RunState) -> str:
    try:
        names = list(load_targets(state.targets_file))
    except TargetsError:
        return f"{state.targets_file} could not be read"
    return f"known in {state.targets_file.name}: {', '.join(names) or 'none'}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash[STATE]
    seen: dict[str, str] = {}
    selected, deselected = [], []
    for item in items:
        info = _info(item)
        if info is None:
            selected.append(item)
            continue
        if not state.targets:
            raise pytest.UsageError(
                f"no target: run e.g. pytest --target=NAME or --target=smtp://host ({_known_names(state)})")
        function = item.nodeid.split("[")[0]
        owner = seen.setdefault(info.id, function)
        if owner != function:
            raise pytest.UsageError(f"check id {info.id} is declared twice: {owner} and {function}")
        if state.steps and info.step not in state.steps:
            deselected.append(item)
            continue
        selected.append(item)
        if config.pluginmanager.hasplugin("allure_pytest"):
            _add_allure_labels(item, info)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


_ALLURE_SEVERITY = {"critical": "blocker", "high": "critical", "medium": "normal", "low": "minor", "info": "trivial"}


def _add_allure_labels(item: pytest.Item, info: CheckInfo) -> None:
    import allure

    item.add_marker(allure.epic(info.protocol))
    item.add_marker(allure.feature(info.activity))
    item.add_marker(allure.story(info.step))
    item.add_marker(allure.severity(allure.severity_level(_ALLURE_SEVERITY[info.severity])))
    item.add_marker(allure.label("target", _target_name(item)))
    item.add_marker(allure.label("check", info.id))
    item.add_marker(allure.link(info.rfc_url, link_type="rfc", name=info.rfc_label))


def _info(item: pytest.Item) -> CheckInfo | None:
    return check_info(getattr(item, "function", None))


def _target_name(item: pytest.Item) -> str:
    return item.callspec.params[TARGET_PARAM]


# --------------------------------------------------------------------------- fixtures

@pytest.fixture
def target(request: pytest.FixtureRequest) -> Target:
    """The target this check runs against (the parameter is its name)."""
    return request.config.stash[STATE].target(request.param)


@pytest.fixture
def check_run(request: pytest.FixtureRequest, target: Target) -> CheckRun:
    """Transcripts and warnings of the running check."""
    return request.node.stash[RUN]


@pytest.fixture
def smtp(request: pytest.FixtureRequest, target: Target, check_run: CheckRun) -> SmtpFactory:
    """Opens SMTP sessions to the target: ``smtp.connect()``, ``smtp.session()``."""
    return SmtpFactory(target, check_run, request.config.stash[STATE].health)


@pytest.fixture
def pop3(request: pytest.FixtureRequest, target: Target, check_run: CheckRun) -> Pop3Factory:
    """Opens POP3 sessions to the target: ``pop3.session()``, ``pop3.logged_in()``…"""
    return Pop3Factory(target, check_run, request.config.stash[STATE].health)


@pytest.fixture
def mailbox(target: Target, smtp: SmtpFactory, pop3: Pop3Factory):
    """Delivers probe messages over SMTP and finds them over POP3; removes them afterwards."""
    box = Mailbox(target, smtp, pop3)
    yield box
    box.clean_up()


@pytest.fixture
def recipient(target: Target) -> str:
    """The address RCPT probes use: the account's, else postmaster of the domain (RFC 5321 §4.5.1)."""
    if target.account and target.account.address:
        return target.account.address
    if target.domain:
        return f"postmaster@{target.domain}"
    raise NotApplicable("no recipient address: give the target a domain or an [account] with an address")


@pytest.fixture
def intrusive_recipient(target: Target) -> str:
    """The account's own address, for checks that really send a message (``intrusive = true`` only)."""
    if not target.intrusive:
        raise NotApplicable("the target sets intrusive = false, so the suite sends it no message")
    if not (target.account and target.account.address):
        raise NotApplicable("the suite sends messages only to the target's [account] address, and it has none")
    return target.account.address


@pytest.fixture
def dns_lookup(request: pytest.FixtureRequest, target: Target, check_run: CheckRun) -> Lookup:
    """DNS queries through the target's resolver, recorded in the check's transcript."""
    answers = request.config.stash[STATE].dns_answers.setdefault(target.name, {})
    return Lookup(target, check_run.transcript("dns"), answers)


# --------------------------------------------------------------------------- running a check

@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    info = _info(item)
    if info is None:
        return (yield)
    item.stash[RUN] = CheckRun(info.id, item.config.stash[STATE].target(_target_name(item)))
    try:
        return (yield)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:
        _raise_as_verdict(item, info, error)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """Run the check, then translate what it raised into one of the six outcomes."""
    info = _info(item)
    if info is None:
        return (yield)
    token = current_warnings.set(item.stash[RUN].warnings)
    try:
        try:
            result = yield
        except TemporaryRefusal as refusal:
            result = _retry(item, refusal)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:
        _raise_as_verdict(item, info, error)
    finally:
        current_warnings.reset(token)
    _conclude(item, info, None)
    return result


RETRY_PAUSE = 2.0  # seconds before the one retry of a check the server answered "not now"


def _retry(item: pytest.Item, refusal: TemporaryRefusal):
    """Run the check once more after a pause; what that attempt raises is the verdict.  Once a retry
    has met a refusal again, the target is not retried any more this run (it costs a pause each)."""
    run, health = item.stash[RUN], item.config.stash[STATE].health
    if health.get(run.target, "retry") is not None:
        raise refusal
    run.transcript("retry").note(f"{refusal}; retrying once in {RETRY_PAUSE:g} s")
    time.sleep(RETRY_PAUSE)
    try:
        return item.runtest()
    except TemporaryRefusal as again:
        health.record(run.target, "retry", Failure(run.check_id, str(again)))
        raise


def _raise_as_verdict(item: pytest.Item, info: CheckInfo, error: BaseException) -> None:
    """Record what ``error`` means for the check, then raise what pytest should see."""
    replacement = _conclude(item, info, error)
    if replacement is not None:
        raise replacement from error  # the chained traceback shows where; secrets there are Secret(***)
    raise error


def _conclude(item: pytest.Item, info: CheckInfo, error: BaseException | None) -> BaseException | None:
    """Record the check's outcome; return the exception pytest should see instead, if any."""
    run = item.stash[RUN]
    if error is None:
        outcome, message, replacement = (Outcome.WARN if run.warnings else Outcome.PASS), "; ".join(run.warnings), None
    else:
        outcome, message, replacement = _classify(error)
    run.close()
    item.stash[RESULT] = {"outcome": outcome.value, "message": message}
    _attach_to_allure(item, info, run, outcome, message)
    return replacement


def _classify(error: BaseException) -> tuple[Outcome, str, BaseException | None]:
    """(outcome, message, exception to raise instead — a skip for outcomes that are not failures)."""
    if isinstance(error, CheckFailed):
        return Outcome.FAIL, str(error), None
    if isinstance(error, Inconclusive):
        return Outcome.INCONCLUSIVE, str(error), pytest.skip.Exception(f"inconclusive: {error}")
    if isinstance(error, NotApplicable):
        return Outcome.NOT_APPLICABLE, str(error), pytest.skip.Exception(f"not applicable: {error}")
    if isinstance(error, Blocked):
        return Outcome.BLOCKED, str(error), pytest.skip.Exception(str(error))
    if _undecided(error):
        return Outcome.INCONCLUSIVE, str(error), pytest.skip.Exception(f"inconclusive: {error}")
    if isinstance(error, (WireError, DnsFailure)):
        return Outcome.FAIL, str(error), CheckFailed(str(error))
    if isinstance(error, pytest.skip.Exception):
        return Outcome.NOT_APPLICABLE, str(error), None
    if isinstance(error, pytest.fail.Exception) and str(error).startswith("Timeout"):
        return Outcome.INCONCLUSIVE, f"the check hung and was stopped ({error})", None
    if isinstance(error, AssertionError):
        return Outcome.FAIL, str(error), None
    # A bug in the suite says nothing about the server: pytest shows it, the verdict stays open.
    return Outcome.INCONCLUSIVE, f"the check itself broke: {error!r}", None


def _undecided(error: BaseException) -> bool:
    """Errors that tell nothing about the server's conformance: timeouts, a host that cannot be
    reached or resolved, TLS trouble (the TLS steps judge it), a resolver that did not answer."""
    if isinstance(error, (ReplyTimeout, TlsFailed)):
        return True
    if isinstance(error, ConnectFailed):
        return error.kind != "refused"
    if isinstance(error, DnsFailure):
        return error.kind != "nxdomain"
    return False


def _attach_to_allure(item: pytest.Item, info: CheckInfo, run: CheckRun, outcome: Outcome, message: str) -> None:
    if not item.config.pluginmanager.hasplugin("allure_pytest"):
        return
    import allure

    allure.dynamic.title(f"{info.id}: {info.title} [{run.target.name}]")
    allure.dynamic.description(report.description(info, outcome, message))
    for transcript in run.transcripts:
        allure.attach(transcript.render(timestamps=True), name=f"transcript {transcript.title}",
                      attachment_type=allure.attachment_type.TEXT)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report_ = yield
    info = _info(item)
    if info is None or RESULT not in item.stash:
        return report_
    result = {"target": _target_name(item), "check": info.id, "step": info.step, "severity": info.severity,
              "rfc": info.rfc_label, "level": info.level, **item.stash[RESULT]}
    del item.stash[RESULT]
    report_.user_properties.append((RESULT_PROPERTY, json.dumps(result)))
    run = item.stash[RUN]
    if result["outcome"] == Outcome.FAIL.value:
        report_.sections.append(("mailconform", report.failure_details(info)))
    for transcript in run.transcripts:
        report_.sections.append((f"transcript {transcript.title}", transcript.render(timestamps=True)))
    return report_


# --------------------------------------------------------------------------- results

class Results:
    """Collects every check's verdict (also from xdist workers) and writes the summaries."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.results: list[dict] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name == RESULT_PROPERTY:
                self.results.append(json.loads(value))

    def pytest_sessionfinish(self) -> None:
        path = self.config.option.results_json
        if path and not hasattr(self.config, "workerinput"):  # under xdist, only the controller writes
            Path(path).write_text(json.dumps({"results": self.results}, indent=2), encoding="utf-8")

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.results:
            terminalreporter.write_sep("=", "mailconform verdicts")
            terminalreporter.write_line(report.summary_table(self.results))
