"""The pytest plugin, driven through pytester: options, targets, parametrization, outcomes, reports.

Every run talks only to loopback: the targets below point at 127.0.0.x, and a port with nothing
listening (1) stands in for a dead server."""

import json
import re

import pytest

from mailconform.checks import STEPS

PASSWORD = "s3cr3t-pw"

TARGETS = f"""
[targets.lab]
host = "127.0.0.1"
domain = "lab.test"
[targets.lab.services]
smtp = 1
pop3 = 1
[targets.lab.account]
user = "alice"
password = "{PASSWORD}"
address = "alice@lab.test"

[targets.twin]
host = "127.0.0.2"
[targets.twin.services]
smtp = 1
"""

IMPORTS = "from mailconform.checks import LAST, Blocked, Inconclusive, NotApplicable, check, expect\n"


def a_check(check_id, body="pass", *, step="A1.smtp-session", args="target", rfc="5321#4.2", name=None, extra=""):
    """Source of one check function; its name defaults to ``test_`` + the last part of its id."""
    name = name or "test_" + check_id.split(".")[-1].replace("-", "_")
    return f'''
@check({check_id!r}, step={step!r}, rfc={rfc!r}, level="MUST", severity="high"{extra})
def {name}({args}):
    """Check {check_id}: a title line."""
    {body}
'''


#: Unrelated plugins of this environment kept out of the inner runs (hypothesis alone costs ~0.7 s a run).
HERMETIC = ("-p", "no:hypothesispytest", "-p", "no:benchmark")


def run(pytester, *args, subprocess=False):
    runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest
    return runner(*HERMETIC, *args)


def write_checks(pytester, *checks, module="test_checks"):
    pytester.makepyfile(**{module: IMPORTS + "".join(checks)})


def verdicts(path):
    return {r["check"]: r for r in json.loads(path.read_text())["results"]}


def pytest_outcomes(result):
    """{test function name: PASSED/FAILED/SKIPPED/WARN} from a ``-v`` run's lines."""
    found = re.findall(r"::(\w+)\[[^\]]*\] (PASSED|FAILED|SKIPPED|ERROR|WARN)",
                       result.stdout.str())
    return dict(found)


# --------------------------------------------------------------------------- options and targets

@pytest.mark.parametrize("args", [[], ["--targets-file", "targets.toml"], ["--target", "lab"]])
def test_help_lists_the_options_even_when_the_targets_file_is_broken(pytester, args):
    pytester.makefile(".toml", targets="[targets.lab\nbroken = ")
    result = run(pytester, "--help", *args)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*mailconform*", "*--target=NAME|URL*", "*--targets-file=PATH*", "*--step=STEP*",
                                 "*--results-json=PATH*"])


def test_broken_targets_file_is_a_usage_error_listing_every_problem(pytester):
    pytester.makefile(".toml", broken="""
[targets.x]
host = "127.0.0.1"
colour = "red"
[targets.x.services]
smtp = "abc"
imap = 70000
""")
    write_checks(pytester, a_check("smtp.demo.ok"))
    result = run(pytester, "--targets-file", "broken.toml", "--target", "x")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        "ERROR: broken.toml: 3 problem(s):",
        "*targets.x.colour: unknown key*",
        "*targets.x.services.smtp: expected a port 1-65535, got 'abc'",
        "*targets.x.services.imap: expected a port 1-65535, got 70000",
    ])


def test_unknown_target_name_is_a_usage_error_naming_the_known_ones(lab):
    write_checks(lab, a_check("smtp.demo.ok"))
    result = run(lab, "--target", "nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown target 'nope' (known: lab, twin; or give a URL like smtp://host)*"])


def test_missing_targets_file_is_a_usage_error(pytester):
    result = run(pytester, "--target", "lab")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*targets.toml: 1 problem(s):*", "*file not found*"])


def test_no_target_with_a_check_collected_names_the_known_targets(lab):
    write_checks(lab, a_check("smtp.demo.ok"))
    result = run(lab)
    assert result.ret != pytest.ExitCode.OK
    result.stderr.fnmatch_lines(["*no target: run e.g. pytest --target=NAME*(known in targets.toml: lab, twin)*"])


def test_no_target_with_a_check_collected_is_a_usage_error(lab):
    write_checks(lab, a_check("smtp.demo.ok"))
    assert run(lab).ret == pytest.ExitCode.USAGE_ERROR


def test_plain_tests_run_without_a_target(lab):
    lab.makepyfile(test_plain="def test_plain():\n    assert True\n")
    run(lab).assert_outcomes(passed=1)


@pytest.mark.parametrize("targets, ids", [
    (["lab"], ["lab"]),
    (["lab", "twin"], ["lab", "twin"]),
    (["twin,lab"], ["twin", "lab"]),
    (["smtp://127.0.0.1:2525"], ["smtp://127.0.0.1:2525"]),
    (["lab", "pop3s://alice@127.0.0.1"], ["lab", "pop3s://alice@127.0.0.1"]),
])
def test_each_check_runs_once_per_target_with_the_target_in_its_id(lab, targets, ids, monkeypatch):
    """One target after the other, each running every check in the suites' order."""
    monkeypatch.setenv("MAILCONFORM_PASSWORD", PASSWORD)
    write_checks(lab, a_check("smtp.demo.one"), a_check("smtp.demo.two"))
    args = [f"--target={t}" for t in targets]
    result = run(lab, "--collect-only", "-q", *args)
    assert result.ret == pytest.ExitCode.OK
    collected = [line for line in result.stdout.lines if "::" in line]
    assert collected == [f"test_checks.py::test_{name}[{i}]" for i in ids for name in ("one", "two")]


# --------------------------------------------------------------------------- --step

def test_step_selects_its_checks_and_deselects_the_others(lab):
    write_checks(lab, a_check("dns.demo.mx", step="A1.mx"), a_check("smtp.demo.hello"),
                 a_check("pop3.demo.user", step="A1.pop3-session"))
    result = run(lab, "--target", "lab", "--step", "A1.mx", "-v")
    result.assert_outcomes(passed=1, deselected=2)
    assert pytest_outcomes(result) == {"test_mx": "PASSED"}


def test_several_steps_by_repetition_or_comma(lab):
    write_checks(lab, a_check("dns.demo.mx", step="A1.mx"), a_check("smtp.demo.hello"),
                 a_check("pop3.demo.user", step="A1.pop3-session"))
    result = run(lab, "--target", "lab", "--step", "A1.mx,A1.pop3-session", "-v")
    result.assert_outcomes(passed=2, deselected=1)
    assert set(pytest_outcomes(result)) == {"test_mx", "test_user"}


def test_unknown_step_is_a_usage_error_listing_the_lab_steps(lab):
    write_checks(lab, a_check("smtp.demo.ok"))
    result = run(lab, "--target", "lab", "--step", "A1.smpt-session")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: unknown --step A1.smpt-session (lab steps: {', '.join(STEPS)}; "
                                 "or a whole activity: A1, A2, A3, E)"])


# --------------------------------------------------------------------------- outcomes

OUTCOME_CHECKS = {
    # check id suffix: (body, our outcome, the word pytest -v shows: a warn is a pass that says so)
    "passes": ("pass", "pass", "PASSED"),
    "warns": ('expect(False, "works, but not as the RFC recommends", tolerated=True)', "warn", "WARN"),
    "fails": ('expect(False, "the server broke the rule")', "fail", "FAILED"),
    "undecided": ('raise Inconclusive("greylisted")', "inconclusive", "SKIPPED"),
    "absent": ('raise NotApplicable("no imap service")', "not_applicable", "SKIPPED"),
    "blocked": ('raise Blocked("smtp.session.greeting", "the greeting failed")', "blocked", "SKIPPED"),
}


@pytest.fixture
def outcome_run(lab):
    write_checks(lab, *(a_check(f"smtp.demo.{name}", body) for name, (body, _, _) in OUTCOME_CHECKS.items()))
    result = run(lab, "--target", "lab", "--results-json", "results.json", "-v")
    return result, verdicts(lab.path / "results.json")


def test_results_json_records_each_checks_outcome(outcome_run):
    _, results = outcome_run
    assert {check: r["outcome"] for check, r in results.items()} == {
        f"smtp.demo.{name}": outcome for name, (_, outcome, _) in OUTCOME_CHECKS.items()}
    for check, r in results.items():
        assert (r["target"], r["step"], r["level"], r["rfc"]) == ("lab", "A1.smtp-session", "MUST", "RFC 5321 §4.2")
    assert results["smtp.demo.warns"]["message"] == "works, but not as the RFC recommends"
    assert "the server broke the rule" in results["smtp.demo.fails"]["message"]
    assert results["smtp.demo.blocked"]["message"] == "blocked by smtp.session.greeting: the greeting failed"


def test_pytest_outcome_stays_honest(outcome_run):
    result, _ = outcome_run
    result.assert_outcomes(passed=2, failed=1, skipped=3)
    assert pytest_outcomes(result) == {f"test_{name}": pytest_outcome
                                       for name, (_, _, pytest_outcome) in OUTCOME_CHECKS.items()}


def test_terminal_summary_table_counts_outcomes_per_target_and_step(outcome_run):
    result, _ = outcome_run
    result.stdout.fnmatch_lines([
        "*= mailconform verdicts =*",
        "target*step*pass*warn*fail*inconclusive*not_applicable*blocked",
        "lab*A1.smtp-session*1*1*1*1*1*1",
        "SCORE         lab: *",
        "FAIL*lab smtp.demo.fails: the server broke the rule",
        "WARN*lab smtp.demo.warns: works, but not as the RFC recommends",
        "INCONCLUSIVE*lab smtp.demo.undecided: greylisted",
    ])
    # a blocked check is not a finding of its own: one line per cause, with the checks it blocked
    result.stdout.fnmatch_lines(["BLOCKED       lab 1 check(s) blocked by smtp.session.greeting: smtp.demo.blocked"])
    assert "BLOCKED       lab smtp.demo.blocked" not in result.stdout.str()


def test_failed_check_shows_the_requirement(outcome_run):
    result, _ = outcome_run
    result.stdout.fnmatch_lines(["*- mailconform -*", "smtp.demo.fails (A1.smtp-session): Check smtp.demo.fails*",
                                 "RFC 5321 §4.2, MUST: https://datatracker.ietf.org/doc/html/rfc5321#section-4.2"])


def test_dead_service_fails_the_check_with_the_transcript_in_the_report(pytester):
    write_checks(pytester, a_check("smtp.demo.connect", "smtp.hello()", args="smtp"))
    result = run(pytester, "--target", "smtp://127.0.0.1:1", "--results-json", "r.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*- transcript smtp greeting and EHLO (observed once in this run) -*", "*connection refused*"])
    assert verdicts(pytester.path / "r.json")["smtp.demo.connect"]["outcome"] == "fail"


# --------------------------------------------------------------------------- check metadata

@pytest.mark.parametrize("meta, problem", [
    ({"step": "A9.nowhere"}, "step 'A9.nowhere' is not a lab step"),
    ({"rfc": "RFC5321"}, "rfc 'RFC5321' is not 'NUMBER#SECTION'"),
    ({"check_id": "smtp.greeting"}, "is not protocol.topic.detail"),
    ({"check_id": "ftp.demo.x"}, "starts with an unknown protocol"),
])
def test_bad_check_metadata_is_a_collection_error_naming_the_problem(lab, meta, problem):
    write_checks(lab, a_check(**{"check_id": "smtp.demo.ok", **meta}))
    result = run(lab, "--target", "lab")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*ERROR collecting test_checks.py*", f"*ValueError: check test_*: *{problem}*"])


def test_duplicate_check_id_is_rejected(lab):
    write_checks(lab, a_check("smtp.demo.same", name="test_one"), a_check("smtp.demo.same", name="test_two"))
    result = run(lab, "--target", "lab")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*check id smtp.demo.same is declared twice: *::test_one and *::test_two*"])


def test_duplicate_check_id_in_two_modules_is_rejected(lab):
    for module in ("test_smtp_a", "test_smtp_b"):
        write_checks(lab, a_check("smtp.demo.same", name="test_greeting"), module=module)
    assert run(lab, "--target", "lab").ret == pytest.ExitCode.USAGE_ERROR


# --------------------------------------------------------------------------- allure, JUnit and secrets

def allure_results(directory):
    return {r["labels_by_name"]["check"]: r for r in map(_load_allure, directory.glob("*-result.json"))}


def _load_allure(path):
    result = json.loads(path.read_text())
    result["labels_by_name"] = {label["name"]: label["value"] for label in result["labels"]}
    return result


ALLURE_CHECKS = (
    a_check("smtp.demo.connect", "smtp.hello()", args="smtp"),
    a_check("dns.demo.mx", step="A1.mx"),
    a_check("pop3.demo.stls", step="A3.stls", rfc="2595"),
)


def test_allure_results_carry_labels_story_and_transcript(pytester):
    write_checks(pytester, *ALLURE_CHECKS)
    run(pytester, "--target", "smtp://127.0.0.1:1", "--alluredir", "allure", subprocess=True)
    results = allure_results(pytester.path / "allure")
    expected = {
        "smtp.demo.connect": ("SMTP", "A1 · mail protocols by hand", "A1.smtp-session"),
        "dns.demo.mx": ("DNS", "A1 · mail protocols by hand", "A1.mx"),
        "pop3.demo.stls": ("POP3", "A3 · securing POP3", "A3.stls"),
    }
    assert set(results) == set(expected)
    for check, (epic, feature, story) in expected.items():
        labels = results[check]["labels_by_name"]
        assert (labels["epic"], labels["feature"], labels["story"]) == (epic, feature, story)
        assert (labels["severity"], labels["target"]) == ("critical", "smtp://127.0.0.1:1")
    connect = results["smtp.demo.connect"]
    assert connect["status"] == "failed"
    transcript = next(a for a in connect["attachments"] if a["name"].startswith("transcript smtp greeting and EHLO"))
    assert "connection refused" in (pytester.path / "allure" / transcript["source"]).read_text()
    assert results["pop3.demo.stls"]["links"] == [
        {"type": "rfc", "url": "https://datatracker.ietf.org/doc/html/rfc2595", "name": "RFC 2595"}]


SECRET_CHECKS = (
    a_check("smtp.demo.dead", "smtp.hello()", args="smtp"),
    a_check("pop3.demo.login", "pop3.logged_in()", step="A1.pop3-session", args="pop3"),
    a_check("smtp.demo.shows", 'account = target.account\n    print(target, account)\n'
                                '    expect(account.user == "bob", f"user is {account.user}")'),
)


def test_no_password_in_allure_junit_or_terminal_output(lab):
    write_checks(lab, *SECRET_CHECKS)
    result = run(lab, "--target", "lab", "--alluredir", "allure", "--junitxml", "junit.xml",
                 "--results-json", "results.json", "-rA", "-l", "-v", subprocess=True)
    assert set(pytest_outcomes(result).values()) == {"FAILED", "SKIPPED"}, "the checks did not run"
    for result_file in (lab.path / "allure").glob("*-result.json"):  # shown bare, not as 'lab'
        assert json.loads(result_file.read_text())["parameters"] == [{"name": "target", "value": "lab"}]
    written = [p.read_text() for p in (lab.path / "allure").iterdir()]
    written += [(lab.path / name).read_text() for name in ("junit.xml", "results.json")]
    written += [result.stdout.str(), result.stderr.str()]
    assert "user is alice" in result.stdout.str()       # the target was really printed and shown
    assert not [text for text in written if PASSWORD in text]
