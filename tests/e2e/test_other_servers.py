"""The A1 verdicts on real mail server software that is not ours (fixtures/others).

One small mail host on 127.0.10.3: aiosmtpd (PyPI) for SMTP, delivering into a Maildir, GNU
Mailutils pop3d (Debian ``mailutils-pop3d``) serving it over POP3 without TLS, and dnsmasq
publishing ``other.test MX 10 mail.other.test``. The suite runs against it as three targets, in
one run as a grader runs a class:

- ``other``: the lab server as its teacher describes it, cleartext USER/PASS allowed on the lab
  network (``allow_cleartext_auth = true``). Every A1 check passes: both programs do what
  RFC 5321 and RFC 1939 ask of them in these sessions.
- ``other-no-cleartext``: the same server in a target that does not allow cleartext credentials
  and sends no messages. The server offers no STLS, so the suite never sends the password and the
  checks that need a login are inconclusive, not failed: nothing is wrong with the server there.
- ``other-unknown-account``: the same server with an account it does not have (a typo in the
  target, or a student who never created the user). Real software refusing it must give exactly
  the failures below, so this test can fail.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from suite_runner import SuiteRun, everything_written, listed_checks, run_suite

PASSWORD = "other-s3cret-pw-5521"
TIMEOUT = 3

A1_CHECKS = listed_checks("A1")

#: dnsmasq publishes the MX, its address and the PTR (host-record), but no SPF or DMARC record:
#: warnings, and nothing for the SPF syntax and "all" checks to read.
NO_POLICY_RECORDS = {"dns.spf.one-record": "warn", "dns.spf.syntax": "not_applicable",
                     "dns.spf.all": "not_applicable", "dns.dmarc.record": "warn"}

#: target → {check: outcome}; every A1 check, for every target.
EXPECTED: dict[str, dict[str, str]] = {
    # aiosmtpd: 220 greeting; EHLO 250 + SIZE/8BITMIME/SMTPUTF8/HELP; HELO one line; MAIL/RCPT 250;
    # DATA 354; dot-unstuffing and one 250 at <CRLF>.<CRLF>; 221 and close; 503 for RCPT before
    # MAIL; 500 for an unknown verb; RSET and NOOP 250.  pop3d: +OK greeting; USER/PASS; STAT
    # "+OK n m"; LIST sizes equal to the CRLF octets RETR sends; byte-stuffed RETR; RSET unmarks;
    # QUIT commits DELE; -ERR for an unknown command and for a wrong password.  dnsmasq: the MX.
    # A1.capture: the suite logged in (and read messages) in cleartext, as the target allows: a
    # warning naming the frames; tshark reads pop3d's and aiosmtpd's traffic on their own ports.
    "other": {**dict.fromkeys(A1_CHECKS, "pass"), **NO_POLICY_RECORDS, "capture.cleartext.credentials": "warn",
              "capture.cleartext.mailbox": "warn",
              # pop3d's TOP n sends an empty line more after the one that ends the headers (RFC 1939 §7:
              # the headers, the blank line, "and then the number of lines" asked for): a warning
              "pop3.session.top": "warn"},
    "other-no-cleartext": {
        **dict.fromkeys((c for c in A1_CHECKS if not c.startswith("pop3.")), "pass"), **NO_POLICY_RECORDS,
        # intrusive = false: the suite sends this target no message, and deletes only its own.
        "smtp.session.end-of-data": "not_applicable",
        "pop3.session.dele-quit": "not_applicable",
        "pop3.session.dele-rset": "not_applicable",
        "pop3.session.greeting": "pass",
        "pop3.session.unknown-command": "pass",
        # pop3d (tls-mode false) answers STLS "-ERR Invalid command" and there is no pop3s: RFC 2595
        # makes STLS optional, so the server breaks nothing; the suite has no protected channel and,
        # since the target forbids cleartext credentials, it cannot decide (design: "Real credentials
        # never cross a cleartext channel unless the target says allow_cleartext_auth = true").
        **dict.fromkeys(("pop3.session.login", "pop3.session.stat", "pop3.session.list", "pop3.session.retr",
                         "pop3.session.uidl", "pop3.session.top", "pop3.session.in-use",
                         "pop3.session.bad-password"), "inconclusive"),
        # no login and no read was ever attempted: the capture has nothing to show either way
        "capture.cleartext.credentials": "not_applicable",
        "capture.cleartext.mailbox": "not_applicable",
    },
    "other-unknown-account": {
        **dict.fromkeys(A1_CHECKS, "pass"), **NO_POLICY_RECORDS,
        "capture.cleartext.credentials": "warn",  # its PASS crossed in cleartext (and was refused)
        "capture.cleartext.mailbox": "not_applicable",  # refused at login and at RCPT: nothing was ever read
        # aiosmtpd answers "550 <bob@other.test>: Recipient address rejected": the lab requirement
        # "RCPT TO the account's address gets 250" is not met (RFC 5321 §3.3: "If accepted, the
        # SMTP server returns a "250 OK" reply"; a 550 is the server refusing the mailbox).  The server
        # is right to refuse an unknown user; the fail is the target's: the account does not exist.
        "smtp.session.rcpt-to": "fail",
        # DATA and end-of-data need an accepted recipient first: one root cause, one red check.
        "smtp.session.data": "blocked",
        "smtp.session.end-of-data": "blocked",
        # pop3d answers PASS "-ERR [AUTH] Bad login" for a user it has not got (RFC 1939 §7: the
        # server uses USER and PASS "to determine if the client should be given access").
        "pop3.session.login": "fail",
        "pop3.session.stat": "blocked",
        # these deliver a probe first, and delivery is refused at RCPT
        "pop3.session.list": "blocked",
        "pop3.session.retr": "blocked",
        "pop3.session.dele-rset": "blocked",
        "pop3.session.dele-quit": "blocked",
        "pop3.session.uidl": "blocked",
        "pop3.session.top": "blocked",
        "pop3.session.in-use": "blocked",  # by the login, which it needs twice
        # a server that refuses the account's own login says nothing about wrong passwords
        "pop3.session.bad-password": "blocked",
    },
}


@pytest.fixture(scope="module")
def other_host(tmp_path_factory):
    """aiosmtpd + GNU Mailutils pop3d + dnsmasq on 127.0.10.3 (pop3d on port 110: needs root)."""
    try:
        from fixtures.others import OtherMailHost, ServerError
    except ImportError as error:
        pytest.fail(f"fixtures/others needs aiosmtpd: pip install 'aiosmtpd>=1.4,<2' ({error})", pytrace=False)
    host = OtherMailHost(tmp_path_factory.mktemp("other-servers"), PASSWORD)
    try:
        host.start()
    except (ServerError, OSError) as error:
        pytest.fail(f"the other servers could not start: {error}", pytrace=False)
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture(scope="module")
def other_run(other_host, tmp_path_factory) -> SuiteRun:
    directory = tmp_path_factory.mktemp("other-run")
    targets_file = directory / "targets.toml"
    targets_file.write_text("\n".join((
        _target_table("other", other_host, other_host.login, other_host.address, cleartext=True, intrusive=True),
        _target_table("other-no-cleartext", other_host, other_host.login, other_host.address,
                      cleartext=False, intrusive=False),
        _target_table("other-unknown-account", other_host, f"bob@{other_host.domain}", f"bob@{other_host.domain}",
                      cleartext=True, intrusive=True),
    )))
    return run_suite(directory / "reports", list(EXPECTED), targets_file, "--step", "A1",
                     f"--capture-dir={directory / 'capture'}", timeout=120)


def _target_table(name: str, host, user: str, address: str, *, cleartext: bool, intrusive: bool) -> str:
    return (f'[targets.{name}]\ndescription = "aiosmtpd + GNU Mailutils pop3d + dnsmasq on loopback"\n'
            f'domain = "{host.domain}"\nhost = "{host.host}"\ndns = "{host.dns.host}:{host.dns.port}"\n'
            f'source = "127.0.0.1"\nintrusive = {str(intrusive).lower()}\n'
            f'allow_cleartext_auth = {str(cleartext).lower()}\ntimeout = {TIMEOUT}\ndelivery_wait = 2\n'
            f'[targets.{name}.services]\nsmtp = {host.smtp.port}\npop3 = {host.pop3.port}\n'
            f'[targets.{name}.account]\nuser = "{user}"\npassword = "{PASSWORD}"\naddress = "{address}"\n')


def _transcripts(run: SuiteRun, target: str, check: str | None = None) -> str:
    """Every transcript attached to the target's checks (or to one check) in the allure results."""
    allure = run.reports / "allure"
    texts = []
    for result in allure.glob("*-result.json"):
        data = json.loads(result.read_text())
        labels = data.get("labels", [])
        if {"name": "target", "value": target} in labels and (
                check is None or {"name": "check", "value": check} in labels):
            texts += [(allure / a["source"]).read_text() for a in data.get("attachments", [])]
    return "\n".join(texts)


@pytest.mark.parametrize(("target", "check"), [(t, c) for t in EXPECTED for c in A1_CHECKS])
def test_each_a1_check_has_the_expected_verdict(other_run, target, check):
    outcomes = other_run.outcomes(target)
    assert check in outcomes, other_run.output[-3000:]
    assert outcomes[check] == EXPECTED[target][check], (
        f"{target} {check}: {outcomes[check]}: {other_run.message(target, check)}")


def test_the_run_has_exactly_the_a1_checks(other_run):
    for target in EXPECTED:
        assert set(other_run.outcomes(target)) == set(A1_CHECKS), other_run.output[-3000:]


def test_no_password_is_written_anywhere(other_run):
    written = everything_written(other_run)
    assert other_run.results, other_run.output[-3000:]
    assert PASSWORD not in written
    assert base64.b64encode(PASSWORD.encode()).decode() not in written
    assert "PASS ***" in written  # the transcripts are there, redacted


def test_no_credentials_cross_cleartext_when_the_target_forbids_it(other_run):
    """Against a real POP3 server without TLS, the suite tries STLS, is refused, and sends neither
    USER nor PASS."""
    transcripts = _transcripts(other_run, "other-no-cleartext")
    assert "C: STLS" in transcripts and "S: -ERR" in transcripts, transcripts[-2000:]
    assert "C: USER" not in transcripts and "C: PASS" not in transcripts
    assert "C: USER" in _transcripts(other_run, "other")  # the helper does find the other target's


def _probes_left(host) -> list[str]:
    """The probe tokens (``mc-…``) of the messages left in alice's Maildir."""
    files = [p for sub in ("new", "cur") for p in (host.maildir / sub).iterdir()]
    return [re.search(r"^Subject: mailconform probe (mc-[0-9a-f]+)$", f.read_text(), re.M).group(1) for f in files]


def test_a_run_leaves_no_probe_message_behind(other_host, other_run):
    """Every probe the suite got accepted (end-of-data's and the POP3 checks') is deleted again;
    pop3d commits the DELE at QUIT (RFC 1939 §6)."""
    assert other_run.checks_with("other", "pass") >= {"smtp.session.end-of-data", "pop3.session.retr"}
    assert _probes_left(other_host) == []


def test_the_servers_listen_on_their_loopback_address_only(other_host):
    """Each of their ports listens on 127.0.10.3 and none on the wildcard address 0.0.0.0 (other
    addresses may hold the same port: the reference's Dovecot has 127.0.10.2:110)."""
    ports = {"smtp": other_host.smtp.port, "pop3": other_host.pop3.port, "dns": other_host.dns.port}
    listening: dict[int, set[str]] = {}
    for table, state in (("/proc/net/tcp", "0A"), ("/proc/net/udp", "07")):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port = fields[1].split(":")
            if fields[3] == state:
                listening.setdefault(int(port, 16), set()).add(".".join(map(str, bytes.fromhex(address)[::-1])))
    for service, port in ports.items():
        assert other_host.host in listening.get(port, set()), f"{service}: nothing on {other_host.host}:{port}"
        assert "0.0.0.0" not in listening[port], f"{service}: something listens on 0.0.0.0:{port}"


# --------------------------------------------------------------------------- A2 on software that is not ours

#: aiosmtpd as the lab's MX, A2 verdicts: it accepts mail only for its mailboxes (no relay), offers
#: no STARTTLS and no AUTH, announces SIZE and enforces it at MAIL, answers VRFY 252 for anyone.
A2_STEPS = ("A2.open-relay", "A2.esmtp", "A2.starttls")
A2_EXPECTED_NOT_PASSING = {
    "smtp.esmtp.starttls-offered@smtp": "fail",      # the lab asks for STARTTLS on 25
    "smtp.starttls.handshake@smtp": "fail",          # "port 25 … does not offer STARTTLS"
    "smtp.esmtp.enhanced-status-codes": "warn",      # aiosmtpd does not announce ENHANCEDSTATUSCODES
    "smtp.esmtp.extensions": "warn",                 # nor PIPELINING
}


@pytest.fixture(scope="module")
def other_a2_run(other_host, tmp_path_factory) -> SuiteRun:
    directory = tmp_path_factory.mktemp("other-a2-run")
    targets_file = directory / "targets.toml"
    targets_file.write_text(_target_table("other", other_host, other_host.login, other_host.address,
                                          cleartext=True, intrusive=True))
    return run_suite(directory / "reports", ["other"], targets_file, *(f"--step={step}" for step in A2_STEPS),
                     timeout=120)


def test_a2_verdicts_on_a_real_mta_that_is_not_postfix(other_a2_run):
    outcomes = other_a2_run.outcomes("other")
    assert set(outcomes) == {row for step in A2_STEPS for row in listed_checks(step)}, other_a2_run.output[-3000:]
    not_passing = {check: outcome for check, outcome in outcomes.items() if outcome not in ("pass", "not_applicable")}
    blocked = {check for check, outcome in not_passing.items() if outcome == "blocked"}
    assert {c: o for c, o in not_passing.items() if c not in blocked} == A2_EXPECTED_NOT_PASSING, not_passing
    assert all(check.startswith("smtp.starttls.") and check.endswith("@smtp") for check in blocked), blocked
    assert outcomes["smtp.relay.local-delivery"] == "pass"
    assert {o for c, o in outcomes.items() if c.startswith("smtp.relay.refused[")} == {"pass"}
