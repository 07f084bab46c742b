"""A2.smuggling and A2.rfc3848 on reference variants (the real Postfix + Dovecot with one setting
changed) and on the scripted mail twin: exactly the expected rows fail on each.  The default
reference passes both steps here for A2.rfc3848, and in test_reference.py (every row of every step)
for A2.smuggling, whose rows cost a second of listening each.

Addresses used here (no other test may take them): 127.0.10.40 smug-open, 127.0.10.41
smug-strict, 127.0.10.42 smug-mitigated, 127.0.10.43 rcv-comment, 127.0.10.44 rcv-rewritten.
"""

from __future__ import annotations

import pytest

from fixtures import reference
from fixtures.twins import MailTwin
from suite_runner import mailbox_size, run_suite, twin_table
from test_reference_variants import targets_table

from suites.smtp.test_received import ROUTES
from suites.smtp.test_smuggling import END_OF_DATA_VARIANTS

SMUGGLING = {f"smtp.smuggling.end-of-data[{name}]" for name in END_OF_DATA_VARIANTS}
RECEIVED = {f"smtp.received.with-keyword[{name}]" for name in ROUTES}
#: What Postfix 3.7 with smtpd_forbid_bare_newline = no (Debian's default) takes for the end of
#: a message: a line that is a lone dot, ended by a bare LF or following one.  A bare CR is content.
POSTFIX_3_7_ACCEPTS = {"lflf", "lfcrlf", "crlflf"}
#: Rewrites the WITH keyword of every TLS hop as if TLS had not been used: ESMTPS → ESMTP,
#: ESMTPSA → ESMTPA (a header_checks REPLACE rule; "$" doubled for main.cf).
HIDE_TLS = "/^(Received: .*) with ESMTPS(A?) (.*)$/ REPLACE ${1} with ESMTP${2} ${3}"

VARIANTS = {  # target name → (variant name, address, main.cf overrides)
    "ref-smug-open": ("smug-open", "127.0.10.40", {"smtpd_forbid_bare_newline": "no"}),
    "ref-smug-strict": ("smug-strict", "127.0.10.41", {"smtpd_forbid_bare_newline": "reject"}),
    "ref-smug-mitigated": ("smug-mitigated", "127.0.10.42", {"smtpd_forbid_bare_newline": "no",
                                                             "smtpd_forbid_unauth_pipelining": "yes"}),
    "ref-rcv-comment": ("rcv-comment", "127.0.10.43", {"smtpd_tls_received_header": "no",
                                                       "smtpd_sasl_authenticated_header": "no"}),
    "ref-rcv-rewritten": ("rcv-rewritten", "127.0.10.44",
                          {"header_checks": "regexp:{{" + HIDE_TLS.replace("$", "$$") + "}}"}),
}


@pytest.fixture(scope="module")
def runs(reference_server, reference_variant, tmp_path_factory):
    """Two suite runs: A2.smuggling on the smug-* variants, A2.rfc3848 on the reference and the
    rcv-* variants."""
    directory = tmp_path_factory.mktemp("a2-smuggling-received")
    tables = [targets_table("reference", reference.default())]
    for target, (name, address, main) in VARIANTS.items():
        tables.append(targets_table(target, reference_variant(name, address, postfix_main=main)))
    targets_file = directory / "targets.toml"
    targets_file.write_text("\n".join(tables))
    smuggling = [t for t in VARIANTS if t.startswith("ref-smug")]
    received = [t for t in VARIANTS if t.startswith("ref-rcv")]
    before = {target: mailbox_size(address) for target, (_, address, _) in VARIANTS.items()}
    runs = {
        "smuggling": run_suite(directory / "smuggling", smuggling, targets_file, "--step", "A2.smuggling"),
        "received": run_suite(directory / "received", ["reference", *received], targets_file,
                              "--step", "A2.rfc3848"),
    }
    runs["left"] = {target: mailbox_size(address) - before[target] for target, (_, address, _) in VARIANTS.items()}
    return runs


def test_the_reference_passes_every_received_row(runs):
    run = runs["received"]
    assert run.outcomes("reference") == dict.fromkeys(RECEIVED, "pass"), run.output[-4000:]


def test_postfix_that_accepts_bare_newlines_is_smuggled_into(runs):
    """smtpd_forbid_bare_newline = no (Postfix < 3.9, Debian's 3.7): the three sequences that hold a
    lone dot between bare LFs end the message, and the smuggled commands get 250, 250, 354."""
    run = runs["smuggling"]
    failed = {f"smtp.smuggling.end-of-data[{name}]" for name in POSTFIX_3_7_ACCEPTS}
    assert run.checks_with("ref-smug-open", "fail") == failed, run.output[-4000:]
    assert run.checks_with("ref-smug-open", "pass") == SMUGGLING - failed
    message = run.message("ref-smug-open", "smtp.smuggling.end-of-data[lfcrlf]")
    assert "<LF>.<CR><LF>" in message and "127.0.10.40:25" in message and "alice@mailconform.test" in message
    assert "354" in message and "smuggl" in message


def test_refusing_unauthorised_pipelining_only_mitigates(runs):
    """smtpd_forbid_unauth_pipelining = yes answers the smuggled commands 554 and hangs up: the same
    rows fail, and say the server mitigated it."""
    run = runs["smuggling"]
    failed = {f"smtp.smuggling.end-of-data[{name}]" for name in POSTFIX_3_7_ACCEPTS}
    assert run.checks_with("ref-smug-mitigated", "fail") == failed, run.output[-4000:]
    message = run.message("ref-smug-mitigated", "smtp.smuggling.end-of-data[lflf]")
    assert "mitigated" in message and "554" in message


def test_a_server_that_refuses_bare_newlines_passes(runs):
    """smtpd_forbid_bare_newline = reject answers 550 and closes: strict, never a false positive."""
    run = runs["smuggling"]
    assert run.outcomes("ref-smug-strict") == dict.fromkeys(SMUGGLING, "pass"), run.output[-4000:]


def test_the_tls_comment_is_not_what_is_judged(runs):
    """smtpd_tls_received_header = no drops the "(using TLSv1.3 …)" comment, not the keyword:
    Postfix still writes ESMTPS / ESMTPSA, so every row passes."""
    run = runs["received"]
    assert run.outcomes("ref-rcv-comment") == dict.fromkeys(RECEIVED, "pass"), run.output[-4000:]


def test_a_keyword_that_hides_tls_fails_the_tls_rows(runs):
    run = runs["received"]
    tls_rows = {f"smtp.received.with-keyword[{name}]" for name in ("starttls", "submission", "smtps")}
    assert run.checks_with("ref-rcv-rewritten", "fail") == tls_rows, run.output[-4000:]
    assert run.checks_with("ref-rcv-rewritten", "pass") == {"smtp.received.with-keyword[cleartext]"}
    starttls = run.message("ref-rcv-rewritten", "smtp.received.with-keyword[starttls]")
    assert "with ESMTP'" in starttls and "127.0.10.44:25" in starttls and "ESMTPS" in starttls
    submission = run.message("ref-rcv-rewritten", "smtp.received.with-keyword[submission]")
    assert "with ESMTPA'" in submission and "127.0.10.44:587" in submission and "ESMTPSA" in submission


def test_the_probe_messages_are_removed(runs):
    """Every probe a variant took (the first message of a smuggled pair too) is deleted again."""
    assert runs["left"] == dict.fromkeys(VARIANTS, 0)


# --------------------------------------------------------------------------- the scripted twin

def test_on_the_mail_twin(tmp_path):
    """A server that is not Postfix: the healthy twin (strict CRLF lines, "Received: from <EHLO
    name> by … with ESMTPSA") passes both steps; with received-no-esmtps it writes ESMTP / ESMTPA
    inside TLS and exactly the TLS rows fail."""
    twins = {"twin-healthy": MailTwin(), "twin-no-esmtps": MailTwin({"received-no-esmtps"})}
    for twin in twins.values():
        twin.start()
    try:
        targets_file = tmp_path / "targets.toml"
        targets_file.write_text("\n".join(twin_table(name, twin, "alice-pw", cleartext_auth=True) for name, twin in twins.items()))
        run = run_suite(tmp_path / "received", list(twins), targets_file, "--step", "A2.rfc3848")
        smuggling = run_suite(tmp_path / "smuggling", ["twin-healthy"], targets_file, "--step", "A2.smuggling")
    finally:
        for twin in twins.values():
            twin.stop()
    assert smuggling.outcomes("twin-healthy") == dict.fromkeys(SMUGGLING, "pass"), smuggling.output[-4000:]
    assert run.outcomes("twin-healthy") == dict.fromkeys(RECEIVED, "pass"), run.output[-4000:]
    tls_rows = {f"smtp.received.with-keyword[{name}]" for name in ("starttls", "submission", "smtps")}
    assert run.checks_with("twin-no-esmtps", "fail") == tls_rows, run.output[-4000:]
    assert "with ESMTPA'" in run.message("twin-no-esmtps", "smtp.received.with-keyword[smtps]")
