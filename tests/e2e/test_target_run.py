"""One run per target: observations made once, a connection budget the servers can count, and
the same verdicts with and without ``-n`` (pytest-xdist, every check of a target on one worker)."""

from __future__ import annotations

import pytest

from fixtures.twins import Blackhole, MailTwin
from suite_runner import run_suite

PASSWORD = "twin-budget-pw-5521"
TIMEOUT = 2


def _table(name: str, twin_or_ports, max_connections: int = 2) -> str:
    smtp, pop3 = (twin_or_ports.smtp_port, twin_or_ports.pop3_port) if isinstance(twin_or_ports, MailTwin) \
        else twin_or_ports
    return (f'[targets.{name}]\nhost = "127.0.0.1"\nintrusive = true\nallow_cleartext_auth = true\n'
            f'timeout = {TIMEOUT}\ndelivery_wait = 2\nmax_connections = {max_connections}\n'
            f'[targets.{name}.services]\nsmtp = {smtp}\npop3 = {pop3}\n'
            f'[targets.{name}.account]\nuser = "alice"\npassword = "{PASSWORD}"\naddress = "alice@twin.test"\n')


def test_two_checks_reading_one_observation_cost_one_connection(tmp_path):
    """The greeting and EHLO checks both judge the greeting-and-EHLO observation: one connection."""
    with MailTwin(accounts={"alice": PASSWORD}) as twin:
        targets_file = tmp_path / "targets.toml"
        targets_file.write_text(_table("twin", twin))
        run = run_suite(tmp_path / "reports", ["twin"], targets_file, "-k", "smtp.session.greeting or smtp.session.ehlo")
        assert run.outcomes("twin") == {"smtp.session.greeting": "pass", "smtp.session.ehlo": "pass"}, run.output
        assert twin.connections == 1


@pytest.fixture(scope="module")
def class_runs(tmp_path_factory):
    """Three healthy servers with a budget of 2 connections and a dead host, run serially and with -n 4."""
    directory = tmp_path_factory.mktemp("class")
    twins = [MailTwin(accounts={"alice": PASSWORD}) for _ in range(3)]
    with Blackhole() as dead_smtp, Blackhole() as dead_pop3:
        for twin in twins:
            twin.start()
        try:
            targets_file = directory / "targets.toml"
            names = [f"student{i}" for i in range(1, 4)]
            targets_file.write_text("\n".join([_table(n, t) for n, t in zip(names, twins)]
                                              + [_table("dead", (dead_smtp.port, dead_pop3.port))]))
            serial = run_suite(directory / "serial", [*names, "dead"], targets_file, "--step", "A1")
            peaks_serial = [t.peak_connections for t in twins]
            parallel = run_suite(directory / "parallel", [*names, "dead"], targets_file, "--step", "A1", "-n", "4")
            peaks_parallel = [t.peak_connections for t in twins]
            yield serial, parallel, peaks_serial, peaks_parallel, (dead_smtp.port, dead_pop3.port)
        finally:
            for twin in twins:
                twin.stop()


def test_verdicts_are_the_same_with_and_without_workers(class_runs):
    serial, parallel, *_ = class_runs
    assert serial.results and parallel.results, parallel.output[-3000:]
    for target in ("student1", "student2", "student3", "dead"):
        assert serial.outcomes(target) == parallel.outcomes(target), target
    assert set(serial.outcomes("student1").values()) == {"pass", "not_applicable"}, serial.outcomes("student1")


def test_no_server_sees_more_than_its_connection_budget(class_runs):
    _, _, peaks_serial, peaks_parallel, _ = class_runs
    assert max(peaks_serial) <= 2 and max(peaks_parallel) <= 2, (peaks_serial, peaks_parallel)


def test_a_dead_service_costs_one_connection_attempt_under_workers(class_runs):
    _, parallel, _, _, (smtp_port, pop3_port) = class_runs
    assert parallel.outcomes("dead")["smtp.session.greeting"] == "inconclusive"
    # A transcript shared by several checks (an observation) is attached to each: count it once.
    attachments = "".join({p.read_text() for p in (parallel.reports / "allure").glob("*-attachment.txt")})
    assert attachments.count(f"connecting to 127.0.0.1:{smtp_port}") == 1
    assert attachments.count(f"connecting to 127.0.0.1:{pop3_port}") == 1


def test_every_a1_check_fits_a_budget_of_one_connection(tmp_path):
    """A session whose QUIT was accepted gives its slot back: no A1 check needs two at once."""
    with MailTwin(accounts={"alice": PASSWORD}) as twin:
        targets_file = tmp_path / "targets.toml"
        targets_file.write_text(_table("tight", twin, max_connections=1))
        run = run_suite(tmp_path / "reports", ["tight"], targets_file, "--step", "A1")
    assert set(run.outcomes("tight").values()) == {"pass", "not_applicable"}, run.output[-3000:]
