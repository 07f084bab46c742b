"""TLS client contexts built from a target's ``[tls]`` table."""

from __future__ import annotations

import ssl

from mailconform.targets import TlsSettings
from mailconform.wire.errors import TlsFailed


def client_context(settings: TlsSettings) -> ssl.SSLContext:
    """A client context that verifies the server against ``ca_file`` (or the system store).

    ``verify = false`` in the target turns verification off for labs whose certificates are judged
    elsewhere (the TLS steps); the channel is still encrypted."""
    if settings.ca_file and not settings.ca_file.is_file():
        raise TlsFailed(f"the trust anchor {settings.ca_file} (tls.ca_file) does not exist")
    context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    if not settings.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
