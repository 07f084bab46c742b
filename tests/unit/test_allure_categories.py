"""allure's finding families catch the A2/A3 findings by their message, in both languages, and an
injection after STARTTLS lands with smuggling/injection, not with TLS (allure takes the first match)."""

import re

import pytest

from mailconform import messages
from mailconform.allure_report import categories


def family(message: str) -> str:
    return next(c["name"] for c in categories()
                if "failed" in c["matchedStatuses"] and re.fullmatch(c.get("messageRegex", "(?s).*"), message))


@pytest.mark.parametrize("lang, message, label", [
    ("en", "FAIL: OPEN RELAY: RCPT TO:<v@example.com> from 127.0.0.1 was accepted", "category-open-relay"),
    ("es", "FAIL: RELAY ABIERTO: se aceptó RCPT TO:<v@example.com>", "category-open-relay"),
    ("en", "FAIL: inside TLS, smtp (h:25) sent a reply nobody asked for — plaintext command injection "
           "(CVE-2011-0411)", "category-smuggling"),
    ("es", "FAIL: dentro de TLS, smtp (h:25) envió una respuesta — inyección de órdenes en claro", "category-smuggling"),
    ("en", "FAIL: the server took <LF>.<CR><LF> for the end of the message", "category-smuggling"),
    ("en", "FAIL: EHLO on smtp offers AUTH PLAIN LOGIN before TLS", "category-cleartext"),
    ("es", "FAIL: una contraseña viajó en claro en 2 trama(s)", "category-cleartext"),
    ("en", "FAIL: certificate verification failed: self-signed certificate", "category-tls"),
    ("en", "FAIL: NOOP was answered 500", "category-fail"),
])
def test_findings_land_in_their_family(lang, message, label):
    with messages.speaking(lang):
        assert family(message) == messages.label(label)
