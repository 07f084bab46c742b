"""The whole A1 step set passes on the bundled reference server (real Postfix + Dovecot)."""

import time

import pytest

from mailconform.probes import ProbeMessage
from mailconform.targets import load_targets
from mailconform.wire import Pop3Session, SmtpSession, Transcript
from mailconform.wire.tls import client_context
from suite_runner import REPO, everything_written, listed_checks, run_suite


@pytest.fixture(scope="module")
def reference_run(reference_server, tmp_path_factory):
    reports = tmp_path_factory.mktemp("reference")
    return run_suite(reports, ["reference"], None, f"--capture-dir={reports / 'capture'}")  # A1.capture too


def test_every_a1_check_passes_on_the_reference(reference_run):
    outcomes = reference_run.outcomes("reference")
    assert set(outcomes) == set(listed_checks()), reference_run.output[-3000:]
    # Dovecot's greeting carries no APOP timestamp unless auth_mechanisms has apop: nothing to judge
    assert {check: outcome for check, outcome in outcomes.items() if outcome != "pass"} == {
        "pop3.auth.apop": "not_applicable"}, outcomes
    assert reference_run.returncode == 0


def test_workers_give_the_reference_the_same_verdicts(reference_run, tmp_path_factory):
    reports = tmp_path_factory.mktemp("reference-n")
    parallel = run_suite(reports, ["reference"], None, "-n", "4", f"--capture-dir={reports / 'capture'}")
    assert parallel.outcomes("reference") == reference_run.outcomes("reference"), parallel.output[-3000:]


def test_the_allure_report_of_the_reference_reads_as_the_lab(reference_run):
    import json

    allure = reference_run.reports / "allure"
    results = [json.loads(path.read_text()) for path in allure.glob("*-result.json")]
    assert len(results) == len(listed_checks())
    suites = {(label["name"], label["value"]) for result in results for label in result["labels"]}
    assert {("parentSuite", "reference"), ("suite", "A1 · mail protocols by hand"), ("subSuite", "A1.mx")} <= suites
    assert (allure / "categories.json").exists() and "target.reference=smtp=127.0.10.2:25" in (
        allure / "environment.properties").read_text()
    attachments = "".join(path.read_text() for path in allure.glob("*-attachment.txt"))
    assert "220 mail.mailconform.test ESMTP" in attachments and "← service ready" in attachments
    assert "←" in attachments.split("+OK")[1][:200]  # POP3 replies are noted too
    assert ";mailconform.test.\tIN\tMX" in attachments  # DNS as dig shows it


def test_the_reference_password_is_never_written(reference_run):
    written = everything_written(reference_run)
    assert "alice-pw" not in written
    assert "PASS ***" in written


def test_probe_messages_are_cleaned_up(reference_server, tmp_path_factory):
    """A run leaves alice's mailbox as it found it: the suite deletes its own probe messages."""
    before = _messages_in_alices_mailbox()
    run = run_suite(tmp_path_factory.mktemp("cleanup"), ["reference"], None, "--step", "A1.pop3-session")
    assert run.checks_with("reference", "pass") >= {"pop3.session.retr", "pop3.session.list"}, run.output[-3000:]
    assert _messages_in_alices_mailbox() == before


REFERENCE = load_targets(REPO / "targets.toml")["reference"]


def _alices_mailbox() -> Pop3Session:
    """A POP3 session logged in as alice, over STLS, from the suite's untrusted address."""
    endpoint = REFERENCE.endpoint("pop3")
    session = Pop3Session.connect(endpoint.host, endpoint.port, timeout=5, transcript=Transcript("self-test"),
                                  source=REFERENCE.source)
    session.stls(client_context(REFERENCE.tls), REFERENCE.tls.server_name)
    reply = session.login(REFERENCE.account.user, REFERENCE.account.password)
    assert reply.ok, f"alice could not log in: {reply}"
    return session


def _messages_in_alices_mailbox() -> int:
    session = _alices_mailbox()
    try:
        return len(session.message_numbers())
    finally:
        session.close()


@pytest.fixture
def a_message_for_alice(reference_server):
    """One message in alice's mailbox (sent here, not by the suite), removed afterwards."""
    probe = ProbeMessage.new("self-test@example.com", REFERENCE.account.address)
    endpoint = REFERENCE.endpoint("smtp")
    smtp = SmtpSession.connect(endpoint.host, endpoint.port, timeout=5, transcript=Transcript("self-test"),
                               source=REFERENCE.source)
    for reply in (smtp.ehlo(), smtp.mail(probe.sender), smtp.rcpt(probe.recipient)):
        assert reply.code == 250, reply
    assert smtp.data().code == 354 and smtp.send_message(probe.as_bytes()).code == 250
    smtp.quit()
    deadline = time.monotonic() + 10
    while _messages_in_alices_mailbox() == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    yield probe
    session = _alices_mailbox()
    for number in session.message_numbers():
        if probe.token.encode() in b"".join(session.top(number, 0).lines):
            session.dele(number)
    session.quit()


def test_url_targets_need_no_file(a_message_for_alice, tmp_path, monkeypatch):
    """smtp:// and pop3s://user@ targets run what they can and call the rest not applicable;
    the POP3S path logs in over implicit TLS with the CA from MAILCONFORM_CA_FILE."""
    monkeypatch.setenv("MAILCONFORM_PASSWORD", REFERENCE.account.password)
    monkeypatch.setenv("MAILCONFORM_CA_FILE", str(REFERENCE.tls.ca_file))
    smtp_url, pop3s_url = "smtp://127.0.10.2", "pop3s://alice@127.0.10.2"
    run = run_suite(tmp_path / "reports", [smtp_url, pop3s_url])
    smtp_passes = {"smtp.session." + c for c in
                   ("greeting", "ehlo", "helo", "mail-from", "quit", "unknown-command", "rset", "noop")}
    passes = run.checks_with(smtp_url, "pass")
    assert {check for check in passes if check.startswith("smtp.session.")} == smtp_passes, run.outcomes(smtp_url)
    assert {check for check in passes if check.startswith("smtp.relay.refused[")}  # the bare postmaster as control
    smtp_outcomes = run.outcomes(smtp_url)
    # a URL target asks the system resolver for the PTR and MX, which the self-tests refuse off loopback
    assert smtp_outcomes.pop("tls.names.consistent") == "inconclusive"
    assert "not on loopback" in run.message(smtp_url, "tls.names.consistent")
    assert set(smtp_outcomes.values()) == {"pass", "not_applicable"}
    pop3_passes = {"pop3.session." + c for c in
                   ("greeting", "login", "stat", "list", "retr", "uidl", "top", "in-use", "unknown-command",
                    "bad-password")}
    pop3_passes |= {"pop3.auth.capa", "pop3.auth.sasl-plain", "pop3.auth.mechanisms",  # A3 on pop3s alone
                    "pop3.pop3s.implicit-tls", "pop3.pop3s.session"}
    pop3_passes |= {row for row in listed_checks("A3.pop3-tls") if row.endswith("@pop3s")}
    assert run.checks_with(pop3s_url, "pass") == pop3_passes, run.outcomes(pop3s_url)
    assert set(run.outcomes(pop3s_url).values()) == {"pass", "not_applicable"}
    assert REFERENCE.account.password not in everything_written(run)


def test_observations_before_and_after_tls_on_the_reference(reference_server):
    """The observations the TLS, STARTTLS, STLS and IMAP checks read, made on real Postfix and Dovecot."""
    from mailconform.targetrun import TargetRun

    run = TargetRun(REFERENCE)
    before, after = run.smtp_hello("submission").value, run.smtp_hello("submission", tls=True).value
    assert "STARTTLS" in before.extensions and "STARTTLS" not in after.extensions
    assert "AUTH" in after.extensions  # smtpd_tls_auth_only: AUTH only inside TLS
    capa_before, capa_after = run.pop3_hello("pop3").value, run.pop3_hello("pop3", tls=True).value
    assert "STLS" in capa_before.capabilities and "STLS" not in capa_after.capabilities
    imap_before, imap_after = run.imap_hello("imap").value, run.imap_hello("imap", tls=True).value
    assert "LOGINDISABLED" in imap_before.capabilities and "STARTTLS" not in imap_after.capabilities
    for service in ("smtps", "submission", "pop3", "imap"):
        facts = run.handshake(service).value.answered()
        assert facts.version in ("TLSv1.2", "TLSv1.3") and facts.certificate, service
    assert run.handshake("smtps") is run.handshake("smtps")  # made once
    assert run.budget.opened == 10 and run.budget.open == 0


def test_pop3_without_stls_beside_pop3s_logs_in_over_pop3s_within_the_budget(reference_server, tmp_path):
    """A common student layout: 110 without STLS, 995 with TLS.  STLS is tried once per run, the
    refused session gives its connection back, and every POP3 check passes over 995."""
    from fixtures.twins import MailTwin

    with MailTwin() as no_stls:
        targets_file = tmp_path / "targets.toml"
        targets_file.write_text(
            f'[targets.mixed]\nhost = "127.0.10.2"\ndomain = "mailconform.test"\nintrusive = true\n'
            f'source = "127.0.0.1"\ntimeout = 5\ndelivery_wait = 10\nmax_connections = 2\n'
            f'[targets.mixed.services]\nsmtp = 25\npop3s = 995\npop3 = {{ host = "127.0.0.1", port = {no_stls.pop3_port} }}\n'
            f'[targets.mixed.tls]\nca_file = "{REFERENCE.tls.ca_file}"\nserver_name = "{REFERENCE.tls.server_name}"\n'
            f'[targets.mixed.account]\nuser = "alice"\npassword = "{REFERENCE.account.password}"\n'
            f'address = "alice@mailconform.test"\n')
        run = run_suite(tmp_path / "reports", ["mixed"], targets_file, "--step", "A1.pop3-session")
    assert set(run.outcomes("mixed").values()) == {"pass"}, run.output[-3000:]
    transcripts = {p.read_text() for p in (run.reports / "allure").glob("*-attachment.txt")}
    assert sum("C: STLS" in text for text in transcripts) == 1
