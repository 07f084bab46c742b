"""The pytest plugin: options, target parametrization, order, outcomes, allure labels, results.

Registered through the ``pytest11`` entry point, so its options are known before pytest reads
the command line.  Checks live in ``suites/``; this module never judges a server itself.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mailconform import allure_report, annotate, documents, messages, report, suite_version
from mailconform.checks import ACTIVITIES, STEPS, CheckInfo, check_info, step_selection
from mailconform.discovery import Discovery, discover
from mailconform.discovery import apply as apply_discovery
from mailconform.dns import DnsFailure, Lookup
from mailconform.grading import DEFAULT_RUBRIC, EXIT_NOT_JUDGED, Rubric, RubricError, grade, grade_document, load_rubric, write_csv
from mailconform.capture import Capture, file_stem
from mailconform.mailbox import Mailbox
from mailconform.scheduling import Shard, target_of
from mailconform.sessions import CheckRun, ImapFactory, Pop3Factory, SmtpFactory, TlsFactory
from mailconform.targetrun import Failure, TargetRun
from mailconform.targets import (
    Target, TargetsError, load_targets, load_targets_file, resolve_targets, target_table, unforeseen,
)
from mailconform.verdicts import (
    Blocked, CheckContext, CheckFailed, Inconclusive, NotApplicable, Outcome, TemporaryRefusal, current_check,
)
from mailconform.wire import ConnectFailed, EndlessReply, ReplyTimeout, TlsFailed, WireError
from mailconform.wire.budget import BudgetExceeded
from mailconform.wire.secret import register as register_secret
from mailconform.wire.transcript import shown

TARGET_PARAM = "target"  # parametrized by target *name*: reports never hold a password
RESULT_PROPERTY = "mailconform"
DISCOVERIES = "mailconform_discoveries"  # what the controller found on mail:// targets, for the workers


@dataclass
class RunState:
    """What the plugin knows for one pytest run (in each process)."""

    targets_file: Path
    targets: list[Target] = field(default_factory=list)
    discoveries: dict[str, Discovery] = field(default_factory=dict)  # whole-server URLs: what was found
    steps: set[str] = field(default_factory=set)
    runs: dict[str, TargetRun] = field(default_factory=dict)
    rubric: Rubric | None = None
    shard: Shard | None = None
    positions: dict[str, int] = field(default_factory=dict)  # each target's place in the unsharded run
    capture_dir: Path | None = None

    def target(self, name: str) -> Target:
        return next(t for t in self.targets if t.name == name)

    def target_run(self, name: str) -> TargetRun:
        """The run scope of target ``name``, made on first use in this process."""
        if name not in self.runs:
            self.runs[name] = TargetRun(self.target(name), self.capture_dir)
        return self.runs[name]


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
                    help="run only the checks of this lab step (e.g. A1.smtp-session) or activity (e.g. A1). "
                         "Repeatable.")
    group.addoption("--lang", default=messages.DEFAULT_LANGUAGE, choices=sorted(messages.LANGUAGES),
                    help="language of titles, messages and fixes: en (default) or es.")
    group.addoption("--list-checks", action="store_true", default=False,
                    help="list every check with its ID, step, level, RFC and title (in --lang), then exit.")
    group.addoption("--save-target", default=None, metavar="NAME",
                    help="write the target a URL resolved to (services found, domain, TLS settings; never the "
                         "password) into the targets file as [targets.NAME], then run as usual.")
    group.addoption("--rubric", default=None, metavar="PATH",
                    help="the grading rubric (TOML; default: the one mailconform ships, mailconform/rubric.toml).")
    group.addoption("--grade-json", default=None, metavar="PATH",
                    help="write each target's grade (run metadata, score per step and check) to this JSON file.")
    group.addoption("--grade-csv", default=None, metavar="PATH",
                    help="write one row per target (points per step, total, max, flags) to this CSV file.")
    group.addoption("--shard", default=None, metavar="K/N",
                    help="run only the K-th of N shares of the targets (round robin in the order given, so every "
                         "machine or CI job of a class gets its own); merge the grade files with mailconform merge.")
    group.addoption(allure_report.KEEP_HISTORY_OPTION, action="store_true", default=False,
                    help="keep the results of earlier runs in --alluredir (default: each run replaces them).")
    group.addoption("--capture-dir", default=None, metavar="DIR",  # pytest's own --capture is output capturing
                    help="record each target's traffic to DIR/NAME.pcapng with a TLS key log DIR/NAME.keys "
                         "(Wireshark decrypts with it; it is a secret), and check it (lab step A1.capture). "
                         "Needs dumpcap and tshark.")
    group.addoption("--report-dir", default=None, metavar="DIR",
                    help="write each target's reports into DIR/NAME/: the IMAP security report (lab exercise E) "
                         "in English and Spanish, written from the run's observations. Also attached to allure.")
    group.addoption("--results-json", default=None, metavar="PATH",
                    help="write every check's verdict (target, check, step, outcome, message) to this JSON file.")


def pytest_configure(config: pytest.Config) -> None:
    option = config.option
    targets_file = Path(option.targets_file) if option.targets_file else config.rootpath / "targets.toml"
    state = RunState(targets_file=targets_file)
    config.stash[STATE] = state
    if option.help or option.version:
        return
    messages.language.set(option.lang)
    steps, unknown = step_selection(_split(option.step))
    if unknown:
        raise pytest.UsageError(f"unknown --step {', '.join(unknown)} (lab steps: {', '.join(STEPS)}; "
                                f"or a whole activity: {', '.join(ACTIVITIES)})")
    state.steps = steps
    if option.list_checks:
        return
    try:
        state.rubric = load_rubric(Path(option.rubric) if option.rubric else DEFAULT_RUBRIC)
    except RubricError as error:
        raise pytest.UsageError(str(error)) from None
    config.pluginmanager.register(Results(config), "mailconform-results")
    alluredir = getattr(option, "allure_report_dir", None)
    if alluredir and not option.allure_keep_results and not hasattr(config, "workerinput"):
        allure_report.clean(Path(alluredir))
    try:
        shard = Shard.parse(option.shard) if option.shard else None
        state.targets = resolve_targets(option.target, targets_file)
    except (TargetsError, ValueError) as error:
        raise pytest.UsageError(str(error)) from None
    except Exception as error:  # one no check foresaw: a usage error still, not an INTERNALERROR
        raise pytest.UsageError(f"{targets_file}: {unforeseen(error)}") from None
    state.positions = {target.name: place for place, target in enumerate(state.targets)}
    state.capture_dir = Path(option.capture_dir).resolve() if option.capture_dir else None
    for target in state.targets:  # hidden from now on, even where a server echoes them
        if target.account and target.account.password:
            register_secret(target.account.password, target.account.user)
    if shard is not None:
        state.shard, state.targets = shard, shard.of(state.targets)
    _look_at_whole_servers(config, state)
    if option.save_target:
        _save_target(option.save_target, state)


def _look_at_whole_servers(config: pytest.Config, state: RunState) -> None:
    """A ``mail://`` target's services are the ports that answer, looked at once per run (a worker
    under ``-n`` is given what the controller found)."""
    given = getattr(config, "workerinput", {}).get(DISCOVERIES, {})
    for index, target in enumerate(state.targets):
        if target.discover:
            found = Discovery.from_json(given[target.name]) if target.name in given else discover(target)
            state.discoveries[target.name] = found
            state.targets[index] = apply_discovery(target, found)


@pytest.hookimpl(optionalhook=True)  # pytest-xdist, on the controller, for each worker it starts
def pytest_configure_node(node) -> None:
    state = node.config.stash[STATE]
    node.workerinput[DISCOVERIES] = {name: found.to_json() for name, found in state.discoveries.items()}


def _save_target(name: str, state: RunState) -> None:
    """Append the (single) URL target to the targets file under ``name``."""
    urls = [t for t in state.targets if t.from_url]
    if len(urls) != 1:
        raise pytest.UsageError(f"--save-target {name} saves one URL target; this run has {len(urls)}")
    try:
        known = load_targets(state.targets_file) if state.targets_file.exists() else {}
    except TargetsError as error:
        raise pytest.UsageError(str(error)) from None
    if name in known:
        raise pytest.UsageError(f"--save-target {name}: {state.targets_file} already has a target of that name")
    with state.targets_file.open("a", encoding="utf-8") as file:
        file.write(("\n" if known else "") + target_table(name, urls[0]))


def _split(values: list[str]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash[STATE]
    if not state.targets:
        return [messages.core("shard", shard=state.shard, count=0, total=len(state.positions))] if state.shard else []
    from_file = any(not target.from_url for target in state.targets)
    lines = [f"mailconform: {len(state.targets)} target(s)" + (f" (targets file {state.targets_file})" if from_file else "")]
    if state.shard:
        lines.append("  " + messages.core("shard", shard=state.shard, count=len(state.targets),
                                          total=len(state.positions)))
    for target in state.targets:
        lines.append(f"  {target.summary()}")
        found = state.discoveries.get(target.name)
        lines += [f"    {line}" for line in [*(found.lines() if found else []), *target.notes]]
    if state.steps:
        lines.append(f"  steps: {', '.join(sorted(state.steps))}")
    if state.capture_dir:
        lines.append("  " + messages.core("capturing", directory=state.capture_dir))
    return lines


# --------------------------------------------------------------------------- --list-checks

def pytest_cmdline_main(config: pytest.Config):
    if config.option.list_checks:
        from _pytest.main import wrap_session  # how pytest's own --fixtures collects, then prints

        return wrap_session(config, _list_checks)
    return None


def _list_checks(config: pytest.Config, session: pytest.Session) -> int:
    session.perform_collect()
    writer = config.get_terminal_writer()
    infos = {info.id: info for info in map(_info, session.items) if info is not None}
    steps = config.stash[STATE].steps
    listed = [info for info in infos.values() if not steps or info.all_steps() & steps]
    rows = [(row, info.step_of(row.partition("@")[2] or None), info.level, info.rfc_label, info.catalogue or "-",
             info.title) for info in listed for row in info.row_ids()]
    rows = [row for row in rows if not steps or row[1] in steps]
    if not rows:
        writer.line("no checks found")
        return 0
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        writer.line("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[5])
    covered = {info.catalogue for info in listed if info.catalogue}
    writer.line(f"{len(listed)} checks, {len(rows)} rows; {len(covered)} rows of the check catalogue covered")
    return 0


# --------------------------------------------------------------------------- collection

def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    info = check_info(metafunc.function)
    if info is None:
        return
    state = metafunc.config.stash[STATE]
    if state.targets:  # else: reported as a usage error once collection is over
        if TARGET_PARAM not in metafunc.fixturenames:
            metafunc.fixturenames.append(TARGET_PARAM)
        names = [t.name for t in state.targets]
        # First, so the target opens every test ID: scheduling.TargetScheduling relies on it.
        metafunc.parametrize(TARGET_PARAM, names, ids=names, indirect=True)
    if info.variants:
        metafunc.parametrize("variant", list(info.variants), ids=list(info.variants), indirect=True)
    if info.endpoints:
        metafunc.parametrize("endpoint", list(info.endpoints), ids=list(info.endpoints))


def _known_names(state: RunState) -> str:
    try:
        names = load_targets_file(state.targets_file).names()
    except TargetsError:
        return f"{state.targets_file} could not be read"
    return f"known in {state.targets_file.name}: {names}"


@pytest.hookimpl(tryfirst=True)  # before -k reads the keywords
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash[STATE]
    for item in items:  # -k matches check IDs, rows and steps (also what --list-checks lists)
        info = _info(item)
        if info is not None:
            item.extra_keyword_matches.update({info.id, _row_id(item, info), info.step_of(_endpoint(item))})
    if config.option.list_checks:
        return
    seen: dict[str, str] = {}
    plain, checks, deselected = [], [], []
    for item in items:
        info = _info(item)
        if info is None:
            plain.append(item)
            continue
        if not state.targets:
            if state.shard:  # a shard with no target left: nothing to do, and that is fine
                deselected.append(item)
                continue
            raise pytest.UsageError(
                f"no target: run e.g. pytest --target=NAME or --target=smtp://host ({_known_names(state)})")
        function = item.nodeid.split("[")[0]
        owner = seen.setdefault(info.id, function)
        if owner != function:
            raise pytest.UsageError(f"check id {info.id} is declared twice: {owner} and {function}")
        if state.steps and info.step_of(_endpoint(item)) not in state.steps:
            deselected.append(item)
            continue
        checks.append(item)
        if config.pluginmanager.hasplugin("allure_pytest"):
            allure_report.add_labels(item, info, _target_name(item), _row_id(item, info), _endpoint(item))
    if deselected:
        config.hook.pytest_deselected(items=deselected)
    names = [t.name for t in state.targets]
    # One target after the other; within a target, by the checks' declared order, then file order.
    order = {id(item): place for place, item in enumerate(checks)}
    checks.sort(key=lambda item: (names.index(_target_name(item)), _info(item).order, order[id(item)]))
    items[:] = plain + checks


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # optional: a run with -p no:xdist has no such hook
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Under ``-n``, every check of one target runs on one worker, in order (see scheduling.py):
    the target run's observations hold for all of them and the target never sees more than its
    connection budget."""
    targets = config.stash[STATE].targets
    if not targets:
        return None
    from mailconform.scheduling import TargetScheduling

    return TargetScheduling(config, log, [t.name for t in targets])


def _info(item: pytest.Item) -> CheckInfo | None:
    return check_info(getattr(item, "function", None))


def _target_name(item: pytest.Item) -> str:
    return item.callspec.params[TARGET_PARAM]


def _endpoint(item: pytest.Item) -> str | None:
    return item.callspec.params.get("endpoint") if hasattr(item, "callspec") else None


def _row_id(item: pytest.Item, info: CheckInfo) -> str:
    """``id``, ``id[variant]``, ``id@endpoint``: the row this item fills in every report."""
    row = info.id
    if info.variants:
        row += f"[{item.callspec.params['variant']}]"
    if info.endpoints:
        row += f"@{item.callspec.params['endpoint']}"
    return row


# --------------------------------------------------------------------------- fixtures

@pytest.fixture
def target(request: pytest.FixtureRequest) -> Target:
    """The target this check runs against (the parameter is its name)."""
    return request.config.stash[STATE].target(request.param)


@pytest.fixture
def variant(request: pytest.FixtureRequest):
    """The value of the variant this row of the check runs (the parameter is its name)."""
    return check_info(request.function).variants[request.param]


@pytest.fixture
def check_run(request: pytest.FixtureRequest, target: Target) -> CheckRun:
    """Transcripts, warnings and the target run of the running check."""
    return request.node.stash[RUN]


@pytest.fixture
def smtp(check_run: CheckRun) -> SmtpFactory:
    """SMTP sessions to the target: ``smtp.hello()`` (greeting + EHLO, observed once), ``smtp.session()``."""
    return SmtpFactory(check_run)


@pytest.fixture
def pop3(check_run: CheckRun) -> Pop3Factory:
    """POP3 sessions to the target: ``pop3.hello()``, ``pop3.session()``, ``pop3.logged_in()``…"""
    return Pop3Factory(check_run)


@pytest.fixture
def imap(check_run: CheckRun) -> ImapFactory:
    """IMAP sessions to the target: ``imap.hello()``, ``imap.tls_hello()``, ``imap.secured()``, ``imap.logged_in()``…"""
    return ImapFactory(check_run)


@pytest.fixture
def tls(check_run: CheckRun) -> TlsFactory:
    """The certificate each TLS endpoint presents (observed once per run): the ``tls.*`` checks."""
    return TlsFactory(check_run)


@pytest.fixture
def mailbox(check_run: CheckRun, smtp: SmtpFactory, pop3: Pop3Factory):
    """Delivers probe messages over SMTP and finds them over POP3; removes them afterwards."""
    box = Mailbox(check_run, smtp, pop3)
    yield box
    box.clean_up()


@pytest.fixture
def recipient(target: Target) -> str:
    """The address RCPT probes use: the account's, else postmaster of the domain (RFC 5321 §4.5.1)."""
    if target.account and target.account.address:
        return target.account.address
    if target.domain:
        return f"postmaster@{target.domain}"
    raise NotApplicable(messages.advice(target.from_url, "no-recipient"))


@pytest.fixture
def intrusive_recipient(target: Target) -> str:
    """The account's own address, for checks that really send a message (``intrusive = true`` only)."""
    if not target.intrusive:
        raise NotApplicable(messages.advice(target.from_url, "not-intrusive"))
    if not (target.account and target.account.address):
        raise NotApplicable(messages.advice(target.from_url, "no-address-to-deliver"))
    return target.account.address


@pytest.fixture
def capture(check_run: CheckRun) -> Capture:
    """The target's traffic this run (``--capture-dir``), stopped and ready to read."""
    captured = check_run.target_run.capture
    if captured is None:
        raise NotApplicable(messages.core("no-capture"))
    captured.stop()
    if captured.error:
        raise NotApplicable(messages.core("capture-failed", error=captured.error))
    return captured


@pytest.fixture
def dns_lookup(check_run: CheckRun) -> Lookup:
    """DNS queries through the target's resolver, recorded in the check's transcript."""
    return Lookup(check_run.target, check_run.transcript("dns"), check_run.target_run.dns_answers)


# --------------------------------------------------------------------------- running a check

@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    info = _info(item)
    if info is None:
        return (yield)
    state = item.config.stash[STATE]
    context = CheckContext(info.id)
    item.stash[RUN] = CheckRun(_row_id(item, info), context, state.target_run(_target_name(item)))
    token = current_check.set(context)
    try:
        return (yield)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:
        _raise_as_verdict(item, error)
    finally:
        current_check.reset(token)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """Run the check, then translate what it raised into one of the six outcomes."""
    info = _info(item)
    if info is None:
        return (yield)
    run = item.stash[RUN]
    token = current_check.set(run.context)
    try:
        try:
            result = yield
        except TemporaryRefusal as refusal:
            result = _retry(item, refusal)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:
        _raise_as_verdict(item, error)
    finally:
        current_check.reset(token)
    _conclude(item, None)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item):
    """Fixture teardown (the mailbox clean-up) speaks in the check's name too."""
    run = item.stash.get(RUN, None)
    if run is None:
        return (yield)
    token = current_check.set(run.context)
    try:
        return (yield)
    finally:
        current_check.reset(token)
        run.close()


TRANSCRIPT_TAIL = 30  # lines of each transcript the terminal and JUnit show under a verdict
RETRY_PAUSE = 2.0  # seconds before the one retry of a check the server answered "not now"


def _retry(item: pytest.Item, refusal: TemporaryRefusal):
    """Run the check once more after a pause; what that attempt raises is the verdict.  Once a retry
    has met a refusal again, the target is not retried any more this run (it costs a pause each)."""
    run = item.stash[RUN]
    target_run = run.target_run
    if target_run.failure("retry") is not None:
        raise refusal
    run.transcript("retry").note(messages.core("retrying", refusal=refusal, pause=f"{RETRY_PAUSE:g}"))
    run.close()
    run.warnings.clear()  # the first attempt's warnings are not the retry's
    time.sleep(RETRY_PAUSE)
    target_run.forget_temporary()
    try:
        return item.runtest()
    except TemporaryRefusal as again:
        target_run.record("retry", Failure(run.row_id, str(again)))
        raise


def _raise_as_verdict(item: pytest.Item, error: BaseException) -> None:
    """Record what ``error`` means for the check, then raise what pytest should see."""
    replacement = _conclude(item, error)
    if replacement is not None:
        raise replacement from error  # the chained traceback shows where; secrets there are Secret(***)
    raise error


def _conclude(item: pytest.Item, error: BaseException | None) -> BaseException | None:
    """Record the check's outcome; return the exception pytest should see instead, if any."""
    run = item.stash[RUN]
    if error is None:
        outcome, message, replacement = (Outcome.WARN if run.warnings else Outcome.PASS), "; ".join(run.warnings), None
    else:
        outcome, message, replacement = _classify(error, _info(item))
        if (isinstance(error, ReplyTimeout) and error.stalled or isinstance(error, EndlessReply)) and error.service:
            # One stall or endless reply per service: the checks after this one are blocked by it.
            run.target_run.record(error.service, Failure(run.row_id, str(error)))
    item.stash[RESULT] = {"outcome": outcome.value, "message": shown(message),
                          "blocked_by": error.cause if isinstance(error, Blocked) else None}
    return replacement


def _classify(error: BaseException, info: CheckInfo) -> tuple[Outcome, str, BaseException | None]:
    """(outcome, message, exception to raise instead — a skip for outcomes that are not failures)."""
    if isinstance(error, CheckFailed):
        return Outcome.FAIL, str(error), None
    if isinstance(error, TlsFailed) and info.tls_failure_is_finding:
        return Outcome.FAIL, str(error), CheckFailed(str(error))
    if isinstance(error, ReplyTimeout) and error.stalled:
        message = messages.core("stalled", error=error)
        return Outcome.FAIL, message, CheckFailed(message)
    if isinstance(error, Inconclusive) or _undecided(error):
        return Outcome.INCONCLUSIVE, str(error), pytest.skip.Exception(messages.core("skip-inconclusive", why=error))
    if isinstance(error, NotApplicable):
        return Outcome.NOT_APPLICABLE, str(error), pytest.skip.Exception(messages.core("skip-not-applicable", why=error))
    if isinstance(error, Blocked):
        return Outcome.BLOCKED, str(error), pytest.skip.Exception(str(error))
    if isinstance(error, (WireError, DnsFailure)):
        failed = CheckFailed(str(error), messages.core("wire-expected"), messages.core("wire-actual", error=error))
        return Outcome.FAIL, str(failed), failed
    if isinstance(error, pytest.skip.Exception):
        return Outcome.NOT_APPLICABLE, str(error), None
    if isinstance(error, pytest.fail.Exception) and str(error).startswith("Timeout"):
        return Outcome.INCONCLUSIVE, messages.core("check-hung", error=error), None
    if isinstance(error, AssertionError):
        return Outcome.FAIL, str(error), None
    # A bug in the suite says nothing about the server: pytest shows it, the verdict stays open.
    return Outcome.INCONCLUSIVE, messages.core("check-broke", error=repr(error)), None


def _undecided(error: BaseException) -> bool:
    """Errors that tell nothing about the server's conformance: timeouts, a host that cannot be
    reached or resolved, TLS trouble (unless the check judges TLS), a resolver that did not answer,
    a check that wanted more connections than the target's budget."""
    if isinstance(error, (ReplyTimeout, TlsFailed, BudgetExceeded)):
        return True
    if isinstance(error, ConnectFailed):
        return error.kind != "refused"
    if isinstance(error, DnsFailure):
        return error.kind != "nxdomain"
    return False


#: How ``-v`` and the progress letters show a warning: a pass that says so.  (The undecided
#: outcomes keep pytest's SKIPPED: their reasons start "inconclusive:", "not applicable:", "blocked
#: by", and pytest words a whole folded list of skips after the first one.)
_STATUS = {Outcome.WARN.value: ("passed", "W", ("WARN", {"yellow": True}))}


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    outcome = dict(getattr(report, "user_properties", ())).get(f"{RESULT_PROPERTY}.outcome")
    status = _STATUS.get(outcome)
    # Only a word for what pytest already counts that way: a check that broke stays a failure.
    return status if status and status[0] == report.outcome and report.when != "teardown" else None


@pytest.hookimpl(wrapper=True, trylast=True)  # innermost: other plugins (allure, JUnit) read what is set here
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report_ = yield
    info = _info(item)
    if info is None or RUN not in item.stash:
        return report_
    run = item.stash[RUN]
    result = item.stash.get(RESULT, None)
    if result is not None:
        del item.stash[RESULT]
        result = {"target": _target_name(item), "check": run.row_id, "id": info.id,
                  "variant": item.callspec.params.get("variant"),
                  "endpoint": _endpoint(item), "step": info.step_of(_endpoint(item)), "severity": info.severity,
                  "rfc": info.rfc_label, "level": info.level, "catalogue": info.catalogue or None,
                  "title": info.title, "fix": info.fix or None, **result}
        report_.user_properties.append((RESULT_PROPERTY, json.dumps(result)))
        run.target_run.results.append(result)
        if item.config.pluginmanager.hasplugin("allure_pytest"):  # after the deciding phase: allure
            allure_report.attach(info, result["target"], run.row_id, Outcome(result["outcome"]),  # rewrites titles
                                 result["message"], run.transcripts)                              # at setup's end
        for name in ("target", "check", "step", "outcome", "message"):  # -v's word, and JUnit (which
            field = (f"{RESULT_PROPERTY}.{name}", result[name])      # reads the teardown report's copy
            report_.user_properties.append(field)                    # of the item's properties)
            item.user_properties.append(field)
        if result["outcome"] == Outcome.FAIL.value:
            report_.sections.append(("mailconform", report.failure_details(info, result["step"])))
        for transcript in run.transcripts:  # the end of each, annotated: the whole is in allure
            report_.sections.append((f"transcript {transcript.title}",
                                     transcript.render(tail=TRANSCRIPT_TAIL, timestamps=True, annotate=annotate.note)))
    _show_safely(item, report_, call, result)
    return report_


def _show_safely(item: pytest.Item, report_: pytest.TestReport, call: pytest.CallInfo, result: dict | None) -> None:
    """What pytest, JUnit and allure show of a check: no password (even one a server echoed), no
    raw control character; a verdict as the grader reads it, not as Python frames (``--tb`` other
    than the default still shows them), and a skip pointing at the check, not at this plugin."""
    if call.excinfo is not None:
        _scrub_exception(call.excinfo.value)
    report_.sections = [(title, shown(text)) for title, text in report_.sections]
    longrepr = report_.longrepr
    if longrepr is None:
        return
    if report_.skipped and isinstance(longrepr, tuple):
        blocked_by = result.get("blocked_by") if result else None
        path, line = _check_location(item, blocked_by)
        report_.longrepr = (path, line, shown(longrepr[2]))
    elif result is not None and result["outcome"] == Outcome.FAIL.value and item.config.option.tbstyle == "auto":
        report_.longrepr = f"{result['check']} [{result['target']}]: {result['title']}\n{shown(result['message'])}"
        try:  # what allure shows in its error box
            raise Finding(shown(result["message"])) from None
        except Finding:
            call.excinfo = pytest.ExceptionInfo.from_current()
    else:
        report_.longrepr = shown(str(longrepr))


class Finding(AssertionError):
    """A failed check as a tool that prints the exception's type shows it (allure's error box):
    ``FAIL: the server answered…``, not ``mailconform.verdicts.CheckFailed: …``."""


Finding.__module__, Finding.__qualname__ = "builtins", "FAIL"


def _scrub_exception(error: BaseException) -> None:
    """Hide passwords and control characters in the exception other plugins format themselves."""
    if isinstance(error, pytest.skip.Exception):
        error.msg = shown(error.msg)
    else:
        error.args = tuple(shown(arg) if isinstance(arg, str) else arg for arg in error.args)


def _check_location(item: pytest.Item, blocked_by: str | None = None) -> tuple[str, int]:
    """Where a skipped check's line points: the check itself, or for a blocked one the check that
    blocked it, so pytest counts every check one cause blocked on one line."""
    if blocked_by:
        cause = blocked_by.split("@")[0]
        item = next((other for other in item.session.items if (info := _info(other)) and info.id == cause), item)
    path, line, _ = item.reportinfo()
    return str(path), (line or 0) + 1


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Every capture of this process ends with the run (a check that reads one stopped it earlier);
    the reports of the targets this process judged are written (``--report-dir``)."""
    option = session.config.option
    for target_run in session.config.stash[STATE].runs.values():
        if target_run.capture is not None:
            target_run.capture.stop()
        if option.report_dir:
            alluredir = getattr(option, "allure_report_dir", None)
            for document, paths in documents.write(target_run, Path(option.report_dir),
                                                   file_stem(target_run.target.name)):
                if alluredir:
                    allure_report.attach_files(Path(alluredir), target_run.target.name, document.STEP, paths,
                                               document.ATTACHED_TO)


# --------------------------------------------------------------------------- results

class Results:
    """Collects every check's verdict (also from xdist workers), says when a target is done, and
    writes the summaries and grade files."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.results: list[dict] = []
        self.grades: dict[str, dict] = {}
        self.expected: Counter = Counter()   # target → how many checks it runs
        self.reported: Counter = Counter()   # target → how many have a verdict

    @property
    def state(self) -> RunState:
        return self.config.stash[STATE]

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if not hasattr(self.config, "workerinput"):
            self._expect(item.nodeid for item in session.items)

    @pytest.hookimpl(optionalhook=True)  # pytest-xdist, on the controller: every worker collects the same
    def pytest_xdist_node_collection_finished(self, node, ids: list[str]) -> None:
        if not self.expected:
            self._expect(ids)

    def _expect(self, nodeids) -> None:
        names = [target.name for target in self.state.targets]
        self.expected = Counter(name for name in map(lambda nodeid: target_of(nodeid, names), nodeids) if name)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name == RESULT_PROPERTY:
                result = json.loads(value)
                self.results.append(result)
                self._progress(result["target"])

    def _progress(self, target: str) -> None:
        """With several targets, one line as each is done: its score and how the class is going."""
        self.reported[target] += 1
        if len(self.expected) < 2 or self.reported[target] != self.expected[target]:
            return
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        done = sum(1 for name, count in self.expected.items() if self.reported[name] >= count)
        running = sum(1 for name in self.reported if self.reported[name] < self.expected[name])
        grade_ = grade(self.state.rubric, [r for r in self.results if r["target"] == target]).get(target)
        if getattr(reporter._tw, "width_of_current_line", 0):  # after -q's dots, on a line of its own
            reporter._tw.line()
        reporter.write_line(messages.core(
            "progress", done=done, total=len(self.expected), target=target, score=f"{grade_['score']:g}",
            max=f"{grade_['max']:g}", running=running, left=len(self.expected) - done - running))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(self.config, "workerinput"):  # under xdist, the controller has every result
            return
        option, state = self.config.option, self.state
        if option.results_json:
            Path(option.results_json).write_text(json.dumps({"results": self.results}, indent=2), encoding="utf-8")
        self.grades = grade(state.rubric, self.results)
        document = grade_document(state.rubric, self.grades, state.targets, option.lang,
                                  str(state.shard) if state.shard else None, state.positions)
        if option.grade_json:
            Path(option.grade_json).write_text(json.dumps(document, indent=2, ensure_ascii=False), encoding="utf-8")
        if option.grade_csv:
            write_csv(Path(option.grade_csv), document)
        if getattr(option, "allure_report_dir", None):
            allure_report.write_side_files(Path(option.allure_report_dir), state.targets, suite_version(), option.lang)
        if state.shard and not state.targets and session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
            session.exitstatus = pytest.ExitCode.OK
        if session.exitstatus == pytest.ExitCode.OK and self.not_judged():
            session.exitstatus = EXIT_NOT_JUDGED

    def not_judged(self) -> dict[str, Counter]:
        """Targets on which no check could decide (none passed, warned or failed): outcome counts."""
        counts: dict[str, Counter] = {}
        for result in self.results:
            counts.setdefault(result["target"], Counter())[result["outcome"]] += 1
        decided = {Outcome.PASS.value, Outcome.WARN.value, Outcome.FAIL.value}
        return {target: count for target, count in counts.items() if not decided & set(count)}

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.results:
            terminalreporter.write_sep("=", messages.label("verdicts-title"))
            for line in report.summary(self.results, self.grades, [t.name for t in self.state.targets]):
                terminalreporter.write_line(line)
        for name, found in self.state.discoveries.items():
            for service, why in found.closed.items():
                terminalreporter.write_line(f"{messages.label('not-offered'):13} "
                                            f"{messages.core('not-offered', target=name, service=service, why=why)}")
        for name, count in self.not_judged().items():
            outcomes = ", ".join(f"{n} {outcome}" for outcome, n in sorted(count.items()))
            terminalreporter.write_line(f"{messages.label('not-judged'):13} "
                                        f"{messages.core('not-judged', target=name, outcomes=outcomes)}")
