"""Reports a student learns from: allure read as data (the tree, categories, environment, clean
results, paragraphs, annotated transcripts), outcome words in -v, and JUnit properties per check."""

import json
import xml.etree.ElementTree as ElementTree

import pytest

from test_plugin import a_check, allure_results, run, write_checks

CHECKS = (
    a_check("smtp.demo.connect", "smtp.hello()", args="smtp"),
    a_check("smtp.demo.warns", 'expect(False, "works, but not as the RFC recommends", tolerated=True)'),
    a_check("smtp.demo.later", 'raise Inconclusive("greylisted")'),
    a_check("smtp.demo.absent", 'raise NotApplicable("no imap service")'),
    a_check("pop3.demo.blocked", 'raise Blocked("smtp.demo.connect", "nothing listens")', step="A1.pop3-session"),
)


@pytest.fixture
def allure_run(lab):
    write_checks(lab, *CHECKS)
    result = run(lab, "--target", "lab", "--alluredir", "allure", "--junitxml", "junit.xml", "-v", subprocess=True)
    return lab, result, allure_results(lab.path / "allure")


def test_the_allure_tree_is_target_activity_step(allure_run):
    _, _, results = allure_run
    labels = results["smtp.demo.connect"]["labels_by_name"]
    assert (labels["parentSuite"], labels["suite"], labels["subSuite"]) == (
        "lab", "A1 · mail protocols by hand", "A1.smtp-session")
    assert results["pop3.demo.blocked"]["labels_by_name"]["subSuite"] == "A1.pop3-session"


def test_allure_tells_the_outcomes_apart(allure_run):
    lab, _, results = allure_run
    assert results["smtp.demo.connect"]["status"] == "failed"
    assert results["smtp.demo.connect"]["statusDetails"]["message"].startswith(
        "FAIL: could not connect to 127.0.0.1:1: connection refused")
    assert results["smtp.demo.warns"]["status"] == "passed"
    assert results["smtp.demo.warns"]["name"].startswith("[warn] ")
    assert {"name": "tag", "value": "warning"} in results["smtp.demo.warns"]["labels"]
    categories = json.loads((lab.path / "allure" / "categories.json").read_text())
    by_name = {c["name"]: c for c in categories}
    import re
    for check, category in (("smtp.demo.later", "Inconclusive: timeout, rate limit, greylisting"),
                            ("smtp.demo.absent", "Not applicable: not offered by the target"),
                            ("pop3.demo.blocked", "Blocked by an earlier failure")):
        result = results[check]
        assert result["status"] == "skipped" and result["name"].startswith("[")
        matching = [c["name"] for c in categories if result["status"] in c["matchedStatuses"]
                    and re.fullmatch(c.get("messageRegex", ".*"), result["statusDetails"]["message"])]
        assert matching[:1] == [category], (check, result["statusDetails"]["message"])
    assert "Credentials in cleartext" in by_name


def test_allure_has_the_environment_and_one_runs_results(allure_run):
    lab, _, results = allure_run
    environment = (lab.path / "allure" / "environment.properties").read_text()
    assert "target.lab=smtp=127.0.0.1:1 pop3=127.0.0.1:1" in environment and "mailconform=" in environment
    run(lab, "--target", "lab", "--alluredir", "allure", subprocess=True)
    assert len(list((lab.path / "allure").glob("*-result.json"))) == len(CHECKS)  # not piled up
    run(lab, "--target", "lab", "--alluredir", "allure", "--allure-keep-results", subprocess=True)
    assert len(list((lab.path / "allure").glob("*-result.json"))) == 2 * len(CHECKS)


def test_the_description_has_paragraphs_and_the_transcript_notes_codes(allure_run):
    lab, _, results = allure_run
    description = results["smtp.demo.warns"]["description"]
    paragraphs = description.split("\n\n")
    assert paragraphs[0] == "**Check smtp.demo.warns: a title line.**"
    assert paragraphs[2] == "**Verdict:** warn"
    assert paragraphs[3] == "```\nworks, but not as the RFC recommends\n```"
    assert paragraphs[-1].startswith("[RFC 5321 §4.2](https://datatracker.ietf.org/doc/html/rfc5321#section-4.2)")


def test_v_names_each_outcome_and_junit_carries_it(allure_run):
    lab, result, _ = allure_run
    result.stdout.fnmatch_lines(["*test_warns[[]lab] WARN*", "*test_later[[]lab] SKIPPED (inconclusive:*",
                                 "*test_absent[[]lab] SKIPPED (not applicable:*", "*test_blocked[[]lab] SKIPPED (blocked by*"])
    cases = {case.get("name"): case for case in ElementTree.parse(lab.path / "junit.xml").iter("testcase")}
    properties = {p.get("name"): p.get("value") for p in cases["test_warns[lab]"].iter("property")}
    assert (properties["mailconform.outcome"], properties["mailconform.check"]) == ("warn", "smtp.demo.warns")
    assert properties["mailconform.message"] == "works, but not as the RFC recommends"


def test_a_blocked_cascade_is_one_line_per_cause(lab):
    bodies = [a_check(f"smtp.demo.c{n}", 'raise Blocked("smtp.session.greeting", "refused")') for n in range(4)]
    write_checks(lab, a_check("smtp.session.greeting", 'expect(False, "refused")'), *bodies)
    result = run(lab, "--target", "lab", "-rs")
    result.stdout.fnmatch_lines([
        "BLOCKED       lab 4 check(s) blocked by smtp.session.greeting: smtp.demo.c0, smtp.demo.c1, smtp.demo.c2 (+1)",
        "SKIPPED [[]4] test_checks.py:3: blocked by smtp.session.greeting: refused"])  # at the cause


def test_the_same_message_on_several_checks_is_one_finding(lab):
    write_checks(lab, *(a_check(f"smtp.demo.c{n}", 'raise Inconclusive("bad CA file")') for n in range(3)))
    result = run(lab, "--target", "lab")
    result.stdout.fnmatch_lines(["INCONCLUSIVE  lab smtp.demo.c0, smtp.demo.c1, smtp.demo.c2: bad CA file"])
