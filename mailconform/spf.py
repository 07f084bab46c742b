"""The policy records a mail domain publishes in TXT: SPF (RFC 7208) and DMARC (RFC 7489).

Parsing only, no DNS: the checks fetch the records with :class:`mailconform.dns.Lookup`."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

#: RFC 7208 §4.6.1 and §5: the mechanisms, and those that take a domain (after ":") and CIDR lengths.
MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
QUALIFIERS = "+-?~"
_NEEDS_DOMAIN = {"include", "exists"}
_MAY_HAVE_DOMAIN = {"a", "mx", "ptr"}
_HAS_CIDR = {"a", "mx"}
_MODIFIER = re.compile(r"^([A-Za-z][A-Za-z0-9_.-]*)=(.*)$")
_CIDR = re.compile(r"^(?P<spec>.*?)(?:/(?P<v4>\d+))?(?://(?P<v6>\d+))?$")
#: A domain-spec (§7.1): macro-expanded text, here only checked to be non-empty printable ASCII without spaces.
_DOMAIN_SPEC = re.compile(r"^[\x21-\x7e]+$")


def is_spf(text: str) -> bool:
    """RFC 7208 §4.5: a record "that do[es] not begin with a version section of exactly "v=spf1"" is
    discarded; the version section ends at a space or at the end of the record (ABNF: any case)."""
    return text[:6].lower() == "v=spf1" and text[6:7] in ("", " ")


@dataclass(frozen=True)
class Mechanism:
    qualifier: str   # "+", "-", "~" or "?" ("+" when none is written)
    name: str        # lower case
    argument: str    # what follows the name (":domain", "/24"…), as written


@dataclass
class SpfRecord:
    text: str
    mechanisms: list[Mechanism] = field(default_factory=list)
    modifiers: dict[str, str] = field(default_factory=dict)
    invalid: list[str] = field(default_factory=list)   # the terms a receiver cannot parse (permerror)

    @property
    def all(self) -> Mechanism | None:
        """The first ``all``: mechanisms after it are never tested (§5.1)."""
        return next((m for m in self.mechanisms if m.name == "all"), None)

    @property
    def redirect(self) -> str | None:
        return self.modifiers.get("redirect")


def parse_spf(text: str) -> SpfRecord:
    """The terms of an SPF record (``is_spf(text)`` holds), with the ones that break the ABNF of §12."""
    record = SpfRecord(text)
    for term in text.split(" ")[1:]:
        if not term:
            continue  # several spaces between terms are allowed (1*SP)
        modifier = _MODIFIER.match(term)
        if modifier:
            name, value = modifier.group(1).lower(), modifier.group(2)
            if name in ("redirect", "exp") and (name in record.modifiers or not value):
                record.invalid.append(term)  # §6: each at most once, and naming a domain
            record.modifiers.setdefault(name, value)
            continue
        qualifier = term[0] if term[0] in QUALIFIERS else "+"
        body = term[1:] if term[0] in QUALIFIERS else term
        name = re.match(r"^[A-Za-z0-9]*", body).group(0).lower()
        mechanism = Mechanism(qualifier, name, body[len(name):])
        if _valid_mechanism(mechanism):
            record.mechanisms.append(mechanism)
        else:
            record.invalid.append(term)
    return record


def _valid_mechanism(mechanism: Mechanism) -> bool:
    name, argument = mechanism.name, mechanism.argument
    if name not in MECHANISMS:
        return False
    if name == "all":
        return argument == ""
    if name in ("ip4", "ip6"):
        return argument.startswith(":") and _network(name, argument[1:])
    cidr = _CIDR.match(argument) if name in _HAS_CIDR else None
    spec = cidr.group("spec") if cidr else argument
    if cidr and not (int(cidr.group("v4") or 0) <= 32 and int(cidr.group("v6") or 0) <= 128):
        return False
    if not spec:
        return name not in _NEEDS_DOMAIN
    return spec.startswith(":") and bool(_DOMAIN_SPEC.match(spec[1:])) and (name in _NEEDS_DOMAIN | _MAY_HAVE_DOMAIN)


def _network(version: str, text: str) -> bool:
    address, _, length = text.partition("/")
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    if (parsed.version == 4) != (version == "ip4"):
        return False
    return length == "" or (length.isdigit() and int(length) <= parsed.max_prefixlen)


# --------------------------------------------------------------------------- DMARC

DMARC_POLICIES = ("none", "quarantine", "reject")
_TAG = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


@dataclass
class DmarcRecord:
    text: str
    tags: list[tuple[str, str]]   # (name in lower case, value), in the record's order

    def tag(self, name: str) -> str | None:
        return next((value for tag, value in self.tags if tag == name), None)

    @property
    def version_first(self) -> bool:
        """RFC 7489 §6.3: v "MUST be the first tag in the list" and have the value "DMARC1"."""
        return bool(self.tags) and self.tags[0] == ("v", "DMARC1")

    @property
    def policy(self) -> str | None:
        """The ``p=`` value, when it is one of none, quarantine, reject."""
        value = (self.tag("p") or "").lower()
        return value if value in DMARC_POLICIES else None


def parse_dmarc(text: str) -> DmarcRecord:
    """The tag-list of a TXT record (RFC 7489 §6.4: ``tag=value`` separated by ";")."""
    tags = []
    for part in text.split(";"):
        match = _TAG.match(part)
        if match:
            tags.append((match.group(1).lower(), match.group(2)))
    return DmarcRecord(text, tags)


def mentions_dmarc(text: str) -> bool:
    """A TXT record meant as a DMARC policy: it has the tag v=DMARC1 somewhere (first or not)."""
    return ("v", "DMARC1") in parse_dmarc(text).tags
