"""TLS versions and weak cipher suites on every TLS endpoint (graded in A2.smtp-tls, A3.pop3-tls
and E.imap-security): TLS 1.2 offered, TLS 1.3 supported and preferred, TLS 1.0 and 1.1 refused,
no NULL, EXPORT, RC4 or 3DES suite accepted on TLS 1.2.

Each row reads the probe handshakes of :mod:`mailconform.tlsprobe`, made once per run and shared:
on a healthy endpoint one for TLS 1.2, one for TLS 1.0 and 1.1 together and one for every weak
suite together, plus the handshake that reads the certificate (which shows whether TLS 1.3 wins).  Port 25 is server-to-server TLS, opportunistic (RFC 7435): a sender that
could only speak TLS 1.0 would otherwise deliver in clear, so there an old version or a 3DES
suite is a warning; on submission, smtps, POP3 and IMAP, where mail clients log in, a failure.
"""

from mailconform.checks import check, expect
from mailconform.targetrun import OPPORTUNISTIC_SERVICE
from mailconform.tlsinfo import TLS_ENDPOINTS, TLS_STEPS
from mailconform.tlsprobe import CIPHER_PROBES, decided, negotiated_version, probe

TLS13 = "TLSv1.3"


@check("tls.protocol.tls12", step=TLS_STEPS, endpoints=TLS_ENDPOINTS, rfc="9325#3.1.1", level="MUST",
       severity="medium", catalogue="TLS-1.2")
def test_tls12_is_offered(tls, endpoint):
    """RFC 9325 §3.1.1 keeps the sentence of RFC 7525 §3.1.1: "Implementations MUST support TLS 1.2
    [RFC5246]."  A client offering TLS 1.2 alone completes the handshake; a TLS-1.3-only
    server locks out every client that has no TLS 1.3 yet.  RFC 9051 §11.1 requires TLS 1.2 of IMAP.
    """
    result = decided(probe(tls, endpoint, "tls1.2"), "tls1.2")
    expect(result.accepted, "refused", detail=result.detail)


@check("tls.protocol.tls13", step=TLS_STEPS, endpoints=TLS_ENDPOINTS, rfc="9325#3.1.1", level="SHOULD",
       severity="medium", catalogue="TLS-1.3")
def test_tls13_is_supported_and_preferred(tls, endpoint):
    """RFC 9325 §3.1.1 (paraphrased): "Implementations SHOULD support TLS 1.3 [RFC8446] and, if
    implemented, MUST prefer to negotiate TLS 1.3 over earlier versions of TLS."  A client offering
    every version gets 1.3 (the handshake that reads the certificate); else a client offering TLS
    1.3 alone is tried: refused is a warning (not supported), accepted too (supported, but an older
    version was preferred).
    """
    version = negotiated_version(tls, endpoint)
    if version == TLS13:  # supported and preferred: no probe needed
        return
    result = decided(probe(tls, endpoint, "tls1.3"), "tls1.3")
    expect(result.accepted, "unsupported", tolerated=True, detail=result.detail)
    expect(not result.accepted, "not-preferred", tolerated=True, version=version)


@check("tls.protocol.no-tls10", step=TLS_STEPS, endpoints=TLS_ENDPOINTS, rfc="8996#4", level="MUST NOT",
       severity="high", catalogue="TLS-NO-1.0")
def test_tls10_is_refused(tls, endpoint):
    """RFC 8996 §4 (paraphrased): TLS 1.0 MUST NOT be used, and negotiating TLS 1.0 from any version
    of TLS MUST NOT be permitted (RFC 9325 §3.1.1: "Implementations MUST NOT negotiate TLS version
    1.0").  A client offering TLS 1.0 alone (every suite it has, ``@SECLEVEL=0``) is refused.  On
    port 25 (opportunistic TLS, RFC 7435) accepting it is a warning.
    """
    result = decided(probe(tls, endpoint, "tls1.0"), "tls1.0")
    expect(not result.accepted, "accepted", tolerated=endpoint == OPPORTUNISTIC_SERVICE, cipher=result.cipher)


@check("tls.protocol.no-tls11", step=TLS_STEPS, endpoints=TLS_ENDPOINTS, rfc="8996#5", level="MUST NOT",
       severity="high", catalogue="TLS-NO-1.1")
def test_tls11_is_refused(tls, endpoint):
    """RFC 8996 §5 (paraphrased): TLS 1.1 MUST NOT be used, and negotiating TLS 1.1 from any version
    of TLS MUST NOT be permitted (RFC 9325 §3.1.1: "Implementations MUST NOT negotiate TLS version
    1.1").  A client offering TLS 1.1 alone is refused.  On port 25 accepting it is a warning.
    """
    result = decided(probe(tls, endpoint, "tls1.1"), "tls1.1")
    expect(not result.accepted, "accepted", tolerated=endpoint == OPPORTUNISTIC_SERVICE, cipher=result.cipher)


@check("tls.cipher.no-weak", step=TLS_STEPS, endpoints=TLS_ENDPOINTS, rfc="9325#4.1", level="MUST NOT",
       severity="high", catalogue="TLS-CIPHER-WEAK")
def test_no_weak_suite_is_accepted(tls, endpoint):
    """RFC 9325 §4.1 keeps RFC 7525 §4.1's rules: "Implementations MUST NOT negotiate the cipher
    suites with NULL encryption."  "Implementations MUST NOT negotiate RC4 cipher suites."
    "Implementations MUST NOT negotiate cipher suites offering less than 112 bits of security,
    including so-called "export-level" encryption (which provide 40 or 56 bits of security)."
    "Implementations SHOULD NOT negotiate cipher suites that use algorithms offering less than 128
    bits of security." (3DES: 112 bits, and Sweet32).  RFC 7465 §2: "TLS servers MUST NOT select an
    RC4 cipher suite when a TLS client sends such a cipher suite in the ClientHello message."
    Each family is offered alone on TLS 1.2 and must be refused; 3DES on port 25 is a warning.
    """
    results = {name: probe(tls, endpoint, name) for name in CIPHER_PROBES}
    accepted = {name: result.cipher for name, result in results.items() if result.accepted}
    tolerated = {"3des"} if endpoint == OPPORTUNISTIC_SERVICE else set()
    forbidden = [cipher for name, cipher in accepted.items() if name not in tolerated]
    expect(not forbidden, "accepted", suites=", ".join(forbidden))
    expect("3des" not in accepted, "triple-des", tolerated=True, suite=accepted.get("3des"))
    for name, result in results.items():
        decided(result, name)
