"""Across endpoints (graded in A2.smtp-tls): every TLS endpoint presents a certificate for every
name the target's services are reached by, and the names the mail server goes by agree — the SMTP
greeting and EHLO name, the PTR of its address, its certificate and the domain's MX target.

Both read observations other checks made or will make (each endpoint's certificate, the greeting
and EHLO of port 25, the DNS answers): no connection of their own.
"""

from __future__ import annotations

from collections import Counter

from mailconform import tlsinfo
from mailconform.checks import Blocked, Inconclusive, NotApplicable, check, expect, say
from mailconform.dns import DnsFailure
from mailconform.tlsinfo import TLS_ENDPOINTS

STEP = "A2.smtp-tls"


@check("tls.cert.consistent", step=STEP, rfc="8314#4.4", level="policy", severity="low",
       catalogue="TLS-CERT-CONSISTENT")
def test_every_endpoint_presents_a_certificate_for_every_service_name(tls, target):
    """RFC 8314 §4.4 (paraphrased): mail submission and access servers present certificates that
    clients can validate for the names they are configured to reach them by.  Across the target's
    TLS endpoints the same certificate — or at least certificates that each name every service
    host name — is presented: one service left on an old or self-made certificate (Debian's
    ssl-cert-snakeoil on Dovecot while Postfix has the lab's) is a finding that names it.
    """
    presented, blocked = {}, []
    for service in TLS_ENDPOINTS:
        if target.endpoint(service) is None:
            continue
        try:
            presented[service] = tls.certificate(service)
        except (Blocked, Inconclusive) as undecided:
            blocked.append(undecided)
    if len(presented) < 2:
        if blocked:
            raise blocked[0]
        raise NotApplicable(say("one-endpoint", target=target.name))
    rows = tlsinfo.consistency_rows(target, presented)
    if len({row.fingerprint for row in rows}) == 1:
        return
    usual = Counter(row.fingerprint for row in rows).most_common(1)[0][0]
    odd = [row for row in rows if not all(row.covers.values())]
    expect(not odd, "odd", endpoints=", ".join(row.service for row in odd),
           details="; ".join(say("odd-endpoint", endpoint=f"{row.service} ({row.endpoint})", names=row.names,
                                 fingerprint=row.fingerprint[:16],
                                 missing=", ".join(name for name, covered in row.covers.items() if not covered))
                             for row in odd),
           usual=usual[:16], others=", ".join(row.service for row in rows if row.fingerprint == usual))


@check("tls.names.consistent", step=STEP, rfc="5321#4.2", level="SHOULD", severity="medium",
       catalogue="DNS-NAME-CONSISTENCY")
def test_greeting_ptr_certificate_and_mx_name_the_same_host(smtp, tls, target, dns_lookup):
    """RFC 5321 §4.2 and §4.1.1.1 (the grammar, paraphrased): the greeting is 220 followed by the
    server's Domain, and the EHLO answer 250 followed by its Domain: the server names itself.  RFC 8461 §4.2 (paraphrased): a sender using
    MTA-STS checks that the MX host's certificate names the MX host.  The names the server goes by
    should agree: the greeting's and EHLO's name, the PTR of its address (receivers compare it with
    the EHLO name), the names of port 25's certificate and the MX target of the domain.  A missing
    PTR is a warning (RFC 1912 §2.1, informational); the rest is a finding that lists each mismatch.
    """
    endpoint = smtp.endpoint("smtp")
    hello = smtp.greeted_hello("smtp")
    greeting = _first_word(hello.greeting.lines)
    ehlo = _first_word(hello.answer.lines) if hello.answer is not None and hello.answer.code == 250 else None
    leaf = tlsinfo.chain_of(tls.certificate("smtp").chain)[0]
    try:
        addresses = [endpoint.host] if tlsinfo.is_address(endpoint.host) else dns_lookup.addresses(endpoint.host)
        ptr = sorted({name for address in addresses for name in dns_lookup.ptr(address)})
        mx = [record.exchange for record in dns_lookup.mx(target.domain)] if target.domain else []
    except DnsFailure as failure:
        if failure.kind == "nxdomain":
            raise
        raise Inconclusive(say("dns-failed", error=failure)) from None
    at = f"smtp ({endpoint})"
    problems = []
    if ehlo is not None and ehlo.lower() != greeting.lower():
        problems.append(say("ehlo-differs", greeting=greeting, ehlo=ehlo))
    if ptr and greeting.lower() not in ptr:
        problems.append(say("ptr-differs", greeting=greeting, ptr=", ".join(ptr), addresses=", ".join(addresses)))
    if not tlsinfo.matches_name(leaf, greeting):
        problems.append(say("cert-differs", greeting=greeting, names=leaf.names))
    if mx and greeting.lower() not in mx and not any(tlsinfo.matches_name(leaf, name) for name in mx):
        problems.append(say("mx-differs", domain=target.domain, mx=", ".join(mx), greeting=greeting,
                            names=leaf.names))
    expect(not problems, "inconsistent", endpoint=at, problems="; ".join(problems))
    expect(bool(ptr), "no-ptr", tolerated=True, endpoint=at, addresses=", ".join(addresses))


def _first_word(lines: tuple[str, ...]) -> str:
    """The Domain a greeting or EHLO reply starts with (RFC 5321 §4.2), lower case and without a final dot."""
    words = lines[0].split() if lines else []
    return words[0].rstrip(".").lower() if words else ""
