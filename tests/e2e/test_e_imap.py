"""E.imap-security against the reference and its broken twins (one Dovecot setting wrong each).

Addresses used here: 127.0.10.50 plaintext LOGIN allowed, 127.0.10.51 no imaps listener,
127.0.10.52 CRAM-MD5 offered.  The scripted IMAP twins (PREAUTH in clear, STARTTLS injection,
STARTTLS and LOGINDISABLED still listed inside TLS) listen on ephemeral ports of 127.0.0.1.
"""

from __future__ import annotations

from fixtures.zoo.imap import ImapTwin
from suite_runner import listed_checks, run_suite
from test_reference_variants import targets_table

STEP = ("--step", "E.imap-security")
PASSWORD = "imap-twin-pw-5521"


def run_variant(reference_variant, tmp_path, name, address, extra_services="", **overrides):
    instance = reference_variant(name, address, **overrides)
    table = targets_table("twin", instance).replace("[targets.twin.services]\n",
                                                    f"[targets.twin.services]\n{extra_services}")
    targets = tmp_path / "targets.toml"
    targets.write_text(table)
    return run_suite(tmp_path / "reports", ["twin"], targets, *STEP)


def judged(run, target="twin"):
    """The rows that did not pass, with their outcomes."""
    return {check: outcome for check, outcome in run.outcomes(target).items() if outcome != "pass"}


def test_the_reference_passes_every_imap_security_check(reference_server, tmp_path):
    run = run_suite(tmp_path / "reports", ["reference"], None, *STEP)
    outcomes = run.outcomes("reference")
    assert set(outcomes) == set(listed_checks("E.imap-security"))
    assert judged(run, "reference") == {}, run.output
    assert outcomes["imap.login.cleartext-refused"] == "pass"
    assert outcomes["imap.starttls.injection"] == "pass"


def test_plaintext_login_allowed_in_clear_fails(reference_variant, tmp_path):
    run = run_variant(reference_variant, tmp_path, "imap-plaintext", "127.0.10.50",
                      dovecot={"disable_plaintext_auth": "no"})
    assert judged(run) == {"imap.capability.before-tls": "fail", "imap.login.cleartext-refused": "fail"}, run.output
    assert "AUTH=PLAIN" in run.message("twin", "imap.capability.before-tls")
    assert "AUTHENTICATIONFAILED" in run.message("twin", "imap.login.cleartext-refused")


def test_a_missing_imaps_listener_fails_implicit_tls(reference_variant, tmp_path):
    from fixtures.reference import LISTENERS
    run = run_variant(reference_variant, tmp_path, "no-imaps", "127.0.10.51", extra_services="imaps = 993\n",
                      listeners=tuple(name for name in LISTENERS if name != "imaps"))
    tls_checks = {check: outcome for check, outcome in judged(run).items() if check.startswith("tls.")}
    assert set(tls_checks.values()) <= {"blocked"}, run.output  # the TLS checks of imaps, by its handshake
    assert {check: outcome for check, outcome in judged(run).items() if check not in tls_checks} == {
        "imap.imaps.implicit-tls": "fail", "imap.login.account@imaps": "blocked"}, run.output


def test_cram_md5_offered_is_a_warning(reference_variant, tmp_path):
    run = run_variant(reference_variant, tmp_path, "imap-cram", "127.0.10.52",
                      dovecot={"auth_mechanisms": "plain login cram-md5"})
    assert judged(run) == {"imap.auth.mechanisms": "warn"}, run.output
    assert "CRAM-MD5" in run.message("twin", "imap.auth.mechanisms")


def run_imap_twin(tmp_path, *faults):
    """E.imap-security against a scripted IMAP server (fixtures/zoo/imap.py ImapTwin) on an ephemeral
    loopback port, wrong in ``faults``; its certificate verifies against its own throwaway CA."""
    with ImapTwin(faults, password=PASSWORD) as twin:
        targets = tmp_path / "targets.toml"
        targets.write_text(f'[targets.twin]\nhost = "{twin.host}"\ntimeout = 3\n'
                           f'[targets.twin.services]\nimap = {twin.port}\n'
                           f'[targets.twin.tls]\nca_file = "{twin.pki.ca_file}"\nserver_name = "{twin.server_name}"\n'
                           f'[targets.twin.account]\nuser = "alice"\npassword = "{PASSWORD}"\n')
        return run_suite(tmp_path / "reports", ["twin"], targets, *STEP)


def failed_or_warned(run):
    return {check: outcome for check, outcome in judged(run).items() if outcome in ("fail", "warn")}


def test_a_correct_imap_twin_passes(tmp_path):
    run = run_imap_twin(tmp_path)
    assert set(judged(run).values()) <= {"not_applicable"}, run.output  # no imaps, no ID, nothing in INBOX
    assert run.checks_with("twin", "pass") >= {"imap.starttls.injection", "imap.starttls.capability-after",
                                                "imap.auth.plain", "imap.login.cleartext-refused"}, run.output


def test_a_preauth_greeting_in_clear_fails(tmp_path):
    run = run_imap_twin(tmp_path, "preauth")
    outcomes = run.outcomes("twin")
    assert run.checks_with("twin", "fail") == {"imap.session.greeting"}, outcomes
    assert "PREAUTH" in run.message("twin", "imap.session.greeting")
    assert run.checks_with("twin", "pass") == set(), outcomes


def test_plaintext_answered_inside_tls_is_injection(tmp_path):
    run = run_imap_twin(tmp_path, "starttls-injection")
    assert failed_or_warned(run) == {"imap.starttls.injection": "fail"}, run.output
    assert "NOOP" in run.message("twin", "imap.starttls.injection")


def test_starttls_and_logindisabled_listed_inside_tls_fail(tmp_path):
    run = run_imap_twin(tmp_path, "tls-capabilities")
    assert failed_or_warned(run) == {"imap.starttls.capability-after": "fail"}, run.output
    assert "STARTTLS" in run.message("twin", "imap.starttls.capability-after")


def test_a_login_in_clear_that_checks_the_password_fails_without_a_response_code(tmp_path):
    """Courier-IMAP's default: no LOGINDISABLED, and a wrong LOGIN in clear answered "NO Login failed."."""
    run = run_imap_twin(tmp_path, "login-in-clear")
    assert failed_or_warned(run) == {"imap.capability.before-tls": "fail", "imap.login.cleartext-refused": "fail"}, \
        run.output
    assert "does not announce LOGINDISABLED" in run.message("twin", "imap.login.cleartext-refused")
