"""A1.mx beyond the MX: null MX, an MX on an alias, reverse DNS, SPF and DMARC, against the reference
and DNS twins (one DnsTwin per zone, as every zone has its own reverse record for 127.0.0.1) whose
mail exchanger is one healthy MailTwin."""

from __future__ import annotations

import socket

import pytest

from fixtures.twins import DnsTwin, MailTwin
from suite_runner import listed_checks, run_suite

A1_MX = set(listed_checks("A1.mx"))
TIMEOUT = 2
ADDRESS = "127.0.0.1"  # the MailTwin's
REVERSE = "1.0.0.127.in-addr.arpa"


def healthy_zone(domain: str) -> dict:
    """What the lab asks of a mail domain: an MX on a host name with an address, that address's PTR
    naming it back, one SPF record ending in -all and a DMARC policy."""
    return {domain: {"MX": [(10, f"mx.{domain}")], "TXT": ["v=spf1 mx -all"]},
            f"mx.{domain}": {"A": [ADDRESS]},
            f"_dmarc.{domain}": {"TXT": ["v=DMARC1; p=reject"]},
            REVERSE: {"PTR": [f"mx.{domain}"]}}


def changed(domain: str, **records) -> dict:
    """The healthy zone with some names' records replaced (``None``: the name is gone);
    keyword ``apex`` is the domain, ``mx`` its exchanger, ``dmarc`` its policy, ``reverse`` the PTR."""
    zone = healthy_zone(domain)
    names = {"apex": domain, "mx": f"mx.{domain}", "dmarc": f"_dmarc.{domain}", "reverse": REVERSE}
    for key, value in records.items():
        if value is None:
            zone.pop(names[key])
        else:
            zone[names.get(key, key)] = value
    return zone


SPF = {"TXT": ["v=spf1 mx -all"]}
#: domain → (zone, the checks that must fail, the checks that must warn, the checks not applicable or blocked).
CASES: dict[str, tuple[dict, set[str], set[str], set[str]]] = {
    "good.test": (healthy_zone("good.test"), set(), set(), set()),
    "implicit.test": (changed("implicit.test", apex={"A": [ADDRESS], **SPF}, mx=None,
                              reverse={"PTR": ["implicit.test"]}),
                      set(), {"dns.mx.records"}, {"dns.mx.not-alias"}),
    "null-mx.test": (changed("null-mx.test", apex={"MX": [(0, ".")], **SPF}), {"dns.mx.records"}, set(),
                     {"dns.mx.not-alias", "dns.mx.host-resolves", "dns.mx.answers-smtp",
                      "dns.ptr.exists", "dns.ptr.forward-confirmed"}),
    "null-and-mx.test": (changed("null-and-mx.test", apex={"MX": [(0, "."), (10, "mx.null-and-mx.test")], **SPF}),
                         {"dns.mx.null-mx"}, set(), set()),
    "cname-mx.test": (changed("cname-mx.test", mx={"CNAME": ["host.cname-mx.test"]},
                              **{"host.cname-mx.test": {"A": [ADDRESS]}}, reverse={"PTR": ["host.cname-mx.test"]}),
                      {"dns.mx.not-alias"}, set(), set()),
    "no-address.test": (changed("no-address.test", mx=None), {"dns.mx.host-resolves"}, set(),
                        {"dns.mx.answers-smtp", "dns.ptr.exists", "dns.ptr.forward-confirmed"}),
    "no-ptr.test": (changed("no-ptr.test", reverse=None), set(), {"dns.ptr.exists"},
                    {"dns.ptr.forward-confirmed"}),
    "bad-ptr.test": (changed("bad-ptr.test", reverse={"PTR": ["elsewhere.bad-ptr.test"]},
                             **{"elsewhere.bad-ptr.test": {"A": ["127.0.0.9"]}}),
                     set(), {"dns.ptr.forward-confirmed"}, set()),
    "no-spf.test": (changed("no-spf.test", apex={"MX": [(10, "mx.no-spf.test")]}), set(), {"dns.spf.one-record"},
                    {"dns.spf.syntax", "dns.spf.all"}),
    "two-spf.test": (changed("two-spf.test", apex={"MX": [(10, "mx.two-spf.test")],
                                                   "TXT": ["v=spf1 mx -all", "v=spf1 a ~all"]}),
                     {"dns.spf.one-record"}, set(), {"dns.spf.syntax", "dns.spf.all"}),
    "bad-spf.test": (changed("bad-spf.test", apex={"MX": [(10, "mx.bad-spf.test")], "TXT": ["v=spf1 mx foo -all"]}),
                     {"dns.spf.syntax"}, set(), {"dns.spf.all"}),
    "pass-all.test": (changed("pass-all.test", apex={"MX": [(10, "mx.pass-all.test")], "TXT": ["v=spf1 mx +all"]}),
                      {"dns.spf.all"}, set(), set()),
    "neutral-all.test": (changed("neutral-all.test", apex={"MX": [(10, "mx.neutral-all.test")],
                                                           "TXT": ["v=spf1 redirect=_spf.neutral-all.test"]},
                                 **{"_spf.neutral-all.test": {"TXT": ["v=spf1 mx ?all"]}}),
                         set(), {"dns.spf.all"}, set()),
    "bad-redirect.test": (changed("bad-redirect.test", apex={"MX": [(10, "mx.bad-redirect.test")],
                                                             "TXT": ["v=spf1 redirect=_spf.bad-redirect.test"]}),
                          {"dns.spf.all"}, set(), set()),
    "no-dmarc.test": (changed("no-dmarc.test", dmarc=None), set(), {"dns.dmarc.record"}, set()),
    "dmarc-no-p.test": (changed("dmarc-no-p.test", dmarc={"TXT": ["v=DMARC1; rua=mailto:dmarc@dmarc-no-p.test"]}),
                        {"dns.dmarc.record"}, set(), set()),
    "dmarc-v-late.test": (changed("dmarc-v-late.test", dmarc={"TXT": ["p=reject; v=DMARC1"]}),
                          {"dns.dmarc.record"}, set(), set()),
}


def _name(domain: str) -> str:
    return domain.replace(".", "-")


def _table(name: str, domain: str | None, dns_port: int, services: str) -> str:
    where = f'domain = "{domain}"\ndns = "{ADDRESS}:{dns_port}"\n' if domain else ""
    return (f'[targets.{name}]\nhost = "{ADDRESS}"\n{where}timeout = {TIMEOUT}\nconnections_per_second = 1000\n'
            f'[targets.{name}.services]\n{services}')


@pytest.fixture(scope="module")
def dns_run(tmp_path_factory):
    """One suite run (A1.mx only) over every zone, a target without smtp, one without a domain and
    one whose resolver never answers."""
    mail = MailTwin()
    twins = {domain: DnsTwin(zone) for domain, (zone, *_) in CASES.items()}
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never read: every query times out
    silent.bind((ADDRESS, 0))
    servers = [mail, *twins.values()]
    for server in servers:
        server.start()
    try:
        smtp = f"smtp = {mail.smtp_port}\n"
        tables = [_table(_name(domain), domain, twin.port, smtp) for domain, twin in twins.items()]
        tables += [_table("no-smtp", "good.test", twins["good.test"].port, f"pop3 = {mail.pop3_port}\n"),
                   _table("no-domain", None, 0, smtp),
                   _table("silent-dns", "good.test", silent.getsockname()[1], smtp)]
        directory = tmp_path_factory.mktemp("dns")
        targets = directory / "targets.toml"
        targets.write_text("\n".join(tables))
        names = [*map(_name, CASES), "no-smtp", "no-domain", "silent-dns"]
        yield run_suite(directory / "reports", names, targets, "--step=A1.mx", "-l")
    finally:
        for server in servers:
            server.stop()
        silent.close()


def test_the_reference_passes_every_a1_mx_check(reference_server, tmp_path):
    run = run_suite(tmp_path / "reports", ["reference"], None, "--step=A1.mx")
    outcomes = run.outcomes("reference")
    assert set(outcomes) == A1_MX
    assert {c for c, o in outcomes.items() if o != "pass"} == set(), run.output[-3000:]


@pytest.mark.parametrize("domain", sorted(CASES))
def test_each_zone_fails_and_warns_exactly_the_expected_checks(dns_run, domain):
    _, fails, warns, undecided = CASES[domain]
    target = _name(domain)
    outcomes = dns_run.outcomes(target)
    assert set(outcomes) == A1_MX, dns_run.output[-3000:]
    assert dns_run.checks_with(target, "fail") == fails, outcomes
    assert dns_run.checks_with(target, "warn") == warns, outcomes
    assert {c for c, o in outcomes.items() if o in ("not_applicable", "blocked")} == undecided, outcomes
    assert dns_run.checks_with(target, "inconclusive") == set(), outcomes


def test_a_null_mx_is_reported_as_accepting_no_mail(dns_run):
    assert "accepts no mail" in dns_run.message("null-mx-test", "dns.mx.records")
    assert dns_run.outcomes("null-mx-test")["dns.mx.null-mx"] == "pass"  # well formed: alone
    assert "blocked by dns.mx.records" in dns_run.message("null-mx-test", "dns.mx.answers-smtp")
    beside = dns_run.message("null-and-mx-test", "dns.mx.null-mx")
    assert "MUST NOT" in beside and "MX 0 ., MX 10 mx.null-and-mx.test" in beside


def test_the_messages_name_what_is_wrong(dns_run):
    assert "mx.cname-mx.test CNAME host.cname-mx.test" in dns_run.message("cname-mx-test", "dns.mx.not-alias")
    assert "127.0.0.1 PTR elsewhere.bad-ptr.test" in dns_run.message("bad-ptr-test", "dns.ptr.forward-confirmed")
    assert "foo" in dns_run.message("bad-spf-test", "dns.spf.syntax")
    assert "+all" in dns_run.message("pass-all-test", "dns.spf.all")
    assert "blocked by dns.spf.one-record" in dns_run.message("two-spf-test", "dns.spf.all")


def test_without_an_smtp_service_no_mx_is_connected_to(dns_run):
    outcomes = dns_run.outcomes("no-smtp")
    assert outcomes["dns.mx.answers-smtp"] == "not_applicable"
    assert {c for c, o in outcomes.items() if o != "pass"} == {"dns.mx.answers-smtp"}, outcomes


def test_without_a_domain_nothing_applies(dns_run):
    assert set(dns_run.outcomes("no-domain").values()) == {"not_applicable"}


def test_a_resolver_that_never_answers_is_inconclusive_not_a_failure(dns_run):
    outcomes = dns_run.outcomes("silent-dns")
    assert set(outcomes.values()) == {"inconclusive"}, outcomes


def test_the_dns_answers_are_in_the_transcript(dns_run):
    attachments = "".join(p.read_text() for p in dns_run.reports.rglob("*-attachment.txt"))
    assert "_dmarc.good.test.\tIN\tTXT" in attachments
    assert f"{REVERSE}.\tIN\tPTR\tmx.good.test." in attachments
