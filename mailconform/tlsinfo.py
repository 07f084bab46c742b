"""TLS facts per endpoint, read by the checks of suites/tls: which lab step grades each endpoint's
TLS rows, the handshake facts and the certificate's properties (ssl + cryptography)."""

from __future__ import annotations

#: Every TLS endpoint a target may offer, and the lab step its TLS rows are graded in.
TLS_STEPS: dict[str, str] = {
    "smtp": "A2.smtp-tls", "submission": "A2.smtp-tls", "smtps": "A2.smtp-tls",
    "pop3": "A3.pop3-tls", "pop3s": "A3.pop3-tls",
    "imap": "E.imap-security", "imaps": "E.imap-security",
}
TLS_ENDPOINTS = tuple(TLS_STEPS)
