"""TLS versions and weak suites (suites/tls/test_protocols.py) on the reference's seven endpoints,
and on mail twins whose TLS is wrong in one way each (fixtures/twins/oldtls.py): the STARTTLS port
doubles as smtp (port 25's role: opportunistic) and submission, next to its smtps port.
"""

from __future__ import annotations

import ssl
from dataclasses import replace

import pytest

from fixtures.twins import MailTwin
from fixtures.twins.oldtls import WITH_NULL, TripleDesContext, legacy_pki
from fixtures.twins.tls import twin_pki
from mailconform.tlsinfo import TLS_ENDPOINTS
from suite_runner import listed_checks, run_suite, twin_table

SELECT = ("-k", "tls.protocol or tls.cipher")
CHECKS = ("tls.protocol.tls12", "tls.protocol.tls13", "tls.protocol.no-tls10", "tls.protocol.no-tls11",
          "tls.cipher.no-weak")
TWIN_ENDPOINTS = ("smtp", "submission", "smtps")
PASSWORD = "twin-pw"


def rows(endpoints) -> set[str]:
    return {f"{check}@{endpoint}" for check in CHECKS for endpoint in endpoints}


def test_the_checks_declare_a_row_per_endpoint():
    declared = {row for row in listed_checks() if row.split("@")[0] in CHECKS}
    assert declared == rows(TLS_ENDPOINTS)


def test_the_reference_passes_every_row_on_all_seven_endpoints(reference_server, tmp_path):
    run = run_suite(tmp_path / "reports", ["reference"], None, *SELECT)
    outcomes = run.outcomes("reference")
    assert set(outcomes) == rows(TLS_ENDPOINTS), run.output
    assert {row for row, outcome in outcomes.items() if outcome != "pass"} == set(), run.output


def _twins() -> dict[str, MailTwin]:
    """One twin per way of being wrong (each with a certificate of its own name, as a twin has)."""
    made = {}

    def twin(name, pki=None, smtps_pki=None, faults=()):
        made[name] = MailTwin(faults, accounts={"alice": PASSWORD}, domain=f"{name}.test", pki=pki,
                              smtps_pki=smtps_pki)

    def normal(name):
        return twin_pki(f"mail.{name}.test", "127.0.0.1")

    # STARTTLS takes TLS 1.0 and later, smtps TLS 1.1 and later
    twin("old-versions", legacy_pki(normal("old-versions")),
         legacy_pki(normal("old-versions"), minimum=ssl.TLSVersion.TLSv1_1))
    twin("null-suites", legacy_pki(normal("null-suites"), minimum=ssl.TLSVersion.TLSv1_2, ciphers=WITH_NULL))
    # the STARTTLS port "accepts" a 3DES suite (port 25's role: a warning; submission: a failure)
    twin("triple-des", replace(normal("triple-des"), context=TripleDesContext(normal("triple-des").context)),
         normal("triple-des"))
    twin("tls12-only", legacy_pki(normal("tls12-only"), minimum=ssl.TLSVersion.TLSv1_2,
                                  maximum=ssl.TLSVersion.TLSv1_2))
    twin("no-starttls", faults={"no-starttls"})  # the probes are blocked, not failed a second time
    twin("untrusted")  # trusted against another twin's CA: the certificate checks' business, not these
    return made


@pytest.fixture(scope="module")
def twins_run(tmp_path_factory):
    twins = _twins()
    for twin in twins.values():
        twin.start()
    try:
        directory = tmp_path_factory.mktemp("tls-protocols")
        targets = directory / "targets.toml"
        tables = {name: twin_table(name, twin, PASSWORD).replace(f"pop3 = {twin.pop3_port}\n", "")
                  for name, twin in twins.items()}
        tables["untrusted"] = tables["untrusted"].replace(twins["untrusted"].ca_file, twins["old-versions"].ca_file)
        targets.write_text("\n".join(tables.values()))
        yield run_suite(directory / "reports", list(twins), targets, *SELECT)
    finally:
        for twin in twins.values():
            twin.stop()


EXPECTED = {  # twin: (failed rows, warned rows, blocked rows)
    "old-versions": ({"tls.protocol.no-tls10@submission", "tls.protocol.no-tls11@submission",
                      "tls.protocol.no-tls11@smtps"},
                     {"tls.protocol.no-tls10@smtp", "tls.protocol.no-tls11@smtp"}, set()),
    "null-suites": ({f"tls.cipher.no-weak@{e}" for e in TWIN_ENDPOINTS}, set(), set()),
    "triple-des": ({"tls.cipher.no-weak@submission"}, {"tls.cipher.no-weak@smtp"}, set()),
    "tls12-only": (set(), {f"tls.protocol.tls13@{e}" for e in TWIN_ENDPOINTS}, set()),
    "no-starttls": (set(), set(), rows(("smtp", "submission"))),
    "untrusted": (set(), set(), set()),
}


@pytest.mark.parametrize("twin", EXPECTED)
def test_a_twin_fails_and_warns_exactly_its_rows(twins_run, twin):
    failed, warned, blocked = EXPECTED[twin]
    outcomes = twins_run.outcomes(twin)
    assert {row for row in outcomes if row.split("@")[1] in TWIN_ENDPOINTS} == rows(TWIN_ENDPOINTS), twins_run.output
    assert twins_run.checks_with(twin, "fail") == failed, twins_run.output
    assert twins_run.checks_with(twin, "warn") == warned, twins_run.output
    assert twins_run.checks_with(twin, "blocked") == blocked, twins_run.output
    assert twins_run.checks_with(twin, "pass") == rows(TWIN_ENDPOINTS) - failed - warned - blocked, twins_run.output
    assert {outcomes[row] for row in outcomes if row.split("@")[1] not in TWIN_ENDPOINTS} == {"not_applicable"}


def test_a_refused_starttls_blocks_the_probes_by_the_check_that_judges_it(twins_run):
    causes = {r["check"]: r["blocked_by"] for r in twins_run.results if r["target"] == "no-starttls"}
    assert {causes[row] for row in EXPECTED["no-starttls"][2]} == {
        "smtp.starttls.handshake@smtp", "smtp.starttls.handshake@submission"}


def test_the_messages_say_what_was_negotiated(twins_run):
    assert "TLS 1.0" in twins_run.message("old-versions", "tls.protocol.no-tls10@submission")
    assert "NULL-SHA" in twins_run.message("null-suites", "tls.cipher.no-weak@smtps")
    assert "DES-CBC3-SHA" in twins_run.message("triple-des", "tls.cipher.no-weak@submission")
    assert "TLS 1.3" in twins_run.message("tls12-only", "tls.protocol.tls13@smtp")
