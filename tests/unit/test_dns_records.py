"""SPF and DMARC parsing (mailconform.spf) on recorded record strings, and the DNS twin's TXT and PTR."""

import dns.resolver
import pytest

from fixtures.twins import DnsTwin
from mailconform.spf import is_spf, mentions_dmarc, parse_dmarc, parse_spf

# Records as published by real domains (and the lab's reference), with what a receiver makes of them.
VALID_SPF = [
    "v=spf1 mx -all",
    "v=spf1 include:_spf.google.com ~all",
    "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a:mail.example.org/28//64 mx/24 -all",
    "v=spf1 a mx ptr:example.org exists:%{i}.spf.example.org ?all",
    "v=spf1 redirect=_spf.example.net",
    "V=SPF1  -ip4:203.0.113.7  +all  exp=explain.example.org",
    "v=spf1",
]
INVALID_SPF = {
    "v=spf1 mx foo -all": ["foo"],                              # unknown mechanism
    "v=spf1 ip4:192.0.2.300 -all": ["ip4:192.0.2.300"],         # not an address
    "v=spf1 ip4:2001:db8::1 -all": ["ip4:2001:db8::1"],         # an IPv6 address in ip4
    "v=spf1 ip6:2001:db8::/129 -all": ["ip6:2001:db8::/129"],   # prefix too long
    "v=spf1 mx/33 -all": ["mx/33"],
    "v=spf1 include -all": ["include"],                         # include needs a domain
    "v=spf1 -all:example.org": ["-all:example.org"],            # all takes nothing
    "v=spf1 redirect=a.example redirect=b.example": ["redirect=b.example"],
    "v=spf1 exp= -all": ["exp="],
}


@pytest.mark.parametrize("text", VALID_SPF)
def test_valid_spf_records_parse(text):
    assert is_spf(text)
    assert parse_spf(text).invalid == []


@pytest.mark.parametrize("text, invalid", INVALID_SPF.items())
def test_bad_terms_are_named(text, invalid):
    assert parse_spf(text).invalid == invalid


@pytest.mark.parametrize("text", ["v=spf10 -all", "spf1 -all", "v=DMARC1; p=none", " v=spf1 -all", "v=spf1-all"])
def test_only_v_spf1_records_are_spf(text):
    assert not is_spf(text)


@pytest.mark.parametrize("text, qualifier", [
    ("v=spf1 mx -all", "-"), ("v=spf1 mx ~all", "~"), ("v=spf1 mx ?all", "?"), ("v=spf1 mx all", "+"),
    ("v=spf1 +all -all", "+"),  # the first all decides (RFC 7208 §5.1)
    ("v=spf1 mx", None), ("v=spf1 redirect=_spf.example.net", None),
])
def test_the_terminal_all(text, qualifier):
    found = parse_spf(text).all
    assert (found.qualifier if found else None) == qualifier


def test_redirect_is_read():
    assert parse_spf("v=spf1 redirect=_spf.example.net").redirect == "_spf.example.net"
    assert parse_spf("v=spf1 -all").redirect is None


@pytest.mark.parametrize("text, version_first, policy, p", [
    ("v=DMARC1; p=reject", True, "reject", "reject"),
    ("v=DMARC1;p=none;rua=mailto:dmarc@example.org", True, "none", "none"),
    ("v=DMARC1; p=Quarantine; pct=50; adkim=s", True, "quarantine", "Quarantine"),
    ("v=DMARC1; rua=mailto:dmarc@example.org", True, None, None),   # no p=
    ("p=reject; v=DMARC1", False, "reject", "reject"),               # v not first
    ("v=DMARC1; p=block", True, None, "block"),                      # not a policy
    ("v=dmarc1; p=reject", False, "reject", "reject"),               # "DMARC1" must match precisely
])
def test_dmarc_records(text, version_first, policy, p):
    record = parse_dmarc(text)
    assert (record.version_first, record.policy, record.tag("p")) == (version_first, policy, p)


@pytest.mark.parametrize("text, meant", [
    ("v=DMARC1; p=reject", True), ("p=reject; v=DMARC1", True), ("v=spf1 -all", False),
    ("google-site-verification=abc", False), ("v=DMARC2; p=none", False),
])
def test_which_txt_records_are_meant_as_dmarc(text, meant):
    assert mentions_dmarc(text) is meant


def test_the_dns_twin_serves_txt_and_ptr():
    twin = DnsTwin({"twin.test": {"TXT": ["v=spf1 mx -all", ["v=DMARC1; ", 'p="reject"']]},
                    "1.0.0.127.in-addr.arpa": {"PTR": ["mx.twin.test"]}, "alias.twin.test": {"CNAME": ["mx.twin.test"]}})
    twin.start()
    try:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers, resolver.port, resolver.lifetime = ["127.0.0.1"], twin.port, 2
        texts = sorted(b"".join(r.strings).decode() for r in resolver.resolve("twin.test", "TXT"))
        assert texts == ['v=DMARC1; p="reject"', "v=spf1 mx -all"]
        assert [r.target.to_text() for r in resolver.resolve("1.0.0.127.in-addr.arpa", "PTR")] == ["mx.twin.test."]
        assert [r.target.to_text() for r in resolver.resolve("alias.twin.test", "CNAME")] == ["mx.twin.test."]
    finally:
        twin.stop()
