"""Every A1 check fails on at least one broken twin, and exactly the expected checks fail on each.

The twins are small scripted servers (fixtures/twins) on loopback, each wrong in one way; the
suite runs against all of them in one pytest process, as a grader runs it against a class.
"""

from __future__ import annotations

import base64
import re
import socket

import pytest

from fixtures.twins import MAIL_FAULTS, Blackhole, DnsTwin, MailTwin, fault_steps
from mailconform.relay import TRICKS, foreign_domains
from suite_runner import SuiteRun, everything_written, listed_checks, run_suite
from test_a1_dns_records import CASES as DNS_RECORD_CASES

PASSWORD = "twin-s3cret-pw-7781"
A1_CHECKS = set(listed_checks("A1"))
#: A1 checks whose worst verdict is a warning (RFC 2449 lets a server refuse a second login or not).
WARN_ONLY = {"pop3.session.in-use"}

#: fault → the checks that must fail on a twin with that fault (and no other check may fail).
EXPECTED_FAILURES: dict[str, set[str]] = {
    "greeting-554": {"smtp.session.greeting"},
    "greeting-multiline": set(),
    "greeting-silent": set(),           # inconclusive, not failed: see test_silent_and_421_are_inconclusive
    "greeting-garbage": {"smtp.session.greeting"},
    "greeting-421": set(),
    "greeting-421-once": set(),         # the one retry gets through: see test_a_passing_421_is_retried_once
    "ehlo-502": {"smtp.session.ehlo"},
    "ehlo-421": set(),                  # inconclusive: see test_silent_and_421_are_inconclusive
    "ehlo-closes": {"smtp.session.ehlo"},   # the greeting passes; what needs EHLO is blocked by it
    "ehlo-legacy-auth": set(),          # a warning: see test_the_legacy_auth_line_is_a_warning
    "helo-multiline": {"smtp.session.helo"},
    "mail-550": {"smtp.session.mail-from"},
    "rcpt-550": {"smtp.session.rcpt-to"},
    "data-554": {"smtp.session.data"},
    "eod-early": {"smtp.session.end-of-data", "pop3.session.retr"},
    "no-unstuff": {"pop3.session.retr"},
    "lose-message": {"pop3.session.list"},   # the first check that delivers; the others are blocked by it
    "quit-no-close": {"smtp.session.quit"},
    "quit-250": {"smtp.session.quit"},
    "rcpt-before-mail-250": {"smtp.session.rcpt-before-mail"},
    "unknown-250": {"smtp.session.unknown-command"},
    "unknown-502": set(),               # a warning, not a failure
    "rset-500": {"smtp.session.rset"},
    "noop-500": {"smtp.session.noop"},
    "bare-lf-replies": {"smtp.session.greeting"},
    "pop3-greeting-err": {"pop3.session.greeting"},
    "pop3-login-fails": {"pop3.session.login"},
    "pop3-pass-closes": {"pop3.session.login"},  # the wrong-password check is blocked by it
    "pop3-any-password": {"pop3.session.bad-password"},
    "pop3-stat-words": {"pop3.session.stat"},
    "pop3-list-size-wrong": {"pop3.session.list"},
    "pop3-no-stuff": {"pop3.session.list", "pop3.session.retr"},
    "pop3-dele-ignored": {"pop3.session.dele-quit"},
    "pop3-rset-ignored": {"pop3.session.dele-rset"},
    "pop3-unknown-ok": {"pop3.session.unknown-command"},
    "pop3-uidl-unstable": {"pop3.session.uidl"},
    "pop3-top-whole": {"pop3.session.top"},
    "pop3-in-use-no-code": set(),       # a warning: see test_a_second_login_refused_without_in_use_is_a_warning
    # A3: the twin's POP3 offers STLS; it serves USER in clear and has no SASL, which A3.auth-methods fails too
    "pop3-apop-replayable": {"pop3.auth.apop", "pop3.auth.capa-before-tls", "pop3.auth.user-refused-before-tls",
                             "pop3.auth.sasl-plain"},
    "pop3-stls": set(),                 # STLS by the book: every A3.stls check passes
    "pop3-stls-capa-after": {"pop3.stls.capa-after"},
    "pop3-stls-injection": {"pop3.stls.injection"},
    # A2: the twin offers smtp (STARTTLS) and smtps, no submission
    "starttls-injection": {"smtp.starttls.injection@smtp"},
    "no-starttls": {"smtp.esmtp.starttls-offered@smtp", "smtp.starttls.handshake@smtp"},
    "starttls-454": {"smtp.starttls.handshake@smtp"},
    "starttls-twice": {"smtp.starttls.twice@smtp"},
    "ehlo-tls-starttls": {"smtp.starttls.ehlo-after@smtp", "smtp.smtps.implicit-tls"},
    "tls-no-reset": {"smtp.starttls.state-reset@smtp"},
    "auth-cleartext": {"smtp.esmtp.auth-not-before-tls@smtp", "smtp.esmtp.auth-refused-before-tls@smtp"},
    "auth-any-password": set(),  # needs a submission port: tests/e2e/test_a2_starttls.py
    # every trick but those whose address ends at the twin itself, or has no domain (local there: user unknown)
    "open-relay": {f"smtp.relay.refused[{trick}]" for trick in TRICKS} - {
        f"smtp.relay.refused[{trick}]" for trick in ("percent-local", "quoted-at-local", "double-at-local", "bang-local",
                                                      "percent-host", "percent-literal", "quoted-at-literal",
                                                      "double-at-literal", "bang-literal", "bang", "quoted-percent")
    } | {"smtp.relay.submission-unauthenticated@smtps"},
    "percent-hack-relay": {f"smtp.relay.refused[{trick}]" for trick in ("percent-literal", "percent-host",
                                                                        "percent-local")},
    "vrfy-discloses": set(),
    "size-not-enforced": {"smtp.esmtp.size"},
    "no-enhanced-codes": {"smtp.esmtp.enhanced-status-codes"},
    "received-no-esmtps": {"smtp.received.with-keyword[starttls]", "smtp.received.with-keyword[smtps]"},
}

#: DNS twins: target domain → (zone records, the checks that must fail).
DNS_CASES: dict[str, tuple[dict, set[str]]] = {
    "twin.test": ({"twin.test": {"MX": [(10, "mx.twin.test")], "TXT": ["v=spf1 mx -all"]},
                   "mx.twin.test": {"A": ["127.0.0.1"]}, "_dmarc.twin.test": {"TXT": ["v=DMARC1; p=reject"]},
                   "1.0.0.127.in-addr.arpa": {"PTR": ["mx.twin.test"]}}, set()),
    "implicit.test": ({"implicit.test": {"A": ["127.0.0.1"]}}, set()),
    "nxdomain.test": ({}, {"dns.mx.records"}),
    "no-address.test": ({"no-address.test": {"MX": [(10, "ghost.no-address.test")]}}, {"dns.mx.host-resolves"}),
    "dead-mx.test": ({"dead-mx.test": {"MX": [(10, "mx.dead-mx.test")]}, "mx.dead-mx.test": {"A": ["127.0.0.2"]}},
                     {"dns.mx.answers-smtp"}),
    "null-mx.test": ({"null-mx.test": {"MX": [(0, ".")]}}, {"dns.mx.records"}),
}
TIMEOUT = 2


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _target_table(name: str, twin: MailTwin | None, domain: str | None, dns_port: int) -> str:
    """A target for a twin (``None``: ports with nothing listening); the A2 and A3 twins also offer smtps and TLS."""
    smtp_port, pop3_port = (twin.smtp_port, twin.pop3_port) if twin else (_closed_port(), _closed_port())
    domain_line = f'domain = "{domain}"\ndns = "127.0.0.1:{dns_port}"\n' if domain else ""
    a2 = twin is not None and any(step.startswith(("A2", "A3")) for step in TARGET_STEPS.get(name, A1))
    tls = f'[targets.{name}.tls]\nca_file = "{twin.ca_file}"\nserver_name = "{twin.server_name}"\n' if a2 else ""
    return (f'[targets.{name}]\nhost = "127.0.0.1"\n{domain_line}intrusive = true\nallow_cleartext_auth = true\n'
            f'timeout = {TIMEOUT}\ndelivery_wait = 1\nconnections_per_second = 1000\n'  # no pacing: our own twins
            f'[targets.{name}.services]\nsmtp = {smtp_port}\npop3 = {pop3_port}\n'
            + (f'smtps = {twin.smtps_port}\n' if a2 else "") + tls +
            f'[targets.{name}.account]\nuser = "alice"\npassword = "{PASSWORD}"\naddress = "alice@twin.test"\n')


@pytest.fixture(scope="module")
def twin_run(tmp_path_factory):
    """Every twin as a grader runs a class: one target per fault, per DNS case, and a port with nothing
    on it; one suite run per set of lab steps, each target run only with the steps its fault can change."""
    zone = {}
    for records, _ in DNS_CASES.values():
        zone.update(records)
    twins = {fault: MailTwin({fault}, accounts={"alice": PASSWORD}) for fault in EXPECTED_FAILURES}
    healthy = MailTwin(accounts={"alice": PASSWORD})
    dns = DnsTwin(zone)
    servers = [*twins.values(), healthy, dns]
    for server in servers:
        server.start()
    try:
        tables = {fault: _target_table(fault, twin, None, dns.port) for fault, twin in twins.items()}
        tables |= {_dns_target(domain): _target_table(_dns_target(domain), healthy, domain, dns.port)
                   for domain in DNS_CASES}
        tables["nothing-listening"] = _target_table("nothing-listening", None, None, dns.port)
        directory = tmp_path_factory.mktemp("twins")
        targets_file = directory / "targets.toml"
        targets_file.write_text("\n".join(tables.values()))
        groups: dict[tuple[str, ...], list[str]] = {}
        for name in tables:
            groups.setdefault(TARGET_STEPS.get(name, A1), []).append(name)
        # --tb=long and -l show every frame's arguments and locals: no password may be among them.
        runs = [run_suite(directory / "reports" / f"group{i}", names, targets_file, "--tb=long", "-l",
                          *(f"--step={step}" for step in steps))
                for i, (steps, names) in enumerate(groups.items())]
        run = SuiteRun(max(r.returncode for r in runs), "\n".join(r.output for r in runs),
                       [result for r in runs for result in r.results], directory / "reports")
        run.peaks = {fault: twin.gauge.peak for fault, twin in twins.items()}  # connections open at once
        yield run
    finally:
        for server in servers:
            server.stop()


def _dns_target(domain: str) -> str:
    return domain.replace(".", "-")


A1 = ("A1",)
#: target → the steps run against it (every A1 step when not named).
TARGET_STEPS = {fault: fault_steps(fault) for fault in MAIL_FAULTS} | {_dns_target(d): ("A1.mx",) for d in DNS_CASES
                                                                        if d != "twin.test"}


def _expected_checks(target: str) -> set[str]:
    return {check for step in TARGET_STEPS.get(target, A1) for check in listed_checks(step)}


def test_every_fault_of_the_twins_is_covered():
    assert set(EXPECTED_FAILURES) == set(MAIL_FAULTS)


def test_every_check_fails_on_some_twin():
    """(The capture checks read real traffic: tests/e2e/test_capture.py makes them fail; the DNS zones of
    tests/e2e/test_a1_dns_records.py fail the SPF, DMARC, null MX and alias checks and warn the PTR ones.)"""
    failing = set().union(*EXPECTED_FAILURES.values(), *(fails for _, fails in DNS_CASES.values()),
                          *(fails | warns for _, fails, warns, _ in DNS_RECORD_CASES.values()))  # PTR: warnings only
    checks = A1_CHECKS - set(listed_checks("A1.capture")) - WARN_ONLY
    assert checks <= failing, f"checks no twin makes fail: {sorted(checks - failing)}"


@pytest.mark.parametrize("fault", sorted(EXPECTED_FAILURES))
def test_exactly_the_expected_checks_fail(twin_run, fault):
    outcomes = twin_run.outcomes(fault)
    assert set(outcomes) == _expected_checks(fault), twin_run.output[-3000:]
    assert twin_run.checks_with(fault, "fail") == EXPECTED_FAILURES[fault], outcomes


@pytest.mark.parametrize("domain", sorted(DNS_CASES))
def test_dns_twins_fail_exactly_the_expected_mx_checks(twin_run, domain):
    target = domain.replace(".", "-")
    assert twin_run.checks_with(target, "fail") == DNS_CASES[domain][1], twin_run.outcomes(target)


def test_implicit_mx_passes_with_a_warning(twin_run):
    assert twin_run.outcomes("implicit-test")["dns.mx.records"] == "warn"
    assert twin_run.outcomes("implicit-test")["dns.mx.answers-smtp"] == "pass"


def test_a_healthy_twin_passes_everything(twin_run):
    outcomes = twin_run.outcomes("twin-test")
    capture = set(listed_checks("A1.capture"))  # not asked for: no --capture-dir in this run
    assert {outcomes[c] for c in capture} == {"not_applicable"}
    assert {outcome for check, outcome in outcomes.items() if check not in capture} == {"pass"}, outcomes


def test_a_failed_greeting_blocks_the_rest_of_the_service(twin_run):
    outcomes = twin_run.outcomes("greeting-554")
    smtp_checks = {c for c in outcomes if c.startswith("smtp.")} - {"smtp.session.greeting"}
    assert {outcomes[c] for c in smtp_checks} == {"blocked"}
    assert "blocked by smtp.session.greeting" in twin_run.message("greeting-554", "smtp.session.ehlo")
    assert outcomes["pop3.session.login"] == "pass"
    assert outcomes["pop3.session.retr"] == "blocked"  # it needs SMTP to deliver its message


def test_silent_and_421_are_inconclusive(twin_run):
    for fault in ("greeting-silent", "greeting-421"):
        assert twin_run.outcomes(fault)["smtp.session.greeting"] == "inconclusive"
    outcomes = twin_run.outcomes("ehlo-421")  # only EHLO sheds load: the greeting and HELO still work
    smtp_checks = {c for c in outcomes if c.startswith("smtp.")} - {"smtp.session.greeting", "smtp.session.helo"}
    assert {outcomes[c] for c in smtp_checks} == {"inconclusive"}, outcomes


def test_nothing_listening_fails_the_greetings_and_blocks_the_rest(twin_run):
    outcomes = twin_run.outcomes("nothing-listening")
    assert twin_run.checks_with("nothing-listening", "fail") == {"smtp.session.greeting", "pop3.session.greeting"}
    assert "connection refused" in twin_run.message("nothing-listening", "smtp.session.greeting")
    assert {o for c, o in outcomes.items() if c.startswith("smtp.") and c != "smtp.session.greeting"} == {"blocked"}


def test_a_passing_421_is_retried_once(twin_run):
    assert set(twin_run.outcomes("greeting-421-once").values()) <= {"pass", "not_applicable"}
    attachments = "".join(p.read_text() for p in twin_run.reports.rglob("*-attachment.txt"))
    assert "421 4.3.2 service shutting down (421: service not available, closing)" in attachments
    assert "retrying once in" in attachments


def test_a_broken_ehlo_is_the_ehlo_checks_failure_not_the_greetings(twin_run):
    outcomes = twin_run.outcomes("ehlo-closes")
    assert (outcomes["smtp.session.greeting"], outcomes["smtp.session.helo"]) == ("pass", "pass")
    assert "blocked by smtp.session.ehlo" in twin_run.message("ehlo-closes", "smtp.session.noop")


def test_the_legacy_auth_line_is_a_warning(twin_run):
    outcomes = twin_run.outcomes("ehlo-legacy-auth")
    assert outcomes["smtp.session.ehlo"] == "warn"
    assert "broken_sasl_auth_clients" in twin_run.message("ehlo-legacy-auth", "smtp.session.ehlo")
    assert {check for check, outcome in outcomes.items() if outcome not in ("pass", "not_applicable")} == {"smtp.session.ehlo"}


def test_a_second_login_refused_without_in_use_is_a_warning(twin_run):
    outcomes = twin_run.outcomes("pop3-in-use-no-code")
    assert {check for check, outcome in outcomes.items() if outcome != "pass"} == {"pop3.session.in-use"}, outcomes
    assert outcomes["pop3.session.in-use"] == "warn"
    assert "maildrop already locked" in twin_run.message("pop3-in-use-no-code", "pop3.session.in-use")


def test_a_replayable_apop_timestamp_fails(twin_run):
    assert "same timestamp" in twin_run.message("pop3-apop-replayable", "pop3.auth.apop")


def test_unknown_command_502_is_a_warning(twin_run):
    assert twin_run.outcomes("unknown-502")["smtp.session.unknown-command"] == "warn"


def test_a_lost_message_fails_once_and_blocks_the_other_delivery_checks(twin_run):
    outcomes = twin_run.outcomes("lose-message")
    looks = re.search(r"looked at (\d+) time", twin_run.message("lose-message", "pop3.session.list"))
    assert looks and 1 <= int(looks.group(1)) <= 4  # delivery_wait = 1: backed-off looks, each one login
    assert {outcomes[c] for c in ("pop3.session.retr", "pop3.session.dele-rset", "pop3.session.dele-quit")} == {"blocked"}


def test_no_password_is_written_anywhere(twin_run):
    written = everything_written(twin_run)
    assert twin_run.results, twin_run.output[-3000:]
    assert PASSWORD not in written
    assert base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode() not in written
    assert "PASS ***" in written  # the transcripts are there, redacted


def test_a_dead_host_costs_one_connect_timeout_per_service(tmp_path):
    """A host that never answers: each service's greeting is inconclusive after one connect attempt,
    and every other check of that service is blocked without trying again."""
    with Blackhole() as smtp, Blackhole() as pop3, Blackhole() as pop3s:
        targets_file = tmp_path / "targets.toml"
        targets_file.write_text(
            f'[targets.dead]\nhost = "127.0.0.1"\ndomain = "dead.test"\ntimeout = 1\nintrusive = true\n'
            f'dns = "127.0.0.1:{_closed_port()}"\n'
            f'[targets.dead.services]\nsmtp = {smtp.port}\npop3 = {pop3.port}\npop3s = {pop3s.port}\n'
            f'[targets.dead.account]\nuser = "alice"\npassword = "{PASSWORD}"\naddress = "alice@dead.test"\n')
        run = run_suite(tmp_path / "reports", ["dead"], targets_file)
    outcomes = run.outcomes("dead")
    assert outcomes["smtp.session.greeting"] == outcomes["pop3.session.greeting"] == "inconclusive", outcomes
    assert run.returncode == 6  # nothing failed, but the target could not be judged: never 0
    assert "NOT JUDGED    dead: nothing could be decided" in run.output
    assert run.checks_with("dead", "fail") == set()
    assert run.checks_with("dead", "pass") == set()
    # A transcript shared by several checks (an observation) is attached to each: count it once.
    attachments = "".join({p.read_text() for p in (run.reports / "allure").glob("*-attachment.txt")})
    attempts = {name: attachments.count(f"connecting to 127.0.0.1:{hole.port}")
                for name, hole in (("smtp", smtp), ("pop3", pop3), ("pop3s", pop3s))}
    assert attempts == {"smtp": 1, "pop3": 1, "pop3s": 1}  # pop3s: the login's fallback when 110 is down


def test_a_failing_check_reads_in_spanish_with_lang_es(tmp_path):
    """The lab is taught in Spanish: title, message, Expected/Actual and the fix of a failed A1 check."""
    with MailTwin({"noop-500"}, accounts={"alice": PASSWORD}) as twin:
        targets_file = tmp_path / "targets.toml"
        targets_file.write_text(_target_table("noop", twin, None, 1))
        run = run_suite(tmp_path / "reports", ["noop"], targets_file, "--lang", "es", "-k", "smtp.session.noop")
    assert run.outcomes("noop") == {"smtp.session.noop": "fail"}, run.output[-3000:]
    message = run.message("noop", "smtp.session.noop")
    assert "Esperado: 250" in message and "Obtenido: " in message and "500" in message
    assert "smtp.session.noop (A1.smtp-session): NOOP recibe 250" in run.output
    assert "Solución: " in run.output


def test_no_twin_ever_sees_more_connections_at_once_than_its_budget(twin_run):
    """max_connections = 2 (the default).  The twins count on their side, where a session the
    client ended with an accepted QUIT may still be closing while the next one opens: one more."""
    assert max(twin_run.peaks.values()) <= 2 + 1, twin_run.peaks


TWIN_NAMES = {"twin.test", "mail.twin.test", "127.0.0.1"}  # the twins' own domain, host name and address


def test_data_is_only_ever_sent_to_the_accounts_own_address(twin_run):
    """No probe sends a message anywhere but to the target's own account: every DATA in every
    transcript follows RCPT TO the account's address only; and no RCPT names a domain outside the
    reserved ones (RFC 2606) and the target's own."""
    datas = 0
    recipients_seen = set()
    for path in twin_run.reports.rglob("*-attachment.txt"):
        recipients: list[str] = []
        for line in path.read_text().splitlines():
            command = line.split("C: ", 1)[1] if "] C: " in line else ""
            if command.upper().startswith(("MAIL FROM", "RSET", "EHLO", "HELO")):
                recipients = []
            elif command.upper().startswith("RCPT TO:"):
                recipients.append(command[8:].strip().strip("<>").lower())
                recipients_seen.add(recipients[-1])
            elif command.upper() == "DATA":
                datas += 1
                assert recipients and set(recipients) == {"alice@twin.test"}, (path.name, recipients)
    assert datas > 0
    assert [r for r in recipients_seen if foreign_domains(r, TWIN_NAMES)] == []
    assert any("%" in r or "!" in r for r in recipients_seen)  # the relay tricks were among them
