"""The IMAP security report (lab exercise E): per target, a Markdown document in English and in
Spanish that says how this server sets up a secure connection, what changes across TLS, which
ways to log in it offers and what each protects against, the verdicts, and how IMAP security grew
over time — each point tied to what this server does or lacks.

It is written from what the run observed (the greeting and CAPABILITY before and inside TLS, the
handshakes) and from the verdicts of lab step E.imap-security: it never opens a connection.  Each
statement is followed by the transcript that shows it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from mailconform import messages, tlsinfo
from mailconform.observations import Handshake, ImapHello
from mailconform.targetrun import Observed, TargetRun
from mailconform.wire.transcript import escape_controls

STEP = "E.imap-security"
CATALOGUE = "report.imap"
FILE_NAME = "imap-security.{lang}.md"
ATTACHED_TO = "imap.session.greeting"  # the allure result that carries the report
DECIDED = ("pass", "warn", "fail")

#: SASL mechanisms a report explains (what each one protects against), by family.
MECHANISM_FAMILIES = {
    "PLAIN": "cleartext", "LOGIN": "cleartext",
    "CRAM-MD5": "md5", "DIGEST-MD5": "md5", "NTLM": "md5",
    "SCRAM-SHA-1": "scram", "SCRAM-SHA-256": "scram", "SCRAM-SHA-512": "scram",
    "SCRAM-SHA-1-PLUS": "scram-plus", "SCRAM-SHA-256-PLUS": "scram-plus", "SCRAM-SHA-512-PLUS": "scram-plus",
    "OAUTHBEARER": "token", "XOAUTH2": "token",
    "EXTERNAL": "external", "GSSAPI": "kerberos", "GS2-KRB5": "kerberos",
    "ANONYMOUS": "anonymous", "OTP": "otp",
}


@dataclass(frozen=True)
class ImapFacts:
    """What the run saw of a target's IMAP endpoints (None: not observed, or not offered)."""

    target: str
    endpoints: dict[str, str]          # service → "host:port"
    clear: Observed | None             # greeting + CAPABILITY on imap, in clear
    upgraded: Observed | None          # greeting + CAPABILITY on imap, inside STARTTLS
    implicit: Observed | None          # greeting + CAPABILITY on imaps
    handshakes: dict[str, Observed]    # service → its handshake observation (verifying)
    certificates: dict[str, Observed]  # service → its certificate observation (suites/tls)
    results: list[dict]                # the verdicts of E.imap-security

    @classmethod
    def of(cls, run: TargetRun) -> ImapFacts:
        target = run.target
        endpoints = {s: str(e) for s in ("imap", "imaps") if (e := target.endpoint(s)) is not None}
        handshakes = {s: o for s in endpoints if (o := run.observed(("handshake", s))) is not None}
        certificates = {s: o for s in endpoints if (o := run.observed(("certificate", s))) is not None}
        return cls(target.name, endpoints, run.observed(("imap-hello", "imap", False)),
                   run.observed(("imap-hello", "imap", True)), run.observed(("imap-hello", "imaps", False)),
                   handshakes, certificates, [r for r in run.results if r["step"] == STEP])

    def hello(self, observed: Observed | None) -> ImapHello | None:
        return observed.value if observed is not None and isinstance(observed.value, ImapHello) else None

    def facts(self, service: str):
        """The handshake facts of ``service`` (version, cipher, the chain it sent), or None."""
        for observed in (self.handshakes.get(service), self.certificates.get(service)):
            shake = observed.value if observed is not None else None
            if isinstance(shake, Handshake) and shake.answer is not None:
                return shake.answer
        return None

    def outcome(self, check: str) -> str | None:
        return next((r["outcome"] for r in self.results if r["check"] == check), None)


def should_write(run: TargetRun) -> bool:
    """A report is written for a target whose run judged lab step E."""
    return any(r["step"] == STEP for r in run.results)


def render(run: TargetRun, lang: str) -> str:
    """The report of ``run``'s target as Markdown, in ``lang``."""
    facts = ImapFacts.of(run)
    with messages.speaking(lang):
        parts = [_heading(facts), _verdicts(facts), _connection(facts), _capabilities(facts),
                 _mechanisms(facts), _history(facts)]
    return "\n\n".join(part for part in parts if part) + "\n"


# --------------------------------------------------------------------------- sections

def _say(key: str, **fields) -> str:
    return messages.message(CATALOGUE, key, **fields)


def _code(text: str) -> str:
    return f"`{escape_controls(text).replace('`', chr(39))}`"


def _cell(text: str) -> str:
    return escape_controls(text).replace("|", "\\|").replace("\n", " ")


def _transcript(observed: Observed | None) -> str:
    if observed is None:
        return ""
    return "```text\n" + observed.transcript.render().replace("```", "'''") + "\n```"


def _heading(facts: ImapFacts) -> str:
    today = datetime.date.today().isoformat()
    where = ", ".join(f"{service} {address}" for service, address in facts.endpoints.items()) or _say("no-imap")
    return f"# {_say('title', target=facts.target)}\n\n{_say('intro', endpoints=where, date=today)}"


def _verdicts(facts: ImapFacts) -> str:
    if not facts.results:
        return ""
    rows = [f"| {_say('column-check')} | {_say('column-outcome')} | {_say('column-what')} |", "|---|---|---|"]
    for result in facts.results:
        what = result["message"].split("\n")[0] or messages.title(result["id"], fallback=result["title"])
        rows.append(f"| {_code(result['check'])} | **{result['outcome']}** | {_cell(what)} |")
    counts: dict[str, int] = {}
    for result in facts.results:
        counts[result["outcome"]] = counts.get(result["outcome"], 0) + 1
    summary = ", ".join(f"{count} {outcome}" for outcome, count in sorted(counts.items()))
    return f"## {_say('verdicts-heading')}\n\n{_say('verdicts-intro', summary=summary)}\n\n" + "\n".join(rows)


def _capability_text(hello: ImapHello | None) -> str:
    return " ".join(sorted(hello.capabilities)) if hello is not None and hello.capabilities else ""


def _connection(facts: ImapFacts) -> str:
    lines = [f"## {_say('connection-heading')}"]
    clear, upgraded, implicit = facts.hello(facts.clear), facts.hello(facts.upgraded), facts.hello(facts.implicit)
    if "imap" in facts.endpoints:
        lines.append(f"### {_say('starttls-heading', endpoint=facts.endpoints['imap'])}")
        if clear is None:
            lines.append(_say("not-observed"))
        else:
            capabilities = clear.capabilities
            lines.append(_say("clear-greeting", greeting=_code(str(clear.greeting)),
                              capabilities=_code(_capability_text(clear) or "-")))
            lines.append(_say("starttls-offered" if "STARTTLS" in capabilities else "starttls-missing"))
            lines.append(_say("logindisabled" if "LOGINDISABLED" in capabilities else "no-logindisabled"))
        lines.append(_tls_sentence(facts, "imap"))
        lines += [_transcript(facts.handshakes.get("imap")), _transcript(facts.clear)]
        if upgraded is not None:
            lines += [_say("inside-capabilities", capabilities=_code(_capability_text(upgraded) or "-")),
                      _transcript(facts.upgraded)]
    else:
        lines.append(_say("no-service", service="imap (143)"))
    if "imaps" in facts.endpoints:
        lines.append(f"### {_say('implicit-heading', endpoint=facts.endpoints['imaps'])}")
        if implicit is None:
            lines.append(_say("implicit-failed") if facts.implicit is not None else _say("not-observed"))
        else:
            lines.append(_say("implicit-greeting", greeting=_code(str(implicit.greeting)),
                              capabilities=_code(_capability_text(implicit) or "-")))
        lines += [_tls_sentence(facts, "imaps"), _transcript(facts.implicit)]
    else:
        lines.append(_say("no-service", service="imaps (993)"))
    lines.append(_certificate(facts))
    return "\n\n".join(line for line in lines if line)


def _tls_sentence(facts: ImapFacts, service: str) -> str:
    shake = facts.facts(service)
    if shake is None:
        observed = facts.handshakes.get(service)
        error = observed.value.error if observed is not None and isinstance(observed.value, Handshake) else None
        return _say("tls-failed", service=service, error=error) if error is not None else ""
    return _say("tls-facts", service=service, version=shake.version, cipher=shake.cipher)


def _certificate(facts: ImapFacts) -> str:
    for service in ("imaps", "imap"):
        shake = facts.facts(service)
        if shake is not None and shake.chain:
            summary = "\n".join(tlsinfo.summary(tlsinfo.chain_of(shake.chain)))
            return f"### {_say('certificate-heading', service=service)}\n\n```text\n{summary}\n```"
    return ""


def _capabilities(facts: ImapFacts) -> str:
    clear, upgraded, implicit = facts.hello(facts.clear), facts.hello(facts.upgraded), facts.hello(facts.implicit)
    columns = [(name, hello) for name, hello in ((_say("column-clear"), clear), (_say("column-starttls"), upgraded),
                                                 (_say("column-imaps"), implicit)) if hello is not None]
    if not columns:
        return ""
    every = sorted(set().union(*(hello.capabilities for _, hello in columns)))
    rows = [f"| {_say('column-capability')} | " + " | ".join(name for name, _ in columns) + " |",
            "|---|" + "---|" * len(columns)]
    rows += [f"| {_code(capability)} | " + " | ".join("✔" if capability in hello.capabilities else "—"
                                                      for _, hello in columns) + " |" for capability in every]
    text = [f"## {_say('capabilities-heading')}", "\n".join(rows)]
    if clear is not None and upgraded is not None:
        gone = sorted(clear.capabilities - upgraded.capabilities)
        came = sorted(upgraded.capabilities - clear.capabilities)
        text.append(_say("capabilities-change", gone=", ".join(map(_code, gone)) or "—",
                         came=", ".join(map(_code, came)) or "—"))
    return "\n\n".join(text)


def mechanisms(hello: ImapHello | None) -> list[str]:
    """The SASL mechanisms a CAPABILITY lists (``AUTH=PLAIN`` → ``PLAIN``)."""
    if hello is None:
        return []
    return sorted(c.split("=", 1)[1] for c in hello.capabilities if c.startswith("AUTH="))


def _mechanisms(facts: ImapFacts) -> str:
    before = mechanisms(facts.hello(facts.clear))
    inside = mechanisms(facts.hello(facts.upgraded)) or mechanisms(facts.hello(facts.implicit))
    every = sorted(set(before) | set(inside))
    text = [f"## {_say('mechanisms-heading')}"]
    if not every:
        text.append(_say("no-mechanisms"))
        return "\n\n".join(text)
    rows = [f"| {_say('column-mechanism')} | {_say('column-before')} | {_say('column-inside')} | "
            f"{_say('column-protects')} |", "|---|---|---|---|"]
    for name in every:
        family = MECHANISM_FAMILIES.get(name, "unknown")
        rows.append(f"| {_code(name)} | {'✔' if name in before else '—'} | {'✔' if name in inside else '—'} | "
                    f"{_cell(_say('mechanism-' + family))} |")
    text.append("\n".join(rows))
    cleartext_before = [m for m in before if MECHANISM_FAMILIES.get(m) == "cleartext"]
    if cleartext_before:
        text.append(_say("cleartext-before-tls", mechanisms=", ".join(cleartext_before)))
    return "\n\n".join(text)


def _history(facts: ImapFacts) -> str:
    """Each improvement in IMAP security, and what this server does about it."""
    clear, upgraded, implicit = facts.hello(facts.clear), facts.hello(facts.upgraded), facts.hello(facts.implicit)
    inside = upgraded or implicit
    offered = set(mechanisms(inside)) | set(mechanisms(clear))
    capabilities = set().union(*(h.capabilities for h in (clear, upgraded, implicit) if h is not None))
    versions = sorted({f.version for s in facts.endpoints if (f := facts.facts(s)) is not None})

    def has(condition: bool | None, yes: str, no: str, unknown: str = "unknown") -> str:
        return _say(unknown) if condition is None else _say(yes if condition else no)

    def verdict(check: str) -> str:
        outcome = facts.outcome(check)
        return _say("verdict", check=_code(check), outcome=outcome) if outcome else ""

    injection = facts.outcome("imap.starttls.injection")
    events = [
        ("rfc2595", has(None if clear is None else "STARTTLS" in clear.capabilities, "now-starttls", "now-no-starttls")),
        ("rfc3501", has(None if clear is None else "LOGINDISABLED" in clear.capabilities, "now-logindisabled",
                        "now-no-logindisabled") + " " + verdict("imap.login.cleartext-refused")),
        ("rfc4422", has(None if inside is None else bool(mechanisms(inside)), "now-sasl", "now-no-sasl")
         + (f" ({', '.join(mechanisms(inside))})" if mechanisms(inside) else "")),
        ("rfc4959", has(None if inside is None else "SASL-IR" in capabilities, "now-sasl-ir", "now-no-sasl-ir")),
        ("rfc5802", has(None if inside is None else any(m.startswith("SCRAM-") for m in offered), "now-scram",
                        "now-no-scram")),
        ("rfc7628", has(None if inside is None else bool(offered & {"OAUTHBEARER", "XOAUTH2"}), "now-oauth",
                        "now-no-oauth")),
        ("rfc8314", has(None if "imaps" not in facts.endpoints and clear is None else implicit is not None,
                        "now-imaps", "now-no-imaps") + " " + verdict("imap.imaps.implicit-tls")),
        ("nostarttls", has(None if injection not in DECIDED else injection != "fail", "now-injection-safe",
                           "now-injection-vulnerable") + " " + verdict("imap.starttls.injection")),
        ("rfc8996", (_say("now-versions", versions=", ".join(versions)) if versions else _say("unknown"))
         + " " + " ".join(filter(None, (verdict(f"tls.protocol.no-tls10@{s}") for s in facts.endpoints)))),
        ("rfc9051", has(None if not capabilities else "IMAP4REV2" in capabilities, "now-rev2", "now-no-rev2")),
    ]
    items = [f"{number}. {_say('history-' + key)}  \n   *{_say('this-server')}:* {now.strip()}"
             for number, (key, now) in enumerate(events, 1)]
    return f"## {_say('history-heading')}\n\n" + "\n".join(items)
