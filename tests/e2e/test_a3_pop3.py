"""A3.auth-methods, A3.stls and A3.pop3s against the reference and its broken twins (one Dovecot
setting wrong each).

Addresses used here: 127.0.10.45 plaintext-auth, 127.0.10.46 no-pop3s, 127.0.10.47 cram-md5,
127.0.10.48 anonymous, 127.0.10.49 no-ssl.
"""

from __future__ import annotations

from suite_runner import listed_checks, run_suite
from test_reference_variants import targets_table

STEPS = ("--step", "A3.auth-methods", "--step", "A3.stls", "--step", "A3.pop3s")
ALL_POP3S = set(listed_checks("A3.pop3s"))
NO_TLS_LISTENERS = ("smtp", "smtps", "submission", "pop3", "imap")


def run_variant(reference_variant, tmp_path, name, address, extra_services: str = "", **overrides):
    instance = reference_variant(name, address, **overrides)
    targets = tmp_path / "targets.toml"
    table = targets_table("twin", instance)
    targets.write_text(table.replace("[targets.twin.services]\n", "[targets.twin.services]\n" + extra_services))
    return run_suite(tmp_path / "reports", ["twin"], targets, *STEPS)


def test_the_reference_passes_every_a3_pop3_check(reference_server, tmp_path):
    run = run_suite(tmp_path / "reports", ["reference"], None, *STEPS)
    outcomes = run.outcomes("reference")
    assert set(outcomes) == set(listed_checks("A3.auth-methods")) | set(listed_checks("A3.stls")) | ALL_POP3S
    assert {check: outcome for check, outcome in outcomes.items() if outcome != "pass"} == {
        "pop3.auth.apop": "not_applicable"}, run.output  # no timestamp in Dovecot's greeting without apop


def test_cleartext_logins_before_tls_are_found(reference_variant, tmp_path):
    run = run_variant(reference_variant, tmp_path, "plaintext-auth", "127.0.10.45",
                      dovecot={"disable_plaintext_auth": "no"})
    assert run.checks_with("twin", "fail") == {"pop3.auth.capa-before-tls", "pop3.auth.user-refused-before-tls",
                                               "pop3.auth.plain-refused-before-tls"}, run.output
    assert run.checks_with("twin", "warn") == set(), run.output
    assert "Authentication failed" in run.message("twin", "pop3.auth.user-refused-before-tls")
    assert "USER" in run.message("twin", "pop3.auth.capa-before-tls")


def test_a_missing_pop3s_listener_fails_pop3s(reference_variant, tmp_path):
    run = run_variant(reference_variant, tmp_path, "no-pop3s", "127.0.10.46", extra_services="pop3s = 995\n",
                      listeners=[name for name in ("smtp", "smtps", "submission", "pop3", "imap", "imaps")])
    assert run.checks_with("twin", "fail") == {"pop3.pop3s.implicit-tls"}, run.output
    assert run.outcomes("twin")["pop3.pop3s.session"] == "blocked", run.output
    assert run.checks_with("twin", "pass") >= set(listed_checks("A3.stls")), run.output


def test_md5_mechanisms_are_a_warning(reference_variant, tmp_path):
    run = run_variant(reference_variant, tmp_path, "cram-md5", "127.0.10.47",
                      dovecot={"auth_mechanisms": "plain login cram-md5"})
    assert run.checks_with("twin", "fail") == set(), run.output
    assert run.checks_with("twin", "warn") == {"pop3.auth.mechanisms"}, run.output
    assert "CRAM-MD5" in run.message("twin", "pop3.auth.mechanisms")


def test_anonymous_login_is_a_failure(reference_variant, tmp_path):
    run = run_variant(reference_variant, tmp_path, "anonymous", "127.0.10.48",
                      dovecot={"auth_mechanisms": "plain login anonymous"})
    assert run.checks_with("twin", "fail") == {"pop3.auth.mechanisms"}, run.output
    assert "ANONYMOUS" in run.message("twin", "pop3.auth.mechanisms")


def test_without_tls_stls_fails_and_blocks_what_needs_it(reference_variant, tmp_path):
    run = run_variant(reference_variant, tmp_path, "no-ssl", "127.0.10.49", listeners=NO_TLS_LISTENERS,
                      dovecot={"ssl": "no"})
    assert run.checks_with("twin", "fail") == {"pop3.stls.handshake"}, run.output
    outcomes = run.outcomes("twin")
    assert {check for check, outcome in outcomes.items() if outcome == "blocked"} == {
        "pop3.stls.capa-after", "pop3.stls.twice", "pop3.stls.injection", "pop3.stls.session",
        "pop3.auth.sasl-plain", "pop3.auth.mechanisms"}, run.output
    assert ALL_POP3S.isdisjoint(outcomes) or {outcomes[c] for c in ALL_POP3S} == {"not_applicable"}, run.output
