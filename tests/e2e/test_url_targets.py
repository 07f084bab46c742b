"""A student's quick self-check: one URL for a whole server, joined URLs, saving a URL as a target,
and advice that names what a URL user can set — against the bundled reference server."""

import pytest

from fixtures.twins import MailTwin
from mailconform.targets import load_targets
from suite_runner import REPO, everything_written, run_suite

REFERENCE = load_targets(REPO / "targets.toml")["reference"]
WHOLE = "mail://alice@127.0.10.2?dns=127.0.10.53"


@pytest.fixture
def student_env(monkeypatch):
    monkeypatch.setenv("MAILCONFORM_PASSWORD", REFERENCE.account.password)
    monkeypatch.setenv("MAILCONFORM_CA_FILE", str(REFERENCE.tls.ca_file))


@pytest.fixture(scope="module")
def reference_verdicts(reference_server, tmp_path_factory):
    return run_suite(tmp_path_factory.mktemp("reference"), ["reference"]).outcomes("reference")


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "workers"])
def test_a_whole_server_url_finds_the_services_and_judges_like_the_targets_file(
        reference_verdicts, student_env, tmp_path, workers):
    run = run_suite(tmp_path / "reports", [WHOLE], None, "-v", *workers)  # -v against -q: the header
    assert run.outcomes(WHOLE) == reference_verdicts, run.output[-3000:]
    assert "found: smtp=127.0.10.2:25 smtps=127.0.10.2:465 submission=127.0.10.2:587 pop3=127.0.10.2:110" in run.output
    assert "domain mailconform.test: from mail.mailconform.test, the name the SMTP greeting announces" in run.output
    assert "intrusive: on, since the URL names a user (alice)" in run.output
    assert REFERENCE.account.password not in everything_written(run)


def test_closed_ports_are_not_offered_not_failed(student_env, tmp_path):
    with MailTwin(accounts={"alice": REFERENCE.account.password}) as twin:
        url = f"mail://alice@127.0.0.1?smtp={twin.smtp_port}&pop3={twin.pop3_port}&pop3s=9&domain=twin.test"
        run = run_suite(tmp_path / "reports", [url], None, "-v")  # -v against -q: the header
    assert "not offered: pop3s (127.0.0.1:9: connection refused" in run.output
    assert "NOT OFFERED   " in run.output and "pop3s: 127.0.0.1:9" in run.output
    # the closed pop3s fails nothing; the twin's POP3 on its open port has no STLS and takes USER/PASS in
    # clear, which A3 rightly finds
    assert run.checks_with(url, "fail") == {"pop3.stls.handshake", "pop3.auth.capa-before-tls",
                                            "pop3.auth.user-refused-before-tls"}, run.outcomes(url)
    assert run.outcomes(url)["pop3.pop3s.implicit-tls"] == "not_applicable"
    assert run.outcomes(url)["smtp.session.mail-from"] == "pass"


def test_joined_urls_make_one_target_whose_mailbox_checks_run(reference_server, student_env, tmp_path):
    url = "smtp://127.0.10.2+pop3s://alice@127.0.10.2?domain=mailconform.test"
    run = run_suite(tmp_path / "reports", [url], None, "--step", "A1.pop3-session")
    assert set(run.outcomes(url).values()) == {"pass"}, run.output[-3000:]


def test_save_target_writes_a_target_that_gives_the_same_verdicts(reference_verdicts, student_env, tmp_path):
    targets_file = tmp_path / "targets.toml"
    first = run_suite(tmp_path / "first", [WHOLE], targets_file, "--save-target", "mine")
    saved = targets_file.read_text()
    assert "[targets.mine]" in saved and 'password_env = "MAILCONFORM_PASSWORD"' in saved
    assert REFERENCE.account.password not in saved
    second = run_suite(tmp_path / "second", ["mine"], targets_file)
    assert second.outcomes("mine") == first.outcomes(WHOLE) == reference_verdicts, second.output[-3000:]


def test_advice_on_a_url_target_names_the_url_parameter_or_variable(reference_server, tmp_path, monkeypatch):
    monkeypatch.setenv("MAILCONFORM_PASSWORD", REFERENCE.account.password)
    monkeypatch.delenv("MAILCONFORM_CA_FILE", raising=False)
    smtp, no_user, no_ca = "smtp://127.0.10.2", "pop3://127.0.10.2", "pop3://alice@127.0.10.2"
    run = run_suite(tmp_path / "reports", [smtp, no_user, no_ca], None, "--step", "A1")
    assert "add ?domain=DOMAIN to the URL" in run.message(smtp, "dns.mx.records")
    assert "mail://USER@host" in run.message(smtp, "smtp.session.end-of-data")
    assert "add ?domain=DOMAIN to the URL, or name your user" in run.message(smtp, "smtp.session.rcpt-to")
    assert "write it as pop3://USER@host" in run.message(no_user, "pop3.session.login")
    assert "MAILCONFORM_CA_FILE=" in run.message(no_ca, "pop3.session.login")  # its certificate is the lab CA's
    assert "targets.toml" not in "".join(r["message"] for r in run.results)
