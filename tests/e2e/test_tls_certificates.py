"""The certificate checks (tls.cert.*, tls.names.consistent): every row passes on the reference's
seven endpoints; mail twins that each present one flawed certificate (made by fixtures.pki.flawed)
fail exactly the rows of that flaw — on port 25, where TLS is opportunistic, an untrusted or
misnamed certificate warns instead.  All twins run in one suite run, as a grader runs a class.
"""

from __future__ import annotations

import pytest

from fixtures.twins import MailTwin
from fixtures.twins.dnstwin import DnsTwin
from fixtures.twins.tls import flawed_pki
from mailconform.tlsinfo import TLS_ENDPOINTS
from suite_runner import listed_checks, run_suite

IMPLICIT = "smtp.smtps.implicit-tls"  # runs before the certificate rows, with a verifying handshake
SELECTION = f"tls.cert or tls.names or {IMPLICIT}"
HOST = "127.0.0.1"
CONSISTENT = "tls.cert.consistent"
NAMES = "tls.names.consistent"
TWIN_SERVICES = ("smtp", "submission", "smtps")  # submission is the twin's STARTTLS port again
PER_ENDPOINT = ("validity", "name", "chain", "trust", "key", "signature", "eku")  # tls.cert.CHECK@endpoint


def rows() -> set[str]:
    return {row for row in listed_checks() if row.startswith(("tls.cert.", "tls.names."))}


def at(check: str, *services: str) -> set[str]:
    return {f"tls.cert.{check}@{service}" for service in services}


def every(*services: str) -> set[str]:
    """Every per-endpoint row of ``services``."""
    return {row for check in PER_ENDPOINT for row in at(check, *services)}


def test_the_checks_declare_one_row_per_tls_endpoint():
    assert rows() == every(*TLS_ENDPOINTS) | {CONSISTENT, NAMES}


# --------------------------------------------------------------------------- the reference

@pytest.fixture(scope="module")
def reference_run(reference_server, tmp_path_factory):
    return run_suite(tmp_path_factory.mktemp("tls-certificates"), ["reference"], None, "-k", SELECTION)


def test_every_certificate_row_passes_on_the_reference(reference_run):
    outcomes = reference_run.outcomes("reference")
    assert set(outcomes) == rows() | {IMPLICIT}, reference_run.output[-3000:]
    assert {row for row, outcome in outcomes.items() if outcome != "pass"} == set(), outcomes
    assert reference_run.returncode == 0


def test_the_certificate_is_shown_in_the_report_without_a_private_key(reference_run):
    allure = "".join(path.read_text() for path in (reference_run.reports / "allure").glob("*-attachment.txt"))
    assert "-----BEGIN CERTIFICATE-----" in allure and "SHA-256 fingerprint:" in allure
    assert "subject CN=mail.mailconform.test" in allure
    assert "PRIVATE KEY" not in allure


# --------------------------------------------------------------------------- broken twins

#: target → (flaw of the STARTTLS certificate, flaw of the smtps one, its services, domain,
#:           the rows that fail, the rows that warn, the rows that are blocked); every other row of an
#:           offered endpoint passes, the rest are not applicable.
TWINS: dict[str, tuple[str, str, tuple[str, ...], str, set[str], set[str], set[str]]] = {
    "cert-expired": ("expired", "expired", TWIN_SERVICES, "twin.test", at("validity", *TWIN_SERVICES), set(), set()),
    "cert-not-yet-valid": ("not-yet-valid", "not-yet-valid", TWIN_SERVICES, "twin.test",
                           at("validity", *TWIN_SERVICES), set(), set()),
    "cert-expiring": ("expiring", "expiring", TWIN_SERVICES, "twin.test", set(), at("validity", *TWIN_SERVICES), set()),
    "cert-wrong-name": ("wrong-name", "wrong-name", TWIN_SERVICES, "twin.test",
                        at("name", "submission", "smtps") | {NAMES}, at("name", "smtp"), set()),
    "cert-self-signed": ("self-signed", "self-signed", TWIN_SERVICES, "twin.test",
                         at("trust", "submission", "smtps"), at("trust", "smtp"), set()),
    "cert-no-intermediate": ("missing-intermediate", "missing-intermediate", TWIN_SERVICES, "twin.test",
                             at("chain", "submission", "smtps"), at("chain", "smtp"), at("trust", *TWIN_SERVICES)),
    "cert-rsa-1024": ("rsa-1024", "rsa-1024", TWIN_SERVICES, "twin.test", at("key", *TWIN_SERVICES), set(), set()),
    "cert-sha1": ("sha1", "sha1", TWIN_SERVICES, "twin.test", at("signature", *TWIN_SERVICES), set(), set()),
    "cert-client-only": ("client-only", "client-only", TWIN_SERVICES, "twin.test", at("eku", *TWIN_SERVICES),
                         set(), set()),
    # smtps still on a self-signed snakeoil certificate for localhost while STARTTLS has the good one
    "cert-different": ("good", "snakeoil", TWIN_SERVICES, "twin.test",
                       at("name", "smtps") | at("trust", "smtps") | {CONSISTENT}, set(), set()),
    # port 25 alone with a certificate from a CA the grader does not trust: warnings, no failure
    "cert-untrusted-25": ("untrusted", "good", ("smtp", "smtps"), "twin.test", set(), at("trust", "smtp"), set()),
    # a good certificate, but the MX and the PTR name other hosts than the greeting
    "names-mismatch": ("good", "good", TWIN_SERVICES, "names.test", {NAMES}, set(), set()),
    # STARTTLS refused (454): the certificate rows there are blocked by the STARTTLS check, and with
    # one endpoint left there is nothing to compare
    "starttls-refused": ("good", "good", TWIN_SERVICES, "twin.test", set(), set(),
                         every("smtp", "submission") | {CONSISTENT, NAMES}),
}
#: target → the mail twin's faults (fixtures.twins.faults)
FAULTS = {"starttls-refused": ("starttls-454",)}

ZONE = {
    "twin.test": {"MX": [(10, "mail.twin.test")]},
    "mail.twin.test": {"A": [HOST]},
    "names.test": {"MX": [(10, "mx.names.test")]},
    "mx.names.test": {"A": [HOST]},
    "1.0.0.127.in-addr.arpa": {"PTR": ["mail.twin.test"]},
}


def _table(name: str, twin: MailTwin, services: tuple[str, ...], domain: str, dns_port: int) -> str:
    ports = {"smtp": twin.smtp_port, "submission": twin.smtp_port, "smtps": twin.smtps_port}
    listed = "".join(f"{service} = {ports[service]}\n" for service in services)
    return (f'[targets.{name}]\nhost = "{HOST}"\ndomain = "{domain}"\ndns = "{HOST}:{dns_port}"\n'
            f'timeout = 1\nconnections_per_second = 1000\n[targets.{name}.services]\n{listed}'
            f'[targets.{name}.tls]\nca_file = "{twin.ca_file}"\nserver_name = "{twin.server_name}"\n')


@pytest.fixture(scope="module")
def twins_run(tmp_path_factory):
    """Every flawed twin in one suite run."""
    directory = tmp_path_factory.mktemp("tls-certificate-twins")
    dns = DnsTwin(ZONE)
    dns.start()
    twins, tables = [], []
    try:
        for name, (flaw, smtps_flaw, services, domain, *_) in TWINS.items():
            server_name = f"mail.{domain}"
            twin = MailTwin(FAULTS.get(name, ()), domain=domain, timeout=3, pki=flawed_pki(flaw, server_name, HOST),
                            smtps_pki=flawed_pki(smtps_flaw, server_name, HOST))
            twin.start()
            twins.append(twin)
            tables.append(_table(name, twin, services, domain, dns.port))
        targets_file = directory / "targets.toml"
        targets_file.write_text("\n".join(tables))
        yield run_suite(directory / "reports", list(TWINS), targets_file, "-k", SELECTION,
                        f"--report-dir={directory / 'reports' / 'targets'}", timeout=120)
    finally:
        for twin in twins:
            twin.stop()
        dns.stop()


@pytest.mark.parametrize("target", sorted(TWINS))
def test_a_flawed_certificate_fails_exactly_its_rows(twins_run, target):
    _, _, services, _, failing, warning, blocked = TWINS[target]
    outcomes = {row: outcome for row, outcome in twins_run.outcomes(target).items() if row != IMPLICIT}
    assert set(outcomes) == rows(), twins_run.output[-3000:]
    offered = {row for row in rows() if "@" not in row or row.split("@")[1] in services}

    def rows_with(outcome: str) -> set[str]:
        return {row for row, got in outcomes.items() if got == outcome}

    assert rows_with("fail") == failing, outcomes
    assert rows_with("warn") == warning, outcomes
    assert rows_with("blocked") == blocked, outcomes
    assert rows_with("pass") == offered - failing - warning - blocked, outcomes
    assert rows_with("not_applicable") == rows() - offered, outcomes


def test_a_certificate_that_does_not_verify_on_implicit_tls_is_still_judged(twins_run):
    """smtp.smtps.implicit-tls fails a handshake whose certificate does not verify (and runs first);
    the certificate rows of smtps read the certificate all the same, instead of being blocked by it."""
    verifies = {"good", "expiring"}
    for target, (_, smtps_flaw, *_) in TWINS.items():
        assert twins_run.outcomes(target)[IMPLICIT] == ("pass" if smtps_flaw in verifies else "fail"), target


def test_the_findings_name_the_flaw(twins_run):
    message = twins_run.message
    assert "expired on" in message("cert-expired", "tls.cert.validity@smtps")
    assert "is for other.twin.test, not for mail.twin.test" in message("cert-wrong-name", "tls.cert.name@submission")
    assert "opportunistic TLS" in message("cert-wrong-name", "tls.cert.name@smtp")
    assert "self-signed" in message("cert-self-signed", "tls.cert.trust@smtps")
    missing = message("cert-no-intermediate", "tls.cert.chain@smtps")
    assert 'intermediate certificate "CN=mailconform test intermediate CA" is missing' in missing
    assert "blocked by tls.cert.chain@smtps" in message("cert-no-intermediate", "tls.cert.trust@smtps")
    assert "RSA 1024 bits" in message("cert-rsa-1024", "tls.cert.key@smtp")
    assert "ecdsa-with-SHA1" in message("cert-sha1", "tls.cert.signature@smtp")
    assert "clientAuth" in message("cert-client-only", "tls.cert.eku@smtps")
    different = message("cert-different", CONSISTENT)
    assert different.startswith("smtps:") and "localhost" in different and "smtp, submission present" in different
    names = message("names-mismatch", NAMES)
    assert "the PTR of 127.0.0.1 is mail.twin.test" in names and "the MX of names.test is mx.names.test" in names


def test_a_refused_starttls_blocks_the_certificate_rows_by_its_judge(twins_run):
    message = twins_run.message
    assert message("starttls-refused", "tls.cert.validity@submission").startswith(
        "blocked by smtp.starttls.handshake@submission")
    assert message("starttls-refused", "tls.cert.key@smtp").startswith("blocked by smtp.starttls.handshake@smtp")
    assert message("starttls-refused", CONSISTENT).startswith("blocked by smtp.starttls.handshake@smtp")


def test_port_25_untrusted_is_a_warning_and_the_run_passes(twins_run):
    assert "opportunistic TLS" in twins_run.message("cert-untrusted-25", "tls.cert.trust@smtp")
    assert "an untrusted CA" in twins_run.message("cert-untrusted-25", "tls.cert.trust@smtp")


def test_the_tls_report_shows_the_odd_certificate_out(twins_run):
    """The per-target TLS report (--report-dir): one row per endpoint; the smtps certificate that is
    not the others' is marked and covers no service name, and the consistency finding is listed."""
    report = (twins_run.reports / "targets" / "cert-different" / "tls.en.md").read_text(encoding="utf-8")
    rows = {line.split(" ")[1]: line for line in report.splitlines() if line.startswith(("| smtp", "| submission"))}
    assert set(rows) == {"smtp", "submission", "smtps"}, report
    assert "differs from the others" in rows["smtps"] and "| ✘ |" in rows["smtps"], rows
    assert "differs" not in rows["smtp"] and "| ✔ |" in rows["smtp"], rows
    assert "- `tls.cert.consistent`: **fail** — smtps:" in report
    assert "subject CN=localhost" in report and "-----BEGIN CERTIFICATE-----" in report
    spanish = (twins_run.reports / "targets" / "cert-different" / "tls.es.md").read_text(encoding="utf-8")
    assert "distinto de los demás" in spanish and "Informe TLS — cert-different" in spanish
