"""The TLS report of a target (lab steps A2.smtp-tls, A3.pop3-tls and the TLS rows of E): one
table across every TLS endpoint it offers — the certificate's fingerprint, which of the target's
host names it covers, the TLS version and cipher a modern client got, the lowest version it
accepts — then each endpoint's certificate, summarised and as PEM.  Like the IMAP report it is
written from what the run observed (the certificate observations of suites/tls and the version
probes), never from a connection of its own; no cross-endpoint tool does this table.
"""

from __future__ import annotations

from collections import Counter

from mailconform import messages, tlsinfo, tlsprobe
from mailconform.targetrun import TargetRun

CATALOGUE = "report.tls"
FILE_NAME = "tls.{lang}.md"
STEP = "A2.smtp-tls"
ATTACHED_TO = "tls.cert.consistent"  # the allure result that carries the report
CONSISTENCY_CHECKS = ("tls.cert.consistent", "tls.names.consistent")


def should_write(run: TargetRun) -> bool:
    """Written when the run read at least one endpoint's certificate."""
    return any(run.observed(("certificate", service)) is not None for service in tlsinfo.TLS_ENDPOINTS)


def render(run: TargetRun, lang: str) -> str:
    """The report of ``run``'s target as Markdown, in ``lang``."""
    with messages.speaking(lang):
        rows = tlsinfo.consistency_table(run, lambda service: tlsprobe.lowest_accepted(run, service))
        parts = [f"# {_say('title', target=run.target.name)}", _say("intro"), _table(rows), _findings(run),
                 *(_certificate(run, row.service) for row in rows)]
    return "\n\n".join(part for part in parts if part) + "\n"


def _say(key: str, **fields) -> str:
    return messages.message(CATALOGUE, key, **fields)


def _table(rows: list[tlsinfo.ConsistencyRow]) -> str:
    if not rows:
        return _say("no-certificate")
    names = list(rows[0].covers)
    header = [_say("column-endpoint"), _say("column-fingerprint"), *(f"`{name}`" for name in names),
              _say("column-version"), _say("column-cipher"), _say("column-floor")]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    common = Counter(row.fingerprint for row in rows).most_common(1)[0][0]
    for row in rows:
        fingerprint = f"`{row.fingerprint[:16]}…`" + ("" if row.fingerprint == common else f" **{_say('differs')}**")
        cells = [f"{row.service} {row.endpoint}", fingerprint, *("✔" if row.covers[name] else "✘" for name in names),
                 row.version, f"`{row.cipher}`", row.floor or _say("not-probed")]
        lines.append("| " + " | ".join(cells) + " |")
    return f"## {_say('table-heading')}\n\n{_say('table-intro')}\n\n" + "\n".join(lines)


def _findings(run: TargetRun) -> str:
    found = [r for r in run.results if r["id"] in CONSISTENCY_CHECKS]
    if not found:
        return ""
    lines = [f"- `{r['check']}`: **{r['outcome']}**" + (f" — {r['message'].splitlines()[0]}" if r["message"] else "")
             for r in found]
    return f"## {_say('findings-heading')}\n\n" + "\n".join(lines)


def _certificate(run: TargetRun, service: str) -> str:
    shake = run.observed(("certificate", service)).value.answer
    chain = tlsinfo.chain_of(shake.chain)
    summary = "\n".join(tlsinfo.summary(chain))
    pem = "\n".join(cert.pem.strip() for cert in chain)
    return (f"## {_say('certificate-heading', service=service, endpoint=run.target.endpoint(service))}\n\n"
            f"```text\n{summary}\n```\n\n<details><summary>PEM</summary>\n\n```text\n{pem}\n```\n\n</details>")
