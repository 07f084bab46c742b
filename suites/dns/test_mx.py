"""A1.mx — `dig domain MX`: the domain's mail exchangers exist, resolve and answer SMTP."""

from mailconform import messages
from mailconform.checks import Blocked, NotApplicable, check, expect
from mailconform.dns import DnsFailure, MxRecord
from mailconform.targets import DEFAULT_PORTS, Endpoint

STEP = "A1.mx"


NULL_MX = "."  # RFC 7505: "MX 0 ." says the domain accepts no mail


def mail_exchangers(dns_lookup, target) -> tuple[list[MxRecord], bool]:
    """The domain's MX records by preference, or its implicit MX (RFC 5321 §5.1); and whether
    the MX is implicit."""
    if not target.domain:
        raise NotApplicable(messages.advice(target.from_url, "no-domain", target=target.name))
    records = dns_lookup.mx(target.domain)
    return (records, False) if records else ([MxRecord(0, target.domain)], True)


def usable_exchangers(dns_lookup, target) -> list[MxRecord]:
    """The exchangers to try, or blocked by dns.mx.records when there are none."""
    try:
        records, _ = mail_exchangers(dns_lookup, target)
    except DnsFailure as failure:
        raise Blocked("dns.mx.records", str(failure)) from None
    if any(r.exchange == NULL_MX for r in records):
        raise Blocked("dns.mx.records", messages.core("null-mx", domain=target.domain))
    return records


@check("dns.mx.records", step=STEP, rfc="5321#5.1", level="MUST", severity="high", catalogue="DNS-MX-EXISTS")
def test_domain_has_mail_exchangers(dns_lookup, target):
    """RFC 5321 §5.1: "The lookup first attempts to locate an MX record associated with the name. ...
    If an empty list of MXs is returned, the address is treated as if it was associated with an
    implicit MX RR, with a preference of 0, pointing to that host."
    """
    exchangers, implicit = mail_exchangers(dns_lookup, target)
    if implicit:
        expect(bool(dns_lookup.addresses(target.domain)), "no-mx-no-address", domain=target.domain)
    expect(not implicit, "implicit-mx", tolerated=True, domain=target.domain)
    names = [r.exchange for r in exchangers]
    expect(NULL_MX not in names, "null-mx", actual="MX 0 .", domain=target.domain)
    addresses = [n for n in names if _is_address(n)]
    expect(not addresses, "mx-is-address", actual=", ".join(addresses))


@check("dns.mx.host-resolves", step=STEP, rfc="5321#5.1", level="MUST", severity="high", catalogue="DNS-MX-TARGET")
def test_every_mail_exchanger_resolves(dns_lookup, target):
    """RFC 5321 §5.1: the name in an MX record "MUST contain a domain name ... when queried, MUST return
    at least one address record (e.g., A or AAAA RR)".
    """
    unresolved = [r.exchange for r in usable_exchangers(dns_lookup, target) if not dns_lookup.addresses(r.exchange)]
    expect(not unresolved, "no-address", actual=", ".join(unresolved))


@check("dns.mx.answers-smtp", step=STEP, rfc="5321#5.1", level="policy", severity="high", catalogue="DNS-MX-REACH")
def test_every_mail_exchanger_answers_220(dns_lookup, smtp, target):
    """RFC 5321 §5.1: "To provide reliable mail transmission, the SMTP client MUST be able to try (and
    retry) each of the relevant addresses in this list in order, until a delivery attempt succeeds."
    An exchanger that never answers leaves senders retrying until the message bounces.
    """
    endpoint = target.endpoint("smtp")
    port = endpoint.port if endpoint else DEFAULT_PORTS["smtp"]
    for record in usable_exchangers(dns_lookup, target):
        addresses = dns_lookup.addresses(record.exchange)
        if not addresses:
            raise Blocked("dns.mx.host-resolves", messages.core("mx-without-address", host=record.exchange))
        for address in addresses:
            session = smtp.connect_to(Endpoint(address, port))
            expect(session.greeting, "no-220", host=record.exchange, address=address, port=port).code(220)
            session.finish()


def _is_address(name: str) -> bool:
    return name.replace(".", "").isdigit() or ":" in name
