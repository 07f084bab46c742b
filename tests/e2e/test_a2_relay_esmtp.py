"""A2.open-relay and A2.esmtp against the reference and its broken twins (one Postfix setting wrong each).

Addresses used here: 127.0.10.30 open-relay, 127.0.10.31 auth-in-clear, 127.0.10.32 vrfy,
127.0.10.33 submission-relay, 127.0.10.34 smtps-relay.
"""

from __future__ import annotations

import pytest

from suite_runner import everything_written, listed_checks, run_suite
from test_reference_variants import targets_table

STEPS = ("--step", "A2.open-relay", "--step", "A2.esmtp")
RELAY_ROWS = {row for row in listed_checks("A2.open-relay") if row.startswith("smtp.relay.refused[")}
#: Tricks that name the server's own domain: Postfix rewrites them to a local (unknown) user and refuses them.
LOCAL_FORMS = {f"smtp.relay.refused[{name}]" for name in ("percent-local", "quoted-at-local", "double-at-local",
                                                           "bang-local")}


def run_variant(reference_variant, tmp_path, name, address, **overrides):
    instance = reference_variant(name, address, **overrides)
    targets = tmp_path / "targets.toml"
    targets.write_text(targets_table("twin", instance))
    return run_suite(tmp_path / "reports", ["twin"], targets, *STEPS)


def test_the_reference_passes_every_relay_and_esmtp_check(reference_server, tmp_path):
    run = run_suite(tmp_path / "reports", ["reference"], None, *STEPS)
    outcomes = run.outcomes("reference")
    assert set(outcomes) == set(listed_checks("A2.open-relay")) | set(listed_checks("A2.esmtp"))
    assert {check for check, outcome in outcomes.items() if outcome != "pass"} == set(), run.output
    assert "relay probes sent from 127.0.0.1" in everything_written(run)  # the transcript in allure says it


def test_a_trusted_network_makes_an_open_relay(reference_variant, tmp_path):
    run = run_variant(reference_variant, tmp_path, "open-relay", "127.0.10.30",
                      postfix_main={"mynetworks": "127.0.0.0/8"})
    assert run.checks_with("twin", "fail") == RELAY_ROWS - LOCAL_FORMS, run.output
    assert run.outcomes("twin")["smtp.relay.local-delivery"] == "pass"
    message = run.message("twin", "smtp.relay.refused[plain]")
    assert "OPEN RELAY" in message and "@example.com" in message and "from 127.0.0.1" in message


def test_auth_offered_in_clear_on_port_25_is_found(reference_variant, tmp_path):
    run = run_variant(reference_variant, tmp_path, "auth-in-clear", "127.0.10.31",
                      postfix_main={"smtpd_tls_auth_only": "no"})
    # submission keeps smtpd_tls_security_level = encrypt, which implies AUTH only inside TLS
    assert run.checks_with("twin", "fail") == {"smtp.esmtp.auth-not-before-tls@smtp",
                                               "smtp.esmtp.auth-refused-before-tls@smtp"}, run.output
    assert "535" in run.message("twin", "smtp.esmtp.auth-refused-before-tls@smtp")


def test_vrfy_that_tells_users_apart_is_a_warning(reference_variant, tmp_path):
    run = run_variant(reference_variant, tmp_path, "vrfy", "127.0.10.32", postfix_main={"disable_vrfy_command": "no"})
    assert run.checks_with("twin", "fail") == set(), run.output
    assert run.checks_with("twin", "warn") == {"smtp.esmtp.vrfy-expn"}
    assert "alice@mailconform.test" in run.message("twin", "smtp.esmtp.vrfy-expn")


@pytest.mark.parametrize("service", ["submission", "smtps"])
def test_submission_that_relays_without_auth_is_an_open_relay(reference_variant, tmp_path, service):
    run = run_variant(reference_variant, tmp_path, f"{service}-relay", f"127.0.10.3{3 + (service == 'smtps')}",
                      postfix_services={service: {"smtpd_client_restrictions": "permit",
                                                  "mynetworks": "127.0.0.0/8"}})
    assert run.checks_with("twin", "fail") == {f"smtp.relay.submission-unauthenticated@{service}"}, run.output
