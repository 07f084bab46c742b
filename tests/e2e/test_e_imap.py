"""E.imap-security against the reference and its broken twins (one Dovecot setting wrong each).

Addresses used here: 127.0.10.50 plaintext LOGIN allowed, 127.0.10.51 no imaps listener,
127.0.10.52 CRAM-MD5 offered, 127.0.10.54 a scripted server greeting PREAUTH in clear.
"""

from __future__ import annotations

import socketserver
import threading

from suite_runner import listed_checks, run_suite
from test_reference_variants import targets_table

STEP = ("--step", "E.imap-security")


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
    assert judged(run) == {"imap.imaps.implicit-tls": "fail", "imap.login.account@imaps": "blocked"}, run.output


def test_cram_md5_offered_is_a_warning(reference_variant, tmp_path):
    run = run_variant(reference_variant, tmp_path, "imap-cram", "127.0.10.52",
                      dovecot={"auth_mechanisms": "plain login cram-md5"})
    assert judged(run) == {"imap.auth.mechanisms": "warn"}, run.output
    assert "CRAM-MD5" in run.message("twin", "imap.auth.mechanisms")


class _PreauthServer(socketserver.ThreadingTCPServer):
    """A scripted IMAP server that greets PREAUTH in clear (logged in without a password)."""

    allow_reuse_address = True
    daemon_threads = True


class _PreauthHandler(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(b"* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] logged in as alice\r\n")
        for line in self.rfile:
            tag, _, command = line.decode("ascii", "replace").strip().partition(" ")
            if command.upper().startswith("LOGOUT"):
                self.wfile.write(f"* BYE bye\r\n{tag} OK LOGOUT completed\r\n".encode())
                return
            if command.upper().startswith("CAPABILITY"):
                self.wfile.write(f"* CAPABILITY IMAP4rev1 STARTTLS\r\n{tag} OK done\r\n".encode())
            else:
                self.wfile.write(f"{tag} BAD unknown\r\n".encode())


def test_a_preauth_greeting_in_clear_fails(tmp_path):
    server = _PreauthServer(("127.0.10.54", 143), _PreauthHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        targets = tmp_path / "targets.toml"
        targets.write_text('[targets.preauth]\nhost = "127.0.10.54"\ntimeout = 5\n'
                           '[targets.preauth.services]\nimap = 143\n')
        run = run_suite(tmp_path / "reports", ["preauth"], targets, *STEP)
    finally:
        server.shutdown()
        server.server_close()
    outcomes = run.outcomes("preauth")
    assert run.checks_with("preauth", "fail") == {"imap.session.greeting"}, outcomes
    assert "PREAUTH" in run.message("preauth", "imap.session.greeting")
    assert run.checks_with("preauth", "pass") == set(), outcomes
