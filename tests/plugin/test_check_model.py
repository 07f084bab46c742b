"""The check model through pytester: finding checks by ID, listing them, variants and endpoints as
rows, declared order, messages in two languages, TLS failures as the check's call."""

import json

import pytest

from test_plugin import a_check, allure_results, run, verdicts, write_checks


def test_k_selects_a_check_by_its_id_and_a_step_by_its_name(lab):
    write_checks(lab, a_check("smtp.demo.quit"), a_check("smtp.demo.quiet"), a_check("dns.demo.mx", step="A1.mx"))
    by_id = run(lab, "--target", "lab", "-k", "smtp.demo.quit", "-q", "--collect-only")
    assert [line for line in by_id.stdout.lines if "::" in line] == ["test_checks.py::test_quit[lab]"]
    by_step = run(lab, "--target", "lab", "-k", "A1.mx", "-q", "--collect-only")
    assert [line for line in by_step.stdout.lines if "::" in line] == ["test_checks.py::test_mx[lab]"]


def test_step_takes_a_whole_activity(lab):
    write_checks(lab, a_check("dns.demo.mx", step="A1.mx"), a_check("smtp.demo.hello"),
                 a_check("pop3.demo.stls", step="A3.stls"))
    result = run(lab, "--target", "lab", "--step", "A1", "-q", "--collect-only")
    assert sorted(line for line in result.stdout.lines if "::" in line) == [
        "test_checks.py::test_hello[lab]", "test_checks.py::test_mx[lab]"]


@pytest.mark.parametrize("lang, title", [("en", "NOOP gets 250"), ("es", "NOOP recibe 250")])
def test_list_checks_prints_id_step_level_rfc_and_title_in_the_language(pytester, lang, title):
    write_checks(pytester, a_check("smtp.session.noop", step="A1.smtp-session", rfc="5321#4.1.1.9"),
                 a_check("smtp.relay.demo", extra=', variants={"percent-hack": 1, "bang-path": 2}'.replace(
                     "1", '"a"').replace("2", '"b"'), args="target, variant"))
    result = run(pytester, "--list-checks", "--lang", lang)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines([f"smtp.session.noop *A1.smtp-session*MUST*RFC 5321 §4.1.1.9*{title}*",
                                 "smtp.relay.demo?percent-hack? *A1.smtp-session*",
                                 "smtp.relay.demo?bang-path? *A1.smtp-session*"])
    assert "passed" not in result.stdout.str()  # nothing ran


ROWS = (
    a_check("smtp.demo.relay", 'expect(variant != "b", "variant {name} was relayed", name=variant)',
            args="target, variant", extra=', variants={"percent-hack": "a", "bang-path": "b"}'),
    a_check("tls.demo.cert", "pass", step="A2.smtp-tls", args="target, endpoint", extra=', endpoints=("smtps", "pop3s")'),
)


def test_variants_and_endpoints_make_one_row_each_in_json_and_allure(lab):
    write_checks(lab, *ROWS)
    run(lab, "--target", "lab", "--results-json", "results.json", "--alluredir", "allure", subprocess=True)
    results = verdicts(lab.path / "results.json")
    assert {row: r["outcome"] for row, r in results.items()} == {
        "smtp.demo.relay[percent-hack]": "pass", "smtp.demo.relay[bang-path]": "fail",
        "tls.demo.cert@smtps": "pass", "tls.demo.cert@pop3s": "pass"}
    assert results["smtp.demo.relay[bang-path]"]["variant"] == "bang-path"
    assert results["smtp.demo.relay[bang-path]"]["id"] == "smtp.demo.relay"
    assert "variant b was relayed" in results["smtp.demo.relay[bang-path]"]["message"]
    assert results["tls.demo.cert@pop3s"]["endpoint"] == "pop3s"
    assert set(allure_results(lab.path / "allure")) == set(results)


PER_ENDPOINT_STEP = a_check("tls.demo.key", "pass", args="target, endpoint", extra=(
    ', step={"smtps": "A2.smtp-tls", "pop3s": "A3.pop3-tls"}, endpoints=("smtps", "pop3s")')).replace(
    "step='A1.smtp-session', ", "")


def test_a_row_per_endpoint_is_graded_in_its_endpoints_step(lab):
    write_checks(lab, PER_ENDPOINT_STEP)
    run(lab, "--target", "lab", "--results-json", "results.json", "--alluredir", "allure", subprocess=True)
    results = verdicts(lab.path / "results.json")
    assert {row: r["step"] for row, r in results.items()} == {"tls.demo.key@smtps": "A2.smtp-tls",
                                                              "tls.demo.key@pop3s": "A3.pop3-tls"}
    stories = {row: r["labels_by_name"]["story"] for row, r in allure_results(lab.path / "allure").items()}
    assert stories == {"tls.demo.key@smtps": "A2.smtp-tls", "tls.demo.key@pop3s": "A3.pop3-tls"}
    only_a3 = run(lab, "--target", "lab", "--step", "A3", "-q", "--collect-only")
    assert [line for line in only_a3.stdout.lines if "::" in line] == ["test_checks.py::test_key[lab-pop3s]"]
    listed = run(lab, "--list-checks", "--step", "A2.smtp-tls")
    listed.stdout.fnmatch_lines(["tls.demo.key@smtps *A2.smtp-tls*"])
    assert "pop3s" not in listed.stdout.str()


def test_a_step_per_endpoint_must_name_every_endpoint(lab):
    write_checks(lab, PER_ENDPOINT_STEP.replace('"pop3s": "A3.pop3-tls"', '"imaps": "E.imap-security"'))
    result = run(lab, "--target", "lab", "-q", "--collect-only")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*a step per endpoint names every endpoint and nothing else*"])


def test_a_check_with_variants_must_take_the_variant(lab):
    write_checks(lab, a_check("smtp.demo.relay", extra=', variants={"x": 1}'))
    result = run(lab, "--target", "lab")
    result.stdout.fnmatch_lines(["*a check with variants takes a 'variant' argument*"])


def test_declared_order_runs_a_check_after_the_others_of_its_target(lab):
    write_checks(lab, a_check("smtp.demo.first", extra=", order=LAST"), a_check("smtp.demo.second"),
                 a_check("smtp.demo.third"))
    result = run(lab, "--target", "lab,twin", "-q", "--collect-only")
    assert [line for line in result.stdout.lines if "::" in line] == [
        "test_checks.py::test_second[lab]", "test_checks.py::test_third[lab]", "test_checks.py::test_first[lab]",
        "test_checks.py::test_second[twin]", "test_checks.py::test_third[twin]", "test_checks.py::test_first[twin]"]


def test_a_tolerated_reply_is_a_warning_with_its_own_message(lab):
    body = ('from mailconform.wire.smtp import SmtpReply\n'
            '    expect(SmtpReply(502, ("not implemented",))).code(500, tolerated={502: "got {reply}, 500 is better"})')
    write_checks(lab, a_check("smtp.demo.tolerant", body))
    run(lab, "--target", "lab", "--results-json", "r.json")
    result = verdicts(lab.path / "r.json")["smtp.demo.tolerant"]
    assert (result["outcome"], result["message"]) == ("warn", "got 502 not implemented, 500 is better")


def test_a_failed_expectation_carries_expected_and_actual(lab):
    body = ('from mailconform.wire.smtp import SmtpReply\n'
            '    expect(SmtpReply(554, ("no",))).code(250, 251)')
    write_checks(lab, a_check("smtp.demo.codes", body))
    run(lab, "--target", "lab", "--results-json", "r.json")
    message = verdicts(lab.path / "r.json")["smtp.demo.codes"]["message"]
    assert "Expected: 250 or 251" in message and "Actual:   554 no" in message


@pytest.mark.parametrize("finding, outcome", [(True, "fail"), (False, "inconclusive")])
def test_a_failed_handshake_is_a_finding_only_where_the_check_says_so(lab, finding, outcome):
    body = 'from mailconform.wire import TlsFailed\n    raise TlsFailed("certificate verification failed")'
    write_checks(lab, a_check("tls.demo.handshake", body, step="A2.smtp-tls", extra=f", tls_failure_is_finding={finding}"))
    run(lab, "--target", "lab", "--results-json", "r.json")
    assert verdicts(lab.path / "r.json")["tls.demo.handshake"]["outcome"] == outcome


def test_messages_come_in_spanish_with_lang_es(lab):
    body = ('from mailconform.wire.smtp import SmtpReply\n'
            '    expect(SmtpReply(500, ("no",))).code(250)')
    write_checks(lab, a_check("smtp.session.noop", body, rfc="5321#4.1.1.9"))
    result = run(lab, "--target", "lab", "--lang", "es", "--results-json", "r.json")
    message = verdicts(lab.path / "r.json")["smtp.session.noop"]["message"]
    assert "Esperado: 250" in message and "Obtenido:" in message
    result.stdout.fnmatch_lines(["smtp.session.noop (A1.smtp-session): NOOP recibe 250*", "Solución: *"])


def test_a_verdict_reached_in_a_fixture_keeps_its_allure_title_and_verdict(lab):
    write_checks(lab, a_check("smtp.demo.absent", args="target, intrusive_recipient"))
    run(lab, "--target", "twin", "--alluredir", "allure", subprocess=True)
    result = allure_results(lab.path / "allure")["smtp.demo.absent"]
    assert result["name"].startswith("[not_applicable] smtp.demo.absent: ")
    assert "not_applicable" in result["description"]
    assert json.dumps(result["parameters"])  # still parametrized by the target's name only


# --------------------------------------------------------------------------- set-up mistakes

SETUP_MISTAKES = """
[targets.env]
host = "127.0.0.1"
[targets.env.services]
smtp = 1
[targets.env.account]
user = "alice"
password_env = "MAILCONFORM_TEST_UNSET_VARIABLE"

[targets.ca]
host = "127.0.0.1"
[targets.ca.services]
smtp = 1
[targets.ca.tls]
ca_file = "no-such-ca.pem"
"""


@pytest.mark.parametrize("target, message", [
    ("env", "*targets.env.account.password_env: the environment variable MAILCONFORM_TEST_UNSET_VARIABLE is not set*"),
    ("ca", "*targets.ca.tls.ca_file: *no-such-ca.pem does not exist*"),
    ("pop3s://alice@127.0.0.1", "*MAILCONFORM_PASSWORD is not set*"),
])
def test_a_set_up_mistake_is_a_usage_error_before_any_connection(pytester, monkeypatch, target, message):
    monkeypatch.delenv("MAILCONFORM_PASSWORD", raising=False)
    monkeypatch.delenv("MAILCONFORM_TEST_UNSET_VARIABLE", raising=False)
    pytester.makefile(".toml", targets=SETUP_MISTAKES)
    write_checks(pytester, a_check("smtp.demo.ok"))
    result = run(pytester, "--target", target)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_a_password_in_a_url_is_refused_and_never_printed(pytester):
    write_checks(pytester, a_check("smtp.demo.ok"))
    result = run(pytester, "--target", "pop3://alice:Sup3rSecret@127.0.0.1", subprocess=True)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*never put a password in a URL*"])
    assert "Sup3rSecret" not in result.stdout.str() + result.stderr.str()


def test_list_checks_takes_k(pytester):
    write_checks(pytester, a_check("smtp.demo.quit"), a_check("smtp.demo.noop"))
    result = run(pytester, "--list-checks", "-k", "smtp.demo.quit")
    result.stdout.fnmatch_lines(["smtp.demo.quit *"])
    assert "smtp.demo.noop" not in result.stdout.str()


@pytest.mark.parametrize("bodies, code", [
    (['raise Inconclusive("no answer")', 'raise Blocked("smtp.demo.a", "no answer")'], 6),
    (['raise Inconclusive("no answer")', "pass"], 0),
    (['raise Inconclusive("no answer")', 'expect(False, "broken", actual="x")'], 1),
], ids=["nothing-decided", "one-decided", "one-failed"])
def test_exit_status_is_not_0_when_a_target_could_not_be_judged(lab, bodies, code):
    write_checks(lab, *(a_check(f"smtp.demo.{name}", body) for name, body in zip("ab", bodies)))
    result = run(lab, "--target", "lab")
    assert result.ret == code
    if code == 6:
        result.stdout.fnmatch_lines(["NOT JUDGED    lab: nothing could be decided (1 blocked, 1 inconclusive)*"])


# --------------------------------------------------------------------------- grades

def test_grade_files_and_the_score_line(lab):
    write_checks(lab, a_check("smtp.demo.ok"), a_check("smtp.demo.bad", 'expect(False, "broken", actual="x")'),
                 a_check("dns.demo.mx", step="A1.mx"))
    result = run(lab, "--target", "lab", "--grade-json", "grades.json", "--grade-csv", "grades.csv")
    result.stdout.fnmatch_lines(["SCORE         lab: 10 / 15"])  # A1.smtp-session 5 of 10, A1.mx 5 of 5
    document = json.loads((lab.path / "grades.json").read_text())
    assert set(document["run"]) == {"suite_version", "time", "rubric", "lang", "shard", "steps", "targets"}
    assert document["run"]["shard"] is None and document["run"]["steps"]["A1.smtp-session"] == 10
    assert document["targets"]["lab"]["judged"] is True
    assert document["run"]["targets"]["lab"]["services"] == {"smtp": "127.0.0.1:1", "pop3": "127.0.0.1:1"}
    step = document["targets"]["lab"]["steps"]["A1.smtp-session"]
    assert (step["outcome"], step["score"], step["max"]) == ("fail", 5.0, 10)
    assert {c["check"]: c["outcome"] for c in step["checks"]} == {"smtp.demo.ok": "pass", "smtp.demo.bad": "fail"}
    assert (lab.path / "grades.csv").read_text(encoding="utf-8-sig").splitlines() == [
        "target,A1.smtp-session,A1.mx,total,max,flags", "lab,5.0,5.0,10.0,15.0,"]


def test_a_bad_rubric_is_a_usage_error_before_any_connection(lab):
    lab.makefile(".toml", rubric='[scoring]\nwarn = 2\n[steps]\n"A9.nowhere" = 3\n')
    write_checks(lab, a_check("smtp.demo.ok"))
    result = run(lab, "--target", "lab", "--rubric", "rubric.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*scoring.warn: expected a share from 0 to 1, got 2*",
                                 "*steps.A9.nowhere: unknown lab step*"])
