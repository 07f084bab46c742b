"""What a person sees of a verdict: no Python frames for a finding, skips that point at the check,
no password anywhere even when the server echoes it, no raw control character from a server."""

import pytest

from test_plugin import PASSWORD, a_check, run, write_checks

#: A check whose server "echoed" the account's password, with terminal escapes around it.
ECHOED = a_check("smtp.demo.echo", 'expect(False, "the server said: PASS ' + PASSWORD + ' \\x1b[32mOK\\x1b[0m", '
                 'actual="-ERR you said PASS ' + PASSWORD + '\\r")')
SKIPPED = a_check("smtp.demo.later", 'raise Inconclusive("greylisted ' + PASSWORD + ' \\x1b]0;owned\\x07")')


def every_output(lab, result):
    files = [path.read_text(errors="replace") for path in lab.path.rglob("*") if path.is_file()
             and path.suffix in (".json", ".xml", ".csv", ".txt")]
    return "\n".join([result.stdout.str(), result.stderr.str(), *files])


@pytest.mark.parametrize("options", [["-q"], ["-vv", "--tb=long", "-l", "-rA"]], ids=["quiet", "everything"])
def test_an_echoed_password_and_escapes_appear_nowhere(lab, options):
    write_checks(lab, ECHOED, SKIPPED)
    result = run(lab, "--target", "lab", "--results-json", "r.json", "--junitxml", "junit.xml",
                 "--grade-json", "g.json", "--alluredir", "allure", *options, subprocess=True)
    written = every_output(lab, result)
    assert result.ret == 1 and "smtp.demo.echo" in written
    assert PASSWORD not in written
    assert "\x1b" not in written and "\x07" not in written
    assert "PASS *** \\x1b[32mOK" in result.stdout.str()


def test_a_finding_shows_the_verdict_not_python_frames(lab):
    write_checks(lab, ECHOED)
    result = run(lab, "--target", "lab")
    output = result.stdout.str()
    result.stdout.fnmatch_lines(["smtp.demo.echo [[]lab]: Check smtp.demo.echo: a title line.",
                                 "the server said: PASS *** \\x1b[[]32mOK\\x1b[[]0m", "Actual:   -ERR you said PASS ***\\r"])
    assert "def test_echo" not in output and "plugin.py" not in output and "CheckFailed" not in output.split(
        "short test summary")[0]


def test_tb_long_still_shows_the_frames(lab):
    write_checks(lab, ECHOED)
    result = run(lab, "--target", "lab", "--tb=long")
    assert "def test_echo" in result.stdout.str()


def test_a_check_that_broke_still_shows_its_traceback(lab):
    write_checks(lab, a_check("smtp.demo.bug", "{}['missing']"))
    result = run(lab, "--target", "lab")
    result.stdout.fnmatch_lines(["*KeyError*"])
    assert "{}['missing']" in result.stdout.str()


def test_a_skip_points_at_the_check_not_at_the_plugin(lab):
    write_checks(lab, a_check("smtp.demo.first"), SKIPPED)
    result = run(lab, "--target", "lab", "-rs")
    result.stdout.fnmatch_lines(["SKIPPED [[]1] test_checks.py:8: inconclusive: greylisted *** \\x1b]0;owned\\x07"])
