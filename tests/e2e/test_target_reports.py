"""The documents of ``--report-dir``: the IMAP security report, written in English and Spanish
from the run's observations and verdicts, for the reference and for a twin whose faults it must
describe, and attached to allure; and the reference's TLS report (its twins' are in
test_tls_certificates.py).

Address used here: 127.0.10.57 (Dovecot with plaintext logins allowed before TLS).
"""

from __future__ import annotations

import json

import pytest

from fixtures.twins import MailTwin
from suite_runner import run_suite, twin_table
from test_reference_variants import targets_table

STEP = ("--step", "E.imap-security", "--step", "A2.smtp-tls", "--step", "A3.pop3-tls")


def reports(run, target, document="imap-security"):
    folder = run.reports / "imap" / target
    return {lang: (folder / f"{document}.{lang}.md").read_text(encoding="utf-8") for lang in ("en", "es")}


def run_with_reports(tmp_path, targets, targets_file=None):
    return run_suite(tmp_path / "reports", targets, targets_file, *STEP,
                     f"--report-dir={tmp_path / 'reports' / 'imap'}")


@pytest.fixture(scope="module")
def reference_run(reference_server, tmp_path_factory):
    return run_with_reports(tmp_path_factory.mktemp("reference"), ["reference"])


def test_the_reference_report_says_what_the_server_does(reference_run):
    en, es = reports(reference_run, "reference").values()
    assert "# IMAP security report — reference" in en and "# Informe de seguridad IMAP — reference" in es
    assert "offers STARTTLS on port 143" in en and "ofrece STARTTLS en el puerto 143" in es
    assert "announces LOGINDISABLED before TLS" in en
    assert "answers with implicit TLS on port 993" in en
    assert "| `imap.capability.before-tls` | **pass** |" in en
    assert "Gone once TLS is on: `LOGINDISABLED`, `STARTTLS`" in en
    assert "| `PLAIN` | — | ✔ |" in en  # offered inside TLS only
    assert "handshake negotiated TLSv1." in en
    assert "S: a1 OK Begin TLS negotiation now." in en  # the transcript that proves STARTTLS
    assert "CN=mail.mailconform.test" in en
    assert "Cómo mejoró la seguridad de IMAP" in es and "RFC 8996" in es
    assert "alice-pw" not in en + es


def test_the_reference_tls_report_has_every_endpoint_alike(reference_run):
    en = reports(reference_run, "reference", "tls")["en"]
    rows = [line for line in en.splitlines() if line.startswith(("| smtp", "| submission", "| pop3", "| imap"))]
    assert len(rows) == 7 and all("| ✔ |" in row and row.endswith("| TLSv1.3 | `TLS_AES_256_GCM_SHA384` | TLSv1.2 |")
                                  for row in rows), en  # negotiated 1.3; 1.0 and 1.1 refused, 1.2 accepted
    assert "differs from the others**" not in en
    assert "- `tls.cert.consistent`: **pass**" in en and "- `tls.names.consistent`: **pass**" in en
    assert en.count("-----BEGIN CERTIFICATE-----") == 14  # each endpoint's certificate and the CA sent with it


@pytest.mark.parametrize("row, document", [("imap.session.greeting", "imap-security"),
                                           ("tls.cert.consistent", "tls")])
def test_each_document_is_attached_to_its_row_in_allure(reference_run, row, document):
    allure = reference_run.reports / "allure"
    for path in allure.glob("*-result.json"):
        result = json.loads(path.read_text(encoding="utf-8"))
        labels = {label["name"]: label["value"] for label in result["labels"]}
        if labels.get("check") == row:
            attached = {a["name"]: a["source"] for a in result.get("attachments", [])}
            assert set(attached) >= {f"{document}.en.md", f"{document}.es.md"}
            assert "report" in (allure / attached[f"{document}.en.md"]).read_text(encoding="utf-8")
            return
    pytest.fail(f"no allure result for {row}")


def test_a_server_that_takes_passwords_in_clear_is_described_so(reference_variant, tmp_path):
    instance = reference_variant("report-plain", "127.0.10.57", dovecot={"disable_plaintext_auth": "no"})
    targets = tmp_path / "targets.toml"
    targets.write_text(targets_table("twin", instance))
    run = run_with_reports(tmp_path, ["twin"], targets)
    en, es = reports(run, "twin").values()
    assert "does NOT announce LOGINDISABLED before TLS" in en and "NO anuncia LOGINDISABLED antes de TLS" in es
    assert "| `imap.capability.before-tls` | **fail** |" in en
    assert "| `imap.login.cleartext-refused` | **fail** |" in en
    assert "| `PLAIN` | ✔ | ✔ |" in en  # offered before TLS too
    assert "Warning: LOGIN, PLAIN offered before TLS lets a client send the password in clear" in en


def test_a_target_without_imap_gets_a_report_that_says_so(tmp_path):
    with MailTwin() as twin:
        targets = tmp_path / "targets.toml"
        targets.write_text(twin_table("twin", twin, "alice-pw"))
        run = run_with_reports(tmp_path, ["twin"], targets)
    en = reports(run, "twin")["en"]
    assert "This target declares no imap (143) endpoint." in en
    assert "| `imap.session.greeting` | **not_applicable** |" in en


def test_no_report_without_the_option_or_without_step_e(reference_server, tmp_path):
    run = run_suite(tmp_path / "reports", ["reference"], None, "--step", "A1.smtp-session",
                    f"--report-dir={tmp_path / 'reports' / 'imap'}")
    assert not (tmp_path / "reports" / "imap" / "reference").exists(), run.output
