"""Lab step A2.starttls: every check passes on the reference server; reference variants with one
setting turned wrong, a wrong trust anchor and the scripted twins' STARTTLS faults fail exactly
the checks they should.

Addresses used here (kept to 127.0.10.35–39): 127.0.10.35 no-starttls, 127.0.10.36 submission-may,
127.0.10.37 no-wrapper, 127.0.10.38 no-sasl.
"""

from __future__ import annotations

import pytest

from fixtures import reference
from fixtures.twins import MailTwin
from fixtures.twins.tls import twin_pki
from mailconform.targets import load_targets
from suite_runner import REPO, listed_checks, mailbox_size, run_suite, twin_table

STEP = "A2.starttls"
SUITE_SOURCE = "127.0.0.1"  # untrusted by every instance

HANDSHAKE = "smtp.starttls.handshake"
EHLO_AFTER = "smtp.starttls.ehlo-after"
ARGUMENTS = "smtp.starttls.arguments"
TWICE = "smtp.starttls.twice"
STATE_RESET = "smtp.starttls.state-reset"
INJECTION = "smtp.starttls.injection"
IMPLICIT = "smtp.smtps.implicit-tls"
MAIL_BEFORE_TLS = "smtp.submission.mail-before-tls"
AUTH = "smtp.submission.auth"
AUTH_REQUIRED = "smtp.submission.auth-required"
WRONG_PASSWORD = "smtp.submission.wrong-password"

#: Every STARTTLS row of a service besides the handshake: blocked when its STARTTLS does not work.
NEEDS_STARTTLS = {
    "smtp": {f"{EHLO_AFTER}@smtp", f"{ARGUMENTS}@smtp", f"{TWICE}@smtp", f"{STATE_RESET}@smtp", f"{INJECTION}@smtp"},
    "submission": {f"{EHLO_AFTER}@submission", f"{ARGUMENTS}@submission", f"{TWICE}@submission",
                   f"{INJECTION}@submission", f"{AUTH}@submission", f"{AUTH_REQUIRED}@submission",
                   f"{WRONG_PASSWORD}@submission"},
}


def rows() -> set[str]:
    return set(listed_checks(STEP))


def test_the_step_declares_the_rows_other_code_relies_on():
    from mailconform.sessions import IMPLICIT_TLS_CHECK, SMTP_AUTH_CHECK, STARTTLS_CHECK

    assert {f"{STARTTLS_CHECK}@smtp", f"{STARTTLS_CHECK}@submission", f"{EHLO_AFTER}@smtp",
            f"{EHLO_AFTER}@submission", f"{SMTP_AUTH_CHECK}@submission", f"{SMTP_AUTH_CHECK}@smtps",
            IMPLICIT_TLS_CHECK} <= rows()
    assert len(rows()) == 18


# --------------------------------------------------------------------------- the reference

@pytest.fixture(scope="module")
def reference_run(reference_server, tmp_path_factory):
    before = mailbox_size(REFERENCE.host)
    run = run_suite(tmp_path_factory.mktemp("a2-starttls"), ["reference"], None, "--step", STEP)
    run.mailbox_change = mailbox_size(REFERENCE.host) - before
    return run


def test_every_check_of_the_step_passes_on_the_reference(reference_run):
    outcomes = reference_run.outcomes("reference")
    assert set(outcomes) == rows(), reference_run.output[-3000:]
    assert {check for check, outcome in outcomes.items() if outcome != "pass"} == set(), outcomes
    assert reference_run.returncode == 0


def test_the_submitted_probe_messages_are_removed_again(reference_run):
    assert reference_run.outcomes("reference")[f"{AUTH}@submission"] == "pass"
    assert reference_run.mailbox_change == 0


def test_the_reference_password_is_never_written(reference_run):
    assert "alice-pw" not in reference_run.output
    allure = "".join(path.read_text() for path in (reference_run.reports / "allure").glob("*-attachment.txt"))
    assert "AUTH PLAIN ***" in allure and "alice-pw" not in allure


REFERENCE = load_targets(REPO / "targets.toml")["reference"]


# --------------------------------------------------------------------------- reference variants

#: target → (address, variant overrides, the rows that fail, the rows that are blocked); every other row passes.
VARIANTS: dict[str, tuple[str, dict, set[str], set[str]]] = {
    # smtpd_tls_security_level = none on 25 and on the submission entry: no STARTTLS anywhere.
    "ref-no-starttls": ("127.0.10.35", {"postfix_services": {
        "smtp": {"smtpd_tls_security_level": "none"}, "submission": {"smtpd_tls_security_level": "none"}}},
        {f"{HANDSHAKE}@smtp", f"{HANDSHAKE}@submission", MAIL_BEFORE_TLS},
        NEEDS_STARTTLS["smtp"] | NEEDS_STARTTLS["submission"]),
    # 587 offers TLS but does not require it (may instead of encrypt).
    "ref-submission-may": ("127.0.10.36", {"postfix_services": {"submission": {"smtpd_tls_security_level": "may"}}},
                           {MAIL_BEFORE_TLS}, set()),
    # 465 without wrapper mode: a plain SMTP listener where clients start TLS at once.
    "ref-no-wrapper": ("127.0.10.37", {"postfix_services": {"smtps": {"smtpd_tls_wrappermode": "no"}}},
                       {IMPLICIT}, {f"{AUTH}@smtps", f"{AUTH_REQUIRED}@smtps"}),
    # No SASL on 587: AUTH is refused, so the wrong-password check has nothing to say.
    "ref-no-sasl": ("127.0.10.38", {"postfix_services": {"submission": {"smtpd_sasl_auth_enable": "no"}}},
                    {f"{AUTH}@submission"}, {f"{WRONG_PASSWORD}@submission"}),
}
#: The mail listeners the variants' targets name (pop3: the auth check removes its probe message).
MAIL_SERVICES = ("smtp", "smtps", "submission", "pop3")


def _table(target: str, address: str, services: dict[str, int], ca_file: str) -> str:
    listed = "".join(f"{name} = {port}\n" for name, port in services.items())
    return (f'[targets.{target}]\ndomain = "mailconform.test"\nhost = "{address}"\nintrusive = true\n'
            f'allow_cleartext_auth = false\nsource = "{SUITE_SOURCE}"\ntimeout = 10\ndelivery_wait = 10\n'
            f'[targets.{target}.services]\n{listed}'
            f'[targets.{target}.tls]\nca_file = "{ca_file}"\nserver_name = "mail.mailconform.test"\n'
            f'[targets.{target}.account]\nuser = "alice"\npassword = "alice-pw"\naddress = "alice@mailconform.test"\n')


@pytest.fixture(scope="module")
def variants_run(reference_server, reference_variant, tmp_path_factory):
    """Every variant and the wrong trust anchor in one suite run, as a grader runs a class."""
    directory = tmp_path_factory.mktemp("a2-starttls-variants")
    ca = str(REPO / "fixtures" / "pki" / "ca.pem")
    tables = []
    for target, (address, overrides, _, _) in VARIANTS.items():
        instance = reference_variant(target.removeprefix("ref-") + "-a2", address, **overrides)
        services = {name: port for name, port in instance.services.items() if name in MAIL_SERVICES}
        tables.append(_table(target, address, services, ca))
    other_ca = str(twin_pki("mail.mailconform.test", "127.0.10.2").ca_file)
    tables.append(_table("ref-wrong-anchor", reference.SERVER_IP, dict(zip(MAIL_SERVICES, (25, 465, 587, 110))),
                         other_ca))
    targets_file = directory / "targets.toml"
    targets_file.write_text("\n".join(tables))
    return run_suite(directory / "reports", [*VARIANTS, "ref-wrong-anchor"], targets_file, "--step", STEP)


@pytest.mark.parametrize("target", sorted(VARIANTS))
def test_a_variant_fails_exactly_its_checks(variants_run, target):
    _, _, failing, blocked = VARIANTS[target]
    outcomes = variants_run.outcomes(target)
    assert set(outcomes) == rows(), variants_run.output[-3000:]
    assert variants_run.checks_with(target, "fail") == failing, outcomes
    assert variants_run.checks_with(target, "blocked") == blocked, outcomes
    assert variants_run.checks_with(target, "pass") == rows() - failing - blocked, outcomes


def test_no_starttls_on_port_25_says_the_lab_requires_it(variants_run):
    message = variants_run.message("ref-no-starttls", f"{HANDSHAKE}@smtp")
    assert "port 25, smtp (127.0.10.35:25), does not offer STARTTLS" in message and "lab requires it" in message
    assert "blocked by smtp.starttls.handshake@smtp" in variants_run.message("ref-no-starttls", f"{INJECTION}@smtp")
    assert "blocked by smtp.starttls.handshake@submission" in variants_run.message(
        "ref-no-starttls", f"{AUTH}@submission")


def test_mail_before_tls_names_the_endpoint_and_the_reply(variants_run):
    message = variants_run.message("ref-submission-may", MAIL_BEFORE_TLS)
    assert "submission (127.0.10.36:587) accepted MAIL FROM:<alice@mailconform.test> before STARTTLS" in message
    assert "250" in message


def test_a_listener_without_wrapper_mode_is_found_speaking_in_clear(variants_run):
    message = variants_run.message("ref-no-wrapper", IMPLICIT)
    assert "answered in clear" in message and "smtpd_tls_wrappermode=yes" in message
    assert "blocked by smtp.smtps.implicit-tls" in variants_run.message("ref-no-wrapper", f"{AUTH}@smtps")


def test_refused_auth_blocks_the_wrong_password_check(variants_run):
    assert "503" in variants_run.message("ref-no-sasl", f"{AUTH}@submission")
    assert "blocked by smtp.submission.auth@submission" in variants_run.message(
        "ref-no-sasl", f"{WRONG_PASSWORD}@submission")


def test_an_untrusted_certificate_fails_where_clients_verify_and_warns_on_port_25(variants_run):
    """Port 25 is server-to-server TLS, opportunistic (RFC 7435): a certificate that does not verify
    is a warning there and its other STARTTLS checks go on; 587 and 465 fail and block what needs TLS."""
    target = "ref-wrong-anchor"
    failing = {f"{HANDSHAKE}@submission", IMPLICIT}
    port_25 = {row for row in rows() if row.endswith("@smtp")}
    assert variants_run.checks_with(target, "fail") == failing, variants_run.outcomes(target)
    assert variants_run.checks_with(target, "warn") == {f"{HANDSHAKE}@smtp"}
    assert variants_run.checks_with(target, "pass") == {MAIL_BEFORE_TLS} | port_25 - {f"{HANDSHAKE}@smtp"}
    assert variants_run.checks_with(target, "blocked") == rows() - failing - port_25 - {MAIL_BEFORE_TLS}
    assert "certificate verification failed" in variants_run.message(target, f"{HANDSHAKE}@smtp")
    assert "answered in clear" not in variants_run.message(target, IMPLICIT)


# --------------------------------------------------------------------------- scripted twins

TWIN_PASSWORD = "twin-s3cret-pw-4417"
#: Failures of every twin, the healthy one included: its plain port doubles as the submission
#: port (it requires neither TLS nor AUTH for mail to its own domain, as an MX does).
TWIN_BASELINE = {MAIL_BEFORE_TLS, f"{AUTH_REQUIRED}@submission"}
NO_STARTTLS = NEEDS_STARTTLS["smtp"] | NEEDS_STARTTLS["submission"]
#: fault → (the rows that fail, the rows that are blocked); every other row passes.
TWIN_FAULTS: dict[str, tuple[set[str], set[str]]] = {
    "starttls-injection": (TWIN_BASELINE | {f"{INJECTION}@smtp", f"{INJECTION}@submission"}, set()),
    "starttls-twice": (TWIN_BASELINE | {f"{TWICE}@smtp", f"{TWICE}@submission"}, set()),
    "ehlo-tls-starttls": (TWIN_BASELINE | {f"{EHLO_AFTER}@smtp", f"{EHLO_AFTER}@submission", IMPLICIT}, set()),
    "tls-no-reset": (TWIN_BASELINE | {f"{STATE_RESET}@smtp"}, set()),
    "starttls-454": ({f"{HANDSHAKE}@smtp", f"{HANDSHAKE}@submission", MAIL_BEFORE_TLS}, NO_STARTTLS),
    "no-starttls": ({f"{HANDSHAKE}@smtp", f"{HANDSHAKE}@submission", MAIL_BEFORE_TLS}, NO_STARTTLS),
    "auth-any-password": (TWIN_BASELINE | {f"{WRONG_PASSWORD}@submission"}, set()),
}


@pytest.fixture(scope="module")
def twins_run(tmp_path_factory):
    twins = {"healthy": MailTwin(accounts={"alice": TWIN_PASSWORD})}
    twins |= {fault: MailTwin({fault}, accounts={"alice": TWIN_PASSWORD}) for fault in TWIN_FAULTS}
    for twin in twins.values():
        twin.start()
    try:
        directory = tmp_path_factory.mktemp("a2-starttls-twins")
        targets_file = directory / "targets.toml"
        targets_file.write_text("\n".join(twin_table(name, twin, TWIN_PASSWORD) for name, twin in twins.items()))
        yield run_suite(directory / "reports", list(twins), targets_file, "--step", STEP)
    finally:
        for twin in twins.values():
            twin.stop()


def test_the_healthy_twin_fails_only_what_its_plain_ports_cannot_pass(twins_run):
    outcomes = twins_run.outcomes("healthy")
    assert set(outcomes) == rows(), twins_run.output[-3000:]
    assert twins_run.checks_with("healthy", "fail") == TWIN_BASELINE, outcomes
    assert twins_run.checks_with("healthy", "pass") == rows() - TWIN_BASELINE, outcomes


@pytest.mark.parametrize("fault", sorted(TWIN_FAULTS))
def test_a_twin_fault_fails_exactly_its_checks(twins_run, fault):
    failing, blocked = TWIN_FAULTS[fault]
    outcomes = twins_run.outcomes(fault)
    assert set(outcomes) == rows(), twins_run.output[-3000:]
    assert twins_run.checks_with(fault, "fail") == failing, outcomes
    assert twins_run.checks_with(fault, "blocked") == blocked, outcomes
    assert twins_run.checks_with(fault, "pass") == rows() - failing - blocked, outcomes


def test_the_injection_is_named_with_what_came_back(twins_run):
    message = twins_run.message("starttls-injection", f"{INJECTION}@smtp")
    assert "CVE-2011-0411" in message and "250" in message


def test_454_says_tls_is_not_available(twins_run):
    assert "TLS not available (454)" in twins_run.message("starttls-454", f"{HANDSHAKE}@smtp")
