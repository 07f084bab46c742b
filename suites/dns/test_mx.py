"""A1.mx — `dig domain MX`: the domain's mail exchangers exist, resolve and answer SMTP."""

from mailconform.checks import Blocked, NotApplicable, check, expect, warn
from mailconform.dns import DnsFailure, MxRecord
from mailconform.targets import DEFAULT_PORTS, Endpoint

STEP = "A1.mx"


NULL_MX = "."  # RFC 7505: "MX 0 ." says the domain accepts no mail


def mail_exchangers(dns_lookup, target) -> tuple[list[MxRecord], bool]:
    """The domain's MX records by preference, or its implicit MX (RFC 5321 §5.1); and whether
    the MX is implicit."""
    if not target.domain:
        raise NotApplicable(f"target {target.name} has no mail domain (set domain in targets.toml)")
    records = dns_lookup.mx(target.domain)
    return (records, False) if records else ([MxRecord(0, target.domain)], True)


def usable_exchangers(dns_lookup, target) -> list[MxRecord]:
    """The exchangers to try, or blocked by dns.mx.records when there are none."""
    try:
        records, _ = mail_exchangers(dns_lookup, target)
    except DnsFailure as failure:
        raise Blocked("dns.mx.records", str(failure)) from None
    if any(r.exchange == NULL_MX for r in records):
        raise Blocked("dns.mx.records", f"{target.domain} publishes a null MX")
    return records


@check("dns.mx.records", step=STEP, rfc="5321#5.1", level="MUST", severity="high",
       hint="publish `DOMAIN. IN MX 10 mail.DOMAIN.` in the zone (dnsmasq: mx-host=DOMAIN,mail.DOMAIN,10)")
def test_domain_has_mail_exchangers(dns_lookup, target):
    """The mail domain has MX records (or, failing that, an address: the implicit MX).

    RFC 5321 §5.1: "The lookup first attempts to locate an MX record associated with the name. ...
    If an empty list of MXs is returned, the address is treated as if it was associated with an
    implicit MX RR, with a preference of 0, pointing to that host."
    """
    exchangers, implicit = mail_exchangers(dns_lookup, target)
    if implicit:
        expect(bool(dns_lookup.addresses(target.domain)),
               f"{target.domain} has neither MX records nor an address (no implicit MX): no mail can reach it")
        warn(f"{target.domain} has no MX record; mail relies on the implicit MX (its A/AAAA address)")
    names = [r.exchange for r in exchangers]
    expect(NULL_MX not in names, f"{target.domain} publishes a null MX (RFC 7505): it says it accepts no mail")
    expect(not any(_is_address(n) for n in names), f"an MX points at an IP address, not a host name: {names}")


@check("dns.mx.host-resolves", step=STEP, rfc="5321#5.1", level="MUST", severity="high",
       hint="give every MX host an A (and/or AAAA) record; an MX must not point at a CNAME or an IP")
def test_every_mail_exchanger_resolves(dns_lookup, target):
    """Every MX host name resolves to at least one address.

    RFC 5321 §5.1: the name in an MX record "MUST contain a domain name ... when queried, MUST return
    at least one address record (e.g., A or AAAA RR)".
    """
    unresolved = [r.exchange for r in usable_exchangers(dns_lookup, target) if not dns_lookup.addresses(r.exchange)]
    expect(not unresolved, f"MX host(s) without any A/AAAA address: {', '.join(unresolved)}")


@check("dns.mx.answers-smtp", step=STEP, rfc="5321#5.1", level="policy", severity="high",
       hint="the MX host's address must be the server that runs Postfix, listening on port 25")
def test_every_mail_exchanger_answers_220(dns_lookup, smtp, target):
    """Every address of every MX host answers SMTP with a 220 greeting.

    RFC 5321 §5.1: "To provide reliable mail transmission, the SMTP client MUST be able to try (and
    retry) each of the relevant addresses in this list in order, until a delivery attempt succeeds."
    An exchanger that never answers leaves senders retrying until the message bounces.
    """
    endpoint = target.endpoint("smtp")
    port = endpoint.port if endpoint else DEFAULT_PORTS["smtp"]
    for record in usable_exchangers(dns_lookup, target):
        addresses = dns_lookup.addresses(record.exchange)
        if not addresses:
            raise Blocked("dns.mx.host-resolves", f"{record.exchange} has no address")
        for address in addresses:
            session = smtp.connect_to(Endpoint(address, port))
            expect(session.greeting, f"MX {record.exchange} ({address}:{port}) does not greet with 220").code(220)
            session.quit()


def _is_address(name: str) -> bool:
    return name.replace(".", "").isdigit() or ":" in name
