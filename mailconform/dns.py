"""MX, address, PTR, TXT and CNAME lookups (dnspython) against a target's resolver, recorded in a transcript."""

from __future__ import annotations

from dataclasses import dataclass

import dns.exception
import dns.resolver
import dns.reversename

from mailconform import messages
from mailconform.targets import Target
from mailconform.verdicts import NotApplicable
from mailconform.wire.connection import LOOPBACK_ONLY_ENV, is_loopback, loopback_only
from mailconform.wire.transcript import Transcript


def mail_domain(target: Target) -> str:
    """The target's mail domain; a DNS check of a target without one is not applicable."""
    if not target.domain:
        raise NotApplicable(messages.advice(target.from_url, "no-domain", target=target.name))
    return target.domain


class DnsFailure(Exception):
    """The resolver could not answer: ``kind`` is "nxdomain", "timeout", "servfail" or "not-loopback"."""

    def __init__(self, kind: str, message: str):
        self.kind = kind
        super().__init__(message)


@dataclass(frozen=True)
class MxRecord:
    preference: int
    exchange: str


_SILENT = ("", "timeout")  # the cache key of the resolver's first timeout


class Lookup:
    """Queries one resolver: the target's ``dns`` server, or the system's.

    Answers (and failures) are kept in ``cache`` for the rest of the run, so a resolver that does not
    answer costs one timeout, not one per check; the transcript says when an answer is replayed."""

    def __init__(self, target: Target, transcript: Transcript, cache: dict):
        self.transcript = transcript
        self.cache = cache
        if target.dns:
            self.resolver = dns.resolver.Resolver(configure=False)
            self.resolver.nameservers = [target.dns[0]]
            self.resolver.port = target.dns[1]
            where = f"{target.dns[0]} port {target.dns[1]}"
        else:
            self.resolver = dns.resolver.Resolver()
            where = "the system resolver (" + ", ".join(self.resolver.nameservers) + ")"
        self.resolver.timeout = self.resolver.lifetime = target.timeout
        self.refusal = None
        if loopback_only() and not all(is_loopback(server) for server in self.resolver.nameservers):
            self.refusal = f"the resolver {where} is not on loopback and {LOOPBACK_ONLY_ENV} is set"
        self.resolver.retry_servfail = False
        transcript.note(f"resolver: {where}")

    def query(self, name: str, rdtype: str) -> list:
        """The records of ``rdtype`` at ``name``; [] when the name exists without them (NODATA)."""
        key = (name.lower(), rdtype)
        if key not in self.cache and _SILENT in self.cache:  # one timeout per run, not one per question
            self._question(name, rdtype)
            self.transcript.note("the resolver did not answer earlier in this run: not asked again")
            raise self.cache[_SILENT]
        if key not in self.cache:
            try:
                self.cache[key] = self._ask(name, rdtype)
            except DnsFailure as failure:
                self.cache[key] = failure
                if failure.kind == "timeout":
                    self.cache[_SILENT] = failure
                raise
            return self.cache[key]
        self._question(name, rdtype)
        answer = self.cache[key]
        self.transcript.note("answer from earlier in this run:")
        if isinstance(answer, DnsFailure):
            self.transcript.text("S", f";; {answer}")
            raise answer
        self._answer(name, rdtype, answer)
        return answer

    def _question(self, name: str, rdtype: str) -> None:
        """The query as dig shows its question section."""
        self.transcript.text("C", f";{name.rstrip('.')}.\tIN\t{rdtype}")

    def _answer(self, name: str, rdtype: str, records: list) -> None:
        """The answer as dig shows it: the status, then one line per record."""
        self.transcript.text("S", f";; status: NOERROR, {len(records)} answer(s)" + ("" if records else " (NODATA)"))
        for record in records:
            self.transcript.text("S", f"{name.rstrip('.')}.\tIN\t{rdtype}\t{record.to_text()}")

    def _ask(self, name: str, rdtype: str) -> list:
        self._question(name, rdtype)
        if self.refusal:
            self.transcript.note(self.refusal)
            raise DnsFailure("not-loopback", self.refusal)
        try:
            answer = self.resolver.resolve(name, rdtype, search=False, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            self.transcript.text("S", f";; status: NXDOMAIN ({name} does not exist)")
            raise DnsFailure("nxdomain", f"{name} does not exist (NXDOMAIN)") from None
        except dns.resolver.NoNameservers as exc:
            self.transcript.text("S", f";; status: SERVFAIL ({exc})")
            raise DnsFailure("servfail", f"no server could answer for {name} {rdtype} (SERVFAIL)") from None
        except dns.exception.Timeout:
            self.transcript.text("S", f";; connection timed out; no servers could be reached ({self.resolver.lifetime:g} s)")
            raise DnsFailure("timeout", f"no DNS answer for {name} {rdtype} within {self.resolver.lifetime:g} s") from None
        records = list(answer.rrset or [])
        self._answer(name, rdtype, records)
        return records

    def mx(self, domain: str) -> list[MxRecord]:
        """MX records by preference (RFC 5321 §5.1: "lower numbers are more preferred")."""
        records = [MxRecord(r.preference, r.exchange.to_text(omit_final_dot=True).lower()) for r in self.query(domain, "MX")]
        return sorted(records, key=lambda r: (r.preference, r.exchange))

    def addresses(self, host: str) -> list[str]:
        """Every A and AAAA address of ``host`` ([] when there is none or the name does not exist)."""
        found = []
        for rdtype in ("A", "AAAA"):
            try:
                found += [r.address for r in self.query(host, rdtype)]
            except DnsFailure as failure:
                if failure.kind != "nxdomain":
                    raise
                break
        return found

    def ptr(self, address: str) -> list[str]:
        """The PTR names of ``address`` (its reverse name, e.g. 2.10.0.127.in-addr.arpa), lower case and
        without the final dot; [] when there is none or the reverse name does not exist."""
        reverse = dns.reversename.from_address(address).to_text()
        return [r.target.to_text(omit_final_dot=True).lower() for r in self._records_or_none(reverse, "PTR")]

    def txt(self, name: str) -> list[str]:
        """Every TXT record at ``name``, its character-strings joined (RFC 7208 §3.3); [] when there is
        none or the name does not exist."""
        return [b"".join(r.strings).decode("utf-8", "replace") for r in self._records_or_none(name, "TXT")]

    def cname(self, name: str) -> str | None:
        """The canonical name ``name`` is an alias for (its CNAME record), or None when it is not an alias."""
        records = self._records_or_none(name, "CNAME")
        return records[0].target.to_text(omit_final_dot=True).lower() if records else None

    def _records_or_none(self, name: str, rdtype: str) -> list:
        """``query``, with a name that does not exist read as one without such records."""
        try:
            return self.query(name, rdtype)
        except DnsFailure as failure:
            if failure.kind != "nxdomain":
                raise
            return []
