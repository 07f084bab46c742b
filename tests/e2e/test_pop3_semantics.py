"""The POP3 maildrop's semantics (A1.pop3-session: UIDL across sessions, TOP, a second login) and
APOP (A3.auth-methods) against the reference and a Dovecot variant that offers APOP.

The scripted twins that break UIDL, TOP and the maildrop lock are in tests/e2e/test_twins.py (mail
twin faults pop3-uidl-unstable, pop3-top-whole, pop3-in-use-no-code).  Address used here:
127.0.10.55 apop.
"""

from __future__ import annotations

import re

from suite_runner import everything_written, run_suite
from test_a3_pop3 import run_variant

SEMANTICS = {"pop3.session.uidl", "pop3.session.top", "pop3.session.in-use"}


def test_the_reference_keeps_uidl_serves_top_and_lets_two_sessions_in(reference_server, tmp_path):
    run = run_suite(tmp_path / "reports", ["reference"], None, "--step", "A1.pop3-session")
    outcomes = run.outcomes("reference")
    assert {check: outcomes[check] for check in SEMANTICS} == dict.fromkeys(SEMANTICS, "pass"), run.output
    written = everything_written(run)
    assert "both sessions were logged in to the same maildrop at once" in written  # Dovecot: pop3_lock_session = no
    assert re.search(r"C: UIDL \d+\n", written) and re.search(r"C: TOP \d+ 1\n", written)


def test_apop_logs_in_and_is_flagged_as_md5(reference_variant, tmp_path):
    run = run_variant(reference_variant, tmp_path, "apop", "127.0.10.55",
                      dovecot={"auth_mechanisms": "plain login apop"})
    assert run.checks_with("twin", "fail") == set(), run.output
    assert run.checks_with("twin", "warn") == {"pop3.auth.apop"}, run.output
    assert "MD5" in run.message("twin", "pop3.auth.apop")
    written = everything_written(run)
    assert "APOP alice ***" in written  # the digest is never shown
    assert not re.search(r"APOP alice [0-9a-f]{32}", written)
