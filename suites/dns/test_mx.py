"""A1.mx — `dig domain MX`: the domain's mail exchangers exist, resolve, answer SMTP and have reverse DNS."""

import ipaddress

from mailconform import messages
from mailconform.checks import Blocked, NotApplicable, check, expect, say
from mailconform.dns import DnsFailure, MxRecord, mail_domain
from mailconform.targets import Endpoint

STEP = "A1.mx"


NULL_MX = "."  # RFC 7505: "MX 0 ." says the domain accepts no mail


def mail_exchangers(dns_lookup, target) -> tuple[list[MxRecord], bool]:
    """The domain's MX records by preference, or its implicit MX (RFC 5321 §5.1); and whether
    the MX is implicit."""
    records = dns_lookup.mx(mail_domain(target))
    return (records, False) if records else ([MxRecord(0, target.domain)], True)


def published_exchangers(dns_lookup, target) -> tuple[list[MxRecord], bool]:
    """``mail_exchangers`` for the checks that build on dns.mx.records: a domain that does not exist
    blocks them (a resolver that does not answer leaves them inconclusive)."""
    try:
        return mail_exchangers(dns_lookup, target)
    except DnsFailure as failure:
        if failure.kind != "nxdomain":
            raise
        raise Blocked("dns.mx.records", str(failure)) from None


def usable_exchangers(records: list[MxRecord], domain: str) -> list[MxRecord]:
    """The exchangers to try: all but a null MX (judged by dns.mx.null-mx when others stand beside
    it), or blocked by dns.mx.records when the null MX is all there is."""
    usable = [r for r in records if r.exchange != NULL_MX]
    if not usable:
        raise Blocked("dns.mx.records", messages.core("null-mx", domain=domain))
    return usable


def mx_addresses(dns_lookup, target) -> list[tuple[str, str]]:
    """(exchanger, address) for every address of every usable exchanger, in preference order;
    blocked by dns.mx.host-resolves when an exchanger has none."""
    pairs = []
    for record in usable_exchangers(published_exchangers(dns_lookup, target)[0], target.domain):
        addresses = dns_lookup.addresses(record.exchange)
        if not addresses:
            raise Blocked("dns.mx.host-resolves", messages.core("mx-without-address", host=record.exchange))
        pairs += [(record.exchange, address) for address in addresses]
    return pairs


def _shown(records: list[MxRecord]) -> str:
    return ", ".join(f"MX {r.preference} {r.exchange}" for r in records)


@check("dns.mx.records", step=STEP, rfc="5321#5.1", level="MUST", severity="high", catalogue="DNS-MX-EXISTS")
def test_domain_has_mail_exchangers(dns_lookup, target):
    """RFC 5321 §5.1: "The lookup first attempts to locate an MX record associated with the name. ...
    If an empty list of MXs is returned, the address is treated as if it was associated with an
    implicit MX RR, with a preference of 0, pointing to that host."
    A null MX alone (RFC 7505) says the domain accepts no mail: wrong for a lab domain that must receive it.
    """
    exchangers, implicit = mail_exchangers(dns_lookup, target)
    if implicit:
        expect(bool(dns_lookup.addresses(target.domain)), "no-mx-no-address", domain=target.domain)
    expect(not implicit, "implicit-mx", tolerated=True, domain=target.domain)
    names = [r.exchange for r in exchangers]
    expect(names != [NULL_MX], "null-mx", actual=_shown(exchangers), domain=target.domain)
    addresses = [n for n in names if _is_address(n)]
    expect(not addresses, "mx-is-address", actual=", ".join(addresses))


@check("dns.mx.null-mx", step=STEP, rfc="7505#3", level="MUST NOT", severity="low", catalogue="DNS-NULLMX")
def test_a_null_mx_stands_alone(dns_lookup, target):
    """RFC 7505 §3: "A domain that advertises a null MX MUST NOT advertise any other MX RR."
    (A domain without a null MX meets it; a null MX alone is judged by dns.mx.records.)
    """
    exchangers, _ = published_exchangers(dns_lookup, target)
    mixed = len(exchangers) > 1 and any(r.exchange == NULL_MX for r in exchangers)
    expect(not mixed, "null-mx-and-others", actual=_shown(exchangers), domain=target.domain)


@check("dns.mx.not-alias", step=STEP, rfc="2181#10.3", level="MUST NOT", severity="high", catalogue="DNS-MX-TARGET")
def test_no_mail_exchanger_is_an_alias(dns_lookup, target):
    """RFC 2181 §10.3: "The domain name used as the value of a NS resource record, or part of the value
    of a MX resource record must not be an alias." RFC 5321 §5.1: "Any other response, specifically
    including a value that will return a CNAME record when queried, lies outside the scope of this
    Standard."
    """
    records, implicit = published_exchangers(dns_lookup, target)
    if implicit:  # the domain itself may be an alias: RFC 5321 §5.1 restarts with its canonical name
        raise NotApplicable(say("implicit-mx", domain=target.domain))
    hosts = [r.exchange for r in usable_exchangers(records, target.domain) if not _is_address(r.exchange)]
    aliases = [f"{host} CNAME {canonical}" for host in hosts if (canonical := dns_lookup.cname(host))]
    expect(not aliases, "alias", actual="; ".join(aliases))


@check("dns.mx.host-resolves", step=STEP, rfc="5321#5.1", level="MUST", severity="high", catalogue="DNS-MX-TARGET")
def test_every_mail_exchanger_resolves(dns_lookup, target):
    """RFC 5321 §5.1: the name in an MX record "MUST contain a domain name ... when queried, MUST return
    at least one address record (e.g., A or AAAA RR)".
    """
    records, _ = published_exchangers(dns_lookup, target)
    unresolved = [r.exchange for r in usable_exchangers(records, target.domain) if not dns_lookup.addresses(r.exchange)]
    expect(not unresolved, "no-address", actual=", ".join(unresolved))


@check("dns.mx.answers-smtp", step=STEP, rfc="5321#5.1", level="policy", severity="high", catalogue="DNS-MX-REACH")
def test_every_mail_exchanger_answers_220(dns_lookup, smtp, target):
    """RFC 5321 §5.1: "To provide reliable mail transmission, the SMTP client MUST be able to try (and
    retry) each of the relevant addresses in this list in order, until a delivery attempt succeeds."
    An exchanger that never answers leaves senders retrying until the message bounces.
    """
    endpoint = target.endpoint("smtp")
    if endpoint is None:  # no connection to a port the target never listed
        raise NotApplicable(messages.core("no-service", target=target.name, service="smtp"))
    for exchanger, address in mx_addresses(dns_lookup, target):
        session = smtp.connect_to(Endpoint(address, endpoint.port))
        expect(session.greeting, "no-220", host=exchanger, address=address, port=endpoint.port).code(220)
        session.finish()


@check("dns.ptr.exists", step=STEP, rfc="1912#2.1", level="SHOULD", severity="medium", catalogue="DNS-PTR")
def test_every_mx_address_has_a_ptr(dns_lookup, target):
    """RFC 1912 §2.1 (informational): "Make sure your PTR and A records match. For every IP address,
    there should be a matching PTR record in the in-addr.arpa domain." Many receivers refuse or score
    mail from an address without one.
    """
    missing = [f"{address} ({exchanger})" for exchanger, address in mx_addresses(dns_lookup, target)
               if not dns_lookup.ptr(address)]
    expect(not missing, "no-ptr", tolerated=True, addresses=", ".join(missing))


@check("dns.ptr.forward-confirmed", step=STEP, rfc="1912#2.1", level="policy", severity="medium",
       catalogue="DNS-FCRDNS")
def test_every_ptr_name_resolves_back(dns_lookup, target):
    """RFC 1912 §2.1: "Failure to have matching PTR and A records can cause loss of Internet services
    similar to not being registered in the DNS at all." Receivers check it forward: Postfix's
    reject_unknown_client_hostname refuses a client whose PTR name does not resolve back to its address.
    """
    named = [(address, names) for _, address in mx_addresses(dns_lookup, target) if (names := dns_lookup.ptr(address))]
    if not named:
        raise Blocked("dns.ptr.exists", say("no-ptr-to-confirm"))
    unconfirmed = [f"{address} PTR {', '.join(names)}" for address, names in named
                   if not any(_same_address(address, back) for name in names for back in dns_lookup.addresses(name))]
    expect(not unconfirmed, "not-confirmed", tolerated=True, addresses="; ".join(unconfirmed))


def _same_address(one: str, other: str) -> bool:
    return ipaddress.ip_address(one) == ipaddress.ip_address(other)


def _is_address(name: str) -> bool:
    return name.replace(".", "").isdigit() or ":" in name
