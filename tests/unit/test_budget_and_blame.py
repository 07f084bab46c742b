"""The target run's pieces that need no server: the connection budget and greeting blame."""

import pytest

from mailconform.scheduling import target_scope
from mailconform.sessions import greeting_check
from mailconform.targets import Endpoint, Target
from mailconform.wire.budget import BudgetExceeded, ConnectionBudget


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(round(seconds, 3))
        self.now += seconds


def test_the_budget_lets_a_burst_through_then_paces_new_connections():
    clock = FakeClock()
    budget = ConnectionBudget(concurrent=5, per_second=2, clock=clock, sleep=clock.sleep)
    for _ in range(4):
        budget.acquire("h:25")()
    assert clock.slept == [0.5, 0.5]  # two at once (the burst), then one every 1/2 s
    clock.now += 10
    budget.acquire("h:25")()
    assert clock.slept == [0.5, 0.5]  # after a quiet while, the bucket is full again
    assert budget.opened == 5


def test_the_budget_refuses_one_connection_too_many_and_counts_releases():
    budget = ConnectionBudget(concurrent=2, per_second=1000)
    first, second = budget.acquire("h:25"), budget.acquire("h:110")
    with pytest.raises(BudgetExceeded, match="number 3 open at once; the target allows 2"):
        budget.acquire("h:25")
    first()
    first()  # releasing twice gives back one slot only
    budget.acquire("h:25")
    assert (budget.open, budget.peak) == (2, 2)
    second()
    assert budget.open == 1


def _target(**services):
    return Target(name="t", host="127.0.0.1", services={s: Endpoint("127.0.0.1", p) for s, p in services.items()})


@pytest.mark.parametrize("services, service, blamed", [
    ({"smtp": 25, "submission": 587}, "smtp", "smtp.session.greeting"),
    ({"smtp": 25, "submission": 587}, "submission", "smtp.esmtp.greeting@submission"),
    ({"smtps": 465}, "smtps", "smtp.esmtp.greeting@smtps"),
    ({"pop3": 110, "pop3s": 995}, "pop3", "pop3.session.greeting"),
    ({"pop3": 110, "pop3s": 995}, "pop3s", "pop3.pop3s.implicit-tls"),  # a row that exists: A3.pop3s judges 995
    ({"pop3s": 995}, "pop3s", "pop3.session.greeting"),  # the POP3 checks' service when there is no 110
])
def test_a_service_that_does_not_greet_is_blamed_on_its_own_greeting(services, service, blamed):
    assert greeting_check(_target(**services), service) == blamed


@pytest.mark.parametrize("nodeid, scope", [
    ("suites/smtp/test_smtp_session.py::test_noop_is_250[greeting-421]", "target greeting-421"),
    ("suites/smtp/test_smtp_session.py::test_noop_is_250[greeting-421-once]", "target greeting-421-once"),
    ("suites/smtp/test_relay.py::test_refused[greeting-421-percent-hack]", "target greeting-421"),
    ("suites/tls/test_cert.py::test_name[pop3s://bob@127.0.0.1-smtps]", "target pop3s://bob@127.0.0.1"),
    ("suites/smtp/test_smtp_session.py::test_noop_is_250[smtp://[::1]:2525]", "target smtp://[::1]:2525"),
    ("suites/smtp/test_smtp_session.py::test_noop_is_250[alumno\\xf1o]", "target alumnoño"),
    ("tests/unit/test_x.py::test_plain", "tests/unit/test_x.py::test_plain"),
])
def test_under_xdist_a_checks_unit_of_work_is_its_target(nodeid, scope):
    targets = ["greeting-421", "greeting-421-once", "pop3s://bob@127.0.0.1", "smtp://[::1]:2525", "alumnoño"]
    assert target_scope(nodeid, targets) == scope


def test_deliberate_failed_logins_stop_at_the_targets_budget():
    from mailconform.targetrun import TargetRun
    from mailconform.verdicts import Inconclusive

    run = TargetRun(Target("t", "127.0.0.1", {"pop3": Endpoint("127.0.0.1", 110)}, max_failed_logins=1))
    run.spend_failed_login()
    with pytest.raises(Inconclusive, match="already made 1 deliberate failed login.*max_failed_logins"):
        run.spend_failed_login()
    assert run.failed_logins == 1
