"""The whole A1 step set passes on the bundled reference server (real Postfix + Dovecot)."""

import pytest

from mailconform.targets import load_targets
from mailconform.wire import Pop3Session, Transcript
from mailconform.wire.tls import client_context
from suite_runner import REPO, everything_written, run_suite


@pytest.fixture(scope="module")
def reference_run(reference_server, tmp_path_factory):
    return run_suite(tmp_path_factory.mktemp("reference"), ["reference"])


def test_every_a1_check_passes_on_the_reference(reference_run):
    outcomes = reference_run.outcomes("reference")
    assert len(outcomes) == 24, reference_run.output[-3000:]
    assert {check for check, outcome in outcomes.items() if outcome != "pass"} == set(), outcomes
    assert reference_run.returncode == 0


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


def _messages_in_alices_mailbox() -> int:
    target = load_targets(REPO / "targets.toml")["reference"]
    endpoint = target.endpoint("pop3")
    session = Pop3Session.connect(endpoint.host, endpoint.port, timeout=5, transcript=Transcript("count"),
                                  source=target.source)
    try:
        session.stls(client_context(target.tls), target.tls.server_name)
        reply = session.login(target.account.user, target.account.password)
        assert reply.ok, f"alice could not log in: {reply}"
        return len(session.message_numbers())
    finally:
        session.close()
