"""Reference variants: the real Postfix + Dovecot with one setting turned wrong, beside the default.

Addresses used here (a new variant elsewhere should pick another; 127.0.10.3 is test_other_servers'):
127.0.10.21 beside, 127.0.10.22 sender-reject, 127.0.10.23 stopped, 127.0.10.24 trimmed, 127.0.10.25 refusing.
"""

from __future__ import annotations

import socket

import pytest

from fixtures import reference
from suite_runner import REPO, run_suite

SUITE_SOURCE = "127.0.0.1"  # where the suite connects from: untrusted by every instance


def greeting(address: str, port: int) -> bytes:
    """The first line of the server's greeting (the last line of a multi-line SMTP one)."""
    with socket.create_connection((address, port), timeout=5, source_address=(SUITE_SOURCE, 0)) as conn:
        with conn.makefile("rb") as reader:
            line = reader.readline(1024)
            while line[3:4] == b"-":
                line = reader.readline(1024)
            conn.sendall(b"QUIT\r\n")
            return line


def refuses(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=2, source_address=(SUITE_SOURCE, 0)).close()
    except ConnectionRefusedError:
        return True
    return False


def targets_table(target: str, instance: reference.Reference) -> str:
    """A targets.toml table for a variant, like the `reference` table of targets.toml (no DNS)."""
    services = "".join(f"{name} = {port}\n" for name, port in instance.services.items())
    return (
        f'[targets.{target}]\n'
        f'description = "reference variant {instance.name}"\n'
        f'domain = "mailconform.test"\nhost = "{instance.address}"\nintrusive = true\n'
        f'allow_cleartext_auth = false\nsource = "{SUITE_SOURCE}"\ntimeout = 10\ndelivery_wait = 10\n'
        f'[targets.{target}.services]\n{services}'
        f'[targets.{target}.tls]\nca_file = "{REPO / "fixtures" / "pki" / "ca.pem"}"\n'
        f'server_name = "mail.mailconform.test"\n'
        f'[targets.{target}.account]\nuser = "alice"\npassword = "alice-pw"\n'
        f'address = "alice@mailconform.test"\n'
    )


def test_a_variant_runs_beside_the_default_reference(reference_server, reference_variant):
    default_before = reference.status()
    beside = reference_variant("beside", "127.0.10.21")
    assert beside.status().running and beside.state_dir != default_before.state_dir
    assert reference.status() == default_before  # untouched, same pids
    for address in (reference.SERVER_IP, beside.address):
        assert greeting(address, 25).startswith(b"220 "), address
        assert greeting(address, 110).startswith(b"+OK"), address


def test_one_wrong_postfix_setting_fails_mail_from_and_not_the_session(reference_variant, tmp_path):
    # Postfix applies smtpd_sender_restrictions at RCPT TO unless smtpd_delay_reject = no: without it
    # MAIL FROM still gets 250 and rcpt-to fails instead. (delay_reject = no only on port 25: in main.cf
    # it would also make smtps and submission refuse every client at connect, by their client restrictions.)
    variant = reference_variant("sender-reject", "127.0.10.22",
                                postfix_main={"smtpd_sender_restrictions": "reject"},
                                postfix_services={"smtp": {"smtpd_delay_reject": "no"}})
    targets_file = tmp_path / "targets.toml"
    targets_file.write_text(targets_table("ref-sender-reject", variant))
    run = run_suite(tmp_path / "reports", ["ref-sender-reject"], targets_file, "--step", "A1.smtp-session")
    outcomes = run.outcomes("ref-sender-reject")
    assert outcomes.get("smtp.session.mail-from") == "fail", run.output[-3000:]
    assert {check for check, outcome in outcomes.items() if outcome == "fail"} == {"smtp.session.mail-from"}, outcomes
    for check in ("smtp.session.greeting", "smtp.session.ehlo", "smtp.session.helo"):
        assert outcomes.get(check) == "pass", (check, outcomes)


def test_stopping_a_variant_leaves_the_default_reference_running(reference_server, reference_variant):
    variant = reference_variant("stopped", "127.0.10.23")
    default_before = reference.status()
    assert variant.stop().stopped
    assert refuses(variant.address, 25) and refuses(variant.address, 110)
    assert reference.status() == default_before and default_before.running
    assert greeting(reference.SERVER_IP, 25).startswith(b"220 ")
    assert greeting(reference.SERVER_IP, 110).startswith(b"+OK")


def test_a_variant_drops_listeners_and_overrides_one_listener_and_dovecot(reference_variant):
    variant = reference_variant(
        "trimmed", "127.0.10.24",
        listeners=[name for name in reference.LISTENERS if name not in ("submission", "pop3s")],
        postfix_services={"smtp": {"smtpd_banner": "$myhostname ESMTP trimmed variant"}},
        dovecot={"login_greeting": "Trimmed variant ready."},
    )
    assert set(variant.services) == {"smtp", "smtps", "pop3", "imap", "imaps"}
    assert refuses(variant.address, 587) and refuses(variant.address, 995)
    assert greeting(variant.address, 25) == b"220 mail.mailconform.test ESMTP trimmed variant\r\n"
    assert greeting(variant.address, 110) == b"+OK Trimmed variant ready.\r\n"
    assert greeting(variant.address, 143).startswith(b"* OK")


def test_a_variant_may_greet_wrongly(reference_variant):
    """A variant is ready once each listener answers in its protocol, even with a refusal: its wrong
    setting may be exactly that (the default reference must greet 220)."""
    variant = reference_variant("refusing", "127.0.10.25",
                                postfix_main={"smtpd_client_restrictions": "reject", "smtpd_delay_reject": "no"})
    for port in (25, 587):
        assert greeting(variant.address, port).startswith(b"554 "), port


@pytest.mark.parametrize("make, why", [
    (lambda: reference.variant("x", "127.0.0.1"), "where the suite connects from"),
    (lambda: reference.variant("x", "10.0.0.7"), "127.0.0.0/8 only"),
    (lambda: reference.variant("reference", "127.0.10.9"), "default instance's name"),
    (lambda: reference.variant("Bad_Name", "127.0.10.9"), "reference name"),
    (lambda: reference.variant("x", "127.0.10.9", listeners=["smtp"], postfix_services={"submission": {}}),
     "not among the listeners kept"),
    (lambda: reference.variant("x", "127.0.10.9", postfix_main={"a = b\nc": "d"}), "not a setting name"),
    (lambda: reference.variant("x", "127.0.10.9", dovecot={"ssl": "yes\nauth_debug = yes"}), "one line"),
], ids=["suite-address", "not-loopback", "default-name", "bad-name", "dropped-listener", "bad-key", "newline"])
def test_a_variant_refuses_unsafe_or_impossible_settings(make, why):
    with pytest.raises(ValueError, match=why):
        make()
