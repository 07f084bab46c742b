"""A1.mx — `dig domain TXT`: the policy records a mail domain publishes beside its MX (SPF, DMARC)."""

from mailconform import messages
from mailconform.checks import Blocked, NotApplicable, check, expect
from mailconform.dns import mail_domain
from mailconform.spf import SpfRecord, is_spf, mentions_dmarc, parse_dmarc, parse_spf

STEP = "A1.mx"
#: RFC 7208 §4.6.4: at most 10 terms that cause DNS lookups; a redirect chain longer than that is an error.
MAX_REDIRECTS = 10


def spf_records(dns_lookup, domain: str) -> list[str]:
    """The TXT records at ``domain`` that are SPF records (RFC 7208 §4.5)."""
    return [text for text in dns_lookup.txt(domain) if is_spf(text)]


def the_spf_record(dns_lookup, target) -> SpfRecord:
    """The domain's one SPF record, parsed: not applicable when there is none, blocked by
    dns.spf.one-record when there are several (receivers then stop with permerror)."""
    domain = mail_domain(target)
    records = spf_records(dns_lookup, domain)
    if not records:
        raise NotApplicable(messages.message("dns.spf.one-record", "no-record", domain=domain))
    if len(records) > 1:
        raise Blocked("dns.spf.one-record", messages.message("dns.spf.one-record", "several", domain=domain))
    return parse_spf(records[0])


@check("dns.spf.one-record", step=STEP, rfc="7208#3.2", level="MUST NOT", severity="high", catalogue="DNS-SPF-ONE")
def test_the_domain_publishes_one_spf_record(dns_lookup, target):
    """RFC 7208 §3.2: "A domain name MUST NOT have multiple records that would cause an authorization
    check to select more than one record." (§4.5: more than one is a "permerror".) No record at all
    leaves receivers without a policy: a warning.
    """
    domain = mail_domain(target)
    records = spf_records(dns_lookup, domain)
    expect(bool(records), "no-record", tolerated=True, domain=domain)
    expect(len(records) <= 1, "several", actual=" | ".join(records), domain=domain)


@check("dns.spf.syntax", step=STEP, rfc="7208#4.6", level="MUST", severity="high", catalogue="DNS-SPF-SYNTAX")
def test_the_spf_record_parses(dns_lookup, target):
    """RFC 7208 §4.6 (paraphrased): the record is split into terms, each a mechanism (all, include, a,
    mx, ptr, ip4, ip6, exists) or a modifier (name=value) following the ABNF of §12; a record that does
    not parse, or names an unknown mechanism, ends the check with "permerror".
    """
    record = the_spf_record(dns_lookup, target)
    expect(not record.invalid, "invalid-terms", actual=" ".join(record.invalid), record=record.text)


@check("dns.spf.all", step=STEP, rfc="7208#5.1", level="policy", severity="medium", catalogue="DNS-SPF-ALL")
def test_the_spf_record_ends_in_a_strict_all(dns_lookup, target):
    """RFC 7208 §5.1: "The "all" mechanism is a test that always matches. It is used as the rightmost
    mechanism in a record to provide an explicit default." `+all` authorises every host on the
    Internet; `?all` or no `all` gives no policy for the rest; `-all` or `~all` says what to do.
    """
    record = the_spf_record(dns_lookup, target)
    if record.invalid:
        raise Blocked("dns.spf.syntax", messages.message("dns.spf.syntax", "invalid-terms", record=record.text))
    for _ in range(MAX_REDIRECTS):
        if record.all is not None or record.redirect is None:
            break
        followed = spf_records(dns_lookup, record.redirect)  # §6.1: the redirect's record decides
        valid = len(followed) == 1 and not parse_spf(followed[0]).invalid
        expect(valid, "redirect-broken", actual=" | ".join(followed) or "-", domain=record.redirect)
        record = parse_spf(followed[0])
    final = record.all
    expect(final is not None, "no-all", tolerated=True, record=record.text)
    if final is None:
        return
    expect(final.qualifier != "+", "pass-all", actual=record.text)
    expect(final.qualifier != "?", "neutral-all", tolerated=True, record=record.text)


@check("dns.dmarc.record", step=STEP, rfc="7489#6.3", level="MUST", severity="medium", catalogue="DNS-DMARC")
def test_the_domain_publishes_a_dmarc_policy(dns_lookup, target):
    """RFC 7489 §6.3: v "MUST be the first tag in the list"; p is "REQUIRED for policy records"
    (paraphrased); §6.6.3: "If the remaining set contains multiple records or no records, policy
    discovery terminates and DMARC processing is not applied to this message." (paraphrased)
    """
    name = f"_dmarc.{mail_domain(target)}"
    texts = [text for text in dns_lookup.txt(name) if mentions_dmarc(text)]
    expect(bool(texts), "no-record", tolerated=True, name=name)
    if not texts:
        return
    records = [parse_dmarc(text) for text in texts]
    misplaced = [r.text for r in records if not r.version_first]
    expect(not misplaced, "version-not-first", actual=" | ".join(misplaced), name=name)
    expect(len(records) == 1, "several", actual=" | ".join(texts), name=name)
    record = records[0]
    expect(record.tag("p") is not None, "no-policy", actual=record.text, name=name)
    expect(record.policy is not None, "bad-policy", actual=record.text, name=name)
